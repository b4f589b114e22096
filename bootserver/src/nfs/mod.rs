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
pub mod generation;
pub mod shared_dir;

use std::net::SocketAddr;
use std::path::Path;

use nfs3_server::tcp::NFSTcpListener;

pub use export::DirExport;
pub use shared_dir::SharedDir;

/// Bind the NFS server on `addr`, exporting `root` as `/`, with handles of `generation`.
pub async fn bind(
    addr: SocketAddr,
    root: &Path,
    generation: u64,
) -> std::io::Result<NFSTcpListener<DirExport>> {
    let export = DirExport::new(root)?;
    NFSTcpListener::bind_with_generation(&addr.to_string(), export, generation).await
}

/// Bind the read-write NFS server of the cluster directory `export` on `addr`, exported as `/`.
pub async fn bind_shared(
    addr: SocketAddr,
    export: SharedDir,
    generation: u64,
) -> std::io::Result<NFSTcpListener<SharedDir>> {
    NFSTcpListener::bind_with_generation(&addr.to_string(), export, generation).await
}
