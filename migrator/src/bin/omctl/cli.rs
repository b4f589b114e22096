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
    /// Live per-node bar monitor (like mosmon) with the latest migrations. Keys: l load, s speed, m memory, u utilisation, q quit.
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
    /// The migrations the cluster's nodes remember, oldest first: when, which job, where, why,
    /// how it went.
    Migrations {
        /// Print the moves as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a checked mix of jobs from this node; report where they ran and the speedup over
    /// running them at home (openmosixtest's successor).
    #[command(
        long_about = "Start a mix of jobs from this node through omrun (default placement), \
                      check every result, and report where each job ran, the migrations, and \
                      the makespan against the same mix run at home (omrun -h).\n\n\
                      The mix: CPU-bound `omwork spin` jobs of 1, 2, 3... times --units, one \
                      `omwork mem`, one `omwork threads`, and a pipeline (cat | gzip | gunzip | \
                      sha256sum) reading a file written under the shared directory first. Jobs \
                      run in that directory, so nothing pins them to this node.\n\n\
                      Exits 1 if any job failed or printed a wrong result. A quick run in a \
                      2-node TCG lab: omctl stress --cpu-jobs 2 --units 2 --mem-mib 16 \
                      --secs 5 --threads 2 --pipe-mib 1"
    )]
    Stress(StressArgs),
    /// A node control.
    #[command(flatten)]
    Control(ControlCmd),
}

/// The sizes and tools of `omctl stress`.
#[derive(Debug, Clone, clap::Args)]
pub struct StressArgs {
    /// CPU-bound jobs (`omwork spin`); the k-th does k times --units of work.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(0..=64))]
    pub cpu_jobs: u32,
    /// Work of the shortest CPU job, in units of about 0.1 s of native CPU.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub units: u64,
    /// Resident size of the memory job, MiB (0: no memory job).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(0..=65_536))]
    pub mem_mib: u64,
    /// Percent of the memory job's pages it rewrites per second.
    #[arg(long, default_value_t = 10.0, value_parser = parse_pct)]
    pub mem_pct: f64,
    /// Threads of the multithreaded job (0: no threads job).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(0..=1024))]
    pub threads: u32,
    /// Wall time of the memory and threads jobs, seconds.
    #[arg(long, default_value_t = 20.0, value_parser = parse_secs)]
    pub secs: f64,
    /// Size of the pipeline job's input file, MiB (0: no pipeline job).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(0..=4096))]
    pub pipe_mib: u64,
    /// The shared directory every node mounts; the input file and the jobs' working directory
    /// go in a fresh `.stress-<pid>` under it, removed afterwards.
    #[arg(long, value_name = "DIR", default_value = "/cluster")]
    pub cluster_dir: PathBuf,
    /// Skip the second run with every job at home (omrun -h): no speedup figure.
    #[arg(long)]
    pub no_baseline: bool,
    /// The omrun program.
    #[arg(long, value_name = "PATH", default_value = "omrun")]
    pub omrun: PathBuf,
    /// The omwork program, as the jobs find it.
    #[arg(long, value_name = "PATH", default_value = "omwork")]
    pub omwork: String,
    /// Give up on a run after this many seconds (its jobs are killed and count as failed).
    #[arg(long, value_name = "SECS", default_value_t = 3600.0, value_parser = parse_secs)]
    pub timeout: f64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
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

/// A duration option: a positive, finite number of seconds, at most a week.
fn parse_secs(s: &str) -> Result<f64, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if secs.is_finite() && secs > 0.0 && secs <= 604_800.0 {
        Ok(secs)
    } else {
        Err(format!("must be between 0 and 604800 seconds, got {s}"))
    }
}

/// A percentage, 0 to 100.
fn parse_pct(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p),
        _ => Err(format!("must be a percentage from 0 to 100, got {s}")),
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
    fn stress_sizes_have_defaults_and_bounds() {
        let cli =
            Cli::try_parse_from(["omctl", "stress", "--units", "2", "--no-baseline"]).unwrap();
        let Command::Stress(a) = cli.command else {
            panic!("stress");
        };
        assert_eq!((a.cpu_jobs, a.units, a.no_baseline), (4, 2, true));
        assert_eq!(a.cluster_dir, PathBuf::from("/cluster"));
        assert!(Cli::try_parse_from(["omctl", "stress", "--units", "0"]).is_err());
        assert!(Cli::try_parse_from(["omctl", "stress", "--secs", "-1"]).is_err());
    }

    #[test]
    fn once_size_needs_once() {
        assert!(Cli::try_parse_from(["omctl", "mon", "--width", "80"]).is_err());
        assert!(Cli::try_parse_from(["omctl", "mon", "--once", "--width", "80"]).is_ok());
    }
}
