//! LINK on the cluster export over real TCP: the front answers it (nfs3_server alone says
//! PROC_UNAVAIL), as the AUTH_SYS caller of each call, and passes everything else on unchanged.

#![allow(clippy::unwrap_used)]

use std::io::Cursor;
use std::net::SocketAddr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use bootserver::nfs;
use nfs3_server::nfs3_types::mount::{self, dirpath, mountres3};
use nfs3_server::nfs3_types::nfs3::{
    self, FSF3_LINK, FSINFO3args, FSINFO3res, GETATTR3args, GETATTR3res, LINK3args, LINK3res,
    LOOKUP3args, LOOKUP3res, Nfs3Result, READ3args, READ3res, diropargs3, filename3, nfs_fh3,
    nfsstat3,
};
use nfs3_server::nfs3_types::rpc::{
    accept_stat_data, auth_unix, call_body, msg_body, opaque_auth, reply_body, rpc_msg,
};
use nfs3_server::nfs3_types::xdr_codec::{Opaque, Pack, Unpack};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const GENERATION: u64 = 777;
const LINK: u32 = 15;

/// The cluster export of a fresh 1777 directory on a free loopback port, served in the background.
async fn serve() -> (tempfile::TempDir, SocketAddr) {
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let service = nfs::bind_shared(
        "127.0.0.1:0".parse().unwrap(),
        nfs::gate::Gate::OPEN,
        nfs::DirExport::new(d.path(), nfs::export::Mode::ReadWrite).unwrap(),
        GENERATION,
    )
    .await
    .unwrap();
    let addr = service.local_addr().unwrap();
    tokio::spawn(service.serve());
    (d, addr)
}

/// A minimal ONC RPC client (RFC 5531 records), one call at a time.
struct Client {
    sock: TcpStream,
    xid: u32,
}

fn cred(uid: u32) -> opaque_auth<'static> {
    opaque_auth::auth_unix(&auth_unix {
        uid,
        gid: uid,
        ..auth_unix::default()
    })
}

fn fh(bytes: &[u8]) -> nfs_fh3 {
    nfs_fh3 {
        data: Opaque::owned(bytes.to_vec()),
    }
}

impl Client {
    async fn connect(addr: SocketAddr) -> Self {
        Self {
            sock: TcpStream::connect(addr).await.unwrap(),
            xid: 100,
        }
    }

    /// The record of a call of `prog`/`proc` with `args`.
    fn record(
        &mut self,
        prog: u32,
        proc: u32,
        cred: opaque_auth<'static>,
        args: &impl Pack,
    ) -> Vec<u8> {
        self.xid += 1;
        let msg = rpc_msg {
            xid: self.xid,
            body: msg_body::CALL(call_body {
                rpcvers: 2,
                prog,
                vers: 3,
                proc,
                cred,
                verf: opaque_auth::default(),
            }),
        };
        let mut body = Vec::new();
        msg.pack(&mut body).unwrap();
        args.pack(&mut body).unwrap();
        body
    }

    /// Send `record` as one fragment and read the reply record, checked to carry our xid.
    async fn exchange(&mut self, record: &[u8]) -> Cursor<Vec<u8>> {
        let header = u32::try_from(record.len()).unwrap() | 0x8000_0000;
        self.sock.write_all(&header.to_be_bytes()).await.unwrap();
        self.sock.write_all(record).await.unwrap();
        let mut header = [0u8; 4];
        self.sock.read_exact(&mut header).await.unwrap();
        let mut reply = vec![0u8; (u32::from_be_bytes(header) & 0x7fff_ffff) as usize];
        self.sock.read_exact(&mut reply).await.unwrap();
        let mut cur = Cursor::new(reply);
        let (msg, _) = rpc_msg::unpack(&mut cur).unwrap();
        assert_eq!(msg.xid, self.xid);
        cur.set_position(0);
        cur
    }

    /// Call and unpack an accepted, successful reply's result as `R`.
    async fn call<R: Unpack>(&mut self, prog: u32, proc: u32, uid: u32, args: &impl Pack) -> R {
        let rec = self.record(prog, proc, cred(uid), args);
        let mut cur = self.exchange(&rec).await;
        let (msg, _) = rpc_msg::unpack(&mut cur).unwrap();
        match msg.body {
            msg_body::REPLY(reply_body::MSG_ACCEPTED(a)) => {
                assert!(matches!(a.reply_data, accept_stat_data::SUCCESS), "{a:?}");
            }
            other => panic!("not accepted: {other:?}"),
        }
        let r = R::unpack(&mut cur).unwrap().0;
        assert_eq!(
            cur.position(),
            cur.get_ref().len() as u64,
            "bytes after the result"
        );
        r
    }

