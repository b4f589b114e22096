//! The TFTP request policy: read requests for regular files inside the root, nothing else.
//!
//! Write requests, `..`, and paths or symlinks that resolve outside the root are refused and counted.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use async_tftp::packet;
use blocking::Unblock;
use serde::Serialize;

use crate::boot_stage::{BootStages, Stage};
use crate::confined;

/// TFTP counters for the status API.
#[derive(Debug, Default, Serialize)]
pub struct TftpStats {
    /// Files sent (transfers started).
    pub sent: AtomicU64,
    /// Transfers the client ended before the last byte: mostly firmware that asks for a file's
    /// size (tsize) and aborts, to ask again with its block size.
    pub ended_early: AtomicU64,
    /// Requests refused for safety (escape attempts, writes).
    pub refused: AtomicU64,
    /// Requests for files that are not there.
    pub not_found: AtomicU64,
}

/// async-tftp handler confined to one directory.
#[derive(Debug)]
pub struct ConfinedTftpHandler {
    root: PathBuf,
    stats: Arc<TftpStats>,
    stages: Option<Arc<BootStages>>,
}

impl ConfinedTftpHandler {
    /// Serve `root` (must exist and be a directory).
    pub fn new(root: &Path, stats: Arc<TftpStats>) -> std::io::Result<Self> {
        let root = root.canonicalize()?;
        if !root.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                format!("{} is not a directory", root.display()),
            ));
        }
        Ok(Self {
            root,
            stats,
            stages: None,
        })
    }

    /// Record each file sent as its node's TFTP boot stage in `stages`.
    pub fn with_stages(mut self, stages: Arc<BootStages>) -> Self {
        self.stages = Some(stages);
        self
    }

    fn open(
        &self,
        client: &SocketAddr,
        path: &Path,
    ) -> Result<(Transfer, Option<u64>), packet::Error> {
        let name = path.to_string_lossy();
        let opened = confined::relative_name(&name)
            .and_then(|rel| confined::open_regular(&self.root, &rel, &name));
        match opened {
            Ok((file, len)) => {
                self.stats.sent.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%client, file = %name, bytes = len, "TFTP read request");
                if let (Some(stages), std::net::IpAddr::V4(ip)) =
                    (&self.stages, client.ip().to_canonical())
                {
                    stages.record_ip(ip, Stage::Tftp);
                }
                let transfer = Transfer {
                    // The file is read off the runtime in 256 KiB chunks: with the default 8 KiB,
                    // a lock-step transfer waited on a thread hop every few blocks.
                    file: Unblock::with_capacity(READ_CHUNK, file),
                    client: *client,
                    name: name.into_owned(),
                    len,
                    read: 0,
                    stats: self.stats.clone(),
                };
                Ok((transfer, Some(len)))
            }
            Err(e) if e.is_refusal() => {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%client, "TFTP refused: {e}");
                Err(packet::Error::PermissionDenied)
            }
            Err(e) => {
                self.stats.not_found.fetch_add(1, Ordering::Relaxed);
                tracing::info!(%client, "TFTP not found: {e}");
                Err(packet::Error::FileNotFound)
            }
        }
    }
}

/// Bytes read from the file per trip to the blocking pool.
const READ_CHUNK: usize = 256 * 1024;

/// A file being sent; when the transfer ends it logs how: the whole file at INFO, a transfer
/// the client cut short (a tsize probe, most often) at DEBUG and counted.
#[derive(Debug)]
pub struct Transfer {
    file: Unblock<File>,
    client: SocketAddr,
    name: String,
    len: u64,
    read: u64,
    stats: Arc<TftpStats>,
}

impl futures_lite::AsyncRead for Transfer {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.file).poll_read(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.read += n as u64;
        }
        r
    }
}

impl Drop for Transfer {
    fn drop(&mut self) {
        let (client, file) = (self.client, &self.name);
        if self.read >= self.len {
            tracing::info!(%client, %file, bytes = self.len, "TFTP sent");
        } else {
            self.stats.ended_early.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%client, %file, read = self.read, bytes = self.len, "TFTP transfer ended by the client before the end (a tsize probe, or it gave up)");
        }
    }
}

impl async_tftp::server::Handler for ConfinedTftpHandler {
    type Reader = Transfer;
    type Writer = futures_lite::io::Sink;

    async fn read_req_open(
        &mut self,
        client: &SocketAddr,
        path: &Path,
    ) -> Result<(Self::Reader, Option<u64>), packet::Error> {
        // Opening is a few syscalls on a local directory; not worth a thread hop.
        self.open(client, path)
    }

    async fn write_req_open(
        &mut self,
        client: &SocketAddr,
        path: &Path,
        _size: Option<u64>,
    ) -> Result<Self::Writer, packet::Error> {
        self.stats.refused.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%client, file = %path.display(), "TFTP write refused: the server is read-only");
        Err(packet::Error::IllegalOperation)
    }
}
