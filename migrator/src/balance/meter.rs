//! Measuring a job in /proc behind [`JobMeter`]: the CPU time and resident memory of its whole
//! process tree (init and every descendant), read by the real [`ProcMeter`] and scripted in tests.

use std::path::Path;
use std::time::Duration;

use crate::job::tree;

/// One reading of a job's tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// CPU time used so far by every process of the tree (user + system).
    pub cpu: Duration,
    /// Resident memory, bytes.
    pub rss: u64,
}

/// Something that measures a job by its init's host pid.
pub trait JobMeter: Send {
    /// The tree's usage now, or `None` when the job is gone.
    fn usage(&mut self, pid: i32) -> Option<Usage>;
}

/// The real meter, over /proc.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcMeter;

impl JobMeter for ProcMeter {
    fn usage(&mut self, pid: i32) -> Option<Usage> {
        let ticks = procfs::ticks_per_second().max(1);
        let page = procfs::page_size();
        let mut u = Usage::default();
        let mut seen = false;
        for p in tree::descendants(Path::new("/proc"), pid) {
            // A process of the tree may exit between the listing and its read.
            let Ok(stat) = procfs::process::Process::new(p).and_then(|p| p.stat()) else {
                continue;
            };
            seen = true;
            u.cpu += Duration::from_secs_f64((stat.utime + stat.stime) as f64 / ticks as f64);
            u.rss += stat.rss * page;
        }
        seen.then_some(u)
    }
}

/// Resident memory of the tree under `pid`, bytes (0 when it is gone).
pub fn tree_rss(pid: i32) -> u64 {
    ProcMeter.usage(pid).map_or(0, |u| u.rss)
}

/// A scripted meter: fixed usage per pid.
#[derive(Debug, Default, Clone)]
pub struct FixedMeter(pub std::collections::HashMap<i32, Usage>);

impl JobMeter for FixedMeter {
    fn usage(&mut self, pid: i32) -> Option<Usage> {
        self.0.get(&pid).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_a_busy_child() {
        let mut child = std::process::Command::new("sh")
            .args([
                "-c",
                "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; sleep 5",
            ])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(600));
        let u = ProcMeter.usage(child.id() as i32).unwrap();
        assert!(u.cpu > Duration::from_millis(50), "{u:?}");
        assert!(u.rss > 100 * 1024, "{u:?}");
        assert_eq!(
            tree_rss(child.id() as i32),
            ProcMeter.usage(child.id() as i32).unwrap().rss
        );
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(ProcMeter.usage(child.id() as i32), None);
    }
}
