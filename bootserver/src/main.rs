//! `ombootd`: serve DHCP, TFTP, HTTP and the NFS root to the nodes of one configuration file.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use bootserver::config::Config;
use bootserver::mac::MacAddr;
use bootserver::{node_admin, pending};
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
    /// Edit the node table of the config file (comments kept); a running ombootd takes the
    /// change within a second, without a restart.
    Node {
        #[command(subcommand)]
        verb: NodeVerb,
    },
    /// Ask the running ombootd of this configuration for its status: every node's state, last
    /// boot stage and lease, and the MACs outside the table.
    Status {
        /// Print the status document as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum NodeVerb {
    /// Add a node.
    Add {
        /// Its boot NIC.
        mac: MacAddr,
        /// Its host name.
        #[arg(long)]
        name: String,
        /// Its address (default: the first free one of the subnet).
        #[arg(long)]
        ip: Option<std::net::Ipv4Addr>,
    },
    /// Remove a node, by MAC or name.
    Remove {
        /// MAC or name.
        node: String,
    },
    /// List the nodes of the table, and the MACs waiting for approval.
    List {
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make a MAC that asked for DHCP (`unknown_macs = "register"`) a node.
    Approve {
        /// The waiting MAC.
        mac: MacAddr,
        /// Its host name.
        #[arg(long)]
        name: String,
        /// Its address (default: the first free one of the subnet).
        #[arg(long)]
        ip: Option<std::net::Ipv4Addr>,
    },
}

fn node_verb(path: &std::path::Path, config: &Config, verb: NodeVerb) -> anyhow::Result<()> {
    let taken = "a running ombootd takes it within a second";
    match verb {
        NodeVerb::Add { mac, name, ip } => {
            let ip = node_admin::add_to_file(path, mac, &name, ip)?;
            println!("added {name} ({mac}, {ip}) to {}; {taken}", path.display());
        }
        NodeVerb::Approve { mac, name, ip } => {
            let waiting = pending::read(&config.state_dir).contains_key(&mac);
            let ip = node_admin::approve_to_file(path, waiting, mac, &name, ip)?;
            println!(
                "approved {mac} as {name} ({ip}) in {}; {taken}, and the node boots at its next DHCP request",
                path.display()
            );
        }
        NodeVerb::Remove { node } => {
            let name = node_admin::remove_from_file(path, &node)?;
            println!("removed {name} from {}; {taken}", path.display());
        }
        NodeVerb::List { json } => {
            let waiting = pending::read(&config.state_dir);
            if json {
                let nodes: Vec<serde_json::Value> = config
                    .nodes
                    .iter()
                    .map(|n| serde_json::json!({"name": n.name, "mac": n.mac.to_string(), "ip": n.ip.to_string()}))
                    .collect();
                let waiting: Vec<serde_json::Value> = waiting
                    .iter()
                    .map(|(m, at)| serde_json::json!({"mac": m.to_string(), "at": at}))
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({"nodes": nodes, "pending": waiting})
                );
            } else {
                println!("{:<16} {:<17} IP", "NAME", "MAC");
                for n in &config.nodes {
                    println!("{:<16} {:<17} {}", n.name, n.mac, n.ip);
                }
                for m in waiting.keys() {
                    println!("{:<16} {:<17} -", "(pending)", m);
                }
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("OMBOOTD_LOG")
                .unwrap_or_else(|_| "info,nfs3_server=warn".into()),
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
        Command::Node { verb } => node_verb(&cli.config, &config, verb),
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
            rt.block_on(bootserver::serve::serve(config, &cli.config))
        }
    }
}
