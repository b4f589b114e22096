//! Leases persisted as a small JSON file, rewritten atomically (temp file + rename) on every change,
//! so a crash never leaves a half-written file and a restart keeps what nodes were given.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Lease, LeaseError, LeaseStore};
use crate::mac::MacAddr;

/// Leases in `<state_dir>/leases.json`.
#[derive(Debug)]
pub struct FileLeases {
    path: PathBuf,
    leases: BTreeMap<MacAddr, Lease>,
}

impl FileLeases {
    /// Open (or start) the lease file in `state_dir`.
    pub fn open(state_dir: &Path) -> Result<Self, LeaseError> {
        let path = state_dir.join("leases.json");
        let io = |source| LeaseError::Io {
            path: path.clone(),
            source,
        };
        let leases = match std::fs::read(&path) {
            Ok(bytes) => {
                let list: Vec<Lease> =
                    serde_json::from_slice(&bytes).map_err(|source| LeaseError::Corrupt {
                        path: path.clone(),
                        source,
                    })?;
                list.into_iter()
                    .filter_map(|l| Some((l.mac.parse().ok()?, l)))
                    .collect()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(io(e)),
        };
        Ok(Self { path, leases })
    }

    fn save(&self) -> Result<(), LeaseError> {
        let io = |source| LeaseError::Io {
            path: self.path.clone(),
            source,
        };
        let list: Vec<&Lease> = self.leases.values().collect();
        let bytes = serde_json::to_vec_pretty(&list).map_err(|e| io(std::io::Error::other(e)))?;
        let tmp = self.path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(io)
    }
}

impl LeaseStore for FileLeases {
    fn get(&self, mac: MacAddr) -> Option<Lease> {
        self.leases.get(&mac).cloned()
    }

    fn put(&mut self, mac: MacAddr, lease: Lease) -> Result<(), LeaseError> {
        if self.leases.get(&mac) == Some(&lease) {
            return Ok(());
        }
        let old = self.leases.insert(mac, lease);
        self.save().inspect_err(|_| {
            // Keep memory and disk in step: the caller will not send the reply.
            match old {
                Some(o) => self.leases.insert(mac, o),
                None => self.leases.remove(&mac),
            };
        })
    }

    fn remove(&mut self, mac: MacAddr) -> Result<Option<Lease>, LeaseError> {
        let old = self.leases.remove(&mac);
        if old.is_some() {
            self.save()?;
        }
        Ok(old)
    }

    fn all(&self) -> Vec<Lease> {
        self.leases.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leases::LeaseState;

    fn lease(mac: &str) -> Lease {
        Lease {
            mac: mac.into(),
            ip: "10.77.0.11".parse().unwrap(),
            name: "node1".into(),
            state: LeaseState::Bound,
            expires: 99,
        }
    }

    #[test]
    fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mac: MacAddr = "52:54:00:77:00:01".parse().unwrap();
        let mut s = FileLeases::open(dir.path()).unwrap();
        s.put(mac, lease("52:54:00:77:00:01")).unwrap();
        let s2 = FileLeases::open(dir.path()).unwrap();
        assert_eq!(s2.get(mac), Some(lease("52:54:00:77:00:01")));
        let mut s2 = s2;
        s2.remove(mac).unwrap();
        assert!(FileLeases::open(dir.path()).unwrap().all().is_empty());
    }

    #[test]
    fn corrupt_file_is_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("leases.json"), b"{not json").unwrap();
        let e = FileLeases::open(dir.path()).unwrap_err().to_string();
        assert!(e.contains("is corrupt"), "{e}");
        assert_eq!(
            std::fs::read(dir.path().join("leases.json")).unwrap(),
            b"{not json"
        );
    }
}
