//! netascii (RFC 1350 §5, after RFC 764's network virtual terminal): the file's text as sent,
//! each LF as CR LF and each CR as CR NUL, so a client can turn it back into its own line ends.
//!
//! Streaming: a CR or LF at the end of one block may carry its second byte into the next.

use std::io::{self, BufRead};

/// Translates a file into netascii a block at a time.
#[derive(Debug, Default)]
pub struct Encoder {
    /// The second byte of a CR LF or CR NUL that did not fit in the last block.
    owed: Option<u8>,
}

impl Encoder {
    /// Appends translated bytes from `src` to `out` until `out` holds `want` bytes or `src` ends.
    pub fn fill(
        &mut self,
        src: &mut impl BufRead,
        out: &mut Vec<u8>,
        want: usize,
    ) -> io::Result<()> {
        if let Some(b) = self.owed.take() {
            if out.len() >= want {
                self.owed = Some(b);
                return Ok(());
            }
            out.push(b);
        }
        while out.len() < want {
            let buf = src.fill_buf()?;
            if buf.is_empty() {
                break;
            }
            let mut used = 0;
            for &b in buf {
                if out.len() >= want {
                    break;
                }
                used += 1;
                let second = match b {
                    b'\n' => b'\n',
                    b'\r' => 0,
                    _ => {
                        out.push(b);
                        continue;
                    }
                };
                out.push(b'\r');
                if out.len() < want {
                    out.push(second);
                } else {
                    self.owed = Some(second);
                    break;
                }
            }
            src.consume(used);
        }
        Ok(())
    }

    /// Whether a byte is still owed to the next block.
    pub fn owes(&self) -> bool {
        self.owed.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(text: &[u8], block: usize) -> Vec<Vec<u8>> {
        let mut src = io::BufReader::with_capacity(3, text);
        let mut e = Encoder::default();
        let mut blocks = Vec::new();
        loop {
            let mut b = Vec::new();
            e.fill(&mut src, &mut b, block).unwrap();
            let short = b.len() < block;
            blocks.push(b);
            if short {
                return blocks;
            }
        }
    }

    #[test]
    fn line_ends_and_bare_carriage_returns() {
        assert_eq!(encode(b"a\nb\rc", 100), vec![b"a\r\nb\r\0c".to_vec()]);
    }

    #[test]
    fn a_pair_split_across_blocks_carries_over() {
        // "ab\n" is 4 bytes on the wire: the LF lands in the second block.
        assert_eq!(
            encode(b"ab\ncd", 3),
            vec![b"ab\r".to_vec(), b"\ncd".to_vec(), b"".to_vec()]
        );
        assert_eq!(
            encode(b"\r\r", 1),
            vec![
                b"\r".to_vec(),
                b"\0".to_vec(),
                b"\r".to_vec(),
                b"\0".to_vec(),
                b"".to_vec()
            ]
        );
    }

    #[test]
    fn the_whole_text_survives_any_block_size() {
        let text: Vec<u8> = (0..2000u32)
            .map(|i| [b'x', b'\n', b'\r', b'y'][(i * 7 % 4) as usize])
            .collect();
        let want: Vec<u8> = text
            .iter()
            .flat_map(|&b| match b {
                b'\n' => vec![b'\r', b'\n'],
                b'\r' => vec![b'\r', 0],
                b => vec![b],
            })
            .collect();
        for block in [1, 2, 3, 7, 512] {
            assert_eq!(encode(&text, block).concat(), want, "block size {block}");
        }
    }
}
