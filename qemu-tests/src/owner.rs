//! Ownership records in `/run/omlab/<netns>.pid`: which process made a lab namespace, so a later
//! run can tell the leftovers of a crashed run (owner dead) from a lab still in use. A record
//! holds "PID STARTTIME"; the start time (from /proc) guards against PID reuse.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Result, io};

/// Where records live unless `OMLAB_RUN_DIR` says otherwise.
pub const DEFAULT_RUN_DIR: &str = "/run/omlab";

/// The directory of ownership records.
pub(crate) fn run_dir() -> PathBuf {
    std::env::var_os("OMLAB_RUN_DIR").map_or_else(|| PathBuf::from(DEFAULT_RUN_DIR), PathBuf::from)
}

/// A process identity that survives PID reuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Owner {
    pub pid: u32,
    pub start_time: u64,
}

impl Owner {
    /// This process.
    pub fn me() -> Option<Owner> {
        let pid = std::process::id();
        Some(Owner {
            pid,
            start_time: start_time(pid)?,
        })
    }

    /// Whether this exact process (same PID, same start time) still runs; a zombie (killed,
    /// not yet reaped by its parent) counts as dead.
    pub fn alive(&self) -> bool {
        start_time(self.pid) == Some(self.start_time) && crate::signal::process_alive(self.pid)
    }

    fn render(&self) -> String {
        format!("{} {}\n", self.pid, self.start_time)
    }

    fn parse(text: &str) -> Option<Owner> {
        let mut words = text.split_whitespace();
        let pid = words.next()?.parse().ok()?;
        let start_time = words.next()?.parse().ok()?;
        Some(Owner { pid, start_time })
    }
}

/// Start time in clock ticks since boot (with the PID, it names one process for good).
fn start_time(pid: u32) -> Option<u64> {
    crate::proc_stat::Stat::of(pid).map(|s| s.start_time)
}

fn record_path(dir: &Path, netns: &str) -> PathBuf {
    dir.join(format!("{netns}.pid"))
}

/// Records this process as the owner of `netns`; written before the namespace is created so a
/// namespace without a record is always a leftover.
pub(crate) fn claim(dir: &Path, netns: &str) -> Result<()> {
    fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
    let me = Owner::me().unwrap_or(Owner {
        pid: std::process::id(),
        start_time: 0,
    });
    let path = record_path(dir, netns);
    fs::write(&path, me.render()).map_err(io(format!("write {}", path.display())))
}

/// The recorded owner of `netns`, if a readable record exists.
pub(crate) fn owner(dir: &Path, netns: &str) -> Option<Owner> {
    Owner::parse(&fs::read_to_string(record_path(dir, netns)).ok()?)
}

/// Removes the record of `netns` (absent is fine).
pub(crate) fn release(dir: &Path, netns: &str) {
    let _ = fs::remove_file(record_path(dir, netns));
}

/// Namespaces that have a record, whatever their state.
pub(crate) fn recorded(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .into_string()
                .ok()?
                .strip_suffix(".pid")
                .map(str::to_owned)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn me_is_alive_and_round_trips() {
        let me = Owner::me().expect("own /proc entry");
        assert!(me.alive());
        assert_eq!(Owner::parse(&me.render()), Some(me));
        assert!(
            !Owner {
                start_time: me.start_time + 1,
                ..me
            }
            .alive()
        );
    }

    #[test]
    fn claim_and_release() {
        let dir = tempfile::tempdir().expect("temp dir");
        claim(dir.path(), "omlab-t").expect("claim");
        assert_eq!(recorded(dir.path()), vec!["omlab-t".to_owned()]);
        assert!(owner(dir.path(), "omlab-t").is_some_and(|o| o.alive()));
        release(dir.path(), "omlab-t");
        assert!(owner(dir.path(), "omlab-t").is_none());
    }
}
