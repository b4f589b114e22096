//! Start every service on the configured addresses, print one readiness line per listener, and run
//! until a signal. Each failure to start is an error that says what to fix.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};

use crate::boot_stage::BootStages;
use crate::boot_window::FileCounts;
use crate::config::Config;
use crate::config::wire::DhcpMode;
use crate::dhcp::server::{self as dhcp_server, DhcpServer};
use crate::dhcp::stats::DhcpStats;
use crate::http::limits::{self, LimitedListener};
use crate::leases::{self, FileLeases, LeaseStore};
use crate::live::LiveConfig;
use crate::pending::Pending;
use crate::tftp::TftpStats;
use crate::{dashboard, http, image, nfs, privileges, tftp};
use axum::serve::ListenerExt;
use migrator::clock::{Clock, WallClock};
use node_image::image_dir;

fn addr_error(what: &str, addr: SocketAddr, e: std::io::Error) -> anyhow::Error {
    let hint = match e.raw_os_error() {
        Some(libc::EADDRINUSE) => format!("port {} is already in use", addr.port()),
        Some(libc::EADDRNOTAVAIL) => format!(
            "{} is not assigned to any interface here (check `master_ip`)",
            addr.ip()
        ),
        Some(libc::EACCES) => format!("not allowed to bind port {}: run as root", addr.port()),
        _ => e.to_string(),
    };
    anyhow::anyhow!("cannot listen for {what} on {addr}: {hint}")
}

