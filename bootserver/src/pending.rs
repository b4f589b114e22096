//! MACs waiting to be approved (`unknown_macs = "register"`): each unknown MAC that asks for
//! DHCP is kept with when it last asked, at most [`MAX`] of them, in `<state_dir>/pending` so
//! `ombootd node approve` (another process) and a restart see them. They get no answer until
//! an operator makes them nodes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::mac::MacAddr;

/// Most MACs kept; past that the one that asked longest ago goes.
pub const MAX: usize = 256;
/// The file in the state directory.
pub const FILE: &str = "pending";

/// The pending list.
#[derive(Debug)]
pub struct Pending {
    path: PathBuf,
    macs: Mutex<BTreeMap<MacAddr, u64>>,
    dirty: AtomicBool,
}

/// Parse the file: one `MAC SECONDS` per line; other lines are skipped.
pub fn parse(text: &str) -> BTreeMap<MacAddr, u64> {
    text.lines()
        .filter_map(|l| {
            let (m, t) = l.split_once(' ')?;
            Some((m.parse().ok()?, t.trim().parse().ok()?))
        })
        .collect()
}

/// The MACs pending in `state_dir` (for the command line, which runs beside the server).
pub fn read(state_dir: &Path) -> BTreeMap<MacAddr, u64> {
    std::fs::read_to_string(state_dir.join(FILE))
        .map(|t| parse(&t))
        .unwrap_or_default()
}

impl Pending {
    /// The list kept in `state_dir`, as the last run left it.
    pub fn open(state_dir: &Path) -> Self {
        Self {
            path: state_dir.join(FILE),
            macs: Mutex::new(read(state_dir)),
            dirty: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<MacAddr, u64>> {
        self.macs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `mac` asked at `now`; true when it is new to the list.
    pub fn record(&self, mac: MacAddr, now: u64) -> bool {
        let mut m = self.lock();
        let new = m.insert(mac, now).is_none();
        if m.len() > MAX
            && let Some(oldest) = m.iter().min_by_key(|(_, t)| **t).map(|(k, _)| *k)
        {
            m.remove(&oldest);
        }
        self.dirty.store(true, Ordering::Relaxed);
        new
    }

    /// Keep only the MACs `keep` says; the others (now in the table) leave the list.
    pub fn retain(&self, keep: impl Fn(MacAddr) -> bool) {
        let mut m = self.lock();
        let before = m.len();
        m.retain(|k, _| keep(*k));
        if m.len() != before {
            self.dirty.store(true, Ordering::Relaxed);
        }
    }

    /// Every pending MAC with when it last asked, oldest MAC first.
    pub fn list(&self) -> Vec<(MacAddr, u64)> {
        self.lock().iter().map(|(k, v)| (*k, *v)).collect()
    }

    /// Write the list if it changed (blocking: call it off the runtime).
    pub fn flush(&self) -> std::io::Result<()> {
        if !self.dirty.swap(false, Ordering::Relaxed) {
            return Ok(());
        }
        let text: String = self
            .list()
            .iter()
            .map(|(m, t)| format!("{m} {t}\n"))
            .collect();
        let r = migrator::state_file::replace(&self.path, text.as_bytes());
        if r.is_err() {
            self.dirty.store(true, Ordering::Relaxed);
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_bounded_persisted_and_retained() {
        let dir = tempfile::tempdir().unwrap();
        let p = Pending::open(dir.path());
        assert!(p.record(MacAddr([2, 0, 0, 0, 0, 1]), 10));
        assert!(!p.record(MacAddr([2, 0, 0, 0, 0, 1]), 11));
        for i in 0..MAX as u32 + 5 {
            let [_, _, a, b] = i.to_be_bytes();
            p.record(MacAddr([6, 0, 0, 1, a, b]), 100 + u64::from(i));
        }
        assert_eq!(p.list().len(), MAX);
        assert!(
            !p.list()
                .iter()
                .any(|(m, _)| *m == MacAddr([2, 0, 0, 0, 0, 1])),
            "the oldest went"
        );
        p.flush().unwrap();
        let again = read(dir.path());
        assert_eq!(again.len(), MAX);
        p.retain(|m| m.0[5] != 4);
        p.flush().unwrap();
        assert_eq!(read(dir.path()).len(), MAX - 1);
        assert_eq!(
            parse("junk\n02:00:00:00:00:09 5\n"),
            BTreeMap::from([(MacAddr([2, 0, 0, 0, 0, 9]), 5)])
        );
    }
}
