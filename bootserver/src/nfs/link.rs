//! NFSv3 LINK (RFC 1813 §3.3.15), refused by nfs3_server 0.11, answered in the cluster export's
//! front: the call read from its RPC record (RFC 5531 §9; AUTH_SYS, Appendix A), the link made by
//! [`DirExport::link`], the reply packed with nfs3_types. A codec and a handler; no sockets.

use nfs3_server::nfs3_types::nfs3::{
    self, LINK3res, LINK3resfail, LINK3resok, Nfs3Option, filename3, nfsstat3, post_op_attr,
    pre_op_attr, wcc_data,
};
use nfs3_server::vfs::NfsReadFileSystem;

use super::access::Caller;
use super::export::DirExport;
use super::file_id::ExportHandle;
use super::front::{self, Answers, Reply};
use super::rpc_call::{self, Defect, Malformed};

/// NFSv3's procedure number of LINK.
pub const PROC_LINK: u32 = 15;
/// RFC 1813 `nfs_fh3` is `opaque data<NFS3_FHSIZE>`.
const MAX_FH: usize = nfs3::NFS3_FHSIZE;

/// A LINK call as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkCall {
    /// Transaction id, echoed in the reply.
    pub xid: u32,
    /// The AUTH_SYS credential; `nobody` under any other flavor, as nfs3_server's calls on this
    /// export are treated (`DirExport::authorize` records `nobody` when it gets no AUTH_SYS).
    pub caller: Caller,
    /// `nfs_fh3` bytes of the file to link.
    pub file: Vec<u8>,
    /// `nfs_fh3` bytes of the directory the new name goes in.
    pub dir: Vec<u8>,
    /// The new name.
    pub name: Vec<u8>,
}

/// The LINK call in `record`, or `None` when it is no NFSv3 LINK call (pass it on untouched:
/// another procedure, program or version, a reply, an RPC version nfs3_server answers itself, or a
/// header too short to say).
pub fn parse(record: &[u8]) -> Option<Result<LinkCall, Malformed>> {
    let call = match rpc_call::parse(record, nfs3::PROGRAM, nfs3::VERSION, &[PROC_LINK])? {
        Ok(c) => c,
        Err(m) => return Some(Err(m)),
    };
    let (xid, caller, mut r) = (call.xid, call.caller, call.args);
    // LINK3args: file (nfs_fh3), link (diropargs3: dir nfs_fh3, name filename3); nothing after,
    // as nfs3_server demands of its calls.
    let args = (|| {
        let file = r.opaque(MAX_FH)?.to_vec();
        let dir = r.opaque(MAX_FH)?.to_vec();
        let name = r.opaque(usize::MAX)?.to_vec();
        r.done().then_some((file, dir, name))
    })();
    let Some((file, dir, name)) = args else {
        return Some(Err(Malformed {
            xid,
            defect: Defect::Arguments,
        }));
    };
    Some(Ok(LinkCall {
        xid,
        caller,
        file,
        dir,
        name,
    }))
}

/// The reply to LINK call `xid`: `status`, the file's attributes and the directory's after the
/// call. The directory's attributes before are not sent: they could not be read atomically with
/// the link, and wrong ones would let the client keep a stale cache of the directory.
pub fn reply(
    xid: u32,
    status: Result<(), nfsstat3>,
    file_attributes: post_op_attr,
    dir_after: post_op_attr,
) -> Vec<u8> {
    let linkdir_wcc = wcc_data {
        before: pre_op_attr::None,
        after: dir_after,
    };
    let res: LINK3res = match status {
        Ok(()) => LINK3res::Ok(LINK3resok {
            file_attributes,
            linkdir_wcc,
        }),
        Err(e) => LINK3res::Err((
            e,
            LINK3resfail {
                file_attributes,
                linkdir_wcc,
            },
        )),
    };
    rpc_call::success(xid, &res)
}

/// The cluster front's own answers: LINK, made on the export whose handles carry `generation`.
#[derive(Debug, Clone)]
pub struct Link {
    export: DirExport,
    generation: u64,
}

impl Link {
    /// LINK on `export`, served by nfs3_server with handles of `generation`.
    pub fn new(export: DirExport, generation: u64) -> Self {
        Self { export, generation }
    }

    async fn attributes(&self, h: Result<ExportHandle, nfsstat3>) -> post_op_attr {
        match h {
            Ok(h) => self
                .export
                .getattr(&h)
                .await
                .map_or(Nfs3Option::None, Nfs3Option::Some),
            Err(_) => Nfs3Option::None,
        }
    }