/// Serve `config`, read from `path`, until SIGINT or SIGTERM; read `path` again on SIGHUP and
/// when it changes.
pub async fn serve(config: Config, path: &std::path::Path) -> Result<()> {
    image::check(&config.image_dir, &config.tftp_root)?;
    match crate::open_files::raise_to_hard() {
        Ok((before, after)) if after > before => {
            tracing::info!("open-file limit raised from {before} to {after}");
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("cannot raise the open-file limit: {e}"),
    }
    std::fs::create_dir_all(&config.state_dir).with_context(|| {
        format!(
            "cannot create the state directory {}",
            config.state_dir.display()
        )
    })?;
    let live = Arc::new(LiveConfig::new(path, config.clone()));
    let pending = Arc::new(Pending::open(&config.state_dir));
    let config = Arc::new(config);
    let clock: Arc<dyn Clock> = Arc::new(WallClock);
    let leases: Arc<Mutex<dyn LeaseStore>> =
        Arc::new(Mutex::new(FileLeases::open(&config.state_dir)?));
    let dhcp_stats = Arc::new(DhcpStats::default());
    let tftp_stats = Arc::new(TftpStats::default());
    let ip = IpAddr::V4(config.master_ip);
    let stages = Arc::new(BootStages::new(
        config.nodes.iter().map(|n| (n.mac, n.ip)),
        clock.clone(),
    ));

    // Bind everything first, so a busy port or a wrong address stops us before we answer anyone.
    let dhcp_sock = dhcp_server::bind(&config.interface, config.ports.dhcp)?;
    let proxy = config.dhcp_mode == DhcpMode::Proxy;
    let pxe_sock = if proxy {
        Some(dhcp_server::bind(&config.interface, config.ports.pxe)?)
    } else {
        None
    };
    let tftp_addr = SocketAddr::new(ip, config.ports.tftp);
    let tftp = tftp::bind(
        tftp_addr,
        &config.tftp_root,
        &config.interface,
        tftp_stats.clone(),
        stages.clone(),
    )
    .map_err(|e| addr_error("TFTP", tftp_addr, e))?;
    let http_addr = SocketAddr::new(ip, config.ports.http);
    let http_listener = tokio::net::TcpListener::bind(http_addr)
        .await
        .map_err(|e| addr_error("HTTP", http_addr, e))?;
    let advertiser = if config.ipv6_ra {
        match crate::ra::Advertiser::bind(&config.interface, config.ipv6_boot.as_ref()) {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::warn!(
                    "no IPv6 router advertisements on {} ({e}); iPXE will wait for its IPv6 timeout",
                    config.interface
                );
                None
            }
        }
    } else {
        None
    };
    let advertising = advertiser.is_some();
    // IPv6 netboot: DHCPv6 on the interface, HTTP on the master's IPv6 address too.
    let http6_addr = config
        .ipv6_boot
        .map(|b| SocketAddr::new(IpAddr::V6(b.master()), config.ports.http));
    let (dhcp6, http6) = match (config.ipv6_boot, http6_addr) {
        (Some(boot), Some(addr)) => {
            let mac = crate::ra::mac_of(&config.interface)
                .with_context(|| format!("cannot read the MAC of {}", config.interface))?;
            let (sock, duid) = crate::dhcp6::server::bind(&config.interface, mac)
                .with_context(|| format!("cannot open the DHCPv6 port on {}", config.interface))?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| addr_error("HTTP", addr, e))?;
            let server = crate::dhcp6::server::Dhcp6Server::new(sock, duid, live.clone(), boot)?;
            (Some(server), Some(listener))
        }
        _ => (None, None),
    };
    let serve_dhcp6 = async move {
        match dhcp6 {
            Some(d) => d.run().await,
            None => std::future::pending().await,
        }
    };
    let advertise = async move {
        match advertiser {
            Some(a) => a.run().await,
            None => std::future::pending().await,
        }
    };
    let nfs_addr = SocketAddr::new(ip, config.ports.nfs);
    let generation =
        nfs::generation::load_or_create(&config.state_dir, clock.now().as_secs() * 1000)
            .with_context(|| {
                format!(
                    "cannot keep the NFS generation in {}",
                    config.state_dir.display()
                )
            })?;
    let gate = |insecure| nfs::gate::Gate {
        subnets: Some(config.subnets()),
        insecure,
    };
    let mut nfs = nfs::bind(
        nfs_addr,
        gate(config.nfs_insecure),
        &config.image_dir.join(image_dir::VERSIONS),
        generation,
    )
    .await
    .map_err(|e| addr_error("NFS", nfs_addr, e))?;
    nfs.stages = Some(stages.clone());

    let shared = match &config.cluster_dir {
        Some(dir) => {
            prepare_cluster_dir(&dir.path)?;
            let export = nfs::DirExport::new(&dir.path, nfs::export::Mode::ReadWrite)
                .with_context(|| {
                    format!("cannot export the cluster directory {}", dir.path.display())
                })?;
            let addr = SocketAddr::new(ip, dir.port);
            let service = nfs::bind_shared(addr, gate(dir.insecure), export, generation)
                .await
                .map_err(|e| addr_error("NFS (cluster)", addr, e))?;
            Some((service, addr))
        }
        None => None,
    };
    let shared_addr = shared.as_ref().map(|(_, addr)| *addr);
    let nfs_refused = (
        nfs.refused.clone(),
        shared.as_ref().map(|(s, _)| s.refused.clone()),
    );
    let serve_shared = async move {
        match shared {
            Some((service, _)) => service.serve().await,
            None => std::future::pending().await,
        }
    };

    let (observer, key) = match &config.cluster {
        Some(o) => {
            let (handle, key) = observe(&config, &o.key_file, o.port)?;
            (Some(handle), Some(key))
        }
        None => (None, None),
    };
    let token =
        dashboard::token::Token::load_or_create(&config.state_dir).map_err(anyhow::Error::msg)?;
    let dashboard = Arc::new(dashboard::Dashboard::new(
        token,
        key,
        config
            .cluster
            .as_ref()
            .map_or(migrator::jobs::DEFAULT_PEER_PORT, |o| o.peer_port),
        observer.clone(),
    ));
    let boot_counts = FileCounts::open(&config.state_dir).with_context(|| {
        format!(
            "cannot read the nodes' boot numbers in {}",
            config.state_dir.display()
        )
    })?;
    let http_clock = clock.clone();
    let boots = Arc::new(Mutex::new(http::Boots::new(Box::new(boot_counts))));
    let commits = Arc::new(leases::commits::Commits::default());
    let dhcp = DhcpServer::new(
        dhcp_sock,
        live.clone(),
        leases.clone(),
        commits.clone(),
        dhcp_stats.clone(),
        clock,
        stages.clone(),
        pending.clone(),
    )?;
    let dhcp = match pxe_sock {
        Some(sock) => dhcp.with_pxe_port(sock)?,
        None => dhcp,
    };
    let state = http::AppState {
        config: live.clone(),
        pending: pending.clone(),
        leases: leases.clone(),
        dhcp: dhcp_stats,
        tftp: tftp_stats,
        cluster: observer,
        boots: boots.clone(),
        clock: http_clock.clone(),
        nfs_refused,
        stages: stages.clone(),
        dashboard: dashboard.clone(),
    };

    // Everything is bound: keep only what serving needs.
    match privileges::drop_to_kept() {
        Ok(kept) => {
            let mut names: Vec<String> = kept.iter().map(ToString::to_string).collect();
            names.sort();
            tracing::info!(
                "dropped root's other capabilities; kept {}",
                names.join(" ")
            );
        }
        Err(e) => tracing::warn!("{e}; running with the privileges ombootd was started with"),
    }
    if proxy {
        println!(
            "listening for proxyDHCP on {} (0.0.0.0:{} and 0.0.0.0:{}): boot files only, the site's DHCP server gives the addresses",
            config.interface, config.ports.dhcp, config.ports.pxe
        );
    } else {
        println!(
            "listening for DHCP on {} (0.0.0.0:{})",
            config.interface, config.ports.dhcp
        );
    }
    println!("listening for TFTP on {tftp_addr}");
    println!("listening for HTTP on {http_addr}");
    println!(
        "dashboard at http://{http_addr}/ (controls need the token in {})",
        config.state_dir.join(dashboard::token::FILE).display()
    );
    println!("listening for NFS on {nfs_addr}");
    match (advertising, config.ipv6_boot) {
        (true, Some(boot)) => println!(
            "advertising on {} for IPv6: no router, addresses by DHCPv6 in {}/{}",
            config.interface,
            boot.network(),
            boot.prefix_len()
        ),
        (true, None) => println!(
            "advertising on {} for IPv6: no router, nothing to configure",
            config.interface
        ),
        (false, _) => {}
    }
    if let Some(addr) = http6_addr {
        println!(
            "listening for DHCPv6 on {} ([::]:{})",
            config.interface,
            crate::dhcp6::server::SERVER_PORT
        );
        println!("listening for HTTP on {addr}");
    }
    if let Some(addr) = shared_addr {
        println!("listening for NFS (cluster) on {addr}");
    }
    if let Some(o) = &config.cluster {
        println!("observing the cluster on {}:{}", config.master_ip, o.port);
    }
    println!(
        "ombootd ready: {} nodes, image {}",
        config.nodes.len(),
        config.image_dir.display()
    );

    let state6 = state.clone();
    // TFTP is blocking code on threads of its own (see tftp::server): a lock-step block
    // costs no hop through this runtime.
    let (tftp_tx, tftp_done) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("tftp".into())
        .spawn(move || {
            let _ = tftp_tx.send(tftp.serve());
        })
        .context("cannot start the TFTP thread")?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = dhcp.run() => r.context("the DHCP server stopped")?,
        r = tftp_done => match r {
            Ok(Err(e)) => anyhow::bail!("the TFTP server stopped: {e}"),
            _ => anyhow::bail!("the TFTP server stopped"),
        },
        r = serve_http(http_listener, state) => r.context("the HTTP server stopped")?,
        r = async {
            match http6 {
                Some(l) => serve_http(l, state6).await,
                None => std::future::pending().await,
            }
        } => r.context("the HTTP server on IPv6 stopped")?,
        () = serve_dhcp6 => {}
        r = nfs.serve() => r.context("the NFS server stopped")?,
        () = leases::flusher::run(leases.clone(), commits.clone()) => {}
        () = dashboard::feed::run(dashboard, live.clone(), stages.clone(), pending.clone()) => {}
        () = follow_config(live, stages, pending) => {}
        () = advertise => {}
        () = prune_versions(config.clone(), leases.clone(), boots.clone(), http_clock.clone()) => {}
        r = serve_shared => r.context("the NFS server of the cluster directory stopped")?,
        _ = tokio::signal::ctrl_c() => println!("ombootd: interrupted, stopping"),
        _ = term.recv() => println!("ombootd: terminated, stopping"),
    }
    // What changed since the last write (a RELEASE, say) reaches the disk before we go.
    leases::flusher::flush(&leases, &commits).await;
    Ok(())
}

