//! The NFSACL side protocol (program 100227, version 3) as the Linux NFSv3 client speaks it
//! (Sun's NFS_ACL protocol; the client's codec is Linux `fs/nfs_common/nfsacl.c`, the RPC framing
//! RFC 5531). Our exports carry no POSIX ACLs, so GETACL answers "none" for every file and the
//! client falls back to the mode bits. Without an answer, overlayfs on a node refuses every
//! permission check by a non-root user with EOPNOTSUPP: nobody but root could run a program.
//! Pure: a call record in, a reply record out, or `None` when the call is for another program.

use super::front::{Answers, Reply};

/// RPC program number of NFSACL.
pub const PROGRAM: u32 = 100_227;
/// The version the Linux client uses with NFSv3.
pub const VERSION: u32 = 3;
const PROC_NULL: u32 = 0;
const PROC_GETACL: u32 = 1;
const PROC_SETACL: u32 = 2;
const NFS3ERR_NOTSUPP: u32 = 10_004;
/// GETACL mask bits: access ACL, its count, default ACL, its count.
const MASK_ALL: u32 = 0x1 | 0x2 | 0x4 | 0x8;

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn u32(&mut self) -> Option<u32> {
        let v = self.b.get(self.at..self.at + 4)?;
        self.at += 4;
        Some(u32::from_be_bytes(v.try_into().ok()?))
    }

    /// Skip an opaque<> (length, bytes, padding to 4).
    fn skip_opaque(&mut self, max: usize) -> Option<()> {
        let n = self.u32()? as usize;
        if n > max {
            return None;
        }
        self.at = self.at.checked_add(n.div_ceil(4) * 4)?;
        (self.at <= self.b.len()).then_some(())
    }
}

/// The program of an RPC call record, if it parses as a call.
pub fn program_of(call: &[u8]) -> Option<u32> {
    let mut r = Reader { b: call, at: 0 };
    let _xid = r.u32()?;
    (r.u32()? == 0 && r.u32()? == 2).then_some(())?;
    r.u32()
}

/// The reply to an NFSACL call, or `None` when `call` is not one (forward it to NFS/MOUNT).
/// A malformed NFSACL call gets GARBAGE_ARGS, never a panic.
pub fn answer(call: &[u8]) -> Option<Vec<u8>> {
    let mut r = Reader { b: call, at: 0 };
    let xid = r.u32()?;
    if r.u32()? != 0 || r.u32()? != 2 || r.u32()? != PROGRAM {
        return None;
    }
    let mut out = Vec::with_capacity(64);
    let mut put = |v: u32| out.extend_from_slice(&v.to_be_bytes());
    // xid, REPLY, MSG_ACCEPTED, verifier AUTH_NONE with no body.
    for v in [xid, 1, 0, 0, 0] {
        put(v);
    }
    let parsed = (|| {
        let vers = r.u32()?;
        let proc = r.u32()?;
        r.u32()?; // credential flavor
        r.skip_opaque(400)?;
        r.u32()?; // verifier flavor
        r.skip_opaque(400)?;
        Some((vers, proc))
    })();
    let Some((vers, proc)) = parsed else {
        put(4); // GARBAGE_ARGS
        return Some(out);
    };
    if vers != VERSION {
        for v in [2, VERSION, VERSION] {
            put(v); // PROG_MISMATCH, low, high
        }
        return Some(out);
    }
    match proc {
        PROC_NULL => put(0),
        PROC_GETACL => {
            let args = (|| {
                r.skip_opaque(64)?; // the file handle
                r.u32()
            })();
            let Some(mask) = args else {
                put(4);
                return Some(out);
            };
            // SUCCESS, NFS3_OK, no attributes, the mask granted, then for the access and the
            // default ACL: entry count 0 and an empty array.
            for v in [0, 0, 0, mask & MASK_ALL, 0, 0, 0, 0] {
                put(v);
            }
        }
        PROC_SETACL => {
            // SUCCESS, NFS3ERR_NOTSUPP, no attributes: setfacl says "not supported".
            for v in [0, NFS3ERR_NOTSUPP, 0] {
                put(v);
            }
        }
        _ => put(3), // PROC_UNAVAIL
    }
    Some(out)
}

/// The node root's front answers: NFSACL, at once.
#[derive(Debug, Clone, Copy, Default)]
pub struct Nfsacl;

impl Answers for Nfsacl {
    fn answer(&self, call: &[u8]) -> Option<Reply> {
        let reply = answer(call)?;
        Some(Box::pin(std::future::ready(reply)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(prog: u32, vers: u32, proc: u32, args: &[u32]) -> Vec<u8> {
        let mut v = vec![0x1234, 0, 2, prog, vers, proc, 1, 8, 0, 0, 0, 0];
        v.extend_from_slice(args);
        v.iter().flat_map(|x| x.to_be_bytes()).collect()
    }

    fn words(b: &[u8]) -> Vec<u32> {
        b.chunks(4)
            .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
            .collect()
    }

    #[test]
    fn getacl_says_no_acl_with_the_mask_asked() {
        // fh of 8 bytes, mask = all four bits
        let r = answer(&call(PROGRAM, 3, 1, &[8, 7, 7, 0xf])).unwrap();
        assert_eq!(words(&r), [0x1234, 1, 0, 0, 0, 0, 0, 0, 0xf, 0, 0, 0, 0]);
    }

    #[tokio::test]
    async fn the_root_front_answers_nfsacl_and_passes_the_rest() {
        let getacl = call(PROGRAM, 3, 1, &[8, 7, 7, 0xf]);
        let reply = Nfsacl.answer(&getacl).unwrap().await;
        assert_eq!(Some(reply), answer(&getacl));
        assert!(Nfsacl.answer(&call(100_003, 3, 15, &[])).is_none());
    }

    #[test]
    fn other_programs_are_forwarded_and_bad_calls_answered_not_panicked() {
        assert_eq!(answer(&call(100_003, 3, 1, &[])), None);
        assert_eq!(program_of(&call(100_005, 3, 1, &[])), Some(100_005));
        assert_eq!(answer(&[0, 0]), None);
        let truncated = &call(PROGRAM, 3, 1, &[])[..30];
        assert_eq!(words(&answer(truncated).unwrap())[5], 4);
        let wrong_version = answer(&call(PROGRAM, 2, 1, &[])).unwrap();
        assert_eq!(words(&wrong_version)[5..], [2, 3, 3]);
        let setacl = answer(&call(PROGRAM, 3, 2, &[])).unwrap();
        assert_eq!(words(&setacl)[5..], [0, NFS3ERR_NOTSUPP, 0]);
        // A huge credential length is refused, not trusted.
        let mut bad = call(PROGRAM, 3, 1, &[]);
        bad[28..32].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(words(&answer(&bad).unwrap())[5], 4);
    }
}
