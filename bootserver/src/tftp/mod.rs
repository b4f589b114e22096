//! Read-only TFTP: RFC 1350, with options (RFC 2347), blksize (RFC 2348), timeout and tsize
//! (RFC 2349) and windowsize (RFC 7440), in octet and netascii modes.
//!
//! [`packet`] is the codec, [`request`] and [`options`] decide what a request gets,
//! [`session`] is a transfer's state machine, [`blocks`] reads the file, [`handler`] decides
//! which files may be sent, [`server`] owns the server port and [`transfer`] the sockets and
//! thread of each transfer.

pub mod blocks;
pub mod handler;
pub mod netascii;
pub mod options;
pub mod packet;
pub mod request;
pub mod server;
pub mod session;
pub mod transfer;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use crate::boot_stage::BootStages;

pub use handler::{ConfinedTftpHandler, TftpStats};
pub use server::TftpServer;
pub use transfer::MAX_SEND_RETRIES;

/// Bind the TFTP server on `addr`, serving `root` with blocks that fit `interface`'s MTU,
/// recording what it sends in `stages`. Returns the server, ready to `serve()` on a thread of
/// its own.
pub fn bind(
    addr: SocketAddr,
    root: &Path,
    interface: &str,
    stats: Arc<TftpStats>,
    stages: Arc<BootStages>,
) -> std::io::Result<TftpServer> {
    let handler = ConfinedTftpHandler::new(root, stats)?.with_stages(stages);
    let limits = mtu(interface).map_or(server::ETHERNET_LIMITS, server::limits_for_mtu);
    TftpServer::bind(addr, handler, limits)
}

/// The MTU of `interface`, from sysfs.
fn mtu(interface: &str) -> Option<u32> {
    std::fs::read_to_string(format!("/sys/class/net/{interface}/mtu"))
        .ok()?
        .trim()
        .parse()
        .ok()
}