/// Serve the HTTP routes on `listener`, within the connection limits, until an error.
async fn serve_http(
    listener: tokio::net::TcpListener,
    state: http::AppState,
) -> std::io::Result<()> {
    axum::serve(
        LimitedListener::new(listener, limits::MAX_CONNECTIONS, limits::IDLE).tap_io(|_| ()),
        http::router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
}

/// How often the config file is checked for changes.
const CONFIG_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// The file's size and mtime: a change of either is an edit.
fn stamp(p: &std::path::Path) -> Option<(u64, Option<std::time::SystemTime>)> {
    std::fs::metadata(p)
        .ok()
        .map(|m| (m.len(), m.modified().ok()))
}

/// Read the config file again on SIGHUP and whenever its size or mtime changes: the new node
/// table reaches the DHCP, HTTP and NFS sides and the boot stages; the pending list loses the
/// MACs now in the table and is written to disk. The file work runs off the runtime, one hop a
/// turn.
async fn follow_config(live: Arc<LiveConfig>, stages: Arc<BootStages>, pending: Arc<Pending>) {
    let l = live.clone();
    let mut last = tokio::task::spawn_blocking(move || stamp(l.path()))
        .await
        .ok()
        .flatten();
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("cannot take SIGHUP ({e}); the config file is still watched");
            None
        }
    };
    loop {
        let asked = tokio::select! {
            _ = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
            () = tokio::time::sleep(CONFIG_POLL) => false,
        };
        let (l, p, was) = (live.clone(), pending.clone(), last);
        let turn = tokio::task::spawn_blocking(move || {
            let now = stamp(l.path());
            let reloaded = (asked || now != was).then(|| l.reload());
            if let Some(Ok(_)) = &reloaded {
                let config = l.get();
                p.retain(|m| config.node_by_mac(m).is_none());
            }
            (now, reloaded, p.flush())
        })
        .await;
        let (now, reloaded, flushed) = match turn {
            Ok(t) => t,
            Err(e) => {
                tracing::error!("reading the config again failed: {e}");
                continue;
            }
        };
        last = now;
        match reloaded {
            Some(Ok(r)) => {
                let config = live.get();
                stages.set_table(config.nodes.iter().map(|n| (n.mac, n.ip)));
                tracing::info!(
                    nodes = config.nodes.len(),
                    added = %r.added.join(" "),
                    removed = %r.removed.join(" "),
                    "read {} again",
                    live.path().display()
                );
                for field in r.need_restart {
                    tracing::warn!(
                        "{field} changed in {}: restart ombootd to apply it",
                        live.path().display()
                    );
                }
            }
            Some(Err(e)) => tracing::error!("{e}; keeping the node table as it was"),
            None => {}
        }
        if let Err(e) = flushed {
            tracing::warn!("cannot write the pending MACs: {e}");
        }
    }
}

