//! The cluster key: the shared secret that authenticates every packet.
//! Read from a file (32+ random bytes) that must be owned privately (no group/other bits).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Shortest key we accept.
pub const MIN_KEY_LEN: usize = 32;

/// Why the key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file is missing or unreadable.
    #[error(
        "cannot read cluster key {path} (create it with: head -c 32 /dev/urandom > {path}; chmod 600 {path})"
    )]
    Read {
        /// Key path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Group or world may read it.
    #[error(
        "cluster key {path} has mode {mode:o}: it must not be readable by group or others (chmod 600 {path})"
    )]
    Permissions {
        /// Key path.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
    },
    /// Too short to be a key.
    #[error("cluster key {path} is {len} bytes; at least {MIN_KEY_LEN} random bytes are needed")]
    TooShort {
        /// Key path (empty for in-memory keys).
        path: PathBuf,
        /// Its length.
        len: usize,
    },
}

/// A validated cluster key. Debug output never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterKey(Vec<u8>);

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClusterKey({} bytes)", self.0.len())
    }
}

impl ClusterKey {
    /// Use in-memory key bytes (tests, the observer when ombootd already holds the key).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, KeyError> {
        if bytes.len() < MIN_KEY_LEN {
            return Err(KeyError::TooShort {
                path: PathBuf::new(),
                len: bytes.len(),
            });
        }
        Ok(Self(bytes))
    }

    /// Read and check a key file.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let read = |source| KeyError::Read {
            path: path.to_owned(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read)?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions {
                path: path.to_owned(),
                mode,
            });
        }
        let bytes = std::fs::read(path).map_err(read)?;
        Self::from_bytes(bytes).map_err(|e| match e {
            KeyError::TooShort { len, .. } => KeyError::TooShort {
                path: path.to_owned(),
                len,
            },
            other => other,
        })
    }

    /// The secret.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_checks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cluster.key");
        assert!(matches!(ClusterKey::load(&p), Err(KeyError::Read { .. })));
        std::fs::write(&p, [7u8; 32]).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = ClusterKey::load(&p).unwrap_err();
        assert!(
            matches!(e, KeyError::Permissions { mode: 0o644, .. }),
            "{e}"
        );
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(ClusterKey::load(&p).unwrap().bytes(), &[7u8; 32]);
        std::fs::write(&p, [7u8; 8]).unwrap();
        assert!(matches!(
            ClusterKey::load(&p),
            Err(KeyError::TooShort { len: 8, .. })
        ));
    }
}