    async fn mount(&mut self) -> nfs_fh3 {
        let path = dirpath(Opaque::owned(b"/".to_vec()));
        match self.call::<mountres3>(mount::PROGRAM, 1, 0, &path).await {
            mountres3::Ok(ok) => fh(ok.fhandle.0.as_ref()),
            mountres3::Err(e) => panic!("MNT: {e:?}"),
        }
    }

    async fn lookup(&mut self, dir: &nfs_fh3, name: &str, uid: u32) -> Result<nfs_fh3, nfsstat3> {
        let args = LOOKUP3args {
            what: diropargs3 {
                dir: dir.clone(),
                name: filename3::from(name.as_bytes()),
            },
        };
        match self.call::<LOOKUP3res>(nfs3::PROGRAM, 3, uid, &args).await {
            Nfs3Result::Ok(ok) => Ok(ok.object),
            Nfs3Result::Err((e, _)) => Err(e),
        }
    }

    async fn nlink(&mut self, file: &nfs_fh3) -> u32 {
        let args = GETATTR3args {
            object: file.clone(),
        };
        match self.call::<GETATTR3res>(nfs3::PROGRAM, 1, 0, &args).await {
            Nfs3Result::Ok(ok) => ok.obj_attributes.nlink,
            Nfs3Result::Err((e, _)) => panic!("GETATTR: {e:?}"),
        }
    }

    async fn read(&mut self, file: &nfs_fh3, uid: u32) -> Vec<u8> {
        let args = READ3args {
            file: file.clone(),
            offset: 0,
            count: 4096,
        };
        match self.call::<READ3res>(nfs3::PROGRAM, 6, uid, &args).await {
            Nfs3Result::Ok(ok) => ok.data.as_ref().to_vec(),
            Nfs3Result::Err((e, _)) => panic!("READ: {e:?}"),
        }
    }

    /// LINK `file` as `name` in `dir`, as `uid`: the status and, on success, the file's link count
    /// the reply carries.
    async fn link(
        &mut self,
        file: &nfs_fh3,
        dir: &nfs_fh3,
        name: &str,
        uid: u32,
    ) -> Result<u32, nfsstat3> {
        let args = LINK3args {
            file: file.clone(),
            link: diropargs3 {
                dir: dir.clone(),
                name: filename3::from(name.as_bytes()),
            },
        };
        match self.call::<LINK3res>(nfs3::PROGRAM, LINK, uid, &args).await {
            Nfs3Result::Ok(ok) => {
                // RFC 1813 §3.3.15: the directory's attributes after the call come back.
                assert!(ok.linkdir_wcc.after.is_some(), "no directory attributes");
                Ok(ok.file_attributes.unwrap().nlink)
            }
            Nfs3Result::Err((e, _)) => Err(e),
        }
    }
}

fn meta(dir: &Path, name: &str) -> std::fs::Metadata {
    std::fs::symlink_metadata(dir.join(name)).unwrap()
}

#[tokio::test]
async fn link_over_tcp_makes_a_second_name_of_the_same_inode() {
    let (d, addr) = serve().await;
    std::fs::write(d.path().join("a"), b"hello").unwrap();
    let mut c = Client::connect(addr).await;
    // Ordinary traffic through the front: MOUNT, LOOKUP, READ, GETATTR.
    let root = c.mount().await;
    let a = c.lookup(&root, "a", 0).await.unwrap();
    assert_eq!(c.read(&a, 0).await, b"hello");
    assert_eq!(c.nlink(&a).await, 1);

    assert_eq!(c.link(&a, &root, "b", 0).await, Ok(2));
    let (ma, mb) = (meta(d.path(), "a"), meta(d.path(), "b"));
    assert_eq!((ma.nlink(), mb.nlink()), (2, 2));
    assert_eq!(ma.ino(), mb.ino());
    // The new name is the same file over the wire too.
    let b = c.lookup(&root, "b", 0).await.unwrap();
    assert_eq!(b, a);
    assert_eq!(c.read(&b, 0).await, b"hello");
    assert_eq!(c.nlink(&a).await, 2);

    // A name that exists already.
    std::fs::write(d.path().join("taken"), b"other").unwrap();
    assert_eq!(
        c.link(&a, &root, "taken", 0).await,
        Err(nfsstat3::NFS3ERR_EXIST)
    );
    assert_eq!(std::fs::read(d.path().join("taken")).unwrap(), b"other");
    assert_eq!(meta(d.path(), "a").nlink(), 2);

    // The server advertises hard links (RFC 1813 §3.3.19 FSF3_LINK).
    let info = c
        .call::<FSINFO3res>(nfs3::PROGRAM, 19, 0, &FSINFO3args { fsroot: root })
        .await;
    match info {
        Nfs3Result::Ok(ok) => assert_ne!(ok.properties & FSF3_LINK, 0),
        Nfs3Result::Err((e, _)) => panic!("FSINFO: {e:?}"),
    }
}

