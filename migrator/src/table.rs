//! The load table: the freshest record per node, bounded, and the piggyback window that
//! spreads news gradually, openMosix-style: a few fresh records, news first.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::time::Duration;

use crate::identity::NodeId;
use crate::wire::{FLAG_NEWS, LoadRecord};

/// A record older than this is replaced even by a lower sequence number: the origin restarted.
pub const RESTART_AFTER: Duration = Duration::from_secs(10);
/// Records older than this (since their origin sampled them) are not forwarded: a balancer
/// must not act on them, and each would crowd out news. A node holding records this fresh
/// about a window of peers has enough to choose a migration target from.
pub const FRESH: Duration = Duration::from_secs(10);

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

    /// Records younger than [`FRESH`] at `now` about nodes other than `skip`.
    pub fn count_fresh(&self, now: Duration, skip: &[NodeId]) -> usize {
        self.fresh(now, skip).count()
    }

    /// Entries younger than [`FRESH`] at `now`, not about `skip`.
    fn fresh<'a>(
        &'a self,
        now: Duration,
        skip: &'a [NodeId],
    ) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries.values().filter(move |e| {
            now.saturating_sub(e.origin_at) < FRESH && !skip.contains(&e.record.id)
        })
    }

    /// The piggyback window: up to `n` records younger than [`FRESH`], not about `skip`, with
    /// `age_ms` set for `now`. News ([`FLAG_NEWS`]) takes up to half of it, freshest first,
    /// so a change keeps moving on; the rest are the freshest of all, so that news, even a
    /// whole rack booting at once, never stops fresh records flowing. Each holder passes a
    /// record to one peer a round: news spreads by doubling, never to everyone at once.
    pub fn window(&self, n: usize, skip: &[NodeId], now: Duration) -> Vec<LoadRecord> {
        let mut fresh: Vec<&Entry> = self.fresh(now, skip).collect();
        fresh.sort_by_key(|e| (Reverse(e.origin_at), e.record.id));
        let mut picked: Vec<&Entry> = fresh
            .iter()
            .filter(|e| e.record.flags & FLAG_NEWS != 0)
            .take(n.div_ceil(2))
            .copied()
            .collect();
        let rest: Vec<&Entry> = fresh
            .iter()
            .filter(|e| !picked.iter().any(|p| p.record.id == e.record.id))
            .take(n.saturating_sub(picked.len()))
            .copied()
            .collect();
        picked.extend(rest);
        picked
            .into_iter()
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
        let w = t.window(8, &[NodeId(19)], s(20));
        assert_eq!(w.len(), 8);
        let ids: Vec<u64> = w.iter().map(|r| r.id.0).collect();
        assert_eq!(ids, (11..=18).rev().collect::<Vec<_>>());
        assert_eq!(w[0].age_ms, 2_000);
        // Only records younger than FRESH go on, and count as fresh.
        let w = t.window(8, &[], s(25));
        assert_eq!(w.len(), 4, "{w:?}");
        assert!(
            w.iter()
                .all(|r| u64::from(r.age_ms) < FRESH.as_millis() as u64)
        );
        assert_eq!(t.count_fresh(s(25), &[]), 4);
        assert_eq!(t.count_fresh(s(25), &[NodeId(19)]), 3);
        assert!(t.window(8, &[], s(40)).is_empty());
    }

    #[test]
    fn news_takes_half_the_window_the_rest_is_freshest() {
        let mut t = LoadTable::new(100);
        // Six older records that are news, ten fresher ones that are not.
        for id in 0..6u64 {
            t.offer(
                LoadRecord {
                    flags: FLAG_NEWS,
                    ..rec(id, 1, 0)
                },
                s(10) + Duration::from_millis(id),
            );
        }
        for id in 10..20u64 {
            t.offer(rec(id, 1, 0), s(12) + Duration::from_millis(id));
        }
        let ids: Vec<u64> = t.window(8, &[], s(13)).iter().map(|r| r.id.0).collect();
        assert_eq!(
            ids,
            [5, 4, 3, 2, 19, 18, 17, 16],
            "news freshest first, then freshest"
        );
        // Without enough news the window is the freshest of all, news or not.
        let ids: Vec<u64> = t
            .window(8, &[NodeId(2), NodeId(3), NodeId(4), NodeId(5)], s(13))
            .iter()
            .map(|r| r.id.0)
            .collect();
        assert_eq!(ids, [1, 0, 19, 18, 17, 16, 15, 14]);
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
