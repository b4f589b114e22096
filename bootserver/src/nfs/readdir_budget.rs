//! How many entries a READDIRPLUS reply may carry (RFC 1813 §3.3.17): their directory part
//! (file id, name, cookie) within the client's `dircount`, and the whole reply within its
//! `maxcount`. Entry sizes depend only on the name (attributes and handles have fixed sizes),
//! so an entry is counted before its file is looked at.

use super::file_id::WIRE_LEN;

/// XDR bytes of a `fattr3`.
const FATTR3: usize = 84;
/// Room kept in `maxcount` for what is not an entry: status, the directory's attributes, the
/// cookie verifier, the end of the list and eof (108 bytes), with a margin, as nfs3_server keeps.
const RESERVED: usize = 128;

/// XDR bytes of an opaque or string of `n` bytes: its length, then the bytes padded to 4.
fn opaque(n: usize) -> usize {
    4 + n.div_ceil(4) * 4
}

/// The room left in one reply.
#[derive(Debug, Clone)]
pub struct Budget {
    dir_left: usize,
    total_left: usize,
}

impl Budget {
    /// A reply to a call that gave `dircount` and `maxcount`.
    pub fn new(dircount: u32, maxcount: u32) -> Self {
        Self {
            dir_left: dircount as usize,
            total_left: (maxcount as usize).saturating_sub(RESERVED),
        }
    }

    /// Takes room for an entry named `name`; `None` (taking nothing) when it does not fit.
    pub fn take(&mut self, name: &[u8]) -> Option<()> {
        // The directory part as nfs3_server counts it: file id, a word, name, cookie.
        let dir = 8 + 4 + opaque(name.len()) + 8;
        // The whole entry: "one more follows", file id, name, cookie, attributes and handle
        // (each an optional: a word, then the value).
        let total = 4 + 8 + opaque(name.len()) + 8 + (4 + FATTR3) + (4 + opaque(WIRE_LEN));
        if dir > self.dir_left || total > self.total_left {
            return None;
        }
        self.dir_left -= dir;
        self.total_left -= total;
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nfs3_server::nfs3_types::nfs3::{
        Nfs3Option, entryplus3, fattr3, filename3, ftype3, nfs_fh3, nfstime3, specdata3,
    };
    use nfs3_server::nfs3_types::xdr_codec::{Opaque, Pack};

    fn entry(name: &[u8]) -> entryplus3<'_> {
        let t = nfstime3::default();
        entryplus3 {
            fileid: 7,
            name: filename3(Opaque::borrowed(name)),
            cookie: 9,
            name_attributes: Nfs3Option::Some(fattr3 {
                type_: ftype3::NF3REG,
                mode: 0,
                nlink: 1,
                uid: 0,
                gid: 0,
                size: 0,
                used: 0,
                rdev: specdata3::default(),
                fsid: 1,
                fileid: 7,
                atime: t,
                mtime: t,
                ctime: t,
            }),
            name_handle: Nfs3Option::Some(nfs_fh3 {
                data: Opaque::owned(vec![0; WIRE_LEN]),
            }),
        }
    }

    #[test]
    fn an_entry_costs_what_xdr_makes_of_it() {
        for name in [
            &b"a"[..],
            b"four",
            b"seven77",
            b"a-much-longer-file-name.conf",
        ] {
            let mut b = Budget::new(u32::MAX, u32::MAX);
            let before = b.total_left;
            b.take(name).unwrap();
            // +4: the list's "one more follows" word before each entry.
            assert_eq!(
                before - b.total_left,
                entry(name).packed_size() + 4,
                "{name:?}"
            );
        }
    }

    #[test]
    fn entries_stop_at_either_count() {
        // dircount: 8 + 4 + 8 + 8 = 28 bytes for a 4-byte name, so 100 bytes hold 3.
        let mut b = Budget::new(100, 1_000_000);
        assert_eq!((0..10).filter(|_| b.take(b"abcd").is_some()).count(), 3);
        // maxcount: 160 bytes per such entry after the 128 kept, so 128 + 480 holds 3.
        let mut b = Budget::new(1_000_000, 128 + 480);
        assert_eq!((0..10).filter(|_| b.take(b"abcd").is_some()).count(), 3);
        // A name that does not fit takes nothing: a shorter one still may.
        let mut b = Budget::new(40, 1_000_000);
        assert!(b.take(&[b'x'; 40]).is_none());
        assert!(b.take(b"ab").is_some());
    }
}
