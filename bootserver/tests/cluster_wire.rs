//! The read-write export over the wire, with a minimal ONC RPC client (RFC 5531 records, RFC 1813
//! calls) so a file handle can be kept across a restart of the server, which the libnfs tools of
//! the lab tests cannot do, and each call can carry a chosen AUTH_SYS uid.

#![allow(clippy::unwrap_used)]

use std::io::{Cursor, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;

use bootserver::nfs;
use nfs3_server::nfs3_types::mount::{self, dirpath, mountres3};
use nfs3_server::nfs3_types::nfs3::{
    self, CREATE3args, CREATE3res, LOOKUP3args, LOOKUP3res, Nfs3Option, READ3args, READ3res,
    WRITE3args, WRITE3res, createhow3, diropargs3, filename3, nfs_fh3, nfsstat3, sattr3,
    stable_how,
};
use nfs3_server::nfs3_types::rpc::{
    accept_stat_data, auth_unix, call_body, msg_body, opaque_auth, reply_body, rpc_msg,
};
use nfs3_server::nfs3_types::xdr_codec::{Opaque, Pack, Unpack};

const GENERATION: u64 = 4242;

/// One ombootd lifetime: the export served on its own runtime, stopped by dropping it.
struct Server {
    rt: tokio::runtime::Runtime,
    addr: SocketAddr,
}

impl Server {
    fn start(dir: &std::path::Path) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let service = rt
            .block_on(nfs::bind_shared(
                "127.0.0.1:0".parse().unwrap(),
                nfs::gate::Gate::OPEN,
                nfs::DirExport::new(dir, nfs::export::Mode::ReadWrite).unwrap(),
                GENERATION,
            ))
            .unwrap();
        let addr = service.local_addr().unwrap();
        rt.spawn(service.serve());
        Self { rt, addr }
    }

    fn stop(self) {
        self.rt.shutdown_timeout(std::time::Duration::from_secs(5));
    }
}

struct Client {
    sock: TcpStream,
    xid: u32,
}

impl Client {
    fn connect(addr: SocketAddr) -> Self {
        Self {
            sock: TcpStream::connect(addr).unwrap(),
            xid: 1,
        }
    }

    /// Call `prog`/`proc` as `uid` (its own gid) and unpack the result as `R`.
    fn call<R: Unpack>(&mut self, prog: u32, proc: u32, uid: u32, args: &impl Pack) -> R {
        self.xid += 1;
        let cred = auth_unix {
            uid,
            gid: uid,
            ..auth_unix::default()
        };
        let msg = rpc_msg {
            xid: self.xid,
            body: msg_body::CALL(call_body {
                rpcvers: 2,
                prog,
                vers: 3,
                proc,
                cred: opaque_auth::auth_unix(&cred),
                verf: opaque_auth::default(),
            }),
        };
        let mut body = Vec::new();
        msg.pack(&mut body).unwrap();
        args.pack(&mut body).unwrap();
        // One record, one fragment: the high bit marks it the last.
        let header = u32::try_from(body.len()).unwrap() | 0x8000_0000;
        self.sock.write_all(&header.to_be_bytes()).unwrap();
        self.sock.write_all(&body).unwrap();

        let mut header = [0u8; 4];
        self.sock.read_exact(&mut header).unwrap();
        let len = u32::from_be_bytes(header) & 0x7fff_ffff;
        let mut reply = vec![0u8; len as usize];
        self.sock.read_exact(&mut reply).unwrap();
        let mut cur = Cursor::new(reply);
        let (msg, _) = rpc_msg::unpack(&mut cur).unwrap();
        assert_eq!(msg.xid, self.xid);
        match msg.body {
            msg_body::REPLY(reply_body::MSG_ACCEPTED(a)) => {
                assert!(matches!(a.reply_data, accept_stat_data::SUCCESS), "{a:?}");
            }
            other => panic!("not accepted: {other:?}"),
        }
        R::unpack(&mut cur).unwrap().0
    }

    fn mount(&mut self) -> nfs_fh3 {
        let res: mountres3 =
            self.call(mount::PROGRAM, 1, 0, &dirpath(Opaque::owned(b"/".to_vec())));
        match res {
            mountres3::Ok(ok) => nfs_fh3 {
                data: Opaque::owned(ok.fhandle.0.as_ref().to_vec()),
            },
            mountres3::Err(e) => panic!("MNT: {e:?}"),
        }
    }

