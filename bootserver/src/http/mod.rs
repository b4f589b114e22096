//! HTTP for booting nodes: each node's iPXE script, the kernel and initrd, the cluster key to a
//! booting node's initramfs (once per boot, see [`boot_window`](crate::boot_window)), and a JSON
//! status API.
//!
//! iPXE fetches the kernel over HTTP much faster than over TFTP; the script itself is rendered by
//! the pure [`ipxe_script`] module.

pub mod ipxe_script;
pub mod limits;
pub mod metrics;
pub mod range;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use crate::boot_stage::{self as stage, BootStages, Seen, Stage};
use crate::boot_window::{BootCounts, BootWindows, Link};
use crate::config::wire::UnknownMacs;
use crate::config::{Config, Node};
use crate::dhcp::log_gate::LogGate;
use crate::dhcp::stats::{DhcpCounts, DhcpStats};
use crate::leases::{Lease, LeaseState, LeaseStore};
use crate::live::LiveConfig;
use crate::mac::MacAddr;
use crate::neighbors;
use crate::nfs::gate::{Refused, RefusedCounts};
use crate::tftp::TftpStats;
use migrator::clock::Clock;
use node_image::image_dir;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The configuration as it is now (the node table is reloaded while serving).
    pub config: Arc<LiveConfig>,
    /// Unknown MACs waiting for approval.
    pub pending: Arc<crate::pending::Pending>,
    /// The lease store (shared with the DHCP server).
    pub leases: Arc<Mutex<dyn LeaseStore>>,
    /// DHCP counters.
    pub dhcp: Arc<DhcpStats>,
    /// TFTP counters.
    pub tftp: Arc<TftpStats>,
    /// The cluster as the master observes it (`None` when `[cluster] observe = false`).
    pub cluster: Option<migrator::observer::ObserverHandle>,
    /// Booting nodes and their boot numbers.
    pub boots: Arc<Mutex<Boots>>,
    /// Connections the NFS ports refused: the root's, and the cluster directory's if served.
    pub nfs_refused: (Arc<Refused>, Option<Arc<Refused>>),
    /// The time, for boot windows.
    pub clock: Arc<dyn Clock>,
    /// Where each MAC's boot is (the script, kernel, initrd and key are stages).
    pub stages: Arc<BootStages>,
    /// The dashboard's feed, token and controls.
    pub dashboard: Arc<crate::dashboard::Dashboard>,
}

/// The boot windows, the store of boot numbers, and the gate on refusal log lines.
pub struct Boots {
    /// Open windows.
    pub windows: BootWindows,
    /// Boot numbers.
    pub counts: Box<dyn BootCounts>,
    /// INFO lines about refused key requests, rate-limited.
    pub log: LogGate,
}

impl std::fmt::Debug for Boots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Boots")
            .field("windows", &self.windows)
            .finish_non_exhaustive()
    }
}

impl Boots {
    /// No node booting yet; numbers from `counts`.
    pub fn new(counts: Box<dyn BootCounts>) -> Self {
        Self {
            windows: BootWindows::default(),
            counts,
            log: LogGate::default(),
        }
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

/// The router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/boot/{script}", get(boot_script))
        .route("/image/{version}/{file}", get(image_file))
        .route("/loader/{file}", get(loader))
        .route("/node/key", get(node_key))
        .route("/api/status", get(status))
        .route("/api/cluster", get(cluster))
        .route("/metrics", get(prometheus))
        .merge(crate::dashboard::routes(&state))
        .with_state(state)
}

/// The one boot loader served over HTTP (to UEFI HTTP boot clients), from the TFTP root.
pub const HTTP_LOADER: &str = "ipxe.efi";

/// The URL a UEFI HTTP boot client is offered: [`HTTP_LOADER`] on this server, at its IPv4 or
/// (IPv6 netboot) IPv6 address.
pub fn loader_url(master: IpAddr, http_port: u16) -> String {
    let host = match master {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    };
    format!("http://{host}:{http_port}/loader/{HTTP_LOADER}")
}

fn text(code: StatusCode, msg: String) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        msg + "\n",
    )
        .into_response()
}

