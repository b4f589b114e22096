//! The migrations this node started as their source, newest last and bounded: who moved what,
//! where, why (a user, the balancer, memory ushering, expel) and how it went. `omctl mon`
//! shows them; the balancer reads its own recent moves from here.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::job::record::JobId;

/// Moves kept per node.
pub const KEEP: usize = 256;

/// Why a job moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Why {
    /// `omctl migrate` (or `bring`).
    Manual,
    /// The balancer: this node was busier than the target.
    Load,
    /// Memory ushering: this node ran short of free memory.
    Memory,
    /// `omctl expel`: guests sent home.
    Expel,
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Why::Manual => "manual",
            Why::Load => "load",
            Why::Memory => "memory",
            Why::Expel => "expel",
        })
    }
}

/// One migration attempt, as its source saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MoveEvent {
    /// The job.
    pub job: JobId,
    /// Its command line.
    pub command: String,
    /// Source node.
    pub from: String,
    /// Target node.
    pub to: String,
    /// When it ended, ms since the epoch.
    pub at_ms: u64,
    /// Why it was started.
    pub why: Why,
    /// The job now runs on `to`.
    pub ok: bool,
    /// The job's frozen time, ms (0 when it failed).
    pub frozen_ms: u64,
    /// Offer to done, ms.
    pub total_ms: u64,
    /// Image bytes sent.
    pub bytes: u64,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// The bounded record.
#[derive(Debug, Default)]
pub struct History {
    ring: Mutex<VecDeque<MoveEvent>>,
}

impl History {
    /// Remember `e`, forgetting the oldest beyond [`KEEP`].
    pub fn push(&self, e: MoveEvent) {
        let mut r = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        if r.len() == KEEP {
            r.pop_front();
        }
        r.push_back(e);
    }

    /// Every kept move, oldest first.
    pub fn all(&self) -> Vec<MoveEvent> {
        let r = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        r.iter().cloned().collect()
    }
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(i: usize) -> MoveEvent {
        MoveEvent {
            job: JobId(format!("n1.{i}")),
            command: "x".into(),
            from: "n1".into(),
            to: "n2".into(),
            at_ms: i as u64,
            why: Why::Load,
            ok: true,
            frozen_ms: 1,
            total_ms: 2,
            bytes: 3,
            error: None,
        }
    }

    #[test]
    fn keeps_the_newest() {
        let h = History::default();
        for i in 0..KEEP + 10 {
            h.push(ev(i));
        }
        let all = h.all();
        assert_eq!(all.len(), KEEP);
        assert_eq!(all[0].at_ms, 10);
        assert_eq!(all.last().unwrap().at_ms, (KEEP + 9) as u64);
        let j = serde_json::to_string(&all[0]).unwrap();
        assert!(j.contains(r#""why":"load""#), "{j}");
    }
}
