//! The cluster key: the shared secret that authenticates every packet, and its one-byte id
//! (sent in every frame so a receiver holding two keys during a rotation knows which to try).
//! Read from a file (32+ random bytes) that must be owned privately (no group/other bits).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

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
pub struct ClusterKey {
    bytes: Vec<u8>,
    id: u8,
}

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ClusterKey({} bytes, id {:02x})",
            self.bytes.len(),
            self.id
        )
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
        // A hash, not a counter, so every node derives the same id from the file alone; one
        // byte leaks nothing useful about 32 random ones. Two keys may share an id: the
        // receiver then tries both.
        let h = Sha256::new()
            .chain_update(b"omd key id")
            .chain_update(&bytes)
            .finalize();
        Ok(Self { id: h[0], bytes })
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
        &self.bytes
    }

    /// The key id carried in every frame: the first byte of SHA-256("omd key id" | key).
    pub fn id(&self) -> u8 {
        self.id
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

    #[test]
    fn key_id_comes_from_the_key() {
        let a = ClusterKey::from_bytes(vec![1; 32]).unwrap();
        let b = ClusterKey::from_bytes(vec![1; 32]).unwrap();
        assert_eq!(a.id(), b.id(), "every node derives the same id");
        let h = Sha256::digest([&b"omd key id"[..], &[1u8; 32]].concat());
        assert_eq!(a.id(), h[0]);
        let ids: std::collections::HashSet<u8> = (0..32u8)
            .map(|n| ClusterKey::from_bytes(vec![n; 32]).unwrap().id())
            .collect();
        assert!(ids.len() > 16, "ids spread over the byte: {ids:?}");
        assert!(!format!("{a:?}").contains("1, 1"), "Debug hides the secret");
    }
}