async fn boot_script(State(st): State<AppState>, Path(script): Path<String>) -> Response {
    let config = st.config.get();
    let Some(mac) = script
        .strip_suffix(".ipxe")
        .and_then(|m| m.parse::<MacAddr>().ok())
    else {
        return text(
            StatusCode::NOT_FOUND,
            format!("no boot script `{script}`: expected /boot/<mac>.ipxe"),
        );
    };
    let Some((node, member)) = script_node(&config, &st.leases, mac) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("{mac} is not in the node table"),
        );
    };
    let node = &node;
    // The boot window opens (and the boot is numbered, on disk) off the runtime; the node boots
    // the version current now, whatever is built while it boots.
    let (boots, clock) = (st.boots.clone(), st.clock.clone());
    let image = config.image_dir.clone();
    let opened = tokio::task::spawn_blocking(move || {
        let version = image_dir::current(&image)?;
        let mut b = boots
            .lock()
            .map_err(|_| std::io::Error::other("boot state poisoned"))?;
        let Boots {
            windows, counts, ..
        } = &mut *b;
        let boot = windows.open(counts.as_mut(), mac, &version, clock.now().as_secs())?;
        // In use from now on: an `omimage build` before the next count must not prune it.
        let mut in_use = image_dir::read_in_use(&image);
        if in_use.insert(version.clone()) {
            image_dir::write_in_use(&image, &in_use)?;
        }
        Ok::<_, std::io::Error>((boot, version))
    })
    .await;
    let (boot, version) = match opened {
        Ok(Ok(n)) => n,
        Ok(Err(e)) => {
            tracing::error!(node = %node.name, "cannot record the boot (image version, boot number): {e}");
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot record the boot of {}: {e}", node.name),
            );
        }
        Err(e) => {
            return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
        }
    };
    tracing::info!(node = %node.name, %mac, boot, %version, "serving iPXE script");
    st.stages.record(mac, stage::Event::At(Stage::Script));
    let body = ipxe_script::render(&config, node, member, boot, &version);
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

/// Whom a boot script is for, and whether it is a cluster member: a table node; or, with
/// `unknown_macs = "boot"`, a MAC holding a bound pool lease (booted, but no member).
fn script_node(
    config: &Config,
    leases: &Mutex<dyn LeaseStore>,
    mac: MacAddr,
) -> Option<(Node, bool)> {
    if let Some(n) = config.node_by_mac(mac) {
        return Some((n.clone(), true));
    }
    let pool = config
        .pool
        .filter(|_| config.unknown_macs == UnknownMacs::Boot)?;
    let lease = leases.lock().ok()?.get(mac)?;
    let bound = lease.state == LeaseState::Bound && pool.contains(lease.ip);
    bound.then_some((
        Node {
            mac,
            name: lease.name,
            ip: lease.ip,
        },
        false,
    ))
}

/// A version's kernel or initrd: a version name and a fixed list of files, never a path from the
/// request.
async fn image_file(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((version, file)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
) -> Response {
    let config = st.config.get();
    let Some(name) = image_dir::BOOT_FILES.iter().find(|f| **f == file) else {
        return text(StatusCode::NOT_FOUND, format!("no image file `{file}`"));
    };
    if !image_dir::is_version_name(&version) {
        return text(
            StatusCode::NOT_FOUND,
            format!("no image version `{version}`"),
        );
    }
    let path = image_dir::version_dir(&config.image_dir, &version).join(name);
    let f = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => {
            tracing::error!("cannot open {}: {e}", path.display());
            return text(
                StatusCode::NOT_FOUND,
                format!("{name} of image version {version} is missing (pruned, or never built)"),
            );
        }
    };
    let stage = if *name == image_dir::KERNEL {
        Stage::Kernel
    } else {
        Stage::Initrd
    };
    let from_start = || {
        if let IpAddr::V4(ip) = peer.ip().to_canonical() {
            st.stages.record_ip(ip, stage);
        }
    };
    file_response(
        f,
        &version,
        name,
        "application/octet-stream",
        &headers,
        from_start,
    )
    .await
}