#[tokio::test]
async fn link_is_checked_as_the_callers_uid() {
    let (d, addr) = serve().await;
    // alice's own file in the 1777 top, and a directory only root may write.
    let mine = d.path().join("mine");
    std::fs::write(&mine, b"alice's").unwrap();
    std::os::unix::fs::chown(&mine, Some(1000), Some(1000)).unwrap();
    std::fs::create_dir(d.path().join("closed")).unwrap();
    std::fs::set_permissions(
        d.path().join("closed"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::write(d.path().join("roots"), b"root's").unwrap();
    let mut c = Client::connect(addr).await;
    let root = c.mount().await;
    let mine = c.lookup(&root, "mine", 1000).await.unwrap();
    let closed = c.lookup(&root, "closed", 1000).await.unwrap();
    let roots = c.lookup(&root, "roots", 1000).await.unwrap();

    assert_eq!(
        c.link(&mine, &closed, "x", 1000).await,
        Err(nfsstat3::NFS3ERR_ACCES)
    );
    assert!(!d.path().join("closed/x").exists());
    assert_eq!(meta(d.path(), "mine").nlink(), 1);
    // Where alice may write, she may link her file; root may link into the closed directory.
    assert_eq!(c.link(&mine, &root, "mine2", 1000).await, Ok(2));
    assert_eq!(c.link(&mine, &closed, "x", 0).await, Ok(3));
    // Another user's file she may not write (like fs.protected_hardlinks).
    assert_eq!(
        c.link(&roots, &root, "stolen", 1000).await,
        Err(nfsstat3::NFS3ERR_ACCES)
    );
    assert!(!d.path().join("stolen").exists());
}

#[tokio::test]
async fn bad_handles_and_bad_calls_get_errors_and_the_connection_goes_on() {
    let (d, addr) = serve().await;
    std::fs::write(d.path().join("gone"), b"x").unwrap();
    std::fs::write(d.path().join("kept"), b"y").unwrap();
    let mut c = Client::connect(addr).await;
    let root = c.mount().await;
    let gone = c.lookup(&root, "gone", 0).await.unwrap();
    let kept = c.lookup(&root, "kept", 0).await.unwrap();
    std::fs::remove_file(d.path().join("gone")).unwrap();
    assert_eq!(
        c.link(&gone, &root, "back", 0).await,
        Err(nfsstat3::NFS3ERR_STALE)
    );
    // A handle of an earlier generation (before a restart) is stale, forged bytes are no handle.
    let mut old = kept.data.to_vec();
    old[..8].copy_from_slice(&(GENERATION - 1).to_le_bytes());
    assert_eq!(
        c.link(&fh(&old), &root, "l1", 0).await,
        Err(nfsstat3::NFS3ERR_STALE)
    );
    assert_eq!(
        c.link(&fh(b"garbage"), &root, "l2", 0).await,
        Err(nfsstat3::NFS3ERR_BADHANDLE)
    );
    assert_eq!(
        c.link(&kept, &fh(&[0xff; 33]), "l3", 0).await,
        Err(nfsstat3::NFS3ERR_BADHANDLE)
    );
    assert_eq!(
        c.link(&kept, &root, "", 0).await,
        Err(nfsstat3::NFS3ERR_INVAL)
    );
    // LINK3args cut short: GARBAGE_ARGS, as nfs3_server answers its own calls.
    let args = LINK3args {
        file: kept.clone(),
        link: diropargs3 {
            dir: root.clone(),
            name: filename3::from(b"l4".as_slice()),
        },
    };
    let mut rec = c.record(nfs3::PROGRAM, LINK, cred(0), &args);
    rec.truncate(rec.len() - 6);
    let mut reply = c.exchange(&rec).await;
    let (msg, _) = rpc_msg::unpack(&mut reply).unwrap();
    assert!(matches!(
        msg.body,
        msg_body::REPLY(reply_body::MSG_ACCEPTED(ref a))
            if matches!(a.reply_data, accept_stat_data::GARBAGE_ARGS)
    ));
    let names: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["kept"]);
    // The same connection still serves.
    assert_eq!(c.link(&kept, &root, "again", 0).await, Ok(2));
    assert_eq!(c.read(&kept, 0).await, b"y");
}
