//! Output kept by a keeper until the deputy acknowledges it: what makes a reconnect or a
//! migration lose and repeat nothing. Bounded: when full, the keeper stops reading the job's
//! pipe and the job blocks on write, as with any slow reader.

use std::collections::VecDeque;

use crate::job::stdio::Tail;

/// Most bytes of one stream kept unacknowledged.
pub const CAP: usize = 4 << 20;

/// One output stream's unacknowledged bytes.
#[derive(Debug, Clone, Default)]
pub struct Retained {
    base: u64,
    buf: VecDeque<u8>,
    sent: u64,
}

impl Retained {
    /// Start from a carried [`Tail`] (a migrated job), all of it unsent.
    pub fn from_tail(t: &Tail) -> Self {
        Self {
            base: t.base,
            buf: t.bytes.iter().copied().collect(),
            sent: t.base,
        }
    }

    /// Room left before the cap.
    pub fn room(&self) -> usize {
        CAP.saturating_sub(self.buf.len())
    }

    /// Offset just past the last byte read from the job.
    pub fn end(&self) -> u64 {
        self.base + self.buf.len() as u64
    }

    /// Append bytes read from the job.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend(bytes);
    }

    /// The deputy has everything before `offset`.
    pub fn ack(&mut self, offset: u64) {
        let upto = offset.clamp(self.base, self.end());
        let n = (upto - self.base) as usize;
        self.buf.drain(..n);
        self.base = upto;
        self.sent = self.sent.max(self.base);
    }

    /// Send everything unacknowledged again (a new connection).
    pub fn rewind(&mut self) {
        self.sent = self.base;
    }

    /// The next unsent chunk of at most `max` bytes, with its offset; marks it sent.
    pub fn next_chunk(&mut self, max: usize) -> Option<(u64, Vec<u8>)> {
        if self.sent >= self.end() {
            return None;
        }
        let from = (self.sent - self.base) as usize;
        let n = (self.buf.len() - from).min(max);
        let chunk: Vec<u8> = self.buf.range(from..from + n).copied().collect();
        let off = self.sent;
        self.sent += n as u64;
        Some((off, chunk))
    }

    /// Everything unacknowledged, for a migration.
    pub fn tail(&self) -> Tail {
        Tail {
            base: self.base,
            bytes: serde_bytes::ByteBuf::from(self.buf.iter().copied().collect::<Vec<u8>>()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unacked_bytes_are_resent_after_rewind_and_carried_in_the_tail() {
        let mut r = Retained::default();
        r.push(b"hello world");
        assert_eq!(r.next_chunk(5), Some((0, b"hello".to_vec())));
        assert_eq!(r.next_chunk(100), Some((5, b" world".to_vec())));
        assert_eq!(r.next_chunk(100), None);
        r.ack(6);
        r.rewind();
        assert_eq!(r.next_chunk(100), Some((6, b"world".to_vec())));
        let t = r.tail();
        assert_eq!((t.base, &t.bytes[..]), (6, &b"world"[..]));
        let mut moved = Retained::from_tail(&t);
        moved.push(b"!");
        assert_eq!(moved.next_chunk(100), Some((6, b"world!".to_vec())));
        moved.ack(1000);
        assert_eq!(moved.end(), 12);
        assert_eq!(moved.room(), CAP);
    }
}