/// `/loader/ipxe.efi`: the iPXE binary from the TFTP root, for UEFI HTTP boot clients (their
/// DHCP offer names this URL, see [`loader_url`]), so such a node uses no TFTP at all.
async fn loader(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(file): Path<String>,
    headers: axum::http::HeaderMap,
) -> Response {
    if file != HTTP_LOADER {
        return text(
            StatusCode::NOT_FOUND,
            format!("no boot loader `{file}`: HTTP boot serves {HTTP_LOADER}"),
        );
    }
    let config = st.config.get();
    let root = config.tftp_root.clone();
    // An IPv6 netboot client's address holds its IPv4 one.
    let node_ip = match peer.ip().to_canonical() {
        IpAddr::V4(ip) => Some(ip),
        IpAddr::V6(ip) => config.ipv6_boot.and_then(|b| b.ipv4_of(ip)),
    };
    let opened = tokio::task::spawn_blocking(move || {
        let root = root.canonicalize().map_err(|e| e.to_string())?;
        crate::confined::open_regular(&root, std::path::Path::new(HTTP_LOADER), HTTP_LOADER)
            .map_err(|e| e.to_string())
    })
    .await;
    let f = match opened {
        Ok(Ok((f, _))) => tokio::fs::File::from_std(f),
        Ok(Err(e)) => {
            tracing::error!(%peer, "cannot serve the HTTP boot loader: {e}");
            return text(
                StatusCode::NOT_FOUND,
                format!("cannot serve {HTTP_LOADER}: {e}"),
            );
        }
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let from_start = || {
        tracing::info!(%peer, file = HTTP_LOADER, "serving the boot loader over HTTP");
        if let Some(ip) = node_ip {
            st.stages.record_ip(ip, Stage::Loader);
        }
    };
    // edk2 decides what it downloaded by this type (or else by the `.efi` of the URL).
    file_response(
        f,
        "loader",
        HTTP_LOADER,
        "application/efi",
        &headers,
        from_start,
    )
    .await
}

/// The file `f` as a response: an ETag from `scope`, `name`, size and mtime; a single byte range
/// (206), 304 for a current copy, 416; HEAD alike (axum drops the body). `from_start` runs when
/// the body sent starts at byte 0 (a boot stage), not for a resumed part or a 304.
async fn file_response(
    mut f: tokio::fs::File,
    scope: &str,
    name: &str,
    content_type: &'static str,
    headers: &axum::http::HeaderMap,
    from_start: impl FnOnce(),
) -> Response {
    let meta = f.metadata().await.ok();
    let len = meta.as_ref().map_or(0, std::fs::Metadata::len);
    let mtime = meta
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let tag = range::etag(scope, name, len, mtime);
    let h = |k: header::HeaderName| headers.get(k).and_then(|v| v.to_str().ok());
    let answer = range::answer(
        &tag,
        len,
        h(header::IF_NONE_MATCH),
        h(header::RANGE),
        h(header::IF_RANGE),
    );
    let common = [
        (header::ETAG, tag.clone()),
        (header::ACCEPT_RANGES, "bytes".to_string()),
    ];
    let (status, start, count) = match answer {
        range::Answer::NotModified => return (StatusCode::NOT_MODIFIED, common).into_response(),
        range::Answer::Unsatisfiable => {
            return (
                StatusCode::RANGE_NOT_SATISFIABLE,
                common,
                [(header::CONTENT_RANGE, format!("bytes */{len}"))],
            )
                .into_response();
        }
        range::Answer::Whole => (StatusCode::OK, 0, len),
        range::Answer::Part { start, end } => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
    };
    if start == 0 {
        from_start();
    }
    if start > 0 {
        use tokio::io::AsyncSeekExt;
        if let Err(e) = f.seek(std::io::SeekFrom::Start(start)).await {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot read {name}: {e}"),
            );
        }
    }
    use tokio::io::AsyncReadExt;
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
        f.take(count),
        256 * 1024,
    ));
    let mut r = (status, common, body).into_response();
    let hs = r.headers_mut();
    hs.insert(
        header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static(content_type),
    );
    if let Ok(v) = axum::http::HeaderValue::from_str(&count.to_string()) {
        hs.insert(header::CONTENT_LENGTH, v);
    }
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) =
            axum::http::HeaderValue::from_str(&format!("bytes {start}-{}/{len}", start + count - 1))
    {
        hs.insert(header::CONTENT_RANGE, v);
    }
    r
}