/// Make the cluster directory if it is missing: owned by root, mode 1777 like /tmp, so every user
/// of the nodes can create files there and only remove their own. An existing one is left as it is.
fn prepare_cluster_dir(path: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if path.is_dir() {
        return Ok(());
    }
    let context = || format!("cannot create the cluster directory {}", path.display());
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(path)
        .with_context(context)?;
    // Set explicitly: the mode given at creation is reduced by the umask.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o1777)).with_context(context)
}

/// Join the nodes' cluster as an observer: first contact by multicast and, since the table says
/// where the nodes will be, by seeding every table address.
fn observe(
    config: &Config,
    key_file: &std::path::Path,
    port: u16,
) -> Result<(
    migrator::observer::ObserverHandle,
    migrator::key::ClusterKey,
)> {
    use migrator::observer::{ObserverConfig, spawn};
    let key = migrator::key::ClusterKey::load(key_file).with_context(|| {
        format!(
            "cannot read the cluster key {} (made by `omimage build`)",
            key_file.display()
        )
    })?;
    // In the state directory, which outlives restarts: each start is newer than the last.
    let generation_file = config.state_dir.join("observer-generation");
    let generation = migrator::generation::take(&generation_file).with_context(|| {
        format!(
            "cannot take the cluster observer's generation from {}",
            generation_file.display()
        )
    })?;
    let cfg = ObserverConfig {
        interface_addr: config.master_ip,
        port,
        key: key.clone(),
        name: "ombootd".to_string(),
        id: None,
        generation,
        seeds: config
            .nodes
            .iter()
            .map(|n| std::net::SocketAddrV4::new(n.ip, port))
            .collect(),
        multicast: Some(migrator::wire::DEFAULT_GROUP),
        swim: migrator::agent::SwimTuning::default(),
    };
    let handle = spawn(cfg)
        .with_context(|| format!("cannot join the cluster on {}:{port}", config.master_ip))?;
    Ok((handle, key))
}

/// How often the versions in use are recorded and the others pruned.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Every [`PRUNE_EVERY`]: record in `<image>/in-use` the image versions of the nodes that hold a
/// lease or are booting, and remove the older versions none of them uses.
async fn prune_versions(
    config: Arc<Config>,
    leases: Arc<Mutex<dyn LeaseStore>>,
    boots: Arc<Mutex<http::Boots>>,
    clock: Arc<dyn Clock>,
) {
    loop {
        tokio::time::sleep(PRUNE_EVERY).await;
        let (config, leases, boots, clock) =
            (config.clone(), leases.clone(), boots.clone(), clock.clone());
        let done = tokio::task::spawn_blocking(move || {
            let now = clock.now().as_secs();
            let mut nodes: std::collections::BTreeSet<crate::mac::MacAddr> = leases
                .lock()
                .map_err(|_| std::io::Error::other("lease store poisoned"))?
                .all()
                .into_iter()
                .filter(|l| l.expires > now)
                .filter_map(|l| l.mac.parse().ok())
                .collect();
            let b = boots
                .lock()
                .map_err(|_| std::io::Error::other("boot state poisoned"))?;
            nodes.extend(b.windows.booting(now));
            let in_use = b
                .counts
                .versions()
                .into_iter()
                .filter(|(m, _)| nodes.contains(m))
                .map(|(_, v)| v)
                .collect();
            drop(b);
            image_dir::write_in_use(&config.image_dir, &in_use)?;
            image_dir::prune(&config.image_dir, &in_use)
        })
        .await;
        match done {
            Ok(Ok(gone)) if !gone.is_empty() => {
                tracing::info!("removed image versions no node uses: {}", gone.join(" "));
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!("cannot prune image versions: {e}"),
            Err(e) => tracing::warn!("pruning image versions failed: {e}"),
        }
    }
}
