//! Leases persisted crash-safely as a snapshot, `leases.json` (written whole: temporary file,
//! fsync, rename, fsync of the directory), and a journal of the changes since, `leases.journal`,
//! one JSON line per change, appended and fsynced in batches. An ACK costs a line, not a rewrite
//! of every lease; when the journal outgrows the leases it is folded into a new snapshot. Only
//! bound leases (an ACK) make a write due, and the writes run off the DHCP path in the
//! [`flusher`](super::flusher): a DISCOVER flood costs no disk I/O, and each write carries every
//! ACK waiting for it ([`commits`](super::commits)).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Declined, Lease, LeaseError, LeaseState, LeaseStore};
use crate::mac::MacAddr;

/// The snapshot's file name in the state directory.
pub const SNAPSHOT: &str = "leases.json";
/// The journal's file name in the state directory.
pub const JOURNAL: &str = "leases.journal";
/// The journal is folded into a snapshot past this many lines, or twice the leases if more.
const FOLD_AT: usize = 1024;

/// One journal line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Change {
    /// This lease now (replacing the MAC's previous one).
    Put(Lease),
    /// The lease of this MAC is gone.
    Remove(String),
}

/// Leases in `<state_dir>/leases.json` and `<state_dir>/leases.journal`.
#[derive(Debug)]
pub struct FileLeases {
    dir: PathBuf,
    leases: BTreeMap<MacAddr, Lease>,
    /// Address → the MAC whose lease is on it.
    by_ip: HashMap<Ipv4Addr, MacAddr>,
    /// Changes of bound leases not yet handed to a write, in order.
    pending: Vec<Change>,
    /// Lines in the journal once the writes handed out so far are done.
    journal_lines: usize,
    /// The next write must be a whole snapshot (a write failed: what it held is unknown).
    fold: bool,
    /// Bumped by every change that makes a write due.
    generation: u64,
    /// Addresses clients declined.
    declined: Declined,
}

/// What to write, taken from the store under its lock and written without it.
#[derive(Debug)]
pub struct Unsaved {
    dir: PathBuf,
    what: Record,
    /// The store's generation this holds.
    pub generation: u64,
}

#[derive(Debug)]
enum Record {
    Append(Vec<Change>),
    Snapshot(Vec<Lease>),
}

impl Unsaved {
    /// Write it (blocking: call it off the async runtime). Done means on disk.
    pub fn write(self) -> Result<(), LeaseError> {
        match self.what {
            Record::Append(changes) => append(&self.dir.join(JOURNAL), &changes),
            Record::Snapshot(leases) => {
                let path = self.dir.join(SNAPSHOT);
                let io = |source| LeaseError::Io {
                    path: path.clone(),
                    source,
                };
                let bytes =
                    serde_json::to_vec_pretty(&leases).map_err(|e| io(std::io::Error::other(e)))?;
                migrator::state_file::replace(&path, &bytes).map_err(io)?;
                // The snapshot holds everything the journal did: a crash before this removal
                // replays changes the snapshot already has, to the same result.
                let journal = self.dir.join(JOURNAL);
                match std::fs::remove_file(&journal) {
                    Ok(()) => sync_dir(&self.dir),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(source) => Err(LeaseError::Io {
                        path: journal,
                        source,
                    }),
                }
            }
        }
    }
}

