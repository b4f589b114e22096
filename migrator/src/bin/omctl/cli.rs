//! The command line of `omctl`, declared with clap derive.
//! Parsing only: each subcommand's behaviour lives in its own module.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use migrator::api::{Control, DEFAULT_SOCKET};

/// Client and monitor for omd, the ombootd node daemon (mosctl, mosmon, mps and mtop in one).
#[derive(Debug, Parser)]
#[command(name = "omctl", version, propagate_version = true)]
pub struct Cli {
    /// omd's control socket.
    #[arg(long, global = true, value_name = "PATH", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Table of the cluster's nodes: this node first (marked *), then by name.
    Nodes {
        /// Print omd's raw node list as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one node by id, name or IP address (like `mosctl whois`).
    Whois {
        /// Node id (hex), host name or IP address.
        who: String,
        /// Print the node as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Live per-node bar monitor (like mosmon). Keys: l load, s speed, m memory, u utilisation, q quit.
    Mon {
        /// View shown first.
        #[arg(long, value_enum, default_value_t = ViewArg::Load)]
        view: ViewArg,
        /// Print one frame as plain text and exit (for scripts; no terminal needed).
        #[arg(long)]
        once: bool,
        /// Width of the `--once` frame, in columns.
        #[arg(long, default_value_t = 100, requires = "once")]
        width: u16,
        /// Height of the `--once` frame, in rows.
        #[arg(long, default_value_t = 24, requires = "once")]
        height: u16,
    },
    /// List processes with the node each runs on (like mps).
    #[command(
        long_about = "List processes with the node each runs on (like openMosix's mps).\n\n\
                      Process migration arrives with the next issue: until then every process \
                      listed runs on this node, and NODE is this node's name (from omd, or the \
                      host name when omd is not running)."
    )]
    Ps {
        /// Print the rows as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Processes by CPU use over each interval, with their node (like mtop, batch style).
    #[command(
        long_about = "Processes by CPU use over each interval, with the node each runs on \
                      (like openMosix's mtop). On a terminal the screen is redrawn; otherwise \
                      each iteration is appended (like top -b).\n\n\
                      Process migration arrives with the next issue: until then every process \
                      listed runs on this node."
    )]
    Top {
        /// Number of iterations, then exit (default: run until interrupted).
        #[arg(short = 'n', long = "iterations", value_name = "ITER")]
        iterations: Option<u64>,
        /// Seconds between iterations.
        #[arg(short = 'd', long = "delay", value_name = "SECS", default_value_t = 3.0,
              value_parser = parse_delay)]
        delay: f64,
    },
    /// The cluster's jobs (started with omrun): where each runs, its home, its state.
    Jobs {
        /// Print the rows as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Move a job to another node, or home (like openMosix's migrate).
    Migrate {
        /// Job id (`node1.1234`), or the pid of its omrun on this node.
        job: String,
        /// A node name, or `home`.
        to: String,
    },
    /// A node control.
    #[command(flatten)]
    Control(ControlCmd),
}

/// mosctl's node controls, each a top-level subcommand (`omctl stay`, `omctl block`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum ControlCmd {
    /// Forbid automatic migration of local processes away (root).
    Stay,
    /// Allow automatic migration again; undoes stay and lstay (root).
    Nostay,
    /// Only local processes stay; guests may leave (root).
    Lstay,
    /// Refuse arriving guest processes (root).
    Block,
    /// Accept guest processes again (root).
    Noblock,
    /// Stop sending load information; the node stays a member (root).
    Quiet,
    /// Send load information again (root).
    Noquiet,
    /// Send all guest jobs home, then refuse new ones (root).
    Expel,
    /// Call every job of this node home (root).
    Bring,
}

impl From<ControlCmd> for Control {
    fn from(c: ControlCmd) -> Self {
        match c {
            ControlCmd::Stay => Self::Stay,
            ControlCmd::Nostay => Self::Nostay,
            ControlCmd::Lstay => Self::Lstay,
            ControlCmd::Block => Self::Block,
            ControlCmd::Noblock => Self::Noblock,
            ControlCmd::Quiet => Self::Quiet,
            ControlCmd::Noquiet => Self::Noquiet,
            ControlCmd::Expel => Self::Expel,
            ControlCmd::Bring => Self::Bring,
        }
    }
}

/// `mon --view`: the bar views of mosmon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ViewArg {
    /// Normalised load (1.0 = one standard CPU busy).
    Load,
    /// Speed (1000 = a standard CPU).
    Speed,
    /// Memory used of total.
    Mem,
    /// Utilisation: load capped at 100% per CPU.
    Util,
}

/// A delay must be a positive, finite number of seconds (top rejects 0 and negatives too).
fn parse_delay(s: &str) -> Result<f64, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if secs.is_finite() && secs > 0.0 && secs <= 86_400.0 {
        Ok(secs)
    } else {
        Err(format!(
            "delay must be between 0 and 86400 seconds, got {s}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn delay_must_be_positive() {
        assert_eq!(parse_delay("0.5"), Ok(0.5));
        assert!(parse_delay("0").is_err());
        assert!(parse_delay("-1").is_err());
        assert!(parse_delay("soon").is_err());
    }

    #[test]
    fn controls_map_to_requests() {
        let cli = Cli::try_parse_from(["omctl", "expel"]).unwrap();
        let Command::Control(c) = cli.command else {
            panic!("expel is a control");
        };
        assert_eq!(Control::from(c), Control::Expel);
        let cli = Cli::try_parse_from(["omctl", "noquiet"]).unwrap();
        assert!(matches!(cli.command, Command::Control(ControlCmd::Noquiet)));
    }

    #[test]
    fn once_size_needs_once() {
        assert!(Cli::try_parse_from(["omctl", "mon", "--width", "80"]).is_err());
        assert!(Cli::try_parse_from(["omctl", "mon", "--once", "--width", "80"]).is_ok());
    }
}