    fn create(&mut self, dir: &nfs_fh3, name: &str, uid: u32, mode: u32) -> nfs_fh3 {
        let args = CREATE3args {
            where_: diropargs3 {
                dir: dir.clone(),
                name: filename3::from(name.as_bytes()),
            },
            how: createhow3::UNCHECKED(sattr3 {
                mode: Nfs3Option::Some(mode),
                ..sattr3::default()
            }),
        };
        match self.call::<CREATE3res>(nfs3::PROGRAM, 8, uid, &args) {
            nfs3::Nfs3Result::Ok(ok) => match ok.obj {
                Nfs3Option::Some(fh) => fh,
                Nfs3Option::None => panic!("CREATE gave no handle"),
            },
            nfs3::Nfs3Result::Err((e, _)) => panic!("CREATE {name}: {e:?}"),
        }
    }

    fn lookup(&mut self, dir: &nfs_fh3, name: &str, uid: u32) -> Result<nfs_fh3, nfsstat3> {
        let args = LOOKUP3args {
            what: diropargs3 {
                dir: dir.clone(),
                name: filename3::from(name.as_bytes()),
            },
        };
        match self.call::<LOOKUP3res>(nfs3::PROGRAM, 3, uid, &args) {
            nfs3::Nfs3Result::Ok(ok) => Ok(ok.object),
            nfs3::Nfs3Result::Err((e, _)) => Err(e),
        }
    }

    fn write(&mut self, fh: &nfs_fh3, uid: u32, data: &[u8]) -> Result<(), nfsstat3> {
        let args = WRITE3args {
            file: fh.clone(),
            offset: 0,
            count: u32::try_from(data.len()).unwrap(),
            stable: stable_how::FILE_SYNC,
            data: Opaque::owned(data.to_vec()),
        };
        match self.call::<WRITE3res>(nfs3::PROGRAM, 7, uid, &args) {
            nfs3::Nfs3Result::Ok(_) => Ok(()),
            nfs3::Nfs3Result::Err((e, _)) => Err(e),
        }
    }

    fn read(&mut self, fh: &nfs_fh3, uid: u32) -> Result<Vec<u8>, nfsstat3> {
        let args = READ3args {
            file: fh.clone(),
            offset: 0,
            count: 1 << 16,
        };
        match self.call::<READ3res>(nfs3::PROGRAM, 6, uid, &args) {
            nfs3::Nfs3Result::Ok(ok) => Ok(ok.data.as_ref().to_vec()),
            nfs3::Nfs3Result::Err((e, _)) => Err(e),
        }
    }
}

#[test]
fn handles_outlive_a_restart_and_each_call_is_checked_as_its_own_uid() {
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let server = Server::start(d.path());
    let mut c = Client::connect(server.addr);
    let root = c.mount();
    let private = c.create(&root, "private", 1000, 0o600);
    c.write(&private, 1000, b"only mine").unwrap();
    let open = c.create(&root, "open", 1001, 0o644);
    c.write(&open, 1001, b"anyone").unwrap();
    // Calls from different uids on one connection, each judged by its own credential.
    assert_eq!(c.read(&private, 1001), Err(nfsstat3::NFS3ERR_ACCES));
    assert_eq!(c.read(&private, 1000).unwrap(), b"only mine");
    assert_eq!(c.write(&open, 1000, b"x"), Err(nfsstat3::NFS3ERR_ACCES));
    assert_eq!(c.read(&private, 0).unwrap(), b"only mine");
    drop(c);
    server.stop();

    // ombootd restarted: the handles the client kept still reach the same files.
    let server = Server::start(d.path());
    let mut c = Client::connect(server.addr);
    assert_eq!(c.read(&private, 1000).unwrap(), b"only mine");
    assert_eq!(c.read(&open, 65534).unwrap(), b"anyone");
    // A file deleted and made again under the same name: the old handle is stale, the name works.
    std::fs::remove_file(d.path().join("open")).unwrap();
    std::fs::write(d.path().join("open"), b"new file").unwrap();
    assert_eq!(c.read(&open, 0), Err(nfsstat3::NFS3ERR_STALE));
    let again = c.lookup(&root, "open", 0).unwrap();
    assert_eq!(c.read(&again, 0).unwrap(), b"new file");
    drop(c);
    server.stop();
}
