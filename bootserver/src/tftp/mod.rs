//! Read-only TFTP (RFC 1350; options RFC 2347, blksize RFC 2348, tsize RFC 2349, windowsize RFC 7440).
//!
//! async-tftp speaks the protocol; [`handler::ConfinedTftpHandler`] decides which files it may send.

pub mod handler;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use async_tftp::server::TftpServerBuilder;

use crate::boot_stage::BootStages;

pub use handler::{ConfinedTftpHandler, TftpStats};

/// Retransmissions of an unanswered packet before a transfer is dropped.
pub const MAX_SEND_RETRIES: u32 = 5;

/// Bind the TFTP server on `addr`, serving `root`, recording what it sends in `stages`. Returns
/// the server, ready to `serve()`.
pub async fn bind(
    addr: SocketAddr,
    root: &Path,
    stats: Arc<TftpStats>,
    stages: Arc<BootStages>,
) -> Result<async_tftp::server::TftpServer<ConfinedTftpHandler>, std::io::Error> {
    let handler = ConfinedTftpHandler::new(root, stats)?.with_stages(stages);
    TftpServerBuilder::with_handler(handler)
        .bind(addr)
        // Large windows speed up iPXE/edk2 downloads; 64 blocks of 1468 bytes stays well under socket buffers.
        .window_size_limit(64)
        // async-tftp ignores a client's ERROR (the end of every firmware's tsize probe) and
        // would retransmit to it 100 times, 5 minutes at 3 s; atftpd gives up after 5.
        .max_send_retries(MAX_SEND_RETRIES)
        .build()
        .await
        .map_err(|e| match e {
            async_tftp::Error::Io(io) => io,
            other => std::io::Error::other(other.to_string()),
        })
}
