//! The DATA packets of a file being sent: read in chunks that grow as the client keeps up,
//! translated to netascii when asked, and kept from the oldest unacknowledged block on, so a
//! window can be sent again.

use std::collections::VecDeque;
use std::io::{self, BufRead, Read};

use super::netascii;
use super::options::Mode;
use super::packet::{DATA_HEADER, set_data_header};

/// The first read from the file. A request that is never acknowledged (a flood, a tsize probe)
/// costs no more than this and its first window.
pub const FIRST_CHUNK: usize = 16 * 1024;
/// The largest read, reached by doubling: a lock-step transfer should not make one read per
/// block.
pub const READ_CHUNK: usize = 256 * 1024;

/// The DATA packets of one file, by block index (1 is the first block; the index keeps counting
/// where the wire's 16-bit block number wraps).
#[derive(Debug)]
pub struct Blocks<R> {
    src: Chunks<R>,
    block_size: usize,
    netascii: Option<netascii::Encoder>,
    /// Packets of blocks `first ..`, header included.
    kept: VecDeque<Vec<u8>>,
    first: u64,
    /// The index of the last block, once it has been read (the first one shorter than a block).
    last: Option<u64>,
    /// Buffers of released packets, reused.
    spare: Vec<Vec<u8>>,
}

impl<R: Read> Blocks<R> {
    /// The blocks of `src` at `block_size` bytes each, sent in `mode`.
    pub fn new(src: R, block_size: u16, mode: Mode) -> Self {
        Self {
            src: Chunks::new(src),
            block_size: usize::from(block_size),
            netascii: (mode == Mode::Netascii).then(netascii::Encoder::default),
            kept: VecDeque::new(),
            first: 1,
            last: None,
            spare: Vec::new(),
        }
    }

    /// The DATA packet of block `index`, reading forward to it; `None` past the last block, or
    /// for a block already released.
    pub fn packet(&mut self, index: u64) -> io::Result<Option<&[u8]>> {
        if index < self.first {
            return Ok(None);
        }
        while index >= self.first + self.kept.len() as u64 {
            let next = self.first + self.kept.len() as u64;
            if self.last.is_some_and(|l| next > l) {
                return Ok(None);
            }
            let packet = self.read_block(next)?;
            self.kept.push_back(packet);
        }
        Ok(self
            .kept
            .get((index - self.first) as usize)
            .map(Vec::as_slice))
    }

    /// The index of the last block, once read.
    pub fn last(&self) -> Option<u64> {
        self.last
    }

    /// Forgets the blocks before `index` (acknowledged: never sent again). Only blocks already
    /// read are forgotten: an acknowledgement never runs ahead of what was sent.
    pub fn release_before(&mut self, index: u64) {
        while self.first < index {
            let Some(p) = self.kept.pop_front() else {
                return;
            };
            self.spare.push(p);
            self.first += 1;
        }
    }

    fn read_block(&mut self, index: u64) -> io::Result<Vec<u8>> {
        let mut p = self.spare.pop().unwrap_or_default();
        p.clear();
        p.resize(DATA_HEADER, 0);
        // The wire's block number: the index modulo 2^16 (65535 is followed by 0).
        set_data_header(&mut p, index as u16);
        let want = DATA_HEADER + self.block_size;
        match &mut self.netascii {
            Some(encoder) => encoder.fill(&mut self.src, &mut p, want)?,
            None => {
                while p.len() < want {
                    let buf = self.src.fill_buf()?;
                    if buf.is_empty() {
                        break;
                    }
                    let n = buf.len().min(want - p.len());
                    p.extend_from_slice(&buf[..n]);
                    self.src.consume(n);
                }
            }
        }
        if p.len() < want {
            self.last = Some(index);
        }
        Ok(p)
    }
}

/// A buffered reader whose reads double from [`FIRST_CHUNK`] to [`READ_CHUNK`].
#[derive(Debug)]
struct Chunks<R> {
    src: R,
    buf: Vec<u8>,
    pos: usize,
    next: usize,
}

