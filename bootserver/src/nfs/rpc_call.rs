//! ONC RPC calls as the NFS fronts read them (RFC 5531 §9; AUTH_SYS, Appendix A; XDR, RFC 4506)
//! and the replies they pack: a call's head read without trusting any length, its arguments left
//! to the caller. A codec; no sockets.

use nfs3_server::nfs3_types::rpc::{
    accept_stat_data, accepted_reply, auth_stat, msg_body, opaque_auth, rejected_reply, reply_body,
    rpc_msg,
};
use nfs3_server::nfs3_types::xdr_codec::{Pack, Void};

use super::access::Caller;

const MSG_CALL: u32 = 0;
const RPC_VERSION: u32 = 2;
const AUTH_SYS: u32 = 1;
/// RFC 5531 bounds: `opaque_auth` body, AUTH_SYS machine name and groups.
const MAX_AUTH_BODY: usize = 400;
const MAX_MACHINE_NAME: usize = 255;
const MAX_GIDS: usize = 16;

/// What is wrong with a call that does not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Defect {
    /// The credential is cut short or is no valid AUTH_SYS body.
    #[error("malformed credential")]
    Credential,
    /// The verifier is cut short or too long.
    #[error("malformed verifier")]
    Verifier,
    /// The procedure's arguments are cut short, too long, or followed by more bytes.
    #[error("malformed arguments")]
    Arguments,
}

/// A call that does not decode; answered with an RPC error, see [`refusal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("RPC call {xid:#010x}: {defect}")]
pub struct Malformed {
    /// Transaction id, echoed in the refusal.
    pub xid: u32,
    /// What is wrong.
    pub defect: Defect,
}

/// XDR reading that never trusts a length beyond the bytes at hand.
#[derive(Debug, Clone)]
pub struct Xdr<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Xdr<'a> {
    /// Read `b` from its start.
    pub fn new(b: &'a [u8]) -> Self {
        Self { b, at: 0 }
    }

    /// An `unsigned int`.
    pub fn u32(&mut self) -> Option<u32> {
        let v = self.b.get(self.at..self.at.checked_add(4)?)?;
        self.at += 4;
        Some(u32::from_be_bytes(v.try_into().ok()?))
    }

    /// An `unsigned hyper`.
    pub fn u64(&mut self) -> Option<u64> {
        Some(u64::from(self.u32()?) << 32 | u64::from(self.u32()?))
    }

    /// `n` fixed bytes (`opaque[n]`, n a multiple of 4).
    pub fn skip(&mut self, n: usize) -> Option<()> {
        let end = self.at.checked_add(n)?;
        (end <= self.b.len()).then(|| self.at = end)
    }

    /// An `opaque<max>` (also a `string<max>`): length, bytes, padding to 4.
    pub fn opaque(&mut self, max: usize) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        if n > max {
            return None;
        }
        let v = self.b.get(self.at..self.at.checked_add(n)?)?;
        let end = self.at.checked_add(n.div_ceil(4) * 4)?;
        if end > self.b.len() {
            return None;
        }
        self.at = end;
        Some(v)
    }

    /// Where the next read starts, from the start of the bytes.
    pub fn position(&self) -> usize {
        self.at
    }

    /// Whether every byte was read.
    pub fn done(&self) -> bool {
        self.at == self.b.len()
    }
}

/// The AUTH_SYS body (RFC 5531 Appendix A `authsys_parms`) as the caller it names.
fn auth_sys(body: &[u8]) -> Option<Caller> {
    let mut r = Xdr::new(body);
    let _stamp = r.u32()?;
    r.opaque(MAX_MACHINE_NAME)?;
    let uid = r.u32()?;
    let gid = r.u32()?;
    let n = r.u32()? as usize;
    if n > MAX_GIDS {
        return None;
    }
    let groups = (0..n).map(|_| r.u32()).collect::<Option<Vec<_>>>()?;
    r.done().then_some(Caller { uid, gid, groups })
}

