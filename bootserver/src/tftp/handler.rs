//! The TFTP request policy: read requests for regular files inside the root, nothing else.
//!
//! Write requests, `..`, and paths or symlinks that resolve outside the root are refused and counted.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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
    ) -> Result<(Unblock<File>, Option<u64>), packet::Error> {
        let name = path.to_string_lossy();
        let opened = confined::relative_name(&name)
            .and_then(|rel| confined::open_regular(&self.root, &rel, &name));
        match opened {
            Ok((file, len)) => {
                self.stats.sent.fetch_add(1, Ordering::Relaxed);
                tracing::info!(%client, file = %name, bytes = len, "TFTP read");
                if let (Some(stages), std::net::IpAddr::V4(ip)) =
                    (&self.stages, client.ip().to_canonical())
                {
                    stages.record_ip(ip, Stage::Tftp);
                }
                Ok((Unblock::new(file), Some(len)))
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

impl async_tftp::server::Handler for ConfinedTftpHandler {
    type Reader = Unblock<File>;
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
