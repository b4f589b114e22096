//! HTTP for booting nodes: each node's iPXE script, the kernel and initrd, and a JSON status API.
//!
//! iPXE fetches the kernel over HTTP much faster than over TFTP; the script itself is rendered by
//! the pure [`ipxe_script`] module.

pub mod ipxe_script;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use crate::config::Config;
use crate::dhcp::stats::{DhcpCounts, DhcpStats};
use crate::leases::{Lease, LeaseStore};
use crate::mac::MacAddr;
use crate::tftp::TftpStats;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// The lease store (shared with the DHCP server).
    pub leases: Arc<Mutex<dyn LeaseStore>>,
    /// DHCP counters.
    pub dhcp: Arc<DhcpStats>,
    /// TFTP counters.
    pub tftp: Arc<TftpStats>,
    /// The cluster as the master observes it (`None` when `[cluster] observe = false`).
    pub cluster: Option<migrator::observer::ObserverHandle>,
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
        .route("/image/{file}", get(image_file))
        .route("/api/status", get(status))
        .route("/api/cluster", get(cluster))
        .with_state(state)
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
    let Some(mac) = script
        .strip_suffix(".ipxe")
        .and_then(|m| m.parse::<MacAddr>().ok())
    else {
        return text(
            StatusCode::NOT_FOUND,
            format!("no boot script `{script}`: expected /boot/<mac>.ipxe"),
        );
    };
    let Some(node) = st.config.node_by_mac(mac) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("{mac} is not in the node table"),
        );
    };
    tracing::info!(node = %node.name, %mac, "serving iPXE script");
    let body = ipxe_script::render(&st.config, node);
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

/// Files a node may fetch over HTTP: a fixed list, never a path from the request.
const IMAGE_FILES: [&str; 2] = ["vmlinuz", "initrd.img"];

async fn image_file(State(st): State<AppState>, Path(file): Path<String>) -> Response {
    let Some(name) = IMAGE_FILES.iter().find(|f| **f == file) else {
        return text(StatusCode::NOT_FOUND, format!("no image file `{file}`"));
    };
    let path = st.config.image_dir.join(name);
    match tokio::fs::File::open(&path).await {
        Ok(f) => {
            let len = f.metadata().await.map(|m| m.len()).unwrap_or(0);
            let body =
                Body::from_stream(tokio_util::io::ReaderStream::with_capacity(f, 256 * 1024));
            (
                [
                    (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                    (header::CONTENT_LENGTH, len.to_string()),
                ],
                body,
            )
                .into_response()
        }
        Err(e) => {
            tracing::error!("cannot open {}: {e}", path.display());
            text(
                StatusCode::NOT_FOUND,
                format!("{name} is missing from the image: run `omimage build`"),
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
    /// One row per table node, with its lease if any.
    pub nodes: Vec<NodeStatus>,
    /// DHCP counters.
    pub dhcp: DhcpCounts,
    /// TFTP counters.
    pub tftp: serde_json::Value,
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
}

async fn status(State(st): State<AppState>) -> Response {
    let leases = match st.leases.lock() {
        Ok(l) => l.all(),
        Err(_) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "lease store unavailable".into(),
            );
        }
    };
    let nodes = st
        .config
        .nodes
        .iter()
        .map(|n| NodeStatus {
            name: n.name.clone(),
            mac: n.mac.to_string(),
            ip: n.ip.to_string(),
            lease: leases.iter().find(|l| l.mac == n.mac.to_string()).cloned(),
        })
        .collect();
    let s = Status {
        interface: st.config.interface.clone(),
        master_ip: st.config.master_ip.to_string(),
        nodes,
        dhcp: st.dhcp.snapshot(),
        tftp: serde_json::to_value(&*st.tftp).unwrap_or_default(),
        cluster: st.cluster.as_ref().map(|c| c.nodes()),
    };
    axum::Json(s).into_response()
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
