//! `ombootd`: serve DHCP, TFTP, HTTP and the NFS root to the nodes of one configuration file.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use bootserver::config::Config;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "ombootd",
    version,
    about = "Boot server for diskless ombootd nodes (DHCP, TFTP, HTTP, NFS root)"
)]
struct Cli {
    /// Configuration file.
    #[arg(long, short, global = true, default_value = "configs/ombootd.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve (the default).
    Serve,
    /// Validate the configuration and the image without serving.
    CheckConfig,
    /// Ask the running ombootd of this configuration for its status: every node's state, last
    /// boot stage and lease, and the MACs outside the table.
    Status {
        /// Print the status document as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("OMBOOTD_LOG")
                .unwrap_or_else(|_| "info,nfs3_server=warn,async_tftp=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            migrator::report::print_error_chain("Error", &e);
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(&cli.config)?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::CheckConfig => {
            bootserver::image::check(&config.image_dir, &config.tftp_root)?;
            println!(
                "{}: OK ({} nodes on {}, subnet {}, image {})",
                cli.config.display(),
                config.nodes.len(),
                config.interface,
                config.subnet,
                config.image_dir.display()
            );
            Ok(())
        }
        Command::Status { json } => {
            let url = format!(
                "http://{}:{}/api/status",
                config.master_ip, config.ports.http
            );
            let agent = ureq::Agent::config_builder()
                .timeout_global(Some(std::time::Duration::from_secs(10)))
                .build()
                .new_agent();
            let doc: serde_json::Value = agent
                .get(&url)
                .call()
                .and_then(|mut r| r.body_mut().read_json())
                .with_context(|| format!("cannot read {url} (is ombootd serving?)"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                print!("{}", bootserver::status_table::render(&doc, now));
            }
            Ok(())
        }
        Command::Serve => {
            let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            rt.block_on(bootserver::serve::serve(config))
        }
    }
}
