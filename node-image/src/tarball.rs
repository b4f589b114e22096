//! Unpacking a cached root tarball with GNU tar, as root, keeping owners, modes, devices and xattrs.
//!
//! GNU tar rather than a Rust reader: it already handles every pax extension mmdebstrap writes.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The tarball could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum TarError {
    /// tar could not be started.
    #[error("cannot run tar")]
    Spawn(#[source] std::io::Error),
    /// tar failed.
    #[error("tar could not unpack {tarball} ({status}): {stderr}")]
    Failed {
        /// The archive.
        tarball: PathBuf,
        /// Exit status.
        status: std::process::ExitStatus,
        /// What tar said.
        stderr: String,
    },
}

/// Unpack `tarball` into the existing directory `dest`.
pub fn extract(tarball: &Path, dest: &Path) -> Result<(), TarError> {
    let out = Command::new("tar")
        .arg("--extract")
        .arg("--file")
        .arg(tarball)
        .arg("--directory")
        .arg(dest)
        // Numeric ids: the image's /etc/passwd, not the host's, gives names to uids.
        .args(["--numeric-owner", "--same-owner", "--preserve-permissions"])
        .args(["--xattrs", "--xattrs-include=*"])
        .output()
        .map_err(TarError::Spawn)?;
    if !out.status.success() {
        return Err(TarError::Failed {
            tarball: tarball.to_path_buf(),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(())
}