    /// Make the link `call` asks for, as its caller, and the reply record.
    pub async fn serve(self, call: LinkCall) -> Vec<u8> {
        let file = ExportHandle::from_wire(self.generation, &call.file);
        let dir = ExportHandle::from_wire(self.generation, &call.dir);
        let status = match (file, dir) {
            (Ok(f), Ok(d)) => {
                let name = filename3::from(call.name.as_slice());
                self.export.link(&call.caller, &f, &d, &name).await
            }
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        if let Err(e) = status {
            tracing::debug!(xid = call.xid, uid = call.caller.uid, error = %e, "LINK refused");
        }
        let file_attributes = self.attributes(file).await;
        let dir_after = self.attributes(dir).await;
        reply(call.xid, status, file_attributes, dir_after)
    }
}

impl Answers for Link {
    fn answer(&self, call: &[u8]) -> Option<Reply> {
        front::answer_with(self, parse(call), Self::serve)
    }
}

#[cfg(test)]
mod tests {
    use super::rpc_call::refusal;
    use super::*;
    use nfs3_server::nfs3_types::nfs3::{LINK3args, diropargs3, fattr3, nfs_fh3};
    use nfs3_server::nfs3_types::rpc::{
        accept_stat_data, accepted_reply, auth_unix, call_body, msg_body, opaque_auth, reply_body,
        rpc_msg,
    };
    use nfs3_server::nfs3_types::xdr_codec::{Opaque, Pack, Unpack};
    use std::io::Cursor;

    fn fh(b: &[u8]) -> nfs_fh3 {
        nfs_fh3 {
            data: Opaque::owned(b.to_vec()),
        }
    }

    /// A call record packed by nfs3_types, as a client would send it.
    fn call(prog: u32, proc: u32, cred: opaque_auth<'static>, args: &impl Pack) -> Vec<u8> {
        let msg = rpc_msg {
            xid: 0xabcd,
            body: msg_body::CALL(call_body {
                rpcvers: 2,
                prog,
                vers: 3,
                proc,
                cred,
                verf: opaque_auth::default(),
            }),
        };
        let mut out = Vec::new();
        msg.pack(&mut out).unwrap();
        args.pack(&mut out).unwrap();
        out
    }

    fn link_args() -> LINK3args<'static> {
        LINK3args {
            file: fh(b"file-handle"),
            link: diropargs3 {
                dir: fh(b"dir-handle!!"),
                name: filename3::from(b"second".to_vec()),
            },
        }
    }

