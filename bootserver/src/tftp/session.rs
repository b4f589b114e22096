//! One read transfer as a state machine, without sockets or clocks: which blocks to send after
//! the start, an ACK or a timeout, and when the transfer is over.
//!
//! - RFC 1350: lock-step, one block per ACK; the transfer ends with the ACK of the first block
//!   shorter than the block size.
//! - RFC 2347: with an OACK, the client's ACK of block 0 starts the data.
//! - RFC 7440: with a window of W blocks, W are sent, then the client ACKs the last one it got
//!   in order; everything after it is sent again.
//! - RFC 1123 §4.2.3.1 (the Sorcerer's Apprentice): a duplicate ACK never makes a lock-step
//!   sender retransmit; only its timer does. With a window, one duplicate per window position
//!   is taken as the receiver's report of a lost first block.
//! - Block numbers are 16 bits on the wire and wrap from 65535 to 0; the session counts blocks
//!   in 64 bits and maps each ACK to the one outstanding block it can mean.

use std::ops::Range;
use std::time::Duration;

/// Retransmission interval when the client did not set one: the first wait, doubled after each
/// retransmission up to [`MAX_BACKOFF`] (RFC 1123 §4.2.3.2 asks for an adaptive timeout).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// The longest wait between retransmissions without a client-set timeout.
pub const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// What the sender does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send the OACK, then wait.
    SendOack,
    /// Send these blocks (by index, 1 = the first), then wait. The range may run past the last
    /// block when that is not known yet: the sender stops at the short block and reports it
    /// with [`Session::last_block`].
    Send(Range<u64>),
    /// Nothing to send: keep waiting until the same deadline.
    Wait,
    /// The client has every block.
    Done,
    /// No answer after the allowed retransmissions.
    GiveUp,
}

/// A read transfer's progress.
#[derive(Debug, Clone)]
pub struct Session {
    window: u64,
    /// Waiting for the ACK of the OACK.
    oack_pending: bool,
    /// The first block the client has not acknowledged.
    base: u64,
    /// One past the highest block sent.
    sent_to: u64,
    /// The last block, once known.
    last: Option<u64>,
    retries: u32,
    max_retries: u32,
    timeout: Option<Duration>,
    /// A duplicate ACK already made this window go again (window mode).
    resent_on_duplicate: bool,
}

impl Session {
    /// A transfer of `window` blocks per ACK; `oack` when the options are acknowledged first;
    /// `timeout` as the client set it (None: [`DEFAULT_TIMEOUT`] with back-off); giving up after
    /// `max_retries` retransmissions in a row.
    pub fn new(window: u16, oack: bool, timeout: Option<Duration>, max_retries: u32) -> Self {
        Self {
            window: u64::from(window.max(1)),
            oack_pending: oack,
            base: 1,
            sent_to: 1,
            last: None,
            retries: 0,
            max_retries,
            timeout,
            resent_on_duplicate: false,
        }
    }

    /// The first step.
    pub fn start(&mut self) -> Step {
        if self.oack_pending {
            Step::SendOack
        } else {
            self.send_window()
        }
    }

    /// The sender found that `index` is the last block (it is shorter than the block size).
    pub fn last_block(&mut self, index: u64) {
        self.last = Some(index);
        self.sent_to = self.sent_to.min(index + 1);
    }

    /// Blocks the client has acknowledged.
    pub fn acknowledged(&self) -> u64 {
        self.base - 1
    }

    /// The first block still unacknowledged: earlier ones are never sent again.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// How long to wait for an answer to what was just sent.
    pub fn timeout(&self) -> Duration {
        self.timeout.unwrap_or_else(|| {
            DEFAULT_TIMEOUT
                .saturating_mul(1 << self.retries.min(8))
                .min(MAX_BACKOFF)
        })
    }

    /// An ACK of wire block number `block` arrived.
    pub fn on_ack(&mut self, block: u16) -> Step {
        if self.oack_pending {
            if block != 0 {
                return Step::Wait;
            }
            self.oack_pending = false;
            self.retries = 0;
            return self.send_window();
        }
        // The outstanding blocks and the one before them (a duplicate): at most 65536 in a
        // row, so each wire number names one of them.
        let before = self.base - 1;
        let index = before + u64::from(block.wrapping_sub(before as u16));
        if index >= self.sent_to {
            return Step::Wait; // a stale ACK from long ago, or of a block never sent
        }
        if index == before {
            if self.window == 1 || self.resent_on_duplicate {
                return Step::Wait;
            }
            self.resent_on_duplicate = true;
            return self.send_window();
        }
        self.base = index + 1;
        self.retries = 0;
        self.resent_on_duplicate = false;
        if self.last == Some(index) {
            return Step::Done;
        }
        self.send_window()
    }

