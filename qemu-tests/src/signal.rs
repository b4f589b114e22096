//! Sending signals by PID or process group: the only `unsafe` in the lab. We signal only
//! processes the lab started itself or found inside its own namespaces.

use std::io;

use crate::proc_stat::Stat;

/// The signals the lab sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// SIGTERM: ask to exit.
    Term,
    /// SIGKILL: force.
    Kill,
    /// Signal 0: only check that the target exists.
    Probe,
}

impl Signal {
    fn raw(self) -> libc::c_int {
        match self {
            Signal::Term => libc::SIGTERM,
            Signal::Kill => libc::SIGKILL,
            Signal::Probe => 0,
        }
    }
}

/// kill(2) on a target already checked to be one process (> 1) or one group (< -1).
fn raw_kill(target: libc::pid_t, sig: Signal) -> io::Result<()> {
    debug_assert!(!(-1..=1).contains(&target));
    // SAFETY: kill(2) takes plain integers and touches no memory of ours. Callers pass a target
    // outside -1..=1, so it never means "our own group" (0), "every process" (-1) or init (1).
    let rc = unsafe { libc::kill(target, sig.raw()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn checked(id: u32) -> Option<libc::pid_t> {
    libc::pid_t::try_from(id).ok().filter(|&p| p > 1)
}

/// Signals every process of group `pgid`; true when at least one process received it.
pub(crate) fn kill_group(pgid: u32, sig: Signal) -> bool {
    checked(pgid).is_some_and(|p| raw_kill(-p, sig).is_ok())
}

/// Signals one process; true when it received it.
pub(crate) fn kill_pid(pid: u32, sig: Signal) -> bool {
    checked(pid).is_some_and(|p| raw_kill(p, sig).is_ok())
}

/// Whether process group `pgid` still has a member that is not a zombie. Zombies are ignored:
/// orphans are reaped by PID 1 whenever it gets round to it, and a zombie holds nothing.
pub(crate) fn group_alive(pgid: u32) -> bool {
    let Some(p) = checked(pgid) else { return false };
    // Cheap first check: kill(-pgid, 0) fails with ESRCH once the group is empty.
    if let Err(e) = raw_kill(-p, Signal::Probe)
        && e.raw_os_error() == Some(libc::ESRCH)
    {
        return false;
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return true;
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(Stat::of)
        .any(|s| !s.is_zombie() && s.pgrp == pgid)
}

/// Whether process `pid` exists and is not a zombie.
pub(crate) fn process_alive(pid: u32) -> bool {
    Stat::of(pid).is_some_and(|s| !s.is_zombie())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_group_is_alive_and_nonsense_is_not() {
        let me = std::process::id();
        assert!(process_alive(me));
        assert!(!group_alive(0) && !group_alive(1));
    }
}
