//! Opening files that must lie inside a served directory (the TFTP root, the NFS export).
//!
//! Names are checked before opening, the last component is opened with `O_NOFOLLOW`, and the file
//! actually opened is checked again through `/proc/self/fd`, so a symlink or a rename race cannot
//! hand out a file from outside the root.

use std::fs::File;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Component, Path, PathBuf};

/// Why a path was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfinedError {
    /// The name itself tries to leave the root (`..`, an absolute component).
    #[error("`{0}` tries to leave the served directory")]
    Escapes(String),
    /// The name resolves (through a symlink) outside the root.
    #[error("`{0}` resolves outside the served directory")]
    OutsideRoot(String),
    /// Not a regular file.
    #[error("`{0}` is not a regular file")]
    NotAFile(String),
    /// Does not exist or cannot be read.
    #[error("`{name}`: {source}")]
    Io {
        /// The requested name.
        name: String,
        /// Why.
        source: io::Error,
    },
}

impl ConfinedError {
    /// Whether this is a refusal for safety (as opposed to a missing file).
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::Escapes(_) | Self::OutsideRoot(_))
    }
}

/// Turn a client-supplied name into a path relative to the root, refusing `..` and anything that
/// is not a plain relative name. A leading `/` is allowed (clients send `/undionly.kpxe`).
pub fn relative_name(requested: &str) -> Result<PathBuf, ConfinedError> {
    let trimmed = requested.trim_start_matches('/');
    let mut out = PathBuf::new();
    for c in Path::new(trimmed).components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(ConfinedError::Escapes(requested.to_string()));
            }
        }
    }
    if out.as_os_str().is_empty() || requested.contains('\\') {
        return Err(ConfinedError::Escapes(requested.to_string()));
    }
    Ok(out)
}

/// Open `root/relative` read-only, only if it is a regular file whose real location is inside
/// `root`. `root` must already be canonical.
pub fn open_regular(
    root: &Path,
    relative: &Path,
    name: &str,
) -> Result<(File, u64), ConfinedError> {
    let io_err = |source| ConfinedError::Io {
        name: name.to_string(),
        source,
    };
    // Symlinks in the middle are resolved here and must stay inside; the last component may not be one.
    let full = root.join(relative);
    let parent = full
        .parent()
        .unwrap_or(root)
        .canonicalize()
        .map_err(io_err)?;
    if !parent.starts_with(root) {
        return Err(ConfinedError::OutsideRoot(name.to_string()));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(&full)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => ConfinedError::OutsideRoot(name.to_string()),
            _ => io_err(e),
        })?;
    let real = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).map_err(io_err)?;
    if !real.starts_with(root) {
        return Err(ConfinedError::OutsideRoot(name.to_string()));
    }
    let meta = file.metadata().map_err(io_err)?;
    if !meta.is_file() {
        return Err(ConfinedError::NotAFile(name.to_string()));
    }
    Ok((file, meta.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_climb_are_refused() {
        for bad in ["../etc/passwd", "a/../../b", "/..", "", "/", "a\\..\\b"] {
            assert!(relative_name(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            relative_name("/undionly.kpxe").unwrap(),
            PathBuf::from("undionly.kpxe")
        );
        assert_eq!(
            relative_name("./efi/ipxe.efi").unwrap(),
            PathBuf::from("efi/ipxe.efi")
        );
    }

    #[test]
    fn symlinks_out_are_refused_and_inside_are_fine() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"no").unwrap();
        let root = tempfile::tempdir().unwrap();
        let r = root.path().canonicalize().unwrap();
        std::fs::write(r.join("file"), b"yes").unwrap();
        std::fs::create_dir(r.join("sub")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), r.join("leak")).unwrap();
        std::os::unix::fs::symlink(outside.path(), r.join("leakdir")).unwrap();
        std::os::unix::fs::symlink("file", r.join("inner")).unwrap();

        assert_eq!(open_regular(&r, Path::new("file"), "file").unwrap().1, 3);
        assert!(
            open_regular(&r, Path::new("leak"), "leak")
                .unwrap_err()
                .is_refusal()
        );
        assert!(
            open_regular(&r, Path::new("leakdir/secret"), "leakdir/secret")
                .unwrap_err()
                .is_refusal()
        );
        // A symlink as last component is refused even when it points inside: serve the real name.
        assert!(
            open_regular(&r, Path::new("inner"), "inner")
                .unwrap_err()
                .is_refusal()
        );
        assert!(matches!(
            open_regular(&r, Path::new("sub"), "sub"),
            Err(ConfinedError::NotAFile(_))
        ));
        assert!(matches!(
            open_regular(&r, Path::new("nope"), "nope"),
            Err(ConfinedError::Io { .. })
        ));
    }
}