/// `/node/key`: the cluster key, to the booting node at the peer's address (its reserved IP,
/// answering from its MAC), once per boot; every refusal is a 403 with the reason.
async fn node_key(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    let config = st.config.get();
    let IpAddr::V4(ip) = peer.ip().to_canonical() else {
        return text(StatusCode::FORBIDDEN, "not an IPv4 node".into());
    };
    let nodes: Vec<(MacAddr, Ipv4Addr)> = config.nodes.iter().map(|n| (n.mac, n.ip)).collect();
    let (boots, clock, iface) = (st.boots.clone(), st.clock.clone(), config.interface.clone());
    // A node of a relayed subnet is behind a router: the neighbour table holds the router's MAC.
    let routed = config.is_relayed(ip);
    let decided = tokio::task::spawn_blocking(move || {
        let seen = (!routed).then(|| neighbors::mac_of(ip, &iface)).flatten();
        let now = clock.now().as_secs();
        let mut b = boots.lock().ok()?;
        let link = if routed {
            Link::Routed
        } else {
            Link::Seen(seen)
        };
        let r = b.windows.take_key(&nodes, ip, link, now);
        let log = r.is_ok() || b.log.allow(seen.unwrap_or(MacAddr([0; 6])), now);
        Some((r, seen, log))
    })
    .await
    .ok()
    .flatten();
    let Some((decision, seen, log)) = decided else {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "boot state unavailable".into(),
        );
    };
    let mac = match decision {
        Ok(mac) => mac,
        Err(why) => {
            let seen = seen.map_or_else(|| "unknown".to_string(), |m| m.to_string());
            if log {
                tracing::warn!(%ip, mac = %seen, "refused the cluster key: {why}");
            } else {
                tracing::debug!(%ip, mac = %seen, "refused the cluster key: {why}");
            }
            return text(StatusCode::FORBIDDEN, format!("no key for {ip}: {why}"));
        }
    };
    let name = config.node_by_mac(mac).map_or("?", |n| n.name.as_str());
    match tokio::fs::read(&config.key_file).await {
        Ok(key) => {
            tracing::info!(node = %name, %ip, "sent the cluster key to the booting node");
            st.stages.record(mac, stage::Event::At(Stage::Key));
            ([(header::CONTENT_TYPE, "application/octet-stream")], key).into_response()
        }
        Err(e) => {
            tracing::error!(
                "cannot read the cluster key {}: {e}",
                config.key_file.display()
            );
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the master cannot read its cluster key".into(),
            )
        }
    }
}

/// `/api/status`.
#[derive(Debug, Serialize)]
pub struct Status {
    /// The served interface.
    pub interface: String,
    /// The master's address.
    pub master_ip: String,
    /// One row per table node, with its lease and last boot stage if any.
    pub nodes: Vec<NodeStatus>,
    /// MACs outside the table that asked, with their last stage.
    pub unknown: Vec<UnknownMac>,
    /// MACs waiting for `ombootd node approve` (`unknown_macs = "register"`), with when they
    /// last asked (seconds since the epoch).
    pub pending: Vec<PendingMac>,
    /// DHCP counters.
    pub dhcp: DhcpCounts,
    /// TFTP counters.
    pub tftp: serde_json::Value,
    /// Connections refused by the node root's NFS port.
    pub nfs_refused: RefusedCounts,
    /// Connections refused by the cluster directory's NFS port.
    pub cluster_dir_refused: Option<RefusedCounts>,
    /// The cluster table (membership and load) as the master observes it.
    pub cluster: Option<Vec<migrator::api::NodeInfo>>,
}

