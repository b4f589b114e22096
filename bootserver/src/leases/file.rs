//! Leases persisted as a small JSON file, rewritten crash-safely (temp file, fsync, rename, fsync
//! of the directory), so a crash never leaves a half-written file and a restart keeps what nodes
//! were given. Only bound leases (an ACK) make the file due for a write, and the writes are
//! batched off the DHCP path by the [`flusher`](super::flusher): a DISCOVER flood costs no disk
//! I/O, and each write carries every ACK waiting for it ([`commits`](super::commits)).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use std::net::Ipv4Addr;

use super::{Declined, Lease, LeaseError, LeaseState, LeaseStore};
use crate::mac::MacAddr;

/// Leases in `<state_dir>/leases.json`.
#[derive(Debug)]
pub struct FileLeases {
    path: PathBuf,
    leases: BTreeMap<MacAddr, Lease>,
    /// A bound lease changed since the file was last written.
    dirty: bool,
    /// Bumped by every change that makes the file due.
    generation: u64,
    /// Addresses clients declined.
    declined: Declined,
}

/// The leases to write to the file, taken from the store under its lock and written without it.
#[derive(Debug)]
pub struct Unsaved {
    path: PathBuf,
    leases: Vec<Lease>,
    /// The store's generation this holds.
    pub generation: u64,
}

impl Unsaved {
    /// Write the file (blocking: call it off the async runtime).
    pub fn write(self) -> Result<(), LeaseError> {
        let io = |source| LeaseError::Io {
            path: self.path.clone(),
            source,
        };
        let bytes =
            serde_json::to_vec_pretty(&self.leases).map_err(|e| io(std::io::Error::other(e)))?;
        migrator::state_file::replace(&self.path, &bytes).map_err(io)
    }
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
        Ok(Self {
            path,
            leases,
            dirty: false,
            generation: 0,
            declined: Declined::default(),
        })
    }
}

impl FileLeases {
    fn due(&mut self, changed: bool) {
        if changed {
            self.dirty = true;
            self.generation += 1;
        }
    }
}

fn bound(l: Option<&Lease>) -> bool {
    l.is_some_and(|l| l.state == LeaseState::Bound)
}

impl LeaseStore for FileLeases {
    fn get(&self, mac: MacAddr) -> Option<Lease> {
        self.leases.get(&mac).cloned()
    }

    fn put(&mut self, mac: MacAddr, lease: Lease) -> Result<(), LeaseError> {
        if self.leases.get(&mac) == Some(&lease) {
            return Ok(());
        }
        let now_bound = bound(Some(&lease));
        let old = self.leases.insert(mac, lease);
        self.due(now_bound || bound(old.as_ref()));
        Ok(())
    }

    fn remove(&mut self, mac: MacAddr) -> Result<Option<Lease>, LeaseError> {
        let old = self.leases.remove(&mac);
        self.due(bound(old.as_ref()));
        Ok(old)
    }

    fn decline(&mut self, ip: Ipv4Addr, now: u64, until: u64) {
        self.declined.add(ip, until, now);
    }

    fn declined(&self, ip: Ipv4Addr, now: u64) -> bool {
        self.declined.contains(ip, now)
    }

    fn generation(&self) -> u64 {
        self.generation
    }

    fn take_unsaved(&mut self) -> Option<Unsaved> {
        if !std::mem::take(&mut self.dirty) {
            return None;
        }
        Some(Unsaved {
            path: self.path.clone(),
            leases: self.leases.values().cloned().collect(),
            generation: self.generation,
        })
    }

    fn mark_unsaved(&mut self) {
        self.dirty = true;
    }

    fn all(&self) -> Vec<Lease> {
        self.leases.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        s.take_unsaved().unwrap().write().unwrap();
        let s2 = FileLeases::open(dir.path()).unwrap();
        assert_eq!(s2.get(mac), Some(lease("52:54:00:77:00:01")));
        let mut s2 = s2;
        s2.remove(mac).unwrap();
        s2.take_unsaved().unwrap().write().unwrap();
        assert!(FileLeases::open(dir.path()).unwrap().all().is_empty());
    }

    #[test]
    fn only_bound_leases_make_a_write_due_and_writes_are_batched() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FileLeases::open(dir.path()).unwrap();
        let offered = |mac: &str| Lease {
            state: LeaseState::Offered,
            ..lease(mac)
        };
        // A thousand DISCOVERs: no write.
        for i in 0..1000u32 {
            let mac = format!("52:54:00:00:{:02x}:{:02x}", i >> 8, i & 0xff);
            s.put(mac.parse().unwrap(), offered(&mac)).unwrap();
        }
        assert!(s.take_unsaved().is_none());
        assert!(!dir.path().join("leases.json").exists());
        // Ten ACKs: one write holds them all.
        for i in 0..10u32 {
            let mac = format!("52:54:00:00:00:{i:02x}");
            s.put(mac.parse().unwrap(), lease(&mac)).unwrap();
        }
        s.take_unsaved().unwrap().write().unwrap();
        assert!(s.take_unsaved().is_none());
        let bound = FileLeases::open(dir.path())
            .unwrap()
            .all()
            .into_iter()
            .filter(|l| l.state == LeaseState::Bound)
            .count();
        assert_eq!(bound, 10);
        // Every bound change counted; the write carried the last one.
        assert_eq!(s.generation(), 10);
        // A failed write is retried at the next round.
        s.mark_unsaved();
        assert!(s.take_unsaved().is_some());
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
