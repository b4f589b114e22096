//! The TFTP request policy: read requests for regular files inside the root, nothing else.
//!
//! Write requests, `..`, and paths or symlinks that resolve outside the root are refused and counted.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use super::packet::ErrorCode;
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
    /// Transfers given up: the client stopped answering.
    pub gave_up: AtomicU64,
    /// Requests refused for safety (escape attempts, writes).
    pub refused: AtomicU64,
    /// Requests for files that are not there.
    pub not_found: AtomicU64,
    /// Datagrams on the TFTP port that are not a request we can read, or ask an unknown mode.
    pub malformed: AtomicU64,
    /// Packets from another address or port than a transfer's client (answered with ERROR 5).
    pub unknown_tid: AtomicU64,
    /// Requests turned away because the system was out of threads or file descriptors.
    pub busy: AtomicU64,
    /// Requests dropped unanswered: their address had [`super::server::MAX_PER_SOURCE`]
    /// transfers running already.
    pub limited: AtomicU64,
}

impl TftpStats {
    /// Adds one to `counter`.
    pub fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A file opened for a transfer.
#[derive(Debug)]
pub struct Opened {
    /// The file.
    pub file: File,
    /// Its size in bytes.
    pub len: u64,
}

/// A request turned down: the ERROR to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The code.
    pub code: ErrorCode,
    /// The message; it names no path, so an attacker learns nothing of the tree around the root.
    pub message: &'static str,
}

impl Refusal {
    /// File not found (1).
    pub const NOT_FOUND: Self = Self {
        code: ErrorCode::FileNotFound,
        message: "File not found",
    };
    /// Access violation (2).
    pub const DENIED: Self = Self {
        code: ErrorCode::AccessViolation,
        message: "Permission denied",
    };
    /// Not defined (0): out of file descriptors or threads.
    pub const BUSY: Self = Self {
        code: ErrorCode::NotDefined,
        message: "Server busy, try again",
    };
}

/// Opens the files of one directory for TFTP.
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

    /// The counters.
    pub fn stats(&self) -> &Arc<TftpStats> {
        &self.stats
    }

    /// Opens `name` for `client`'s read request, or says why not; counts either way.
    pub fn open_read(&self, client: &SocketAddr, name: &str) -> Result<Opened, Refusal> {
        let opened = confined::relative_name(name)
            .and_then(|rel| confined::open_regular(&self.root, &rel, name));
        match opened {
            Ok((file, len)) => {
                TftpStats::count(&self.stats.sent);
                tracing::debug!(%client, file = %name, bytes = len, "TFTP read request");
                if let (Some(stages), std::net::IpAddr::V4(ip)) =
                    (&self.stages, client.ip().to_canonical())
                {
                    stages.record_ip(ip, Stage::Tftp);
                }
                Ok(Opened { file, len })
            }
            Err(e) if e.is_refusal() => {
                TftpStats::count(&self.stats.refused);
                tracing::warn!(%client, "TFTP refused: {e}");
                Err(Refusal::DENIED)
            }
            Err(confined::ConfinedError::Io { source, .. })
                if matches!(source.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) =>
            {
                TftpStats::count(&self.stats.busy);
                tracing::warn!(%client, file = %name, "TFTP request turned away: {source}");
                Err(Refusal::BUSY)
            }
            Err(e) => {
                TftpStats::count(&self.stats.not_found);
                tracing::info!(%client, "TFTP not found: {e}");
                Err(Refusal::NOT_FOUND)
            }
        }
    }

    /// Refuses `client`'s write request: the server is read-only.
    pub fn refuse_write(&self, client: &SocketAddr, name: &str) -> Refusal {
        TftpStats::count(&self.stats.refused);
        tracing::warn!(%client, file = %name, "TFTP write refused: the server is read-only");
        Refusal::DENIED
    }
}
