//! Removing leftover labs: namespaces named `omlab-*` whose owner died (or all of them, for
//! `omlab clean`), the processes still inside them, and stale ownership records.

use std::time::{Duration, Instant};

use crate::error::Result;
use crate::netns::{self, PREFIX};
use crate::owner;
use crate::signal::{Signal, kill_pid, process_alive};

/// Which lab namespaces to remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Only those whose recorded owner is dead or unrecorded: safe while other labs run.
    Stale,
    /// Every `omlab-*` namespace, in use or not.
    All,
}

/// What one cleanup removed.
#[derive(Debug, Default)]
pub struct Removed {
    /// Namespaces deleted.
    pub namespaces: Vec<String>,
    /// Processes killed, as (namespace, PID).
    pub processes: Vec<(String, u32)>,
    /// Ownership records removed without a namespace.
    pub records: Vec<String>,
}

/// How long processes get after SIGTERM before SIGKILL.
const GRACE: Duration = Duration::from_secs(3);

/// Removes leftover labs within `scope`.
pub fn remove_leftovers(scope: Scope) -> Result<Removed> {
    let dir = owner::run_dir();
    let mut removed = Removed::default();
    let present = netns::list()?;
    for ns in present.iter().filter(|n| n.starts_with(PREFIX)) {
        let stale = owner::owner(&dir, ns).is_none_or(|o| !o.alive());
        if scope == Scope::All || stale {
            for pid in kill_inside(ns)? {
                removed.processes.push((ns.clone(), pid));
            }
            netns::delete(ns)?;
            owner::release(&dir, ns);
            removed.namespaces.push(ns.clone());
        }
    }
    // Records without a namespace: a run that died between claiming and creating, or after
    // deleting. A live owner may be in that window right now, so only its death makes it stale.
    for ns in owner::recorded(&dir) {
        let stale = owner::owner(&dir, &ns).is_none_or(|o| !o.alive());
        if !present.contains(&ns) && (scope == Scope::All || stale) {
            owner::release(&dir, &ns);
            removed.records.push(ns);
        }
    }
    Ok(removed)
}

/// Kills, by PID, every process inside `ns`: SIGTERM, a bounded wait, then SIGKILL.
/// Returns the PIDs that were found.
pub(crate) fn kill_inside(ns: &str) -> Result<Vec<u32>> {
    let pids = netns::pids(ns)?;
    for &pid in &pids {
        kill_pid(pid, Signal::Term);
    }
    let deadline = Instant::now() + GRACE;
    while pids.iter().any(|&p| process_alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for &pid in pids.iter().filter(|&&p| process_alive(p)) {
        kill_pid(pid, Signal::Kill);
    }
    Ok(pids)
}
