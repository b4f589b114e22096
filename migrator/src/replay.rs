//! Replay protection for authenticated gossip frames: per sender id, its generation, the highest
//! sequence number seen and a 64-entry bitmap below it (the IPsec anti-replay window, RFC 4303
//! §3.4.3). Pure; the agent consults it only after a frame's MAC checked.

use std::collections::HashMap;

use crate::identity::NodeId;
use crate::wire::DropReason;

/// Sequence numbers this far below the highest seen are still accepted once (reordering).
pub const WINDOW: u64 = 64;
/// Senders remembered by default: far above a cluster's size, small in memory (~200 KiB).
pub const DEFAULT_CAPACITY: usize = 4096;

/// What is known about one sender.
#[derive(Debug, Clone, Copy)]
struct Entry {
    generation: u64,
    highest: u64,
    /// Bit `i` set: `highest - i` was seen.
    seen: u64,
    /// When it was last accepted, in [`ReplayWindow`] ticks (for eviction).
    heard: u64,
}

/// The windows of every sender heard from, at most `capacity` of them.
#[derive(Debug, Clone)]
pub struct ReplayWindow {
    senders: HashMap<NodeId, Entry>,
    capacity: usize,
    tick: u64,
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl ReplayWindow {
    /// Remember at most `capacity` senders (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            senders: HashMap::new(),
            capacity: capacity.max(1),
            tick: 0,
        }
    }

    /// Accept frame `seq` of `id` in `generation` and record it, or say why not. Only for
    /// frames whose MAC checked: anything else could fill the table or move a window.
    pub fn accept(&mut self, id: NodeId, generation: u64, seq: u64) -> Result<(), DropReason> {
        self.tick += 1;
        let tick = self.tick;
        let fresh = Entry {
            generation,
            highest: seq,
            seen: 1,
            heard: tick,
        };
        let Some(e) = self.senders.get_mut(&id) else {
            if self.senders.len() >= self.capacity {
                self.evict();
            }
            self.senders.insert(id, fresh);
            return Ok(());
        };
        if generation < e.generation {
            return Err(DropReason::OldGeneration);
        }
        if generation > e.generation {
            // A restart or a renewal: sequence numbers start over.
            *e = fresh;
            return Ok(());
        }
        if seq > e.highest {
            let shift = seq - e.highest;
            e.seen = if shift >= WINDOW {
                1
            } else {
                (e.seen << shift) | 1
            };
            e.highest = seq;
        } else {
            let back = e.highest - seq;
            if back >= WINDOW || e.seen & (1 << back) != 0 {
                return Err(DropReason::Replay);
            }
            e.seen |= 1 << back;
        }
        e.heard = tick;
        Ok(())
    }

    /// Senders remembered.
    pub fn len(&self) -> usize {
        self.senders.len()
    }

    /// No sender remembered yet.
    pub fn is_empty(&self) -> bool {
        self.senders.is_empty()
    }

    /// Forget the sender heard from least recently. A linear scan, but only when a new sender
    /// arrives with the table full, which a cluster below the capacity never sees.
    fn evict(&mut self) {
        if let Some(id) = self
            .senders
            .iter()
            .min_by_key(|(_, e)| e.heard)
            .map(|(id, _)| *id)
        {
            self.senders.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: NodeId = NodeId(0xa);

    #[test]
    fn a_frame_is_accepted_once() {
        let mut w = ReplayWindow::default();
        assert_eq!(w.accept(A, 5, 1), Ok(()));
        assert_eq!(w.accept(A, 5, 1), Err(DropReason::Replay));
        assert_eq!(w.accept(A, 5, 2), Ok(()));
        assert_eq!(w.accept(A, 5, 2), Err(DropReason::Replay));
        assert_eq!(w.accept(A, 5, 1), Err(DropReason::Replay));
    }

    #[test]
    fn reordering_within_the_window_is_accepted() {
        let mut w = ReplayWindow::default();
        assert_eq!(w.accept(A, 1, 100), Ok(()));
        // Gaps are normal: a sender's frames go to many peers, each sees a few.
        assert_eq!(w.accept(A, 1, 90), Ok(()));
        assert_eq!(w.accept(A, 1, 100 - (WINDOW - 1)), Ok(()));
        assert_eq!(w.accept(A, 1, 90), Err(DropReason::Replay));
        assert_eq!(
            w.accept(A, 1, 100 - WINDOW),
            Err(DropReason::Replay),
            "older than the window: cannot tell, so refused"
        );
        // A jump beyond the window forgets everything below it.
        assert_eq!(w.accept(A, 1, 1000), Ok(()));
        assert_eq!(w.accept(A, 1, 999), Ok(()));
        assert_eq!(w.accept(A, 1, 100), Err(DropReason::Replay));
        assert_eq!(w.accept(A, 1, 1000), Err(DropReason::Replay));
    }

    #[test]
    fn a_newer_generation_resets_an_older_one_is_refused() {
        let mut w = ReplayWindow::default();
        assert_eq!(w.accept(A, 7, 500), Ok(()));
        assert_eq!(w.accept(A, 6, 501), Err(DropReason::OldGeneration));
        // A restarted sender counts from 1 again.
        assert_eq!(w.accept(A, 8, 1), Ok(()));
        assert_eq!(w.accept(A, 8, 2), Ok(()));
        assert_eq!(w.accept(A, 8, 1), Err(DropReason::Replay));
        assert_eq!(w.accept(A, 7, 600), Err(DropReason::OldGeneration));
        // Senders are independent.
        assert_eq!(w.accept(NodeId(0xb), 1, 1), Ok(()));
    }

    #[test]
    fn memory_is_bounded_and_the_least_recently_heard_goes() {
        let mut w = ReplayWindow::new(3);
        for id in 1..=3 {
            assert_eq!(w.accept(NodeId(id), 1, 1), Ok(()));
        }
        assert_eq!(w.accept(NodeId(1), 1, 2), Ok(())); // 2 is now the stalest
        assert_eq!(w.accept(NodeId(4), 1, 1), Ok(()));
        assert_eq!(w.len(), 3);
        assert_eq!(w.accept(NodeId(1), 1, 2), Err(DropReason::Replay));
        assert_eq!(w.accept(NodeId(3), 1, 1), Err(DropReason::Replay));
        // 2 was forgotten: its old frame looks new again (the price of the bound).
        assert_eq!(w.accept(NodeId(2), 1, 1), Ok(()));
        assert_eq!(w.len(), 3);
    }
}
