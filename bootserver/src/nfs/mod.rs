//! The embedded NFSv3 exports (RFC 1813; MOUNT in its Appendix I): the read-only node root and
//! the read-write shared `/cluster` directory, each on its own TCP port.
//!
//! nfs3_server speaks ONC RPC, MOUNT and NFSv3 on one TCP port; [`export::DirExport`] maps file
//! handles to files under the image's `rootfs/`, [`shared_dir::SharedDir`] serves the cluster
//! directory, and [`generation`] keeps handles valid across restarts.

pub mod access;
pub mod callers;
pub mod export;
pub mod file_id;
pub mod front;
pub mod generation;
pub mod nfsacl;
pub mod shared_dir;

use std::net::SocketAddr;
use std::path::Path;

use nfs3_server::tcp::NFSTcpListener;

pub use export::DirExport;
pub use shared_dir::SharedDir;

/// The node root's NFS service: the public front (NFSACL answered there) and nfs3_server on a
/// loopback port behind it.
pub struct RootNfs {
    /// The public listener.
    pub front: tokio::net::TcpListener,
    /// nfs3_server.
    pub server: NFSTcpListener<DirExport>,
    /// Where nfs3_server listens.
    pub upstream: SocketAddr,
}

impl std::fmt::Debug for RootNfs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootNfs")
            .field("front", &self.front)
            .field("upstream", &self.upstream)
            .finish_non_exhaustive()
    }
}

impl RootNfs {
    /// Serve until an error.
    pub async fn serve(self) -> std::io::Result<()> {
        use nfs3_server::tcp::NFSTcp;
        tokio::select! {
            r = front::serve(self.front, self.upstream) => r,
            r = self.server.handle_forever() => r,
        }
    }
}

/// Bind the NFS server on `addr`, exporting `root` as `/`, with handles of `generation`.
pub async fn bind(addr: SocketAddr, root: &Path, generation: u64) -> std::io::Result<RootNfs> {
    use nfs3_server::tcp::NFSTcp;
    let export = DirExport::new(root)?;
    let front = tokio::net::TcpListener::bind(addr).await?;
    let server = NFSTcpListener::bind_with_generation("127.0.0.1:0", export, generation).await?;
    let upstream = SocketAddr::from(([127, 0, 0, 1], server.get_listen_port()));
    Ok(RootNfs {
        front,
        server,
        upstream,
    })
}

/// Bind the read-write NFS server of the cluster directory `export` on `addr`, exported as `/`.
pub async fn bind_shared(
    addr: SocketAddr,
    export: SharedDir,
    generation: u64,
) -> std::io::Result<NFSTcpListener<SharedDir>> {
    NFSTcpListener::bind_with_generation(&addr.to_string(), export, generation).await
}