/// One node in `/api/status`.
#[derive(Debug, Serialize)]
pub struct NodeStatus {
    /// Name.
    pub name: String,
    /// MAC.
    pub mac: String,
    /// Reserved address.
    pub ip: String,
    /// Its lease, if it has one.
    pub lease: Option<Lease>,
    /// The last boot stage seen, and when (seconds since the epoch).
    pub stage: Option<Seen>,
}

/// A MAC waiting for approval.
#[derive(Debug, Serialize)]
pub struct PendingMac {
    /// The MAC.
    pub mac: String,
    /// When it last asked, seconds since the epoch.
    pub at: u64,
}

/// A MAC outside the node table that was seen.
#[derive(Debug, Serialize)]
pub struct UnknownMac {
    /// The MAC.
    pub mac: String,
    /// Its last stage.
    pub stage: Seen,
}

/// What `/api/status` and `/metrics` show.
fn gather(st: &AppState) -> Option<Status> {
    let config = st.config.get();
    let leases = st.leases.lock().ok()?.all();
    let stages: std::collections::HashMap<MacAddr, Seen> = st.stages.all().into_iter().collect();
    let nodes = config
        .nodes
        .iter()
        .map(|n| NodeStatus {
            name: n.name.clone(),
            mac: n.mac.to_string(),
            ip: n.ip.to_string(),
            lease: leases.iter().find(|l| l.mac == n.mac.to_string()).cloned(),
            stage: stages.get(&n.mac).copied(),
        })
        .collect();
    let mut unknown: Vec<UnknownMac> = stages
        .iter()
        .filter(|(m, _)| config.node_by_mac(**m).is_none())
        .map(|(m, s)| UnknownMac {
            mac: m.to_string(),
            stage: *s,
        })
        .collect();
    unknown.sort_by(|a, b| b.stage.at.cmp(&a.stage.at).then(a.mac.cmp(&b.mac)));
    Some(Status {
        interface: config.interface.clone(),
        master_ip: config.master_ip.to_string(),
        nodes,
        unknown,
        pending: st
            .pending
            .list()
            .into_iter()
            .map(|(m, at)| PendingMac {
                mac: m.to_string(),
                at,
            })
            .collect(),
        dhcp: st.dhcp.snapshot(),
        tftp: serde_json::to_value(&*st.tftp).unwrap_or_default(),
        nfs_refused: st.nfs_refused.0.snapshot(),
        cluster_dir_refused: st.nfs_refused.1.as_ref().map(|r| r.snapshot()),
        cluster: st.cluster.as_ref().map(|c| c.nodes()),
    })
}

async fn status(State(st): State<AppState>) -> Response {
    match gather(&st) {
        Some(s) => axum::Json(s).into_response(),
        None => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "lease store unavailable".into(),
        ),
    }
}

/// `/metrics`: the status as Prometheus text.
async fn prometheus(State(st): State<AppState>) -> Response {
    match gather(&st) {
        Some(s) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            metrics::render(&s, st.clock.now().as_secs()),
        )
            .into_response(),
        None => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "lease store unavailable".into(),
        ),
    }
}

/// `/api/cluster`: the same rows as `omctl nodes --json` on a node, the master's own row first.
async fn cluster(State(st): State<AppState>) -> Response {
    match &st.cluster {
        Some(c) => axum::Json(c.nodes()).into_response(),
        None => text(
            StatusCode::NOT_FOUND,
            "cluster observation is off ([cluster] observe = false)".into(),
        ),
    }
}
