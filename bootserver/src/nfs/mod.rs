//! The embedded NFSv3 exports (RFC 1813; MOUNT in its Appendix I): the read-only node root and
//! the read-write shared `/cluster` directory, each on its own TCP port.
//!
//! nfs3_server speaks ONC RPC, MOUNT and NFSv3 on a loopback port; [`export::DirExport`] serves
//! each directory (the image's `rootfs/` read-only, the cluster directory read-write) with handles
//! that name one file for good, and [`generation`] keeps handles valid across restarts. The public port of each
//! export is a [`front`] that answers what nfs3_server cannot: NFSACL for the root ([`nfsacl`];
//! the nodes mount `/cluster` with `noacl`, so the Linux client never asks it there) and LINK for
//! the cluster directory ([`link`]); and, for the node root, the reads a booting or working node
//! makes most, in one call each instead of nfs3_server's several ([`reads`]).

pub mod access;
pub mod access_proc;
pub mod callers;
pub mod clamp;
pub mod export;
pub mod file_id;
pub mod front;
pub mod gate;
pub mod generation;
pub mod link;
pub mod nfsacl;
pub mod readdir_budget;
pub mod reads;
pub mod rpc_call;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use nfs3_server::tcp::{NFSTcp, NFSTcpListener};
use nfs3_server::vfs::NfsFileSystem;

pub use export::{DirExport, Mode};

use crate::boot_stage::BootStages;
use access_proc::Access;
use front::Answers;
use gate::{Gate, Refused};
use link::Link;
use nfsacl::Nfsacl;
use reads::Reads;

/// One export's NFS service: the public front, answering the calls `A` picks, and nfs3_server
/// serving `F` on a loopback port behind it.
pub struct Service<F: NfsFileSystem + 'static, A> {
    /// The public listener.
    pub front: tokio::net::TcpListener,
    /// nfs3_server.
    pub server: NFSTcpListener<F>,
    /// Where nfs3_server listens.
    pub upstream: SocketAddr,
    /// What the front answers itself.
    pub answers: Arc<A>,
    /// Who may connect.
    pub gate: Gate,
    /// Connections the gate refused.
    pub refused: Arc<Refused>,
    /// Boots an admitted connection advances (the node root's service only).
    pub stages: Option<Arc<BootStages>>,
}

/// The node root's service: ACCESS, NFSACL and the reads answered in front.
pub type RootNfs = Service<DirExport, ((Access, Nfsacl), Reads)>;
/// The cluster directory's service: ACCESS and LINK answered in front.
pub type ClusterNfs = Service<DirExport, (Access, Link)>;

impl<F: NfsFileSystem + 'static, A> std::fmt::Debug for Service<F, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("front", &self.front)
            .field("upstream", &self.upstream)
            .finish_non_exhaustive()
    }
}

impl<F: NfsFileSystem + 'static, A: Answers> Service<F, A> {
    /// Bind the front on `addr`, admitting whom `gate` admits, and nfs3_server for `fs`, with
    /// handles of `generation`, on a free loopback port.
    async fn bind(
        addr: SocketAddr,
        gate: Gate,
        fs: F,
        generation: u64,
        answers: A,
    ) -> std::io::Result<Self> {
        let front = tokio::net::TcpListener::bind(addr).await?;
        let server = NFSTcpListener::bind_with_generation("127.0.0.1:0", fs, generation).await?;
        let upstream = SocketAddr::from(([127, 0, 0, 1], server.get_listen_port()));
        Ok(Self {
            front,
            server,
            upstream,
            answers: Arc::new(answers),
            gate,
            refused: Arc::default(),
            stages: None,
        })
    }

    /// The public address (the port chosen when bound to port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.front.local_addr()
    }

    /// Serve until an error.
    pub async fn serve(self) -> std::io::Result<()> {
        tokio::select! {
            r = front::serve(self.front, self.upstream, self.answers, self.gate, self.refused, self.stages) => r,
            r = self.server.handle_forever() => r,
        }
    }
}

/// Bind the NFS server on `addr` for the clients `gate` admits, exporting `root` read-only as
/// `/`, with handles of `generation`.
pub async fn bind(
    addr: SocketAddr,
    gate: Gate,
    root: &Path,
    generation: u64,
) -> std::io::Result<RootNfs> {
    let export = DirExport::new(root, Mode::ReadOnly)?;
    let answers = (
        (Access::new(export.clone(), generation), Nfsacl),
        Reads::new(export.clone(), generation),
    );
    Service::bind(addr, gate, export, generation, answers).await
}

/// Bind the NFS server of the read-write `export` (the cluster directory) on `addr` for the
/// clients `gate` admits, exported as `/`.
pub async fn bind_shared(
    addr: SocketAddr,
    gate: Gate,
    export: DirExport,
    generation: u64,
) -> std::io::Result<ClusterNfs> {
    let answers = (
        Access::new(export.clone(), generation),
        Link::new(export.clone(), generation),
    );
    Service::bind(addr, gate, export, generation, answers).await
}