impl<R> Chunks<R> {
    fn new(src: R) -> Self {
        Self {
            src,
            buf: Vec::new(),
            pos: 0,
            next: FIRST_CHUNK,
        }
    }
}

impl<R: Read> Read for Chunks<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = {
            let got = self.fill_buf()?;
            let n = got.len().min(out.len());
            out[..n].copy_from_slice(&got[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl<R: Read> BufRead for Chunks<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.buf.len() {
            self.buf.resize(self.next, 0);
            let n = loop {
                match self.src.read(&mut self.buf) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    r => break r,
                }
            };
            let n = n.inspect_err(|_| self.buf.clear())?;
            self.buf.truncate(n);
            self.pos = 0;
            self.next = (self.next * 2).min(READ_CHUNK);
        }
        Ok(&self.buf[self.pos..])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(b: &mut Blocks<&[u8]>, i: u64) -> Option<Vec<u8>> {
        b.packet(i).unwrap().map(|p| p[DATA_HEADER..].to_vec())
    }

    #[test]
    fn a_file_of_whole_blocks_ends_with_an_empty_one() {
        let data = [7u8; 16];
        let mut b = Blocks::new(&data[..], 8, Mode::Octet);
        assert_eq!(payload(&mut b, 1), Some(vec![7; 8]));
        assert_eq!(b.last(), None);
        assert_eq!(payload(&mut b, 3), Some(vec![]));
        assert_eq!(b.last(), Some(3));
        assert_eq!(payload(&mut b, 4), None);
        // Block 2 is still kept for a resend.
        assert_eq!(payload(&mut b, 2), Some(vec![7; 8]));
    }

    #[test]
    fn released_blocks_are_gone_and_headers_carry_the_wire_number() {
        let data: Vec<u8> = (0..100).collect();
        let mut b = Blocks::new(&data[..], 10, Mode::Octet);
        assert_eq!(&b.packet(2).unwrap().unwrap()[..4], &[0, 3, 0, 2]);
        b.release_before(2);
        assert_eq!(b.packet(1).unwrap(), None);
        assert_eq!(payload(&mut b, 2), Some((10..20).collect()));
        b.release_before(5);
        assert_eq!(payload(&mut b, 5), Some((40..50).collect()));
        assert_eq!(payload(&mut b, 11), Some(vec![]));
        assert_eq!(b.last(), Some(11));
    }

    #[test]
    fn block_numbers_wrap_after_65535() {
        let data = vec![1u8; 65537];
        let mut b = Blocks::new(&data[..], 1, Mode::Octet);
        let mut wire = Vec::new();
        for i in 1..=65538 {
            let p = b.packet(i).unwrap().unwrap();
            wire.push(u16::from_be_bytes([p[2], p[3]]));
            b.release_before(i);
        }
        assert_eq!(wire[..2], [1, 2]);
        assert_eq!(wire[65533..], [65534, 65535, 0, 1, 2]);
        assert_eq!(b.last(), Some(65538));
    }

    #[test]
    fn reads_grow_to_the_largest_chunk() {
        let data = vec![3u8; 2 << 20];
        let mut c = Chunks::new(&data[..]);
        let mut sizes = Vec::new();
        let mut total = 0;
        while total < data.len() {
            let n = c.fill_buf().unwrap().len();
            sizes.push(n);
            total += n;
            c.consume(n);
        }
        assert_eq!(sizes[..6], [16384, 32768, 65536, 131072, 262144, 262144]);
        assert_eq!(total, data.len());
    }

    #[test]
    fn netascii_blocks_are_translated() {
        let mut b = Blocks::new(&b"a\nb"[..], 512, Mode::Netascii);
        assert_eq!(payload(&mut b, 1), Some(b"a\r\nb".to_vec()));
        assert_eq!(b.last(), Some(1));
    }
}
