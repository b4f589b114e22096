//! A snapshot of local processes from /proc (via procfs): the raw figures ps and top need.
//! Reading is I/O; turning a stat line into ps's STAT and COMMAND columns is pure, below.

use anyhow::{Context, Result};
use procfs::Current;

/// One process's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    /// Process id.
    pub pid: i32,
    /// Owner (real uid of /proc/PID).
    pub uid: u32,
    /// STAT column, as ps prints it.
    pub stat: String,
    /// User + system CPU time, in clock ticks.
    pub cpu_ticks: u64,
    /// Start time after boot, in clock ticks.
    pub start_ticks: u64,
    /// Resident set, KiB.
    pub rss_kib: u64,
    /// Command line, or `[comm]` for kernel threads.
    pub command: String,
}

/// All processes at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Processes, by pid.
    pub procs: Vec<Proc>,
    /// Seconds since boot when the snapshot was taken.
    pub uptime: f64,
    /// Kernel clock ticks per second (USER_HZ).
    pub ticks_per_sec: u64,
}

/// Reads every process. Processes that exit while we read them are skipped, as ps does.
pub fn snapshot() -> Result<Snapshot> {
    let page_kib = procfs::page_size() / 1024;
    let mut procs: Vec<Proc> = procfs::process::all_processes()
        .context("listing /proc")?
        .filter_map(|p| {
            let p = p.ok()?;
            let st = p.stat().ok()?;
            let uid = p.uid().ok()?;
            let cmdline = p.cmdline().unwrap_or_default();
            Some(Proc {
                pid: st.pid,
                uid,
                stat: stat_code(&StatBits {
                    state: st.state,
                    session_leader: st.session == st.pid,
                    foreground: st.tpgid == st.pgrp,
                    threads: st.num_threads,
                    nice: st.nice,
                }),
                cpu_ticks: st.utime + st.stime,
                start_ticks: st.starttime,
                rss_kib: st.rss * page_kib,
                command: command_text(&cmdline, &st.comm),
            })
        })
        .collect();
    procs.sort_by_key(|p| p.pid);
    let uptime = procfs::Uptime::current()
        .context("reading /proc/uptime")?
        .uptime;
    Ok(Snapshot {
        procs,
        uptime,
        ticks_per_sec: procfs::ticks_per_second().max(1),
    })
}

/// The parts of /proc/PID/stat that make up ps's STAT column.
#[derive(Debug, Clone, Copy)]
pub struct StatBits {
    /// R, S, D, Z, T, …
    pub state: char,
    /// pid == session id.
    pub session_leader: bool,
    /// In its terminal's foreground process group.
    pub foreground: bool,
    /// Thread count.
    pub threads: i64,
    /// Nice value.
    pub nice: i64,
}

/// ps's STAT: the state letter, then `<` high priority, `N` low priority, `s` session leader,
/// `l` multi-threaded, `+` foreground (the BSD-style modifiers of ps(1), in its order).
pub fn stat_code(b: &StatBits) -> String {
    let mut s = b.state.to_string();
    for (on, c) in [
        (b.nice < 0, '<'),
        (b.nice > 0, 'N'),
        (b.session_leader, 's'),
        (b.threads > 1, 'l'),
        (b.foreground, '+'),
    ] {
        if on {
            s.push(c);
        }
    }
    s
}

/// The command line joined by spaces; kernel threads (no command line) as `[comm]`, like ps.
pub fn command_text(cmdline: &[String], comm: &str) -> String {
    if cmdline.iter().all(String::is_empty) {
        format!("[{comm}]")
    } else {
        cmdline.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_modifiers() {
        let bits = StatBits {
            state: 'S',
            session_leader: true,
            foreground: true,
            threads: 4,
            nice: 5,
        };
        assert_eq!(stat_code(&bits), "SNsl+");
        let plain = StatBits {
            state: 'R',
            session_leader: false,
            foreground: false,
            threads: 1,
            nice: -5,
        };
        assert_eq!(stat_code(&plain), "R<");
    }

    #[test]
    fn kernel_threads_in_brackets() {
        assert_eq!(command_text(&[], "kworker/0:1"), "[kworker/0:1]");
        let argv = vec!["sleep".to_owned(), "10".to_owned()];
        assert_eq!(command_text(&argv, "sleep"), "sleep 10");
    }

    #[test]
    fn reads_this_process() {
        let snap = snapshot().unwrap();
        let me = i32::try_from(std::process::id()).unwrap();
        assert!(snap.procs.iter().any(|p| p.pid == me));
        assert!(snap.uptime > 0.0);
    }
}