/// A call's head, and a reader at its arguments.
#[derive(Debug, Clone)]
pub struct Call<'a> {
    /// Transaction id, echoed in the reply.
    pub xid: u32,
    /// The procedure.
    pub proc: u32,
    /// The AUTH_SYS credential; `nobody` under any other flavor, as nfs3_server's calls are
    /// treated (`DirExport::authorize` records `nobody` when it gets no AUTH_SYS).
    pub caller: Caller,
    /// The arguments, unread.
    pub args: Xdr<'a>,
}

/// The call in `record` to one of `procs` of `prog` version `vers`, or `None` when it is none of
/// them (pass it on untouched: another procedure, program or version, a reply, an RPC version
/// nfs3_server answers itself, or a head too short to say).
pub fn parse<'a>(
    record: &'a [u8],
    prog: u32,
    vers: u32,
    procs: &[u32],
) -> Option<Result<Call<'a>, Malformed>> {
    let mut r = Xdr::new(record);
    let xid = r.u32()?;
    for want in [MSG_CALL, RPC_VERSION, prog, vers] {
        if r.u32()? != want {
            return None;
        }
    }
    let proc = r.u32()?;
    if !procs.contains(&proc) {
        return None;
    }
    let bad = |defect| Some(Err(Malformed { xid, defect }));
    let Some((flavor, cred)) = r.u32().zip(r.opaque(MAX_AUTH_BODY)) else {
        return bad(Defect::Credential);
    };
    let caller = if flavor == AUTH_SYS {
        match auth_sys(cred) {
            Some(c) => c,
            None => return bad(Defect::Credential),
        }
    } else {
        Caller::nobody()
    };
    if r.u32().zip(r.opaque(MAX_AUTH_BODY)).is_none() {
        return bad(Defect::Verifier);
    }
    Some(Ok(Call {
        xid,
        proc,
        caller,
        args: r,
    }))
}

/// An RPC reply record: `body` packed after the header. Packing into a `Vec` cannot fail short of
/// a body over 4 GiB; should it, the client gets SYSTEM_ERR rather than nothing.
pub fn reply_record(xid: u32, head: reply_body<'_>, body: &impl Pack) -> Vec<u8> {
    let msg = rpc_msg {
        xid,
        body: msg_body::REPLY(head),
    };
    let mut out = Vec::with_capacity(msg.packed_size() + body.packed_size());
    if msg.pack(&mut out).is_ok() && body.pack(&mut out).is_ok() {
        out
    } else {
        // xid, REPLY, MSG_ACCEPTED, verifier AUTH_NONE with no body, SYSTEM_ERR.
        [xid, 1, 0, 0, 0, 5]
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .collect()
    }
}

/// The record of a call's result `body` (RFC 5531 §9: accepted, SUCCESS; the NFS status is
/// inside the body).
pub fn success(xid: u32, body: &impl Pack) -> Vec<u8> {
    reply_record(xid, accepted(accept_stat_data::SUCCESS), body)
}

/// An accepted reply's head.
pub fn accepted(reply_data: accept_stat_data) -> reply_body<'static> {
    reply_body::MSG_ACCEPTED(accepted_reply {
        verf: opaque_auth::default(),
        reply_data,
    })
}

/// The RPC error a malformed call gets (RFC 5531 §9): AUTH_BADCRED or AUTH_BADVERF for a
/// broken credential or verifier, GARBAGE_ARGS for arguments that do not decode.
pub fn refusal(m: &Malformed) -> Vec<u8> {
    let head = match m.defect {
        Defect::Credential => {
            reply_body::MSG_DENIED(rejected_reply::auth_error(auth_stat::AUTH_BADCRED))
        }
        Defect::Verifier => {
            reply_body::MSG_DENIED(rejected_reply::auth_error(auth_stat::AUTH_BADVERF))
        }
        Defect::Arguments => accepted(accept_stat_data::GARBAGE_ARGS),
    };
    reply_record(m.xid, head, &Void)
}