fn sync_dir(dir: &Path) -> Result<(), LeaseError> {
    migrator::state_file::sync_dir(dir).map_err(|source| LeaseError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

/// Append `changes` to the journal at `path` and fsync it (and the directory, when the journal
/// is new: its name must survive a crash too).
fn append(path: &Path, changes: &[Change]) -> Result<(), LeaseError> {
    let io = |source| LeaseError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut text = Vec::new();
    for c in changes {
        serde_json::to_writer(&mut text, c).map_err(|e| io(std::io::Error::other(e)))?;
        text.push(b'\n');
    }
    let new = !path.exists();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io)?;
    f.write_all(&text).map_err(io)?;
    f.sync_data().map_err(io)?;
    if new && let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

impl FileLeases {
    /// Open (or start) the lease files in `state_dir`: the snapshot, then the journal replayed
    /// over it. A journal whose last line is cut short (a crash during an append, before its
    /// fsync, so nobody was told) loses that line only.
    pub fn open(state_dir: &Path) -> Result<Self, LeaseError> {
        let path = state_dir.join(SNAPSHOT);
        let read = |path: &Path| match std::fs::read(path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(LeaseError::Io {
                path: path.to_path_buf(),
                source,
            }),
        };
        let mut leases = BTreeMap::new();
        if let Some(bytes) = read(&path)? {
            let list: Vec<Lease> =
                serde_json::from_slice(&bytes).map_err(|source| LeaseError::Corrupt {
                    path: path.clone(),
                    source,
                })?;
            for l in list {
                if let Ok(mac) = l.mac.parse() {
                    leases.insert(mac, l);
                }
            }
        }
        let journal = state_dir.join(JOURNAL);
        let mut journal_lines = 0;
        if let Some(bytes) = read(&journal)? {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.split_terminator('\n').collect();
            for (i, line) in lines.iter().enumerate() {
                let change: Change = match serde_json::from_str(line) {
                    Ok(c) => c,
                    Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => break,
                    Err(source) => {
                        return Err(LeaseError::Corrupt {
                            path: journal.clone(),
                            source,
                        });
                    }
                };
                journal_lines += 1;
                match change {
                    Change::Put(l) => {
                        if let Ok(mac) = l.mac.parse() {
                            leases.insert(mac, l);
                        }
                    }
                    Change::Remove(m) => {
                        if let Ok(mac) = m.parse() {
                            leases.remove(&mac);
                        }
                    }
                }
            }
        }
        let by_ip = leases.iter().map(|(m, l)| (l.ip, *m)).collect();
        Ok(Self {
            dir: state_dir.to_path_buf(),
            leases,
            by_ip,
            pending: Vec::new(),
            journal_lines,
            fold: false,
            generation: 0,
            declined: Declined::default(),
        })
    }

    fn due(&mut self, change: Change) {
        self.pending.push(change);
        self.generation += 1;
    }

    /// Drop `ip` from the index if it still points at `mac`.
    fn unindex(&mut self, mac: MacAddr, ip: Ipv4Addr) {
        if self.by_ip.get(&ip) == Some(&mac) {
            self.by_ip.remove(&ip);
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
        self.by_ip.insert(lease.ip, mac);
        let old = self.leases.insert(mac, lease.clone());
        if let Some(old_ip) = old.as_ref().map(|o| o.ip).filter(|ip| *ip != lease.ip) {
            self.unindex(mac, old_ip);
        }
        if now_bound {
            self.due(Change::Put(lease));
        } else if bound(old.as_ref()) {
            // A bound lease became an offer: on disk it is gone until bound again.
            self.due(Change::Remove(mac.to_string()));
        }
        Ok(())
    }

    fn remove(&mut self, mac: MacAddr) -> Result<Option<Lease>, LeaseError> {
        let old = self.leases.remove(&mac);
        if let Some(o) = &old {
            self.unindex(mac, o.ip);
        }
        if bound(old.as_ref()) {
            self.due(Change::Remove(mac.to_string()));
        }
        Ok(old)
    }

    fn all(&self) -> Vec<Lease> {
        self.leases.values().cloned().collect()
    }

    fn holder(&self, ip: Ipv4Addr) -> Option<Lease> {
        self.leases.get(self.by_ip.get(&ip)?).cloned()
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
        if self.pending.is_empty() && !self.fold {
            return None;
        }
        let changes = std::mem::take(&mut self.pending);
        let lines = self.journal_lines + changes.len();
        let what = if self.fold || lines > FOLD_AT.max(2 * self.leases.len()) {
            self.fold = false;
            self.journal_lines = 0;
            let bound = self.leases.values().filter(|l| bound(Some(l)));
            Record::Snapshot(bound.cloned().collect())
        } else {
            self.journal_lines = lines;
            Record::Append(changes)
        };
        Some(Unsaved {
            dir: self.dir.clone(),
            what,
            generation: self.generation,
        })
    }

    fn mark_unsaved(&mut self) {
        self.fold = true;
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

    fn mac_n(i: u32) -> String {
        format!("52:54:00:00:{:02x}:{:02x}", i >> 8, i & 0xff)
    }

    fn flush(s: &mut FileLeases) {
        s.take_unsaved().unwrap().write().unwrap();
    }

    #[test]
    fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mac: MacAddr = "52:54:00:77:00:01".parse().unwrap();
        let mut s = FileLeases::open(dir.path()).unwrap();
        s.put(mac, lease("52:54:00:77:00:01")).unwrap();
        flush(&mut s);
        let s2 = FileLeases::open(dir.path()).unwrap();
        assert_eq!(s2.get(mac), Some(lease("52:54:00:77:00:01")));
        assert_eq!(
            s2.holder("10.77.0.11".parse().unwrap()).map(|l| l.mac),
            Some("52:54:00:77:00:01".into())
        );
        let mut s2 = s2;
        s2.remove(mac).unwrap();
        flush(&mut s2);
        let s3 = FileLeases::open(dir.path()).unwrap();
        assert!(s3.all().is_empty());
        assert_eq!(s3.holder("10.77.0.11".parse().unwrap()), None);
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
            let mac = mac_n(i);
            s.put(mac.parse().unwrap(), offered(&mac)).unwrap();
        }
        assert!(s.take_unsaved().is_none());
        assert!(!dir.path().join(JOURNAL).exists());
        // Ten ACKs: one append holds them all.
        for i in 0..10u32 {
            let mac = mac_n(i);
            s.put(mac.parse().unwrap(), lease(&mac)).unwrap();
        }
        flush(&mut s);
        assert!(s.take_unsaved().is_none());
        let journal = std::fs::read_to_string(dir.path().join(JOURNAL)).unwrap();
        assert_eq!(journal.lines().count(), 10);
        let bound = FileLeases::open(dir.path())
            .unwrap()
            .all()
            .into_iter()
            .filter(|l| l.state == LeaseState::Bound)
            .count();
        assert_eq!(bound, 10);
        // Every bound change counted; the write carried the last one.
        assert_eq!(s.generation(), 10);
        // A failed write is retried at the next round, whole.
        s.mark_unsaved();
        assert!(s.take_unsaved().is_some());
    }

    #[test]
    fn the_journal_is_folded_into_a_snapshot_and_a_torn_last_line_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FileLeases::open(dir.path()).unwrap();
        // Renewals of the same 10 leases: the journal grows, then is folded away.
        for round in 0..200u64 {
            for i in 0..10u32 {
                let mac = mac_n(i);
                let l = Lease {
                    expires: round,
                    ..lease(&mac)
                };
                s.put(mac.parse().unwrap(), l).unwrap();
            }
            flush(&mut s);
        }
        let lines = std::fs::read_to_string(dir.path().join(JOURNAL))
            .map(|j| j.lines().count())
            .unwrap_or(0);
        assert!(
            lines <= FOLD_AT,
            "the journal was never folded: {lines} lines"
        );
        assert!(dir.path().join(SNAPSHOT).exists());
        let reopened = FileLeases::open(dir.path()).unwrap();
        assert_eq!(reopened.all().len(), 10);
        assert!(reopened.all().iter().all(|l| l.expires == 199));
        // A crash in the middle of an append: the cut line was never acknowledged.
        let mut j = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(dir.path().join(JOURNAL))
            .unwrap();
        j.write_all(b"{\"put\":{\"mac\":\"52:54:00:00:00:63\",\"ip\":\"10.")
            .unwrap();
        let reopened = FileLeases::open(dir.path()).unwrap();
        assert_eq!(reopened.all().len(), 10);
        // A bad line in the middle is another matter: refused, left as it is.
        j.write_all(b"\n{\"put\":1}\n").unwrap();
        let e = FileLeases::open(dir.path()).unwrap_err().to_string();
        assert!(e.contains("is corrupt"), "{e}");
    }

    #[test]
    fn corrupt_file_is_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SNAPSHOT), b"{not json").unwrap();
        let e = FileLeases::open(dir.path()).unwrap_err().to_string();
        assert!(e.contains("is corrupt"), "{e}");
        assert_eq!(
            std::fs::read(dir.path().join(SNAPSHOT)).unwrap(),
            b"{not json"
        );
    }
}
