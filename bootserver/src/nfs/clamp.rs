//! READ, READDIR and READDIRPLUS counts cut down to what FSINFO advertises (RFC 1813 §3.3.6,
//! §3.3.16, §3.3.17), in the call record before nfs3_server sees it: a client asking for 4 GiB
//! would otherwise make the server allocate and fill that much for one reply.

use nfs3_server::nfs3_types::nfs3;

use super::rpc_call::{self, Xdr};

/// The largest READ and directory reply: FSINFO's `rtmax` and `dtpref`.
pub const MAX_IO: u32 = 1 << 20;

const PROC_READ: u32 = 6;
const PROC_READDIR: u32 = 16;
const PROC_READDIRPLUS: u32 = 17;

/// Where the count fields of the call in `record` start, if it is one of ours: READ and READDIR
/// have one (`count`), READDIRPLUS two (`dircount`, `maxcount`).
fn count_fields(record: &[u8]) -> Option<(usize, Option<usize>)> {
    let call = rpc_call::parse(
        record,
        nfs3::PROGRAM,
        nfs3::VERSION,
        &[PROC_READ, PROC_READDIR, PROC_READDIRPLUS],
    )?
    .ok()?;
    let mut r: Xdr<'_> = call.args;
    r.opaque(nfs3::NFS3_FHSIZE)?;
    r.u64()?; // offset, or cookie
    if call.proc != PROC_READ {
        r.skip(nfs3::NFS3_COOKIEVERFSIZE)?;
    }
    let first = r.position();
    let second = (call.proc == PROC_READDIRPLUS).then_some(first + 4);
    let end = second.unwrap_or(first) + 4;
    (end <= record.len()).then_some((first, second))
}

/// Cut the counts of the READ/READDIR/READDIRPLUS call in `record` to [`MAX_IO`]; whether any was
/// cut. Anything else, or a call that does not decode, is left for nfs3_server to answer.
pub fn clamp(record: &mut [u8]) -> bool {
    let Some((first, second)) = count_fields(record) else {
        return false;
    };
    let mut cut = false;
    for at in std::iter::once(first).chain(second) {
        let Some(field) = record.get_mut(at..at + 4) else {
            continue;
        };
        let count = u32::from_be_bytes([field[0], field[1], field[2], field[3]]);
        if count > MAX_IO {
            field.copy_from_slice(&MAX_IO.to_be_bytes());
            cut = true;
        }
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A call record: xid, CALL, RPC 2, NFS 3, `proc`, AUTH_NONE cred and verifier, then `args`.
    fn call(proc: u32, args: &[u32]) -> Vec<u8> {
        [0x1234, 0, 2, nfs3::PROGRAM, 3, proc, 0, 0, 0, 0]
            .iter()
            .chain(args)
            .flat_map(|w| w.to_be_bytes())
            .collect()
    }

    fn words(b: &[u8]) -> Vec<u32> {
        b.chunks(4)
            .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
            .collect()
    }

    #[test]
    fn counts_are_cut_to_what_fsinfo_advertises() {
        // fh of 8 bytes, offset 0:1, count 4 GiB - 1.
        let mut read = call(PROC_READ, &[8, 7, 7, 0, 1, u32::MAX]);
        assert!(clamp(&mut read));
        assert_eq!(words(&read)[15], MAX_IO);
        let mut small = call(PROC_READ, &[8, 7, 7, 0, 1, 4096]);
        let before = small.clone();
        assert!(!clamp(&mut small));
        assert_eq!(small, before);
        // fh, cookie, verifier (8 bytes), count.
        let mut rd = call(PROC_READDIR, &[4, 7, 0, 0, 9, 9, 1 << 30]);
        assert!(clamp(&mut rd));
        assert_eq!(words(&rd)[16], MAX_IO);
        // fh, cookie, verifier, dircount, maxcount.
        let mut rdp = call(PROC_READDIRPLUS, &[4, 7, 0, 0, 9, 9, 1 << 30, u32::MAX]);
        assert!(clamp(&mut rdp));
        assert_eq!(&words(&rdp)[16..], [MAX_IO, MAX_IO]);
    }

    #[test]
    fn other_calls_and_cut_records_are_left_alone_without_a_panic() {
        let mut write = call(7, &[8, 7, 7, 0, 1, u32::MAX]);
        let before = write.clone();
        assert!(!clamp(&mut write));
        assert_eq!(write, before);
        let full = call(PROC_READDIRPLUS, &[4, 7, 0, 0, 9, 9, 1 << 30, u32::MAX]);
        for n in 0..full.len() {
            let mut cut = full[..n].to_vec();
            let before = cut.clone();
            assert!(!clamp(&mut cut), "{n}");
            assert_eq!(cut, before);
        }
        // A handle length beyond the record.
        let mut lying = call(PROC_READ, &[0xffff_fff0, 1, 2]);
        assert!(!clamp(&mut lying));
    }
}