    fn alice() -> opaque_auth<'static> {
        opaque_auth::auth_unix(&auth_unix {
            stamp: 9,
            machinename: Opaque::owned(b"node3".to_vec()),
            uid: 1000,
            gid: 100,
            gids: vec![100, 27],
        })
    }

    fn words(b: &[u8]) -> Vec<u32> {
        b.chunks(4)
            .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
            .collect()
    }

    #[test]
    fn a_link_call_packed_by_nfs3_types_parses_back() {
        let rec = call(nfs3::PROGRAM, PROC_LINK, alice(), &link_args());
        let parsed = parse(&rec).unwrap().unwrap();
        assert_eq!(
            parsed,
            LinkCall {
                xid: 0xabcd,
                caller: Caller {
                    uid: 1000,
                    gid: 100,
                    groups: vec![100, 27]
                },
                file: b"file-handle".to_vec(),
                dir: b"dir-handle!!".to_vec(),
                name: b"second".to_vec(),
            }
        );
        // Without AUTH_SYS the caller is nobody, as for nfs3_server's calls on this export.
        let anon = call(
            nfs3::PROGRAM,
            PROC_LINK,
            opaque_auth::default(),
            &link_args(),
        );
        assert_eq!(parse(&anon).unwrap().unwrap().caller, Caller::nobody());
    }

    #[test]
    fn other_calls_pass_untouched() {
        let args = link_args();
        // MOUNT, NFSACL, GETATTR, READDIR: not ours.
        for (prog, proc) in [
            (100_005, 15),
            (100_227, 15),
            (nfs3::PROGRAM, 1),
            (nfs3::PROGRAM, 16),
        ] {
            assert_eq!(parse(&call(prog, proc, alice(), &args)), None);
        }
        let mut v2 = call(nfs3::PROGRAM, PROC_LINK, alice(), &args);
        v2[15] = 2; // NFS version 2
        assert_eq!(parse(&v2), None);
        let mut rpc3 = call(nfs3::PROGRAM, PROC_LINK, alice(), &args);
        rpc3[11] = 3; // RPC version 3: nfs3_server answers RPC_MISMATCH
        assert_eq!(parse(&rpc3), None);
        let mut a_reply = call(nfs3::PROGRAM, PROC_LINK, alice(), &args);
        a_reply[7] = 1;
        assert_eq!(parse(&a_reply), None);
        assert_eq!(parse(&[]), None);
    }

    #[test]
    fn every_cut_of_a_link_call_is_refused_or_passed_never_a_panic() {
        let rec = call(nfs3::PROGRAM, PROC_LINK, alice(), &link_args());
        // RPC header, then the credential, then the verifier (AUTH_NONE), then the arguments.
        let cred_end = 24 + alice().packed_size();
        let verf_end = cred_end + 8;
        for n in 0..rec.len() {
            let Some(parsed) = parse(&rec[..n]) else {
                // Too short to say what it is: nfs3_server deals with it.
                assert!(n < 24, "{n}");
                continue;
            };
            let m = parsed.unwrap_err();
            assert_eq!(m.xid, 0xabcd);
            let (defect, reply) = match n {
                n if n < cred_end => (Defect::Credential, vec![0xabcd, 1, 1, 1, 1]),
                n if n < verf_end => (Defect::Verifier, vec![0xabcd, 1, 1, 1, 3]),
                _ => (Defect::Arguments, vec![0xabcd, 1, 0, 0, 0, 4]),
            };
            assert_eq!(m.defect, defect, "{n}");
            assert_eq!(words(&refusal(&m)), reply, "{n}");
        }
        // One byte too many after the arguments.
        let mut long = rec.clone();
        long.extend_from_slice(&[0, 0, 0, 0]);
        let m = parse(&long).unwrap().unwrap_err();
        assert_eq!(m.defect, Defect::Arguments);
        assert_eq!(words(&refusal(&m)), [0xabcd, 1, 0, 0, 0, 4]);
    }

    #[test]
    fn lying_lengths_are_refused_without_being_trusted() {
        let rec = call(nfs3::PROGRAM, PROC_LINK, alice(), &link_args());
        let cred_len = 28;
        let mut huge = rec.clone();
        huge[cred_len..cred_len + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            parse(&huge).unwrap().unwrap_err().defect,
            Defect::Credential
        );
        // AUTH_SYS with 17 groups (RFC 5531 allows 16).
        let many = opaque_auth::auth_unix(&auth_unix {
            gids: (0..17).collect(),
            ..auth_unix::default()
        });
        let m = parse(&call(nfs3::PROGRAM, PROC_LINK, many, &link_args()))
            .unwrap()
            .unwrap_err();
        assert_eq!(m.defect, Defect::Credential);
        assert_eq!(words(&refusal(&m)), [0xabcd, 1, 1, 1, 1]); // MSG_DENIED AUTH_ERROR BADCRED
        // A file handle over NFS3_FHSIZE, and a name longer than the record.
        let mut args = link_args();
        args.file = fh(&[7; 65]);
        let m = parse(&call(nfs3::PROGRAM, PROC_LINK, alice(), &args))
            .unwrap()
            .unwrap_err();
        assert_eq!(m.defect, Defect::Arguments);
        let mut lying_name = call(nfs3::PROGRAM, PROC_LINK, alice(), &link_args());
        let at = lying_name.len() - 12; // the name's length: "second" padded to 8 bytes
        lying_name[at..at + 4].copy_from_slice(&0x7fff_fff0u32.to_be_bytes());
        let m = parse(&lying_name).unwrap().unwrap_err();
        assert_eq!(m.defect, Defect::Arguments);
    }

    fn attr(nlink: u32) -> fattr3 {
        fattr3 {
            type_: nfs3::ftype3::NF3REG,
            mode: 0o644,
            nlink,
            uid: 1000,
            gid: 100,
            size: 5,
            used: 5,
            rdev: nfs3::specdata3::default(),
            fsid: 2,
            fileid: 77,
            atime: nfs3::nfstime3::default(),
            mtime: nfs3::nfstime3::default(),
            ctime: nfs3::nfstime3::default(),
        }
    }

    /// The reply's RPC header checked, and its LINK3res unpacked by nfs3_types.
    fn unpack_reply(rec: &[u8]) -> LINK3res {
        let mut cur = Cursor::new(rec.to_vec());
        let (msg, _) = rpc_msg::unpack(&mut cur).unwrap();
        assert_eq!(msg.xid, 0x55);
        assert!(matches!(
            msg.body,
            msg_body::REPLY(reply_body::MSG_ACCEPTED(accepted_reply {
                reply_data: accept_stat_data::SUCCESS,
                ..
            }))
        ));
        let (res, _) = LINK3res::unpack(&mut cur).unwrap();
        assert_eq!(cur.position(), rec.len() as u64);
        res
    }

    #[test]
    fn replies_unpack_with_nfs3_types() {
        let dir = attr(3);
        let ok = unpack_reply(&reply(
            0x55,
            Ok(()),
            Nfs3Option::Some(attr(2)),
            Nfs3Option::Some(dir),
        ));
        match ok {
            LINK3res::Ok(r) => {
                assert_eq!(r.file_attributes.unwrap().nlink, 2);
                assert!(r.linkdir_wcc.before.is_none());
                assert_eq!(r.linkdir_wcc.after.unwrap().nlink, 3);
            }
            LINK3res::Err(e) => panic!("{e:?}"),
        }
        let failed = unpack_reply(&reply(
            0x55,
            Err(nfsstat3::NFS3ERR_EXIST),
            Nfs3Option::Some(attr(1)),
            Nfs3Option::None,
        ));
        match failed {
            LINK3res::Err((status, r)) => {
                assert_eq!(status, nfsstat3::NFS3ERR_EXIST);
                assert_eq!(r.file_attributes.unwrap().nlink, 1);
                assert!(r.linkdir_wcc.after.is_none());
            }
            LINK3res::Ok(_) => panic!("an error packed as success"),
        }
    }
}
