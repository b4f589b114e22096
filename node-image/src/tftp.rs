//! Copying the boot loaders into `<out>/tftp`: real files, never symlinks, since ombootd's TFTP
//! server refuses links that leave its root (Debian's `/usr/lib/ipxe/ipxe.efi` points into /boot).

use std::path::{Path, PathBuf};

/// A boot loader could not be copied.
#[derive(Debug, thiserror::Error)]
pub enum TftpError {
    /// The source is missing (usually: the host lacks the `ipxe` package).
    #[error("{0} not found on this host (install the Debian package `ipxe`)")]
    Missing(PathBuf),
    /// Copying failed.
    #[error("cannot copy {from} to {to}")]
    Copy {
        /// Source.
        from: PathBuf,
        /// Destination.
        to: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Copy every file (following symlinks) into `dir` under its file name; returns the copies.
/// Each copy is written under a temporary name and renamed, so a running TFTP server never
/// serves a half-written loader.
pub fn install(files: &[PathBuf], dir: &Path) -> Result<Vec<PathBuf>, TftpError> {
    let mkdir_err = |source| TftpError::Copy {
        from: PathBuf::new(),
        to: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(mkdir_err)?;
    let mut out = Vec::new();
    for from in files {
        if !from.exists() {
            return Err(TftpError::Missing(from.clone()));
        }
        let name = from
            .file_name()
            .ok_or_else(|| TftpError::Missing(from.clone()))?;
        let to = dir.join(name);
        let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
        let copy_err = |source| TftpError::Copy {
            from: from.clone(),
            to: to.clone(),
            source,
        };
        // fs::copy follows symlinks in the source and writes a regular file.
        std::fs::copy(from, &tmp).map_err(copy_err)?;
        std::fs::rename(&tmp, &to).map_err(|source| TftpError::Copy {
            from: from.clone(),
            to: to.clone(),
            source,
        })?;
        out.push(to);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinked_sources_become_regular_files() {
        let src = tempfile::tempdir().expect("src");
        let out = tempfile::tempdir().expect("out");
        std::fs::write(src.path().join("real.efi"), b"EFI").expect("real");
        std::os::unix::fs::symlink(src.path().join("real.efi"), src.path().join("ipxe.efi"))
            .expect("link");
        let copies =
            install(&[src.path().join("ipxe.efi")], &out.path().join("tftp")).expect("install");
        let meta = std::fs::symlink_metadata(&copies[0]).expect("meta");
        assert!(meta.is_file());
        assert_eq!(std::fs::read(&copies[0]).expect("read"), b"EFI");
        assert!(matches!(
            install(&[src.path().join("nope")], out.path()),
            Err(TftpError::Missing(_))
        ));
    }
}
