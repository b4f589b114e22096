//! The embedded read-only NFSv3 export of the node root (RFC 1813; MOUNT in its Appendix I).
//!
//! nfs3_server speaks ONC RPC, MOUNT and NFSv3 on one TCP port; [`export::DirExport`] maps file
//! handles to files under the image's `rootfs/`, and [`generation`] keeps handles valid across restarts.

pub mod export;
pub mod generation;

use std::net::SocketAddr;
use std::path::Path;

use nfs3_server::tcp::NFSTcpListener;

pub use export::DirExport;

/// Bind the NFS server on `addr`, exporting `root` as `/`, with handles of `generation`.
pub async fn bind(
    addr: SocketAddr,
    root: &Path,
    generation: u64,
) -> std::io::Result<NFSTcpListener<DirExport>> {
    let export = DirExport::new(root)?;
    NFSTcpListener::bind_with_generation(&addr.to_string(), export, generation).await
}
