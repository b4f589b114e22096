//! The load table: the freshest record per node, bounded, and the piggyback window
//! (the freshest few records, freshest first) that spreads news gradually, openMosix-style.

use std::collections::HashMap;
use std::time::Duration;

use crate::identity::NodeId;
use crate::wire::LoadRecord;

/// A record older than this is replaced even by a lower sequence number: the origin restarted.
pub const RESTART_AFTER: Duration = Duration::from_secs(10);

/// A stored record and when it was produced (by our clock: arrival time minus its age).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Entry {
    /// The record as received (its `age_ms` is meaningless here).
    pub record: LoadRecord,
    /// When its origin sampled it, on our clock.
    pub origin_at: Duration,
}

/// Freshest record per node, at most `cap` nodes.
#[derive(Debug, Clone)]
pub struct LoadTable {
    entries: HashMap<NodeId, Entry>,
    cap: usize,
}

impl LoadTable {
    /// An empty table holding at most `cap` nodes.
    pub fn new(cap: usize) -> Self {
        Self {
            entries: HashMap::new(),
            cap: cap.max(1),
        }
    }

    /// Offer a record received at `now`; returns whether it was newer and kept.
    pub fn offer(&mut self, record: LoadRecord, now: Duration) -> bool {
        let origin_at = now.saturating_sub(Duration::from_millis(u64::from(record.age_ms)));
        if let Some(old) = self.entries.get(&record.id) {
            let newer = record.seq > old.record.seq
                || origin_at > old.origin_at.saturating_add(RESTART_AFTER);
            if !newer {
                return false;
            }
        } else if self.entries.len() >= self.cap {
            // Full: forget the stalest node to make room for news.
            if let Some(stalest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.origin_at)
                .map(|(id, _)| *id)
            {
                self.entries.remove(&stalest);
            }
        }
        self.entries.insert(record.id, Entry { record, origin_at });
        true
    }

    /// Forget a node (declared dead, or replaced by a restarted identity).
    pub fn remove(&mut self, id: NodeId) {
        self.entries.remove(&id);
    }

    /// The stored record of a node.
    pub fn get(&self, id: NodeId) -> Option<&Entry> {
        self.entries.get(&id)
    }

    /// Nodes in the table.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The table is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Up to `n` freshest records, freshest first, not about `skip`, with `age_ms` set for `now`.
    pub fn window(&self, n: usize, skip: &[NodeId], now: Duration) -> Vec<LoadRecord> {
        let mut v: Vec<&Entry> = self
            .entries
            .values()
            .filter(|e| !skip.contains(&e.record.id))
            .collect();
        v.sort_by(|a, b| {
            b.origin_at
                .cmp(&a.origin_at)
                .then(a.record.id.cmp(&b.record.id))
        });
        v.into_iter()
            .take(n)
            .map(|e| LoadRecord {
                age_ms: u32::try_from(now.saturating_sub(e.origin_at).as_millis())
                    .unwrap_or(u32::MAX),
                ..e.record
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: u64, seq: u32, age_ms: u32) -> LoadRecord {
        LoadRecord {
            id: NodeId(id),
            seq,
            age_ms,
            cpus: 1,
            speed: 1000,
            load_milli: 0,
            loadavg1_milli: 0,
            mem_total: 0,
            mem_free: 0,
            guests: 0,
            flags: 0,
        }
    }

    const fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn keeps_freshest_per_node() {
        let mut t = LoadTable::new(8);
        assert!(t.offer(rec(1, 5, 0), s(100)));
        assert!(!t.offer(rec(1, 4, 0), s(101)), "older seq refused");
        assert!(!t.offer(rec(1, 5, 0), s(101)), "duplicate refused");
        assert!(t.offer(rec(1, 6, 500), s(102)));
        assert_eq!(
            t.get(NodeId(1)).unwrap().origin_at,
            Duration::from_millis(101_500)
        );
        // A restarted origin starts at seq 0 again; accepted once the old record is stale.
        assert!(t.offer(rec(1, 0, 0), s(120)));
        t.remove(NodeId(1));
        assert!(t.is_empty());
    }

    #[test]
    fn window_is_bounded_freshest_first_and_aged() {
        let mut t = LoadTable::new(100);
        for id in 0..20u64 {
            t.offer(rec(id, 1, 0), s(id));
        }
        let w = t.window(8, &[NodeId(19)], s(30));
        assert_eq!(w.len(), 8);
        let ids: Vec<u64> = w.iter().map(|r| r.id.0).collect();
        assert_eq!(ids, (11..=18).rev().collect::<Vec<_>>());
        assert_eq!(w[0].age_ms, 12_000);
    }

    #[test]
    fn full_table_evicts_stalest() {
        let mut t = LoadTable::new(3);
        for id in 0..3u64 {
            t.offer(rec(id, 1, 0), s(10 + id));
        }
        t.offer(rec(9, 1, 0), s(20));
        assert_eq!(t.len(), 3);
        assert!(t.get(NodeId(0)).is_none());
        assert!(t.get(NodeId(9)).is_some());
    }
}