    /// The wait ran out with no useful answer.
    pub fn on_timeout(&mut self) -> Step {
        if self.retries >= self.max_retries {
            return Step::GiveUp;
        }
        self.retries += 1;
        if self.oack_pending {
            Step::SendOack
        } else {
            self.send_window()
        }
    }

    /// Send the window from the first unacknowledged block.
    fn send_window(&mut self) -> Step {
        let mut end = self.base + self.window;
        if let Some(last) = self.last {
            end = end.min(last + 1);
        }
        self.sent_to = end;
        Step::Send(self.base..end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(index: u64) -> u16 {
        index as u16
    }

    #[test]
    fn lock_step_without_options() {
        let mut s = Session::new(1, false, None, 5);
        assert_eq!(s.start(), Step::Send(1..2));
        assert_eq!(s.on_ack(1), Step::Send(2..3));
        s.last_block(2);
        assert_eq!(s.on_ack(2), Step::Done);
        assert_eq!(s.acknowledged(), 2);
    }

    #[test]
    fn the_oack_is_acknowledged_by_block_zero() {
        let mut s = Session::new(1, true, None, 5);
        assert_eq!(s.start(), Step::SendOack);
        assert_eq!(s.on_ack(1), Step::Wait);
        assert_eq!(s.on_timeout(), Step::SendOack);
        assert_eq!(s.on_ack(0), Step::Send(1..2));
    }

    #[test]
    fn a_duplicate_ack_never_retransmits_in_lock_step() {
        let mut s = Session::new(1, false, None, 5);
        s.start();
        assert_eq!(s.on_ack(1), Step::Send(2..3));
        // The client's timer sent ACK 1 again: block 2 goes again only on our own timeout.
        assert_eq!(s.on_ack(1), Step::Wait);
        assert_eq!(s.on_ack(1), Step::Wait);
        assert_eq!(s.on_timeout(), Step::Send(2..3));
        assert_eq!(s.on_ack(2), Step::Send(3..4));
    }

    #[test]
    fn timeouts_back_off_then_give_up() {
        let mut s = Session::new(1, false, None, 3);
        s.start();
        assert_eq!(s.timeout(), Duration::from_secs(1));
        assert_eq!(s.on_timeout(), Step::Send(1..2));
        assert_eq!(s.timeout(), Duration::from_secs(2));
        s.on_timeout();
        s.on_timeout();
        assert_eq!(s.timeout(), Duration::from_secs(8));
        assert_eq!(s.on_timeout(), Step::GiveUp);
        // An answer resets the count and the interval.
        let mut s = Session::new(1, false, None, 3);
        s.start();
        s.on_timeout();
        s.on_ack(1);
        assert_eq!(s.timeout(), Duration::from_secs(1));
        // A client-set timeout is kept as it is.
        let mut s = Session::new(1, false, Some(Duration::from_secs(3)), 3);
        s.start();
        s.on_timeout();
        assert_eq!(s.timeout(), Duration::from_secs(3));
    }

    #[test]
    fn a_window_goes_on_after_the_last_block_acknowledged() {
        let mut s = Session::new(4, false, None, 5);
        assert_eq!(s.start(), Step::Send(1..5));
        assert_eq!(s.on_ack(4), Step::Send(5..9));
        // Block 7 was lost: the client acknowledges 6, and 7.. go again.
        assert_eq!(s.on_ack(6), Step::Send(7..11));
        // The last block is 9: the window stops there.
        s.last_block(9);
        assert_eq!(s.on_ack(8), Step::Send(9..10));
        assert_eq!(s.on_ack(9), Step::Done);
    }

    #[test]
    fn a_lost_first_block_of_a_window_is_sent_again_once_per_duplicate() {
        let mut s = Session::new(4, false, None, 5);
        s.start();
        assert_eq!(s.on_ack(4), Step::Send(5..9));
        // Block 5 was lost: the client reports 4 again. The window goes once; further copies wait.
        assert_eq!(s.on_ack(4), Step::Send(5..9));
        assert_eq!(s.on_ack(4), Step::Wait);
        assert_eq!(s.on_ack(8), Step::Send(9..13));
        assert_eq!(s.on_ack(8), Step::Send(9..13));
    }

    #[test]
    fn stale_and_unsent_acks_are_ignored() {
        let mut s = Session::new(2, false, None, 5);
        s.start();
        assert_eq!(s.on_ack(2), Step::Send(3..5));
        assert_eq!(s.on_ack(1), Step::Wait, "older than the duplicate");
        assert_eq!(s.on_ack(9), Step::Wait, "never sent");
        assert_eq!(s.acknowledged(), 2);
    }

    #[test]
    fn block_numbers_wrap_in_lock_step_and_in_windows() {
        for window in [1u16, 7, 64] {
            let mut s = Session::new(window, true, None, 5);
            s.start();
            let mut step = s.on_ack(0);
            let total = 140_000u64;
            loop {
                match step {
                    Step::Send(r) => {
                        let end = r.end.min(total + 1);
                        if end == total + 1 {
                            s.last_block(total);
                        }
                        step = s.on_ack(wire(end - 1));
                    }
                    Step::Done => break,
                    other => panic!("window {window}: {other:?} at {}", s.acknowledged()),
                }
            }
            assert_eq!(s.acknowledged(), total, "window {window}");
        }
    }

    #[test]
    fn an_ack_just_past_the_wrap_maps_to_the_right_block() {
        let mut s = Session::new(16, false, None, 5);
        s.start();
        let mut base = 1u64;
        while base < 65530 {
            match s.on_ack(wire(base + 15)) {
                Step::Send(r) => base = r.start,
                other => panic!("{other:?}"),
            }
        }
        // Outstanding now: 65537.. (wire 1..), the duplicate is 65536 (wire 0).
        assert_eq!(base, 65537);
        assert_eq!(s.on_ack(0), Step::Send(65537..65553));
        assert_eq!(s.on_ack(3), Step::Send(65540..65556));
        assert_eq!(s.acknowledged(), 65539);
    }

    /// A lossy network between the session and an RFC 7440 receiver: the receiver must end
    /// up with every block once, in order, whatever is lost on the way.
    fn deliver_through_loss(blocks: u64, window: u16, loss_pct: u64, seed: u64) {
        let mut rng = seed;
        let mut lost = move || {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (rng >> 33) % 100 < loss_pct
        };
        let mut s = Session::new(window, false, None, 10_000);
        let mut got: Vec<u64> = Vec::new();
        let mut since_ack = 0u64;
        let mut step = s.start();
        for _ in 0..10_000_000 {
            let range = match step {
                Step::Done => break,
                Step::Send(r) => r,
                other => panic!("{other:?}"),
            };
            // The receiver takes the blocks that arrive in order, acknowledges at the end of
            // each window or at the last block, and at once on a gap; its timer acknowledges
            // again what it has when the burst ends without an ACK.
            let mut ack = None;
            for index in range {
                if index > blocks {
                    break;
                }
                if index == blocks {
                    s.last_block(index);
                }
                if lost() {
                    continue;
                }
                let expected = got.len() as u64 + 1;
                if index as u16 != expected as u16 {
                    ack = Some(expected - 1);
                    break;
                }
                got.push(index);
                since_ack += 1;
                if since_ack == u64::from(window) || index == blocks {
                    ack = Some(index);
                    break;
                }
            }
            let ack = ack.unwrap_or(got.len() as u64);
            since_ack = 0;
            step = if lost() {
                s.on_timeout()
            } else {
                match s.on_ack(ack as u16) {
                    Step::Wait => s.on_timeout(),
                    other => other,
                }
            };
        }
        assert_eq!(step, Step::Done, "window {window}, loss {loss_pct}%");
        assert_eq!(got.len() as u64, blocks);
        assert!(got.iter().enumerate().all(|(i, &b)| b == i as u64 + 1));
    }

    #[test]
    fn every_block_arrives_once_in_order_through_loss() {
        for window in [1, 4, 16, 64] {
            for loss in [0, 10, 30] {
                deliver_through_loss(3000, window, loss, u64::from(window) * 31 + loss);
            }
        }
        // Across the wrap of the block number.
        deliver_through_loss(70_000, 16, 5, 7);
    }
}
