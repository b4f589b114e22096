//! NFSv3 ACCESS (RFC 1813 §3.3.4), answered in both exports' fronts: nfs3_server 0.11 grants every
//! bit asked without looking at the caller, so a client would be told it may read what READ then
//! refuses. The call read with [`rpc_call`], the bits from the mode
//! ([`access3`](super::access::access3)).

use nfs3_server::nfs3_types::nfs3::{
    self, ACCESS3res, ACCESS3resfail, ACCESS3resok, Nfs3Option, nfsstat3,
};

use super::access::Caller;
use super::export::DirExport;
use super::file_id::ExportHandle;
use super::front::{self, Answers, Reply};
use super::rpc_call::{self, Defect, Malformed};

/// NFSv3's procedure number of ACCESS.
pub const PROC_ACCESS: u32 = 4;

/// An ACCESS call as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessCall {
    /// Transaction id, echoed in the reply.
    pub xid: u32,
    /// Who asks.
    pub caller: Caller,
    /// `nfs_fh3` bytes of the object.
    pub object: Vec<u8>,
    /// The ACCESS3 bits asked about.
    pub want: u32,
}

/// The ACCESS call in `record`, or `None` when it is none (pass it on).
pub fn parse(record: &[u8]) -> Option<Result<AccessCall, Malformed>> {
    let call = match rpc_call::parse(record, nfs3::PROGRAM, nfs3::VERSION, &[PROC_ACCESS])? {
        Ok(c) => c,
        Err(m) => return Some(Err(m)),
    };
    let (xid, caller, mut r) = (call.xid, call.caller, call.args);
    let args = (|| {
        let object = r.opaque(nfs3::NFS3_FHSIZE)?.to_vec();
        let want = r.u32()?;
        r.done().then_some((object, want))
    })();
    Some(match args {
        Some((object, want)) => Ok(AccessCall {
            xid,
            caller,
            object,
            want,
        }),
        None => Err(Malformed {
            xid,
            defect: Defect::Arguments,
        }),
    })
}

/// The reply record to ACCESS call `xid`.
pub fn reply(xid: u32, result: Result<(u32, nfs3::fattr3), nfsstat3>) -> Vec<u8> {
    let res: ACCESS3res = match result {
        Ok((access, attr)) => ACCESS3res::Ok(ACCESS3resok {
            obj_attributes: Nfs3Option::Some(attr),
            access,
        }),
        Err(e) => ACCESS3res::Err((
            e,
            ACCESS3resfail {
                obj_attributes: Nfs3Option::None,
            },
        )),
    };
    rpc_call::success(xid, &res)
}

/// A front's ACCESS answers on `export`, whose handles carry `generation`.
#[derive(Debug, Clone)]
pub struct Access {
    export: DirExport,
    generation: u64,
}

impl Access {
    /// ACCESS on `export`, served by nfs3_server with handles of `generation`.
    pub fn new(export: DirExport, generation: u64) -> Self {
        Self { export, generation }
    }

    /// The reply to `call`.
    pub async fn serve(self, call: AccessCall) -> Vec<u8> {
        let result = match ExportHandle::from_wire(self.generation, &call.object) {
            Ok(h) => self.export.access(&call.caller, &h, call.want).await,
            Err(e) => Err(e),
        };
        reply(call.xid, result)
    }
}

impl Answers for Access {
    fn answer(&self, call: &[u8]) -> Option<Reply> {
        front::answer_with(self, parse(call), Self::serve)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(args: &[u32], cred: &[u32]) -> Vec<u8> {
        [0x77, 0, 2, nfs3::PROGRAM, 3, PROC_ACCESS]
            .iter()
            .chain(cred)
            .chain(&[0, 0])
            .chain(args)
            .flat_map(|w| w.to_be_bytes())
            .collect()
    }

    /// AUTH_SYS: stamp, machine name "n", uid, gid, no groups.
    const UID_1000: [u32; 8] = [1, 24, 0, 1, u32::from_be_bytes(*b"n\0\0\0"), 1000, 1000, 0];

    #[test]
    fn access_calls_parse_with_their_caller_and_others_pass() {
        let c = parse(&call(&[4, 9, 0x3f], &UID_1000)).unwrap().unwrap();
        assert_eq!(c.caller.uid, 1000);
        assert_eq!(c.object, vec![0, 0, 0, 9]);
        assert_eq!(c.want, 0x3f);
        let none = parse(&call(&[4, 9, 1], &[0, 0])).unwrap().unwrap();
        assert_eq!(none.caller, Caller::nobody());
        let full = call(&[4, 9, 0x3f], &UID_1000);
        for n in 0..full.len() {
            match parse(&full[..n]) {
                None | Some(Err(_)) => {}
                Some(Ok(c)) => panic!("a cut call parsed: {n} {c:?}"),
            }
        }
        let mut getattr = call(&[4, 9], &UID_1000);
        getattr[23] = 1;
        assert!(parse(&getattr).is_none());
        assert!(parse(&call(&[4, 9, 1, 5], &UID_1000)).unwrap().is_err());
    }

    #[tokio::test]
    async fn answers_from_the_mode_for_the_caller() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let secret = d.path().join("secret");
        std::fs::write(&secret, b"k").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        let export = DirExport::new(d.path(), super::super::export::Mode::ReadOnly).unwrap();
        use nfs3_server::vfs::NfsReadFileSystem;
        let root = export.root_dir();
        let h = export
            .lookup(&root, &nfs3::filename3::from(b"secret".as_slice()))
            .await
            .unwrap();
        let user = Caller {
            uid: 1000,
            gid: 1000,
            groups: vec![],
        };
        assert_eq!(export.access(&user, &h, 0x3f).await.unwrap().0, 0);
        assert_eq!(export.access(&Caller::root(), &h, 0x3f).await.unwrap().0, 1);
    }
}
