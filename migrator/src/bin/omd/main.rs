//! omd: the node agent. Joins the cluster (multicast or seeds), keeps SWIM membership,
//! spreads load openMosix-style and serves the control API on a unix socket.

use std::net::SocketAddrV4;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use migrator::agent::AgentConfig;
use migrator::config::{self, OmdConfig};
use migrator::identity::{NodeId, NodeIdentity};
use migrator::jobs::{Jobs, JobsConfig, local, peer};
use migrator::key::ClusterKey;
use migrator::load::ProcLoadSource;
use migrator::migration::cpu_cache::CpuCache;
use migrator::migration::criu::{Criu, CriuCli};
use migrator::{generation, netif, node, server};
use std::sync::Arc;

#[derive(Parser, Debug)]
#[command(name = "omd", about = "ombootd cluster node agent")]
struct Cli {
    /// Configuration file.
    #[arg(long, default_value = "/etc/omd/omd.toml")]
    config: PathBuf,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Validate the configuration, the key and the interface, then exit.
    CheckConfig,
}

/// Everything resolved from the config and the machine.
struct Setup {
    cfg: OmdConfig,
    key: ClusterKey,
    /// Also accepted during a key rotation.
    accept_key: Option<ClusterKey>,
    /// Our identity; its generation is taken from the counter file only in [`run`], so
    /// `check-config` changes nothing.
    identity: NodeIdentity,
    iface: netif::Interface,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

fn setup(path: &std::path::Path) -> Result<Setup> {
    let cfg = config::load(path).context("loading configuration")?;
    let key = ClusterKey::load(&cfg.key_file).context("loading the cluster key")?;
    let accept_key = cfg
        .accept_key_file
        .as_deref()
        .map(ClusterKey::load)
        .transpose()
        .context("loading the key accepted during a rotation (accept_key_file)")?;
    let iface =
        netif::resolve(cfg.interface.as_deref()).context("choosing the gossip interface")?;
    let id = std::fs::read_to_string("/etc/machine-id")
        .ok()
        .and_then(|m| NodeId::from_machine_id(&m))
        .or_else(|| netif::mac_of(&iface.name).and_then(|m| NodeId::from_mac(&m)))
        .with_context(|| {
            format!(
                "no /etc/machine-id and no MAC on {} to derive a node id",
                iface.name
            )
        })?;
    let identity = NodeIdentity {
        id,
        name: migrator::wire::truncate_name(&hostname()).to_owned(),
        addr: SocketAddrV4::new(iface.addr, cfg.port),
        generation: 0,
        observer: cfg.observer,
    };
    Ok(Setup {
        cfg,
        key,
        accept_key,
        identity,
        iface,
    })
}

/// The jobs subsystem: CRIU's checks, the peer listener, and the jobs an earlier omd left.
async fn start_jobs(s: &Setup, node: &node::NodeHandle) -> Result<Jobs> {
    let criu: Arc<dyn Criu> = Arc::new(CpuCache::new(CriuCli::default()));
    let c = criu.clone();
    let check = tokio::task::spawn_blocking(move || c.check())
        .await
        .context("running CRIU's checks")?;
    match &check.reason {
        None => {
            tracing::info!(version = %check.version, track_mem = check.track_mem, "CRIU checks passed: this node takes migrations")
        }
        Some(r) => tracing::warn!(reason = %r, "this node cannot take migrations"),
    }
    let omjob = std::env::current_exe()
        .context("locating omd")?
        .with_file_name("omjob");
    let cfg = JobsConfig {
        outcomes_dir: s.cfg.jobs_dir.with_file_name("outcomes"),
        jobs_dir: s.cfg.jobs_dir.clone(),
        name: s.identity.name.clone(),
        ip: s.iface.addr,
        peer_port: s.cfg.peer_port,
        omjob,
        pre_dump: s.cfg.pre_dump,
        policy: s.cfg.balance.clone(),
    };
    let jobs = Jobs::new(cfg, s.key.clone(), node.clone(), criu, check)
        .with_context(|| format!("preparing {}", s.cfg.jobs_dir.display()))?;
    let addr = std::net::SocketAddr::new(s.iface.addr.into(), s.cfg.peer_port);
    let l = peer::bind(addr)
        .await
        .with_context(|| format!("binding the peer port {addr}"))?;
    println!("omd listening for peers on {addr}");
    tokio::spawn(peer::serve(jobs.clone(), l));
    local::recover(&jobs).await;
    tokio::spawn(migrator::balance::driver::run(jobs.clone()));
    Ok(jobs)
}

async fn run(mut s: Setup) -> Result<()> {
    s.identity.generation = generation::take(&s.cfg.generation_file)
        .context("taking a generation from the counter file")?;
    let agent = AgentConfig {
        accept_key: s.accept_key.clone(),
        swim: s.cfg.swim.clone(),
        speed: s.cfg.speed,
        seeds: s.cfg.seeds.clone(),
        multicast: s.cfg.multicast.map(|g| SocketAddrV4::new(g, s.cfg.port)),
        window: s.cfg.load_window,
        ..AgentConfig::default()
    };
    let load_source: Option<Box<dyn migrator::load::LoadSource>> = if s.cfg.observer {
        None
    } else {
        Some(Box::new(ProcLoadSource))
    };
    let identity = s.identity.clone();
    let handle = node::spawn(node::NodeConfig {
        identity: s.identity.clone(),
        key: s.key.clone(),
        agent,
        load_source,
    })
    .context("starting gossip")?;
    // Before any job or peer request is served: a restarted omd keeps stay, block, ...
    let flags = migrator::flags_file::restore(&handle, &s.cfg.flags_file).await;
    tokio::spawn(migrator::flags_file::keep(
        handle.clone(),
        s.cfg.flags_file.clone(),
        flags,
    ));
    let jobs = if s.cfg.observer {
        None
    } else {
        Some(start_jobs(&s, &handle).await?)
    };
    let listener = server::bind(&s.cfg.socket)
        .with_context(|| format!("binding control socket {}", s.cfg.socket.display()))?;
    println!(
        "omd listening on {} as {} ({})",
        identity.addr, identity.name, identity.id
    );
    tracing::info!(
        interface = %s.iface.name,
        socket = %s.cfg.socket.display(),
        generation = identity.generation,
        key_id = format_args!("{:02x}", s.key.id()),
        accept_key_id = s.accept_key.as_ref().map(|k| format!("{:02x}", k.id())),
        "ready"
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = server::serve(listener, handle.clone(), jobs) => {}
        r = tokio::signal::ctrl_c() => { r.context("waiting for signals")?; }
        _ = term.recv() => {}
    }
    handle.stop();
    let _ = std::fs::remove_file(&s.cfg.socket);
    Ok(())
}

fn main_inner() -> Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Plain text under systemd (journal and serial console); colours only on a terminal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let s = setup(&cli.config)?;
    if let Some(Cmd::CheckConfig) = cli.cmd {
        // Read only: check-config must not use up a generation.
        let next = generation::peek(&s.cfg.generation_file)
            .context("reading the generation counter")?
            .saturating_add(1);
        println!(
            "config ok: interface {} ({}), port {}, id {}, name {}, multicast {:?}, seeds {:?}, observer {}, key id {:02x}{}, next generation {}",
            s.iface.name,
            s.iface.addr,
            s.cfg.port,
            s.identity.id,
            s.identity.name,
            s.cfg.multicast,
            s.cfg.seeds,
            s.cfg.observer,
            s.key.id(),
            s.accept_key
                .as_ref()
                .map(|k| format!(" (also accepting {:02x})", k.id()))
                .unwrap_or_default(),
            next
        );
        return Ok(());
    }
    tokio::runtime::Runtime::new()
        .context("starting the async runtime")?
        .block_on(run(s))
}

fn main() -> std::process::ExitCode {
    match main_inner() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            migrator::report::print_error_chain("Error", &e);
            std::process::ExitCode::FAILURE
        }
    }
}
