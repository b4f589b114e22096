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

    /// The newest kept move of `job`.
    pub fn latest(&self, job: &JobId) -> Option<MoveEvent> {
        let r = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        r.iter().rev().find(|e| &e.job == job).cloned()
    }

    /// Every kept move, oldest first.
    pub fn all(&self) -> Vec<MoveEvent> {
        let r = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        r.iter().cloned().collect()
    }
}

/// Longest command line or error text a move carries to other nodes: a node's whole history
/// must fit one peer frame ([`MAX_PAYLOAD`](crate::frame::MAX_PAYLOAD)) whatever users ran.
pub const WIRE_TEXT: usize = 256;

/// `events` ready to send: long texts cut to [`WIRE_TEXT`] chars, marked with `…`.
pub fn for_wire(mut events: Vec<MoveEvent>) -> Vec<MoveEvent> {
    for e in &mut events {
        cut(&mut e.command);
        if let Some(error) = e.error.as_mut() {
            cut(error);
        }
    }
    events
}

fn cut(text: &mut String) {
    if let Some((at, _)) = text.char_indices().nth(WIRE_TEXT) {
        text.truncate(at);
        text.push('…');
    }
}

/// The histories of several nodes as one list, oldest first. An event reported twice (the same
/// job leaving the same node for the same target at the same millisecond) is kept once.
pub fn merge(lists: impl IntoIterator<Item = Vec<MoveEvent>>) -> Vec<MoveEvent> {
    let mut all: Vec<MoveEvent> = lists.into_iter().flatten().collect();
    all.sort_by(|a, b| key(a).cmp(&key(b)));
    all.dedup_by(|a, b| key(a) == key(b));
    all
}

fn key(e: &MoveEvent) -> (u64, &str, &JobId, &str) {
    (e.at_ms, &e.from, &e.job, &e.to)
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
        assert_eq!(h.latest(&JobId("n1.12".into())).unwrap().at_ms, 12);
        assert_eq!(h.latest(&JobId("n1.3".into())), None, "forgotten");
        assert_eq!(all[0].at_ms, 10);
        assert_eq!(all.last().unwrap().at_ms, (KEEP + 9) as u64);
        let j = serde_json::to_string(&all[0]).unwrap();
        assert!(j.contains(r#""why":"load""#), "{j}");
    }

    #[test]
    fn merge_orders_by_time_and_drops_repeats() {
        let mut b = ev(2);
        b.from = "n2".into();
        let lists = vec![vec![ev(3), ev(1)], vec![b.clone(), ev(1)], vec![]];
        let all = merge(lists);
        let order: Vec<(u64, &str)> = all.iter().map(|e| (e.at_ms, e.from.as_str())).collect();
        assert_eq!(order, [(1, "n1"), (2, "n2"), (3, "n1")]);
        // Same time, different jobs: both kept.
        let mut c = ev(1);
        c.job = JobId("n1.99".into());
        assert_eq!(merge([vec![ev(1)], vec![c]]).len(), 2);
    }

    #[test]
    fn a_full_history_fits_one_peer_frame() {
        let mut e = ev(1);
        e.command = "é".repeat(64 * 1024);
        e.error = Some("x".repeat(64 * 1024));
        let events = for_wire(vec![e; KEEP]);
        assert_eq!(events[0].command.chars().count(), WIRE_TEXT + 1);
        assert!(events[0].command.ends_with('…'));
        assert!(crate::frame::to_payload(&events).is_ok());
        let short = for_wire(vec![ev(1)]);
        assert_eq!(short[0], ev(1));
    }
}
