//! A host directory exported over NFSv3 (RFC 1813): read-only for the node root, read-write for
//! the cluster's shared `/cluster`.
//!
//! Every call resolves its handle ([`ExportHandle`]) to a path inside the directory, opened in one
//! `openat2` that follows no symlink and leaves neither the directory nor its file system, checks
//! the caller's AUTH_SYS credential against the mode bits ([`access`]) and then acts as root on
//! the caller's behalf, giving new files to the caller. Identities and sorted directory listings
//! are remembered, each checked against the file's change time before use.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ffi::{CStr, CString, OsStr};
use std::fs::{File, Metadata};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use nfs3_server::nfs3_types::nfs3::{
    FSF3_CANSETTIME, FSF3_HOMOGENEOUS, FSF3_LINK, FSF3_SYMLINK, FSINFO3resok, Nfs3Option,
    createverf3, fattr3, filename3, ftype3, nfspath3, nfsstat3, nfstime3, sattr3, set_atime,
    set_mtime, specdata3, stable_how,
};
use nfs3_server::nfs3_types::rpc::auth_unix;
use nfs3_server::vfs::{
    DirEntryPlus, NextResult, NfsFileSystem, NfsReadFileSystem, ReadDirPlusIterator,
};

use super::access::{self, Caller, EXEC, Owner, READ, WRITE};
use super::callers::Callers;
use super::file_id::{ExportHandle, Identity, identity_of};
use super::readdir_budget;

const S_ISGID: u32 = 0o2000;
/// Mode of a new directory. MKDIR's requested mode does not reach us through nfs3_server 0.11, so
/// fail closed: `mkdir -m 700` and `mktemp -d` must not get a directory others can read.
const DIR_MODE: u32 = 0o700;
/// Mode of a new file whose CREATE names none.
const FILE_MODE: u32 = 0o644;
/// Directory entries computed for the first step of a READDIRPLUS, and for each later one. A
/// reply holds what its client's `dircount` allows (libnfs: some 40 entries; Linux more), and
/// entries computed past it are thrown away with the call.
const FIRST_CHUNK: usize = 32;
const LIST_CHUNK: usize = 128;
/// Identities remembered (each saves a reopen and an ioctl); the table starts over past this.
const MAX_IDS: usize = 1 << 16;
/// Directory listings remembered, sorted by cookie; the table starts over past this (the
/// image's /usr alone has some 1,400 directories).
const MAX_LISTINGS: usize = 16 * 1024;
/// How long the read-only export answers attributes (GETATTR, ACCESS, a listing's) from memory,
/// as nfs-ganesha's attribute cache does (its `Attr_Expiration_Time` default): an image version
/// never changes, but a hand edit of its files shows within this time. A changed directory is
/// read again at once; a version pruned while a node still asked about it goes STALE in time.
const ENTRIES_FOR: Duration = Duration::from_secs(60);
/// At most this many handles are remembered as gone (each saves a walk of the whole tree).
const MAX_GONE: usize = 4096;
/// A read-write tree changes behind our back (files made on the master): walk it again at most
/// this often for a handle we do not know.
const WALK_EVERY: Duration = Duration::from_secs(30);

/// The read-write export of one host directory.
#[derive(Debug, Clone)]
pub struct DirExport {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    root_fd: OwnedFd,
    root_id: Identity,
    dev: u64,
    /// inode → one path (relative to the root) that reached it; checked at every use.
    paths: RwLock<HashMap<u64, PathBuf>>,
    /// Handles a full walk did not find: their files are gone for good.
    gone: Mutex<HashSet<ExportHandle>>,
    callers: Callers,
    mode: Mode,
    /// When an unknown handle last made us walk the tree.
    last_walk: Mutex<Option<Instant>>,
    /// inode → its identity, and the change time it was read at.
    ids: RwLock<HashMap<u64, (Changed, Identity)>>,
    /// directory inode → its names sorted by cookie, and the change time they were read at.
    listings: Mutex<HashMap<u64, (Changed, Names)>>,
    /// Read-only export: directory inode → its entries whole (attributes and handles), the
    /// change time they were read at, and when.
    entries: Mutex<HashMap<u64, (Changed, Instant, Entries)>>,
    /// Read-only export: handle → its attributes, and when they were read.
    attrs: Mutex<HashMap<ExportHandle, (Instant, fattr3)>>,
}

/// A directory's entries with their attributes and handles, sorted by cookie.
type Entries = Arc<Vec<DirEntryPlus<ExportHandle>>>;

/// A directory's entries as (cookie, name), sorted by cookie.
type Names = Arc<Vec<(u64, Vec<u8>)>>;

/// A file's change and modification times: an inode number reused by a new file, or a directory
/// whose entries changed, never has the times it had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Changed {
    ctime: (i64, i64),
    mtime: (i64, i64),
}

impl Changed {
    fn of(meta: &Metadata) -> Self {
        Self {
            ctime: (meta.ctime(), meta.ctime_nsec()),
            mtime: (meta.mtime(), meta.mtime_nsec()),
        }
    }
}

/// Whether an export takes writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The node root: every write answers `NFS3ERR_ROFS` (nodes write to their tmpfs overlay).
    ReadOnly,
    /// The cluster directory.
    ReadWrite,
}

impl Mode {
    /// The `fsid` of the export's files: the two exports of one master must differ.
    fn fsid(self) -> u64 {
        match self {
            Mode::ReadOnly => 1,
            Mode::ReadWrite => 2,
        }
    }
}

/// A file reached from a handle or a name.
#[derive(Debug)]
struct Found {
    /// An `O_PATH` descriptor: names the file without opening it for I/O.
    file: File,
    meta: Metadata,
    rel: PathBuf,
    id: Identity,
}

impl Found {
    fn owner(&self) -> Owner {
        Owner {
            mode: self.meta.mode(),
            uid: self.meta.uid(),
            gid: self.meta.gid(),
            is_dir: self.meta.is_dir(),
        }
    }
    fn handle(&self) -> ExportHandle {
        ExportHandle::new(&self.id)
    }
}

fn fattr_of(meta: &Metadata, fsid: u64) -> fattr3 {
    let ft = meta.file_type();
    use std::os::unix::fs::FileTypeExt;
    let type_ = if ft.is_dir() {
        ftype3::NF3DIR
    } else if ft.is_symlink() {
        ftype3::NF3LNK
    } else if ft.is_block_device() {
        ftype3::NF3BLK
    } else if ft.is_char_device() {
        ftype3::NF3CHR
    } else if ft.is_fifo() {
        ftype3::NF3FIFO
    } else if ft.is_socket() {
        ftype3::NF3SOCK
    } else {
        ftype3::NF3REG
    };
    let time = |s: i64, ns: i64| nfstime3 {
        seconds: u32::try_from(s).unwrap_or(0),
        nseconds: u32::try_from(ns).unwrap_or(0),
    };
    let rdev = meta.rdev();
    fattr3 {
        type_,
        mode: meta.mode() & 0o7777,
        nlink: u32::try_from(meta.nlink()).unwrap_or(u32::MAX),
        uid: meta.uid(),
        gid: meta.gid(),
        size: meta.size(),
        used: meta.blocks() * 512,
        rdev: specdata3 {
            specdata1: libc::major(rdev),
            specdata2: libc::minor(rdev),
        },
        fsid,
        fileid: meta.ino(),
        atime: time(meta.atime(), meta.atime_nsec()),
        mtime: time(meta.mtime(), meta.mtime_nsec()),
        ctime: time(meta.ctime(), meta.ctime_nsec()),
    }
}

fn errno(e: &io::Error) -> nfsstat3 {
    match e.raw_os_error() {
        Some(libc::ENOENT) => nfsstat3::NFS3ERR_NOENT,
        Some(libc::EACCES) => nfsstat3::NFS3ERR_ACCES,
        Some(libc::EPERM) => nfsstat3::NFS3ERR_PERM,
        Some(libc::EEXIST) => nfsstat3::NFS3ERR_EXIST,
        Some(libc::ENOTDIR) => nfsstat3::NFS3ERR_NOTDIR,
        Some(libc::EISDIR) => nfsstat3::NFS3ERR_ISDIR,
        Some(libc::EINVAL) => nfsstat3::NFS3ERR_INVAL,
        Some(libc::EFBIG) => nfsstat3::NFS3ERR_FBIG,
        Some(libc::ENOSPC) => nfsstat3::NFS3ERR_NOSPC,
        Some(libc::EROFS) => nfsstat3::NFS3ERR_ROFS,
        Some(libc::EMLINK) => nfsstat3::NFS3ERR_MLINK,
        Some(libc::ENAMETOOLONG) => nfsstat3::NFS3ERR_NAMETOOLONG,
        Some(libc::ENOTEMPTY) => nfsstat3::NFS3ERR_NOTEMPTY,
        Some(libc::EDQUOT) => nfsstat3::NFS3ERR_DQUOT,
        Some(libc::ESTALE) => nfsstat3::NFS3ERR_STALE,
        Some(libc::EXDEV) => nfsstat3::NFS3ERR_XDEV,
        Some(libc::EOPNOTSUPP) => nfsstat3::NFS3ERR_NOTSUPP,
        _ => nfsstat3::NFS3ERR_IO,
    }
}

fn io_err(e: io::Error) -> nfsstat3 {
    errno(&e)
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A name a client may create or look up: one component, not `.` or `..`, no NUL, at most 255 bytes.
fn entry_name(name: &[u8]) -> Result<CString, nfsstat3> {
    if name.len() > 255 {
        return Err(nfsstat3::NFS3ERR_NAMETOOLONG);
    }
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
        return Err(nfsstat3::NFS3ERR_INVAL);
    }
    CString::new(name).map_err(|_| nfsstat3::NFS3ERR_INVAL)
}

fn open_at(dir: BorrowedFd<'_>, name: &CStr, flags: libc::c_int, mode: u32) -> io::Result<File> {
    // SAFETY: `dir` is open for the call, `name` is NUL-terminated; the result is checked below.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            flags | libc::O_CLOEXEC | libc::O_NOCTTY,
            mode,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by openat and belongs to nobody else.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// Inserts into one of the export's memories, which starts over when full: simpler than an
/// eviction order, and a full table is rare (each holds more than the node image has).
fn insert_bounded<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>, max: usize, k: K, v: V) {
    if map.len() >= max {
        map.clear();
    }
    map.insert(k, v);
}

/// Runs the file system work `op` without blocking the runtime. On a multi-threaded runtime (the
/// server's) the calling worker runs it itself after handing its other tasks to another worker
/// (`block_in_place`): a trip to the blocking pool costs two thread wake-ups, which on a small
/// VM took more than the metadata call itself (a READDIRPLUS makes two or three such calls;
/// `nfs-ls -R` of the image's /usr: 2.2 s through the pool, 1.2 s in place). Elsewhere (tests
/// on a current-thread runtime) it goes to the blocking pool.
async fn off_runtime<T: Send + 'static>(
    op: impl FnOnce() -> Result<T, nfsstat3> + Send + 'static,
) -> Result<T, nfsstat3> {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(op),
        _ => tokio::task::spawn_blocking(op)
            .await
            .map_err(|_| nfsstat3::NFS3ERR_SERVERFAULT)?,
    }
}

/// Opens `path` below `root` as an `O_PATH` descriptor in one `openat2` (Linux 5.6): no
/// symlink followed anywhere (a symlink at the end is itself opened), no `..` or magic link out
/// of `root`, no mount crossed (EXDEV).
fn open_beneath(root: BorrowedFd<'_>, path: &CStr) -> io::Result<File> {
    // SAFETY: open_how is plain old data; all-zero is a valid value (libc marks it
    // non-exhaustive, so it cannot be built field by field).
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_BENEATH
        | libc::RESOLVE_NO_SYMLINKS
        | libc::RESOLVE_NO_MAGICLINKS
        | libc::RESOLVE_NO_XDEV;
    // SAFETY: openat2 reads the NUL-terminated `path` and `how` (whose size is passed) during
    // the call, with `root` open; the result is checked below.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = libc::c_int::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: `fd` was just returned by openat2 and belongs to nobody else.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// The `/proc` name of an open descriptor: opening it opens the very file the descriptor names
/// (how an `O_PATH` descriptor is turned into one that can read or write).
fn proc_path(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

fn proc_cpath(fd: BorrowedFd<'_>) -> CString {
    // A decimal number has no NUL.
    CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap_or_default()
}

fn reopen(fd: BorrowedFd<'_>, write: bool) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(!write)
        .write(write)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(proc_path(fd))
}

/// The identity of an `O_PATH` descriptor's file; regular files and directories are opened for the
/// generation ioctl, other kinds are not (opening a FIFO or a device has effects).
fn identify(file: &File, meta: &Metadata) -> io::Result<Identity> {
    let ft = meta.file_type();
    let readable = if ft.is_file() || ft.is_dir() {
        Some(reopen(file.as_fd(), false)?)
    } else {
        None
    };
    identity_of(file.as_fd(), readable.as_ref().map(AsFd::as_fd))
}

fn chown_fd(fd: BorrowedFd<'_>, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
    // SAFETY: `fd` is open for the call and the path is an empty NUL-terminated string
    // (AT_EMPTY_PATH: the descriptor's own file, a symlink itself included).
    check(unsafe {
        libc::fchownat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            uid.unwrap_or(u32::MAX),
            gid.unwrap_or(u32::MAX),
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}

fn chmod_fd(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    std::fs::set_permissions(
        proc_path(fd),
        std::fs::Permissions::from_mode(mode & 0o7777),
    )
}

fn timespec(t: &nfstime3) -> libc::timespec {
    libc::timespec {
        tv_sec: libc::time_t::from(t.seconds),
        tv_nsec: libc::c_long::from(t.nseconds.min(999_999_999)),
    }
}

/// 64-bit FNV-1a: a READDIR cookie made from the name, so a cookie still points at the same place
/// after other entries come or go between two pages.
fn name_cookie(name: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // 0 starts a listing, 1 and 2 are `.` and `..`.
    h.max(3)
}

impl DirExport {
    /// Export `root`, which must be a directory.
    pub fn new(root: &Path, mode: Mode) -> io::Result<Self> {
        let root = root.canonicalize()?;
        let root_fd: OwnedFd = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
            .open(&root)?
            .into();
        let file = File::from(root_fd.try_clone()?);
        let meta = file.metadata()?;
        let root_id = identify(&file, &meta)?;
        let paths = RwLock::new(HashMap::from([(root_id.ino, PathBuf::new())]));
        Ok(Self {
            inner: Arc::new(Inner {
                root,
                root_fd,
                root_id,
                dev: meta.dev(),
                paths,
                gone: Mutex::new(HashSet::new()),
                callers: Callers::default(),
                mode,
                last_walk: Mutex::new(None),
                ids: RwLock::new(HashMap::new()),
                listings: Mutex::new(HashMap::new()),
                entries: Mutex::new(HashMap::new()),
                attrs: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The exported directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Run `op` for the caller of the call being served, off the async runtime.
    async fn blocking<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Inner, &Caller) -> Result<T, nfsstat3> + Send + 'static,
    ) -> Result<T, nfsstat3> {
        self.blocking_as(self.inner.callers.current(), op).await
    }

    /// Run the write `op` for the caller of the call being served, when the export takes writes.
    async fn blocking_write<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Inner, &Caller) -> Result<T, nfsstat3> + Send + 'static,
    ) -> Result<T, nfsstat3> {
        self.inner.writable()?;
        self.blocking(op).await
    }

    /// Run `op` for `who` off the async runtime: every file system call may block on the disk.
    async fn blocking_as<T: Send + 'static>(
        &self,
        who: Caller,
        op: impl FnOnce(&Inner, &Caller) -> Result<T, nfsstat3> + Send + 'static,
    ) -> Result<T, nfsstat3> {
        let inner = self.inner.clone();
        off_runtime(move || op(&inner, &who)).await
    }

    /// ACCESS (RFC 1813 §3.3.4): which of `want` `who` has on `h`, and its attributes.
    /// nfs3_server 0.11 grants whatever is asked without looking at the caller, so the fronts
    /// answer ACCESS ([`access_proc`](super::access_proc)) with this.
    pub async fn access(
        &self,
        who: &Caller,
        h: &ExportHandle,
        want: u32,
    ) -> Result<(u32, fattr3), nfsstat3> {
        self.on(who, h, move |i, who, h| i.access(who, h, want))
            .await
    }

    /// Runs `op` for `who` on the file `h` names, off the async runtime.
    async fn on<T: Send + 'static>(
        &self,
        who: &Caller,
        h: &ExportHandle,
        op: impl FnOnce(&Inner, &Caller, &ExportHandle) -> Result<T, nfsstat3> + Send + 'static,
    ) -> Result<T, nfsstat3> {
        let h = *h;
        self.blocking_as(who.clone(), move |i, who| op(i, who, &h))
            .await
    }

    /// GETATTR (RFC 1813 §3.3.1), for a front that answers it: anyone may ask.
    pub async fn getattr_as(&self, h: &ExportHandle) -> Result<fattr3, nfsstat3> {
        self.on(&Caller::nobody(), h, |i, _, h| i.getattr(h)).await
    }

    /// LOOKUP (§3.3.3) of `name` in `dir` by `who`: the entry's handle and attributes, and the
    /// directory's.
    pub async fn lookup_as(
        &self,
        who: &Caller,
        dir: &ExportHandle,
        name: Vec<u8>,
    ) -> Result<(ExportHandle, fattr3, fattr3), nfsstat3> {
        self.on(who, dir, move |i, who, d| i.lookup_attrs(who, d, &name))
            .await
    }

    /// READLINK (§3.3.5): the target and the link's attributes.
    pub async fn readlink_as(&self, h: &ExportHandle) -> Result<(Vec<u8>, fattr3), nfsstat3> {
        self.on(&Caller::nobody(), h, |i, _, h| i.readlink_attrs(h))
            .await
    }

    /// READ (§3.3.6) by `who`, the bytes appended to `out` (returned with them): whether they
    /// reach the end, and the file's attributes.
    pub async fn read_into_as(
        &self,
        who: &Caller,
        h: &ExportHandle,
        offset: u64,
        count: u32,
        mut out: Vec<u8>,
    ) -> Result<(Vec<u8>, bool, fattr3), nfsstat3> {
        self.on(who, h, move |i, who, h| {
            let (eof, attr) = i.read_into(who, h, offset, count, &mut out)?;
            Ok((out, eof, attr))
        })
        .await
    }

    /// READDIRPLUS (§3.3.17) of `dir` by `who` from `cookie`, as much as `dircount` and
    /// `maxcount` hold: the directory's attributes, the entries, and whether that was all.
    pub async fn readdirplus_as(
        &self,
        who: &Caller,
        dir: &ExportHandle,
        cookie: u64,
        dircount: u32,
        maxcount: u32,
    ) -> Result<(fattr3, Vec<DirEntryPlus<ExportHandle>>, bool), nfsstat3> {
        self.on(who, dir, move |i, who, d| {
            i.readdirplus_attrs(who, d, cookie, dircount, maxcount)
        })
        .await
    }

    /// LINK (RFC 1813 §3.3.15): make `name` in `dir` another name of `file`, as `who`.
    /// nfs3_server 0.11 refuses LINK itself (PROC_UNAVAIL), so the cluster export's front answers
    /// it ([`link`](super::link)) and passes the caller it read from the call.
    pub async fn link(
        &self,
        who: &Caller,
        file: &ExportHandle,
        dir: &ExportHandle,
        name: &filename3<'_>,
    ) -> Result<(), nfsstat3> {
        self.inner.writable()?;
        let (file, dir, name) = (*file, *dir, name.as_ref().to_vec());
        self.blocking_as(who.clone(), move |i, who| i.link(who, &file, &dir, &name))
            .await
    }
}

impl Inner {
    fn attr(&self, meta: &Metadata) -> fattr3 {
        fattr_of(meta, self.mode.fsid())
    }

    /// Writes reach only a read-write export.
    fn writable(&self) -> Result<(), nfsstat3> {
        match self.mode {
            Mode::ReadWrite => Ok(()),
            Mode::ReadOnly => Err(nfsstat3::NFS3ERR_ROFS),
        }
    }

    /// Open `rel` below the root (`O_PATH`) without following any symlink on the way or at the
    /// end, and without leaving the root or its file system.
    fn open_rel(&self, rel: &Path) -> io::Result<File> {
        // The components alone: a path noted as `dir/` + "" must not demand a directory.
        let mut bytes = Vec::with_capacity(rel.as_os_str().len());
        for c in rel.components() {
            let Component::Normal(part) = c else {
                return Err(io::Error::from_raw_os_error(libc::EINVAL));
            };
            if !bytes.is_empty() {
                bytes.push(b'/');
            }
            bytes.extend_from_slice(part.as_bytes());
        }
        if bytes.is_empty() {
            bytes.push(b'.');
        }
        let path = CString::new(bytes).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        match open_beneath(self.root_fd.as_fd(), &path) {
            // A mount inside the tree: its inode numbers could collide with ours.
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                Err(io::Error::from_raw_os_error(libc::ENOENT))
            }
            r => r,
        }
    }

    /// The identity of `file` (its metadata `meta`), remembered while its change time stays.
    fn identify(&self, file: &File, meta: &Metadata) -> io::Result<Identity> {
        let changed = Changed::of(meta);
        if let Ok(ids) = self.ids.read()
            && let Some((at, id)) = ids.get(&meta.ino())
            && *at == changed
        {
            return Ok(*id);
        }
        let id = identify(file, meta)?;
        if let Ok(mut ids) = self.ids.write() {
            insert_bounded(&mut ids, MAX_IDS, meta.ino(), (changed, id));
        }
        Ok(id)
    }

    /// The names of directory `dir`, sorted by cookie, `.` and `..` included; read again only
    /// when the directory changed.
    fn names(&self, dir: &Found) -> Result<Names, nfsstat3> {
        let changed = Changed::of(&dir.meta);
        if let Ok(l) = self.listings.lock()
            && let Some((at, names)) = l.get(&dir.id.ino)
            && *at == changed
        {
            return Ok(names.clone());
        }
        let mut names: Vec<(u64, Vec<u8>)> = std::fs::read_dir(proc_path(dir.file.as_fd()))
            .map_err(io_err)?
            .flatten()
            .map(|e| {
                let n = e.file_name().as_bytes().to_vec();
                (name_cookie(&n), n)
            })
            .chain([(1, b".".to_vec()), (2, b"..".to_vec())])
            .collect();
        names.sort();
        let names = Arc::new(names);
        if let Ok(mut l) = self.listings.lock() {
            insert_bounded(&mut l, MAX_LISTINGS, dir.id.ino, (changed, names.clone()));
        }
        Ok(names)
    }

    fn found_at(&self, rel: PathBuf) -> io::Result<Found> {
        let file = self.open_rel(&rel)?;
        let meta = file.metadata()?;
        if meta.dev() != self.dev {
            // Another file system mounted inside: its inode numbers could collide with ours.
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
        let id = self.identify(&file, &meta)?;
        Ok(Found {
            file,
            meta,
            rel,
            id,
        })
    }

    fn remember(&self, ino: u64, rel: &Path) {
        if let Ok(mut p) = self.paths.write() {
            p.insert(ino, rel.to_path_buf());
        }
    }

    fn cached(&self, ino: u64) -> Option<PathBuf> {
        self.paths.read().ok()?.get(&ino).cloned()
    }

    /// The file `h` names, or STALE when it no longer exists.
    fn resolve(&self, h: &ExportHandle) -> Result<Found, nfsstat3> {
        let want = h.identity();
        let attempt = |this: &Self| {
            let rel = this.cached(want.ino)?;
            this.found_at(rel).ok().filter(|f| f.id == want)
        };
        if let Some(f) = attempt(self) {
            return Ok(f);
        }
        if self
            .gone
            .lock()
            .map_err(|_| nfsstat3::NFS3ERR_SERVERFAULT)?
            .contains(h)
        {
            return Err(nfsstat3::NFS3ERR_STALE);
        }
        // A handle from before a restart, or its file was renamed behind our back: walk the tree,
        // at most once for a read-only tree (it never changes) and once per WALK_EVERY otherwise,
        // so a stream of made-up handles cannot keep the disk busy.
        let walked = self.walk_if_due()?;
        if let Some(f) = attempt(self) {
            return Ok(f);
        }
        if walked {
            // Only a walk that did not find it says the file is gone for good.
            let mut gone = self
                .gone
                .lock()
                .map_err(|_| nfsstat3::NFS3ERR_SERVERFAULT)?;
            if gone.len() >= MAX_GONE {
                gone.clear();
            }
            gone.insert(*h);
        }
        Err(nfsstat3::NFS3ERR_STALE)
    }

    /// Walk the tree if an unknown handle may make us walk it now. The lock is held through the
    /// walk, so the handles that wait for it find what it found.
    fn walk_if_due(&self) -> Result<bool, nfsstat3> {
        let mut last = self
            .last_walk
            .lock()
            .map_err(|_| nfsstat3::NFS3ERR_SERVERFAULT)?;
        let due = match (*last, self.mode) {
            (None, _) => true,
            (Some(_), Mode::ReadOnly) => false,
            (Some(at), Mode::ReadWrite) => at.elapsed() >= WALK_EVERY,
        };
        if due {
            self.index();
            *last = Some(Instant::now());
        }
        Ok(due)
    }

    /// Walk the whole tree (through descriptors, never through a symlink) and note every inode's path.
    fn index(&self) {
        let mut found = Vec::new();
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            let Ok(dir) = self.open_rel(&rel) else {
                continue;
            };
            let Ok(entries) = std::fs::read_dir(proc_path(dir.as_fd())) else {
                continue;
            };
            for e in entries.flatten() {
                let Ok(meta) = e.metadata() else { continue };
                if meta.dev() != self.dev {
                    continue;
                }
                let child = rel.join(e.file_name());
                if meta.is_dir() {
                    stack.push(child.clone());
                }
                found.push((meta.ino(), child));
            }
        }
        if let Ok(mut paths) = self.paths.write() {
            paths.extend(found);
            paths.insert(self.root_id.ino, PathBuf::new());
        }
    }

    /// A directory named by `h` on which `who` has `want`.
    fn dir(&self, who: &Caller, h: &ExportHandle, want: u32) -> Result<Found, nfsstat3> {
        let d = self.resolve(h)?;
        if !d.meta.is_dir() {
            return Err(nfsstat3::NFS3ERR_NOTDIR);
        }
        if !access::permits(who, &d.owner(), want) {
            return Err(nfsstat3::NFS3ERR_ACCES);
        }
        Ok(d)
    }

    /// The entry `name` of `dir`, not following it if it is a symlink.
    fn child(&self, dir: &Found, name: &CStr) -> Result<Found, nfsstat3> {
        let file =
            open_at(dir.file.as_fd(), name, libc::O_PATH | libc::O_NOFOLLOW, 0).map_err(io_err)?;
        let meta = file.metadata().map_err(io_err)?;
        if meta.dev() != self.dev {
            return Err(nfsstat3::NFS3ERR_NOENT);
        }
        let id = self.identify(&file, &meta).map_err(io_err)?;
        let rel = dir.rel.join(OsStr::from_bytes(name.to_bytes()));
        self.remember(id.ino, &rel);
        Ok(Found {
            file,
            meta,
            rel,
            id,
        })
    }

    /// The group a new entry of `dir` gets: the directory's when it is set-group-id, as on Linux.
    fn new_gid(who: &Caller, dir: &Found) -> u32 {
        if dir.meta.mode() & S_ISGID != 0 {
            dir.meta.gid()
        } else {
            who.gid
        }
    }

    fn access(&self, who: &Caller, h: &ExportHandle, want: u32) -> Result<(u32, fattr3), nfsstat3> {
        let attr = self.getattr(h)?;
        let owner = Owner {
            mode: attr.mode,
            uid: attr.uid,
            gid: attr.gid,
            is_dir: attr.type_ == ftype3::NF3DIR,
        };
        let writable = self.mode == Mode::ReadWrite;
        Ok((access::access3(who, &owner, want, writable), attr))
    }

    /// The attributes of the file `h` names; the read-only export answers from memory for up
    /// to [`ENTRIES_FOR`] (an image version never changes, see there).
    fn getattr(&self, h: &ExportHandle) -> Result<fattr3, nfsstat3> {
        if self.mode == Mode::ReadOnly
            && let Ok(a) = self.attrs.lock()
            && let Some((when, attr)) = a.get(h)
            && when.elapsed() < ENTRIES_FOR
        {
            return Ok(attr.clone());
        }
        let attr = self.attr(&self.resolve(h)?.meta);
        self.remember_attr(h, &attr);
        Ok(attr)
    }

    /// Keeps `attr` as the read-only export's answer for `h` (see [`Inner::getattr`]).
    fn remember_attr(&self, h: &ExportHandle, attr: &fattr3) {
        if self.mode == Mode::ReadOnly
            && let Ok(mut a) = self.attrs.lock()
        {
            insert_bounded(&mut a, MAX_IDS, *h, (Instant::now(), attr.clone()));
        }
    }

    fn lookup(
        &self,
        who: &Caller,
        dir: &ExportHandle,
        name: &[u8],
    ) -> Result<ExportHandle, nfsstat3> {
        Ok(self.lookup_found(who, dir, name)?.1.handle())
    }

    /// The directory `dir` and its entry `name` (`.` and `..` too), as `who` may look it up.
    fn lookup_found(
        &self,
        who: &Caller,
        dir: &ExportHandle,
        name: &[u8],
    ) -> Result<(Found, Found), nfsstat3> {
        let d = self.dir(who, dir, EXEC)?;
        let found = match name {
            b"." => self.found_at(d.rel.clone()).map_err(io_err)?,
            b".." => {
                let parent = d.rel.parent().map(Path::to_path_buf).unwrap_or_default();
                self.found_at(parent).map_err(io_err)?
            }
            _ => self.child(&d, &entry_name(name)?)?,
        };
        Ok((d, found))
    }

    /// LOOKUP as its reply has it: the entry's handle and attributes, and the directory's.
    fn lookup_attrs(
        &self,
        who: &Caller,
        dir: &ExportHandle,
        name: &[u8],
    ) -> Result<(ExportHandle, fattr3, fattr3), nfsstat3> {
        let (d, f) = self.lookup_found(who, dir, name)?;
        Ok((f.handle(), self.attr(&f.meta), self.attr(&d.meta)))
    }

    fn read(
        &self,
        who: &Caller,
        h: &ExportHandle,
        offset: u64,
        count: u32,
    ) -> Result<(Vec<u8>, bool), nfsstat3> {
        let mut buf = Vec::new();
        let (eof, _) = self.read_into(who, h, offset, count, &mut buf)?;
        Ok((buf, eof))
    }

    /// READ, the bytes appended to `out` (a reply being built around them: no copy of the data
    /// between the page cache and the socket's buffer); whether they reach the end, and the
    /// file's attributes.
    fn read_into(
        &self,
        who: &Caller,
        h: &ExportHandle,
        offset: u64,
        count: u32,
        out: &mut Vec<u8>,
    ) -> Result<(bool, fattr3), nfsstat3> {
        let f = self.resolve(h)?;
        if f.meta.is_dir() {
            return Err(nfsstat3::NFS3ERR_ISDIR);
        }
        if !f.meta.is_file() {
            return Err(nfsstat3::NFS3ERR_INVAL);
        }
        if !access::permits_io(who, &f.owner(), READ) {
            return Err(nfsstat3::NFS3ERR_ACCES);
        }
        let mut file = reopen(f.file.as_fd(), false).map_err(io_err)?;
        let len = file.metadata().map_err(io_err)?.len();
        let want = u64::from(count).min(len.saturating_sub(offset));
        out.reserve(usize::try_from(want).unwrap_or(0));
        // A descriptor of our own: its offset is ours to move. read_to_end fills the reserved
        // room without zeroing it first.
        let got = file
            .seek(SeekFrom::Start(offset))
            .and_then(|_| (&mut file).take(want).read_to_end(out))
            .map_err(io_err)?;
        Ok((offset + got as u64 >= len, self.attr(&f.meta)))
    }

    fn write(
        &self,
        who: &Caller,
        h: &ExportHandle,
        offset: u64,
        data: &[u8],
        stable: stable_how,
    ) -> Result<(fattr3, stable_how), nfsstat3> {
        let f = self.resolve(h)?;
        if f.meta.is_dir() {
            return Err(nfsstat3::NFS3ERR_ISDIR);
        }
        if !f.meta.is_file() {
            return Err(nfsstat3::NFS3ERR_INVAL);
        }
        let owner = f.owner();
        if !access::permits_io(who, &owner, WRITE) {
            return Err(nfsstat3::NFS3ERR_ACCES);
        }
        let file = reopen(f.file.as_fd(), true).map_err(io_err)?;
        file.write_all_at(data, offset).map_err(io_err)?;
        let kill = access::bits_killed_by_write(who, &owner);
        if kill != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(owner.mode & 0o7777 & !kill))
                .map_err(io_err)?;
        }
        // RFC 1813 §3.3.7: FILE_SYNC and DATA_SYNC are on stable storage before the reply. UNSTABLE
        // is made DATA_SYNC too: nfs3_server's write verifier is the handle generation, which we keep
        // across restarts, so after a crash of the master a client could not tell that uncommitted
        // data was lost and would not send it again.
        let done = match stable {
            stable_how::FILE_SYNC => {
                file.sync_all().map_err(io_err)?;
                stable_how::FILE_SYNC
            }
            stable_how::DATA_SYNC | stable_how::UNSTABLE => {
                file.sync_data().map_err(io_err)?;
                stable_how::DATA_SYNC
            }
        };
        Ok((self.attr(&file.metadata().map_err(io_err)?), done))
    }

    fn commit(&self, h: &ExportHandle) -> Result<(), nfsstat3> {
        let f = self.resolve(h)?;
        if !f.meta.is_file() {
            return Ok(());
        }
        reopen(f.file.as_fd(), false)
            .and_then(|file| file.sync_all())
            .map_err(io_err)
    }

    fn create(
        &self,
        who: &Caller,
        dir: &ExportHandle,
        name: &[u8],
        attr: sattr3,
    ) -> Result<(ExportHandle, fattr3), nfsstat3> {
        let d = self.dir(who, dir, EXEC)?;
        let cname = entry_name(name)?;
        if access::may_create(who, &d.owner()) {
            match open_at(
                d.file.as_fd(),
                &cname,
                libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW,
                0o600,
            ) {
                Ok(new) => {
                    // Created as root: give it to the caller, then the mode (chown clears set-id bits).
                    std::os::unix::fs::fchown(&new, Some(who.uid), Some(Self::new_gid(who, &d)))
                        .map_err(io_err)?;
                    let c = self.child(&d, &cname)?;
                    let mode = match attr.mode {
                        Nfs3Option::Some(m) => access::chmod_mode(who, &c.owner(), m),
                        Nfs3Option::None => FILE_MODE,
                    };
                    new.set_permissions(std::fs::Permissions::from_mode(mode))
                        .map_err(io_err)?;
                    let rest = sattr3 {
                        mode: Nfs3Option::None,
                        ..attr
                    };
                    let c = self.child(&d, &cname)?;
                    self.apply(who, &c, &rest)?;
                    let c = self.child(&d, &cname)?;
                    return Ok((c.handle(), self.attr(&c.meta)));
                }
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                Err(e) => return Err(io_err(e)),
            }
        }
        // UNCHECKED on an existing file (RFC 1813 §3.3.8): it stays, with the attributes applied.
        let c = match self.child(&d, &cname) {
            Err(nfsstat3::NFS3ERR_NOENT) => return Err(nfsstat3::NFS3ERR_ACCES),
            r => r?,
        };
        if !c.meta.is_file() {
            return Err(nfsstat3::NFS3ERR_EXIST);
        }
        self.apply(who, &c, &attr)?;
        let c = self.child(&d, &cname)?;
        Ok((c.handle(), self.attr(&c.meta)))
    }

    /// EXCLUSIVE create: the verifier is kept in the new file's atime and mtime (as knfsd does), so
    /// a retransmission finds it and succeeds; the client then sets the real attributes.
    fn create_exclusive(
        &self,
        who: &Caller,
        dir: &ExportHandle,
        name: &[u8],
        verf: &createverf3,
    ) -> Result<ExportHandle, nfsstat3> {
        let d = self.dir(who, dir, WRITE | EXEC)?;
        let cname = entry_name(name)?;
        let mut a = [0u8; 4];
        let mut m = [0u8; 4];
        a.copy_from_slice(&verf.0[..4]);
        m.copy_from_slice(&verf.0[4..]);
        let (atime, mtime) = (u32::from_be_bytes(a), u32::from_be_bytes(m));
        match open_at(
            d.file.as_fd(),
            &cname,
            libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW,
            0,
        ) {
            Ok(new) => {
                std::os::unix::fs::fchown(&new, Some(who.uid), Some(Self::new_gid(who, &d)))
                    .map_err(io_err)?;
                let times = std::fs::FileTimes::new()
                    .set_accessed(
                        std::time::UNIX_EPOCH + std::time::Duration::from_secs(atime.into()),
                    )
                    .set_modified(
                        std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime.into()),
                    );
                new.set_times(times).map_err(io_err)?;
                Ok(self.child(&d, &cname)?.handle())
            }
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                let c = self.child(&d, &cname)?;
                let same = c.meta.is_file()
                    && c.meta.atime() == i64::from(atime)
                    && c.meta.mtime() == i64::from(mtime)
                    && c.meta.uid() == who.uid;
                if same {
                    Ok(c.handle())
                } else {
                    Err(nfsstat3::NFS3ERR_EXIST)
                }
            }
            Err(e) => Err(io_err(e)),
        }
    }

    fn mkdir(
        &self,
        who: &Caller,
        dir: &ExportHandle,
        name: &[u8],
    ) -> Result<(ExportHandle, fattr3), nfsstat3> {
        let d = self.dir(who, dir, WRITE | EXEC)?;
        let cname = entry_name(name)?;
        // SAFETY: the descriptor is open for the call and the name is NUL-terminated.
        check(unsafe { libc::mkdirat(d.file.as_raw_fd(), cname.as_ptr(), 0o700) })
            .map_err(io_err)?;
        let c = self.child(&d, &cname)?;
        chown_fd(c.file.as_fd(), Some(who.uid), Some(Self::new_gid(who, &d))).map_err(io_err)?;
        // A set-group-id directory passes the bit on, as on Linux.
        let mode = DIR_MODE | (d.meta.mode() & S_ISGID);
        chmod_fd(c.file.as_fd(), mode).map_err(io_err)?;
        let c = self.child(&d, &cname)?;
        Ok((c.handle(), self.attr(&c.meta)))
    }

    fn symlink(
        &self,
        who: &Caller,
        dir: &ExportHandle,
        name: &[u8],
        target: &[u8],
    ) -> Result<(ExportHandle, fattr3), nfsstat3> {
        let d = self.dir(who, dir, WRITE | EXEC)?;
        let cname = entry_name(name)?;
        // The target is only stored: the server never follows a symlink.
        if target.is_empty() {
            return Err(nfsstat3::NFS3ERR_INVAL);
        }
        let ctarget = CString::new(target).map_err(|_| nfsstat3::NFS3ERR_INVAL)?;
        // SAFETY: both strings are NUL-terminated and the descriptor is open for the call.
        check(unsafe { libc::symlinkat(ctarget.as_ptr(), d.file.as_raw_fd(), cname.as_ptr()) })
            .map_err(io_err)?;
        let c = self.child(&d, &cname)?;
        chown_fd(c.file.as_fd(), Some(who.uid), Some(Self::new_gid(who, &d))).map_err(io_err)?;
        let c = self.child(&d, &cname)?;
        Ok((c.handle(), self.attr(&c.meta)))
    }

    fn readlink(&self, h: &ExportHandle) -> Result<Vec<u8>, nfsstat3> {
        self.readlink_attrs(h).map(|(target, _)| target)
    }

    /// READLINK as its reply has it: the target, and the link's attributes.
    fn readlink_attrs(&self, h: &ExportHandle) -> Result<(Vec<u8>, fattr3), nfsstat3> {
        let f = self.resolve(h)?;
        if !f.meta.file_type().is_symlink() {
            return Err(nfsstat3::NFS3ERR_INVAL);
        }
        let mut buf = vec![0u8; 4096];
        // SAFETY: the descriptor (O_PATH of the symlink) is open, the empty path means the link
        // itself, and `buf` is writable for its whole length.
        let n = unsafe {
            libc::readlinkat(
                f.file.as_raw_fd(),
                c"".as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        let n = usize::try_from(n).map_err(|_| io_err(io::Error::last_os_error()))?;
        buf.truncate(n);
        Ok((buf, self.attr(&f.meta)))
    }

    fn remove(&self, who: &Caller, dir: &ExportHandle, name: &[u8]) -> Result<(), nfsstat3> {
        let d = self.dir(who, dir, EXEC)?;
        let cname = entry_name(name)?;
        let victim = self.child(&d, &cname)?;
        if !access::may_delete(who, &d.owner(), victim.meta.uid()) {
            return Err(nfsstat3::NFS3ERR_ACCES);
        }
        // nfs3_server sends REMOVE and RMDIR here alike: the entry's kind decides.
        let flags = if victim.meta.is_dir() {
            libc::AT_REMOVEDIR
        } else {
            0
        };
        // SAFETY: the descriptor is open for the call and the name is NUL-terminated.
        check(unsafe { libc::unlinkat(d.file.as_raw_fd(), cname.as_ptr(), flags) }).map_err(io_err)
    }

    fn rename(
        &self,
        who: &Caller,
        from_dir: &ExportHandle,
        from: &[u8],
        to_dir: &ExportHandle,
        to: &[u8],
    ) -> Result<(), nfsstat3> {
        let fd = self.dir(who, from_dir, EXEC)?;
        let td = self.dir(who, to_dir, EXEC)?;
        let (cfrom, cto) = (entry_name(from)?, entry_name(to)?);
        let src = self.child(&fd, &cfrom)?;
        if !access::may_delete(who, &fd.owner(), src.meta.uid())
            || !access::may_create(who, &td.owner())
        {
            return Err(nfsstat3::NFS3ERR_ACCES);
        }
        match self.child(&td, &cto) {
            Ok(old) if !access::may_delete(who, &td.owner(), old.meta.uid()) => {
                return Err(nfsstat3::NFS3ERR_ACCES);
            }
            Ok(_) | Err(nfsstat3::NFS3ERR_NOENT) => {}
            Err(e) => return Err(e),
        }
        // A directory moving to another parent has its `..` rewritten: that takes write on it.
        if src.meta.is_dir() && fd.id != td.id && !access::permits(who, &src.owner(), WRITE) {
            return Err(nfsstat3::NFS3ERR_ACCES);
        }
        // SAFETY: both descriptors are open for the call and both names are NUL-terminated.
        check(unsafe {
            libc::renameat(
                fd.file.as_raw_fd(),
                cfrom.as_ptr(),
                td.file.as_raw_fd(),
                cto.as_ptr(),
            )
        })
        .map_err(io_err)?;
        // Paths noted below the old name now live below the new one.
        let new_rel = td.rel.join(OsStr::from_bytes(to));
        if let Ok(mut paths) = self.paths.write() {
            for p in paths.values_mut() {
                if let Ok(tail) = p.strip_prefix(&src.rel) {
                    *p = new_rel.join(tail);
                }
            }
        }
        Ok(())
    }

    fn link(
        &self,
        who: &Caller,
        file: &ExportHandle,
        dir: &ExportHandle,
        name: &[u8],
    ) -> Result<(), nfsstat3> {
        let f = self.resolve(file)?;
        if f.meta.is_dir() {
            return Err(nfsstat3::NFS3ERR_ISDIR);
        }
        let d = self.dir(who, dir, WRITE | EXEC)?;
        let cname = entry_name(name)?;
        // Like fs.protected_hardlinks: linking another user's file takes read and write on it.
        let owner = f.owner();
        if !(who.is_root() || who.uid == owner.uid || access::permits(who, &owner, READ | WRITE)) {
            return Err(nfsstat3::NFS3ERR_ACCES);
        }
        let src = proc_cpath(f.file.as_fd());
        // SAFETY: both paths are NUL-terminated, the directory descriptor is open; the /proc path
        // with AT_SYMLINK_FOLLOW names the file `f` holds, not anything the link could point to.
        check(unsafe {
            libc::linkat(
                libc::AT_FDCWD,
                src.as_ptr(),
                d.file.as_raw_fd(),
                cname.as_ptr(),
                libc::AT_SYMLINK_FOLLOW,
            )
        })
        .map_err(io_err)
    }

    fn setattr(&self, who: &Caller, h: &ExportHandle, attr: &sattr3) -> Result<fattr3, nfsstat3> {
        let f = self.resolve(h)?;
        self.apply(who, &f, attr)?;
        Ok(self.attr(&f.file.metadata().map_err(io_err)?))
    }

    /// SETATTR's changes, in the order a local `chown`, `chmod`, `truncate`, `utimensat` would do them.
    fn apply(&self, who: &Caller, f: &Found, attr: &sattr3) -> Result<(), nfsstat3> {
        let mut owner = f.owner();
        let uid = match attr.uid {
            Nfs3Option::Some(u) => Some(u),
            Nfs3Option::None => None,
        };
        let gid = match attr.gid {
            Nfs3Option::Some(g) => Some(g),
            Nfs3Option::None => None,
        };
        if uid.is_some() || gid.is_some() {
            if !access::may_chown(who, &owner, uid, gid) {
                return Err(nfsstat3::NFS3ERR_PERM);
            }
            chown_fd(f.file.as_fd(), uid, gid).map_err(io_err)?;
            owner = Owner {
                mode: f.file.metadata().map_err(io_err)?.mode(),
                ..owner
            };
        }
        let is_link = f.meta.file_type().is_symlink();
        if let Nfs3Option::Some(mode) = attr.mode {
            if !access::may_chmod(who, &owner) {
                return Err(nfsstat3::NFS3ERR_PERM);
            }
            // A symlink has no mode of its own on Linux: nothing to change.
            if !is_link {
                chmod_fd(f.file.as_fd(), access::chmod_mode(who, &owner, mode)).map_err(io_err)?;
            }
        }
        if let Nfs3Option::Some(size) = attr.size {
            if f.meta.is_dir() {
                return Err(nfsstat3::NFS3ERR_ISDIR);
            }
            if !f.meta.is_file() {
                return Err(nfsstat3::NFS3ERR_INVAL);
            }
            if !access::permits_io(who, &owner, WRITE) {
                return Err(nfsstat3::NFS3ERR_ACCES);
            }
            reopen(f.file.as_fd(), true)
                .and_then(|file| file.set_len(size))
                .map_err(io_err)?;
        }
        let omit = libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        };
        let now = libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        };
        let (atime, a_server, a_set) = match &attr.atime {
            set_atime::DONT_CHANGE => (omit, true, false),
            set_atime::SET_TO_SERVER_TIME => (now, true, true),
            set_atime::SET_TO_CLIENT_TIME(t) => (timespec(t), false, true),
        };
        let (mtime, m_server, m_set) = match &attr.mtime {
            set_mtime::DONT_CHANGE => (omit, true, false),
            set_mtime::SET_TO_SERVER_TIME => (now, true, true),
            set_mtime::SET_TO_CLIENT_TIME(t) => (timespec(t), false, true),
        };
        if (a_set || m_set) && !is_link {
            let to_server = a_server && m_server;
            if !access::may_set_times(who, &owner, to_server) {
                return Err(if to_server {
                    nfsstat3::NFS3ERR_ACCES
                } else {
                    nfsstat3::NFS3ERR_PERM
                });
            }
            let path = proc_cpath(f.file.as_fd());
            let times = [atime, mtime];
            // SAFETY: the path is NUL-terminated and names the file `f` holds open; `times` is
            // an array of two timespecs as utimensat requires.
            check(unsafe { libc::utimensat(libc::AT_FDCWD, path.as_ptr(), times.as_ptr(), 0) })
                .map_err(io_err)?;
        }
        Ok(())
    }

    /// Up to `max` entries of `dir` after `cookie`, in cookie order, and whether that was all.
    fn list(
        &self,
        dir: &Found,
        after: u64,
        max: usize,
    ) -> Result<(Vec<DirEntryPlus<ExportHandle>>, bool), nfsstat3> {
        let mut left = max;
        self.list_while(dir, after, |_| {
            left = left.checked_sub(1)?;
            Some(())
        })
    }

    /// The entries of `dir` after `cookie`, in cookie order, for as long as `fits` takes their
    /// names (it is asked before an entry's file is looked at), and whether that was all. The
    /// read-only export answers from its remembered entries (see [`ENTRIES_FOR`]).
    fn list_while(
        &self,
        dir: &Found,
        after: u64,
        mut fits: impl FnMut(&[u8]) -> Option<()>,
    ) -> Result<(Vec<DirEntryPlus<ExportHandle>>, bool), nfsstat3> {
        if self.mode == Mode::ReadOnly {
            let all = self.all_entries(dir)?;
            let start = all.partition_point(|e| e.cookie <= after);
            let mut out = Vec::new();
            for e in &all[start..] {
                if fits(e.name.as_ref()).is_none() {
                    return Ok((out, false));
                }
                out.push(e.clone());
            }
            return Ok((out, true));
        }
        let names = self.names(dir)?;
        // Sorted by cookie: the entries after `after` start where it would be.
        let start = names.partition_point(|(c, _)| *c <= after);
        let mut out = Vec::new();
        for (cookie, name) in &names[start..] {
            if fits(name).is_none() {
                return Ok((out, false));
            }
            // Gone between the listing and now, or on another file system: skip it.
            if let Some(e) = self.entry(dir, *cookie, name)? {
                out.push(e);
            }
        }
        Ok((out, true))
    }

    /// Every entry of `dir`, remembered for the read-only export while the directory is
    /// unchanged and for at most [`ENTRIES_FOR`].
    fn all_entries(&self, dir: &Found) -> Result<Entries, nfsstat3> {
        let changed = Changed::of(&dir.meta);
        if let Ok(e) = self.entries.lock()
            && let Some((at, when, all)) = e.get(&dir.id.ino)
            && *at == changed
            && when.elapsed() < ENTRIES_FOR
        {
            return Ok(all.clone());
        }
        let names = self.names(dir)?;
        let mut all = Vec::with_capacity(names.len());
        for (cookie, name) in names.iter() {
            if let Some(e) = self.entry(dir, *cookie, name)? {
                // A client that lists a directory asks the attributes of what it found next.
                if let (Some(h), Some(a)) = (&e.name_handle, &e.name_attributes) {
                    self.remember_attr(h, a);
                }
                all.push(e);
            }
        }
        let all = Arc::new(all);
        if let Ok(mut e) = self.entries.lock() {
            insert_bounded(
                &mut e,
                MAX_LISTINGS,
                dir.id.ino,
                (changed, Instant::now(), all.clone()),
            );
        }
        Ok(all)
    }

    /// The entry `name` (cookie `cookie`) of `dir`, with its attributes and handle; `None` when
    /// it is gone or on another file system.
    fn entry(
        &self,
        dir: &Found,
        cookie: u64,
        name: &[u8],
    ) -> Result<Option<DirEntryPlus<ExportHandle>>, nfsstat3> {
        let f = match name {
            b"." => Ok(Found {
                file: dir.file.try_clone().map_err(io_err)?,
                meta: dir.meta.clone(),
                rel: dir.rel.clone(),
                id: dir.id,
            }),
            b".." => self
                .found_at(dir.rel.parent().map(Path::to_path_buf).unwrap_or_default())
                .map_err(io_err),
            _ => entry_name(name).and_then(|c| self.child(dir, &c)),
        };
        Ok(f.ok().map(|f| DirEntryPlus {
            fileid: f.id.ino,
            name: filename3::from(name.to_vec()),
            cookie,
            name_attributes: Some(self.attr(&f.meta)),
            name_handle: Some(f.handle()),
        }))
    }

    /// READDIRPLUS as its reply has it (RFC 1813 §3.3.17): the directory's attributes, the
    /// entries after `cookie` whose names fit in `dircount` bytes and whose whole entries fit
    /// in `maxcount` with the rest of the reply, and whether they reach the end. TOOSMALL when
    /// not even one fits.
    fn readdirplus_attrs(
        &self,
        who: &Caller,
        dir: &ExportHandle,
        cookie: u64,
        dircount: u32,
        maxcount: u32,
    ) -> Result<(fattr3, Vec<DirEntryPlus<ExportHandle>>, bool), nfsstat3> {
        let d = self.dir(who, dir, READ)?;
        let mut budget = readdir_budget::Budget::new(dircount, maxcount);
        let (entries, eof) = self.list_while(&d, cookie, |name| budget.take(name))?;
        if entries.is_empty() && !eof {
            return Err(nfsstat3::NFS3ERR_TOOSMALL);
        }
        Ok((self.attr(&d.meta), entries, eof))
    }
}

/// A directory listing handed out a chunk at a time, each chunk read off the async runtime.
#[derive(Debug)]
pub struct Listing {
    inner: Arc<Inner>,
    dir: ExportHandle,
    ready: VecDeque<DirEntryPlus<ExportHandle>>,
    last_cookie: u64,
    complete: bool,
}

impl ReadDirPlusIterator<ExportHandle> for Listing {
    async fn next(&mut self) -> NextResult<DirEntryPlus<ExportHandle>> {
        if self.ready.is_empty() && !self.complete {
            let (inner, dir, after) = (self.inner.clone(), self.dir, self.last_cookie);
            let chunk = off_runtime(move || {
                let d = inner.resolve(&dir)?;
                inner.list(&d, after, LIST_CHUNK)
            })
            .await;
            match chunk {
                Ok((entries, complete)) => {
                    self.ready.extend(entries);
                    self.complete = complete;
                }
                Err(e) => return NextResult::Err(e),
            }
        }
        match self.ready.pop_front() {
            Some(e) => {
                self.last_cookie = e.cookie;
                NextResult::Ok(e)
            }
            None => NextResult::Eof,
        }
    }
}

impl NfsReadFileSystem for DirExport {
    type Handle = ExportHandle;

    fn root_dir(&self) -> ExportHandle {
        ExportHandle::new(&self.inner.root_id)
    }

    fn authorize(&self, auth: Option<&auth_unix>) -> bool {
        self.inner.callers.record(auth);
        true
    }

    async fn lookup(
        &self,
        dirid: &ExportHandle,
        filename: &filename3<'_>,
    ) -> Result<ExportHandle, nfsstat3> {
        let (dir, name) = (*dirid, filename.as_ref().to_vec());
        self.blocking(move |i, who| i.lookup(who, &dir, &name))
            .await
    }

    async fn getattr(&self, id: &ExportHandle) -> Result<fattr3, nfsstat3> {
        let id = *id;
        self.blocking(move |i, _| i.getattr(&id)).await
    }

    async fn read(
        &self,
        id: &ExportHandle,
        offset: u64,
        count: u32,
    ) -> Result<(Vec<u8>, bool), nfsstat3> {
        let id = *id;
        self.blocking(move |i, who| i.read(who, &id, offset, count))
            .await
    }

    async fn readdirplus(
        &self,
        dirid: &ExportHandle,
        cookie: u64,
    ) -> Result<impl ReadDirPlusIterator<ExportHandle>, nfsstat3> {
        let dir = *dirid;
        let (ready, complete) = self
            .blocking(move |i, who| {
                let d = i.dir(who, &dir, READ)?;
                i.list(&d, cookie, FIRST_CHUNK)
            })
            .await?;
        Ok(Listing {
            inner: self.inner.clone(),
            dir,
            last_cookie: ready.last().map_or(cookie, |e| e.cookie),
            ready: ready.into(),
            complete,
        })
    }

    async fn readlink(&self, id: &ExportHandle) -> Result<nfspath3<'_>, nfsstat3> {
        let id = *id;
        Ok(nfspath3::from(
            self.blocking(move |i, _| i.readlink(&id)).await?,
        ))
    }

    /// nfs3_server 0.11's answer plus FSF3_LINK: this export makes hard links (through the front).
    async fn fsinfo(&self, root: &ExportHandle) -> Result<FSINFO3resok, nfsstat3> {
        const MIB: u32 = 1 << 20;
        let root = *root;
        let attr = self.blocking(move |i, _| i.getattr(&root)).await;
        Ok(FSINFO3resok {
            obj_attributes: attr.map_or(Nfs3Option::None, Nfs3Option::Some),
            rtmax: MIB,
            rtpref: MIB,
            rtmult: MIB,
            wtmax: MIB,
            wtpref: MIB,
            wtmult: MIB,
            dtpref: MIB,
            maxfilesize: 128 << 30,
            time_delta: nfstime3 {
                seconds: 0,
                nseconds: 1_000_000,
            },
            properties: match self.inner.mode {
                Mode::ReadWrite => FSF3_LINK | FSF3_SYMLINK | FSF3_HOMOGENEOUS | FSF3_CANSETTIME,
                Mode::ReadOnly => FSF3_SYMLINK | FSF3_HOMOGENEOUS,
            },
        })
    }
}

impl NfsFileSystem for DirExport {
    async fn setattr(&self, id: &ExportHandle, setattr: sattr3) -> Result<fattr3, nfsstat3> {
        let id = *id;
        self.blocking_write(move |i, who| i.setattr(who, &id, &setattr))
            .await
    }

    async fn write(
        &self,
        id: &ExportHandle,
        offset: u64,
        data: &[u8],
        stable: stable_how,
    ) -> Result<(fattr3, stable_how), nfsstat3> {
        let (id, data) = (*id, data.to_vec());
        self.blocking_write(move |i, who| i.write(who, &id, offset, &data, stable))
            .await
    }

    async fn create(
        &self,
        dirid: &ExportHandle,
        filename: &filename3<'_>,
        attr: sattr3,
    ) -> Result<(ExportHandle, fattr3), nfsstat3> {
        let (dir, name) = (*dirid, filename.as_ref().to_vec());
        self.blocking_write(move |i, who| i.create(who, &dir, &name, attr))
            .await
    }

    async fn create_exclusive(
        &self,
        dirid: &ExportHandle,
        filename: &filename3<'_>,
        createverf: createverf3,
    ) -> Result<ExportHandle, nfsstat3> {
        let (dir, name) = (*dirid, filename.as_ref().to_vec());
        self.blocking_write(move |i, who| i.create_exclusive(who, &dir, &name, &createverf))
            .await
    }

    async fn mkdir(
        &self,
        dirid: &ExportHandle,
        dirname: &filename3<'_>,
    ) -> Result<(ExportHandle, fattr3), nfsstat3> {
        let (dir, name) = (*dirid, dirname.as_ref().to_vec());
        self.blocking_write(move |i, who| i.mkdir(who, &dir, &name))
            .await
    }

    async fn remove(&self, dirid: &ExportHandle, filename: &filename3<'_>) -> Result<(), nfsstat3> {
        let (dir, name) = (*dirid, filename.as_ref().to_vec());
        self.blocking_write(move |i, who| i.remove(who, &dir, &name))
            .await
    }

    async fn rename<'a>(
        &self,
        from_dirid: &ExportHandle,
        from_filename: &filename3<'a>,
        to_dirid: &ExportHandle,
        to_filename: &filename3<'a>,
    ) -> Result<(), nfsstat3> {
        let (fd, from) = (*from_dirid, from_filename.as_ref().to_vec());
        let (td, to) = (*to_dirid, to_filename.as_ref().to_vec());
        self.blocking_write(move |i, who| i.rename(who, &fd, &from, &td, &to))
            .await
    }

    async fn symlink<'a>(
        &self,
        dirid: &ExportHandle,
        linkname: &filename3<'a>,
        symlink: &nfspath3<'a>,
        _attr: &sattr3,
    ) -> Result<(ExportHandle, fattr3), nfsstat3> {
        let (dir, name, target) = (
            *dirid,
            linkname.as_ref().to_vec(),
            symlink.as_ref().to_vec(),
        );
        self.blocking_write(move |i, who| i.symlink(who, &dir, &name, &target))
            .await
    }

    async fn commit(&self, id: &ExportHandle, _offset: u64, _count: u32) -> Result<(), nfsstat3> {
        let id = *id;
        self.blocking_write(move |i, _| i.commit(&id)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nfs3_server::vfs::FileHandle;

    fn user(uid: u32) -> Caller {
        Caller {
            uid,
            gid: uid,
            groups: vec![],
        }
    }

    fn name(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }

    fn mode(m: u32) -> sattr3 {
        sattr3 {
            mode: Nfs3Option::Some(m),
            ..sattr3::default()
        }
    }

    /// An export of a fresh directory with the top mode 1777, as ombootd makes it.
    fn export() -> (tempfile::TempDir, DirExport) {
        let d = tempfile::tempdir().unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        let fs = DirExport::new(d.path(), Mode::ReadWrite).unwrap();
        (d, fs)
    }

    fn new_file(fs: &DirExport, who: &Caller, n: &str, m: u32, data: &[u8]) -> ExportHandle {
        let i = &fs.inner;
        let root = fs.root_dir();
        let (h, _) = i.create(who, &root, &name(n), mode(m)).unwrap();
        i.write(who, &h, 0, data, stable_how::FILE_SYNC).unwrap();
        h
    }

    #[test]
    fn the_read_only_root_serves_versions_and_a_pruned_one_is_stale_on_read() {
        let d = tempfile::tempdir().unwrap();
        for (v, data) in [("0000000001", "one"), ("0000000002", "two")] {
            std::fs::create_dir_all(d.path().join(v).join("rootfs/etc")).unwrap();
            std::fs::write(d.path().join(v).join("rootfs/etc/hostname"), data).unwrap();
        }
        let fs = DirExport::new(d.path(), Mode::ReadOnly).unwrap();
        let root = Caller::root();
        let walk = |path: &[&str]| {
            let mut h = fs.root_dir();
            for p in path {
                h = fs.inner.lookup(&root, &h, p.as_bytes()).unwrap();
            }
            h
        };
        let old = walk(&["0000000001", "rootfs", "etc", "hostname"]);
        let new = walk(&["0000000002", "rootfs", "etc", "hostname"]);
        assert_eq!(fs.inner.read(&root, &old, 0, 10).unwrap().0, b"one");
        assert_eq!(fs.inner.read(&root, &new, 0, 10).unwrap().0, b"two");
        // Nothing is written through the root export, whoever asks.
        assert_eq!(
            fs.inner.writable(),
            Err(nfsstat3::NFS3ERR_ROFS),
            "the node root took a write"
        );
        // Version 1 pruned (no node uses it): its handles are stale, READ included; after a
        // restart too, and the walk that looks for them happens once.
        std::fs::remove_dir_all(d.path().join("0000000001")).unwrap();
        assert_eq!(
            fs.inner.read(&root, &old, 0, 10),
            Err(nfsstat3::NFS3ERR_STALE)
        );
        let fresh = DirExport::new(d.path(), Mode::ReadOnly).unwrap();
        assert_eq!(
            fresh.inner.read(&root, &old, 0, 10),
            Err(nfsstat3::NFS3ERR_STALE)
        );
        assert!(fresh.inner.last_walk.lock().unwrap().is_some());
        assert_eq!(fresh.inner.read(&root, &new, 0, 10).unwrap().0, b"two");
    }

    #[test]
    fn a_read_only_listing_is_remembered_until_its_directory_changes() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a"), b"1").unwrap();
        let fs = DirExport::new(d.path(), Mode::ReadOnly).unwrap();
        let (i, root) = (&fs.inner, Caller::root());
        let names = |i: &Inner| {
            let dir = i.dir(&root, &fs.root_dir(), READ).unwrap();
            let (entries, complete) = i.list(&dir, 0, 100).unwrap();
            assert!(complete);
            let mut n: Vec<Vec<u8>> = entries.iter().map(|e| e.name.0.to_vec()).collect();
            n.sort();
            n
        };
        assert_eq!(names(i), [&b"."[..], b"..", b"a"]);
        // Remembered: a change to a file's mode shows only once the entries expire.
        std::fs::set_permissions(d.path().join("a"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        let mode_of_a = |i: &Inner| {
            let dir = i.dir(&root, &fs.root_dir(), READ).unwrap();
            let (entries, _) = i.list(&dir, 0, 100).unwrap();
            let a = entries.iter().find(|e| e.name.as_ref() == b"a").unwrap();
            a.name_attributes.as_ref().unwrap().mode
        };
        assert_eq!(mode_of_a(i), 0o644);
        // A new entry changes the directory: read again at once.
        std::fs::write(d.path().join("b"), b"2").unwrap();
        assert_eq!(names(i), [&b"."[..], b"..", b"a", b"b"]);
        assert_eq!(mode_of_a(i), 0o600);
    }

    #[test]
    fn created_files_belong_to_the_caller_with_the_requested_mode() {
        let (d, fs) = export();
        let alice = user(1000);
        let h = new_file(&fs, &alice, "a", 0o640, b"hello");
        let meta = std::fs::metadata(d.path().join("a")).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o7777),
            (1000, 1000, 0o640)
        );
        assert_eq!(
            fs.inner.read(&alice, &h, 0, 100).unwrap(),
            (b"hello".to_vec(), true)
        );
        let (dir, attr) = fs
            .inner
            .mkdir(&alice, &fs.root_dir(), &name("sub"))
            .unwrap();
        assert_eq!((attr.uid, attr.mode), (1000, DIR_MODE));
        let (l, attr) = fs.inner.symlink(&alice, &dir, &name("l"), b"../a").unwrap();
        assert_eq!(attr.uid, 1000);
        assert_eq!(fs.inner.readlink(&l).unwrap(), b"../a");
        // Reading through the symlink reaches the link, never its target.
        assert_eq!(
            fs.inner.read(&alice, &l, 0, 10),
            Err(nfsstat3::NFS3ERR_INVAL)
        );
    }

    #[test]
    fn the_mode_bits_refuse_other_users() {
        let (_d, fs) = export();
        let (alice, bob) = (user(1000), user(1001));
        let h = new_file(&fs, &alice, "private", 0o600, b"secret");
        let i = &fs.inner;
        assert_eq!(i.read(&bob, &h, 0, 10), Err(nfsstat3::NFS3ERR_ACCES));
        assert!(matches!(
            i.write(&bob, &h, 0, b"x", stable_how::UNSTABLE),
            Err(nfsstat3::NFS3ERR_ACCES)
        ));
        assert!(matches!(
            i.setattr(&bob, &h, &mode(0o666)),
            Err(nfsstat3::NFS3ERR_PERM)
        ));
        let chown = sattr3 {
            uid: Nfs3Option::Some(1001),
            ..sattr3::default()
        };
        assert!(matches!(
            i.setattr(&alice, &h, &chown),
            Err(nfsstat3::NFS3ERR_PERM)
        ));
        assert_eq!(i.setattr(&Caller::root(), &h, &chown).unwrap().uid, 1001);
        // The sticky top: bob cannot remove or rename alice's file.
        let g = new_file(&fs, &alice, "shared", 0o666, b"x");
        let root = fs.root_dir();
        assert_eq!(
            i.remove(&bob, &root, &name("shared")),
            Err(nfsstat3::NFS3ERR_ACCES)
        );
        assert_eq!(
            i.rename(&bob, &root, &name("shared"), &root, &name("mine")),
            Err(nfsstat3::NFS3ERR_ACCES)
        );
        // …but may write it, as its mode allows, and root reads anything.
        i.write(&bob, &g, 0, b"y", stable_how::DATA_SYNC).unwrap();
        assert_eq!(i.read(&Caller::root(), &h, 0, 10).unwrap().0, b"secret");
        // A directory alice closed: bob may not look inside or create there.
        let (dir, _) = i.mkdir(&alice, &root, &name("closed")).unwrap();
        i.setattr(&alice, &dir, &mode(0o700)).unwrap();
        assert_eq!(i.lookup(&bob, &dir, b"x"), Err(nfsstat3::NFS3ERR_ACCES));
        assert!(matches!(
            i.create(&bob, &dir, &name("x"), sattr3::default()),
            Err(nfsstat3::NFS3ERR_ACCES)
        ));
    }

    #[test]
    fn handles_survive_a_restart_and_go_stale_when_the_file_is_gone() {
        let (d, fs) = export();
        let root_user = Caller::root();
        let h = new_file(&fs, &root_user, "f", 0o644, b"one");
        let (sub, _) = fs
            .inner
            .mkdir(&root_user, &fs.root_dir(), &name("deep"))
            .unwrap();
        let (inner, _) = fs
            .inner
            .create(&root_user, &sub, &name("g"), mode(0o644))
            .unwrap();
        // A new export (ombootd restarted) has never seen these handles.
        let fresh = DirExport::new(d.path(), Mode::ReadWrite).unwrap();
        assert_eq!(fresh.inner.read(&root_user, &h, 0, 10).unwrap().0, b"one");
        assert!(fresh.inner.getattr(&inner).is_ok());
        assert_eq!(fresh.root_dir(), fs.root_dir());
        // Deleted and recreated under the same name (possibly on the same inode): stale.
        std::fs::remove_file(d.path().join("f")).unwrap();
        std::fs::write(d.path().join("f"), b"two").unwrap();
        assert!(matches!(
            fresh.inner.getattr(&h),
            Err(nfsstat3::NFS3ERR_STALE)
        ));
        assert_eq!(
            fresh.inner.read(&root_user, &h, 0, 10),
            Err(nfsstat3::NFS3ERR_STALE)
        );
        // Renamed behind the server's back: stale until the tree may be walked again, then found.
        std::fs::rename(d.path().join("deep"), d.path().join("moved")).unwrap();
        assert!(fresh.inner.getattr(&inner).is_err());
        *fresh.inner.last_walk.lock().unwrap() = Some(Instant::now() - WALK_EVERY);
        assert!(fresh.inner.getattr(&inner).is_ok());
    }

    #[test]
    fn rename_hard_links_and_unlink_of_an_open_file() {
        let (_d, fs) = export();
        let who = user(1000);
        let i = &fs.inner;
        let root = fs.root_dir();
        let h = new_file(&fs, &who, "job.out", 0o644, b"data");
        let (sub, _) = i.mkdir(&who, &root, &name("d")).unwrap();
        i.rename(&who, &root, &name("job.out"), &sub, &name("renamed"))
            .unwrap();
        assert_eq!(i.read(&who, &h, 0, 10).unwrap().0, b"data");
        assert_eq!(i.lookup(&who, &sub, b"renamed").unwrap(), h);
        assert_eq!(
            i.lookup(&who, &root, b"job.out"),
            Err(nfsstat3::NFS3ERR_NOENT)
        );
        // Moving the directory carries the file along.
        i.rename(&who, &root, &name("d"), &root, &name("e"))
            .unwrap();
        assert_eq!(i.read(&who, &h, 0, 10).unwrap().0, b"data");

        // A hard link: same handle, and the file outlives its first name.
        i.link(&who, &h, &root, &name("second")).unwrap();
        assert_eq!(i.lookup(&who, &root, b"second").unwrap(), h);
        assert_eq!(i.getattr(&h).unwrap().nlink, 2);
        let e = i.lookup(&who, &root, b"e").unwrap();
        i.remove(&who, &e, &name("renamed")).unwrap();
        assert_eq!(i.read(&who, &h, 0, 10).unwrap().0, b"data");

        // Unlink of an open file: the client renames it to .nfsXXXX and removes that on close.
        i.rename(&who, &root, &name("second"), &root, &name(".nfs0001"))
            .unwrap();
        let (_, level) = i
            .write(&who, &h, 4, b"+more", stable_how::UNSTABLE)
            .unwrap();
        // Synced at once (see `write`), and said so.
        assert!(matches!(level, stable_how::DATA_SYNC));
        i.commit(&h).unwrap();
        assert_eq!(i.read(&who, &h, 0, 20).unwrap().0, b"data+more");
        i.remove(&who, &root, &name(".nfs0001")).unwrap();
        assert!(matches!(i.getattr(&h), Err(nfsstat3::NFS3ERR_STALE)));
        // A directory goes with REMOVE too (nfs3_server routes RMDIR there); not when full.
        new_file(&fs, &who, "x", 0o644, b"");
        i.rename(&who, &root, &name("x"), &e, &name("x")).unwrap();
        assert_eq!(
            i.remove(&who, &root, &name("e")),
            Err(nfsstat3::NFS3ERR_NOTEMPTY)
        );
        i.remove(&who, &e, &name("x")).unwrap();
        i.remove(&who, &root, &name("e")).unwrap();
    }

    #[test]
    fn nothing_escapes_the_directory() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"no").unwrap();
        let (d, fs) = export();
        std::os::unix::fs::symlink(outside.path(), d.path().join("out")).unwrap();
        let i = &fs.inner;
        let root = fs.root_dir();
        let who = Caller::root();
        for bad in ["..", "a/b", ""] {
            assert!(
                i.create(&who, &root, &name(bad), sattr3::default())
                    .is_err(),
                "{bad}"
            );
        }
        assert_eq!(i.lookup(&who, &root, b"..").unwrap(), root);
        // The symlink is an entry of its own; nothing can be created through it.
        let link = i.lookup(&who, &root, b"out").unwrap();
        assert_eq!(
            i.lookup(&who, &link, b"secret"),
            Err(nfsstat3::NFS3ERR_NOTDIR)
        );
        assert!(
            i.create(&who, &link, &name("x"), sattr3::default())
                .is_err()
        );
        assert!(!outside.path().join("x").exists());
        // A directory swapped for a symlink behind the server's back: its handle is stale.
        let (sub, _) = i.mkdir(&who, &root, &name("sub")).unwrap();
        std::fs::remove_dir(d.path().join("sub")).unwrap();
        std::os::unix::fs::symlink(outside.path(), d.path().join("sub")).unwrap();
        assert_eq!(
            i.lookup(&who, &sub, b"secret"),
            Err(nfsstat3::NFS3ERR_STALE)
        );
        assert!(ExportHandle::from_bytes(b"forged").is_none());
    }

    #[test]
    fn setattr_size_times_and_exclusive_create() {
        let (_d, fs) = export();
        let who = user(1000);
        let i = &fs.inner;
        let h = new_file(&fs, &who, "f", 0o644, b"0123456789");
        let attr = i
            .setattr(
                &who,
                &h,
                &sattr3 {
                    size: Nfs3Option::Some(4),
                    mtime: set_mtime::SET_TO_CLIENT_TIME(nfstime3 {
                        seconds: 1_000_000,
                        nseconds: 5,
                    }),
                    ..sattr3::default()
                },
            )
            .unwrap();
        assert_eq!(
            (attr.size, attr.mtime.seconds, attr.mtime.nseconds),
            (4, 1_000_000, 5)
        );
        let verf = createverf3([1, 2, 3, 4, 5, 6, 7, 8]);
        let root = fs.root_dir();
        let e = i.create_exclusive(&who, &root, b"x", &verf).unwrap();
        assert_eq!(i.create_exclusive(&who, &root, b"x", &verf).unwrap(), e);
        assert_eq!(
            i.create_exclusive(&who, &root, b"x", &createverf3([0; 8])),
            Err(nfsstat3::NFS3ERR_EXIST)
        );
        assert_eq!(i.getattr(&e).unwrap().uid, 1000);
    }

    #[tokio::test]
    async fn listings_page_by_name_cookies_through_the_trait() {
        let (_d, fs) = export();
        let who = Caller::root();
        for n in 0..300 {
            new_file(&fs, &who, &format!("f{n:03}"), 0o644, b"");
        }
        let root = fs.root_dir();
        let mut names = Vec::new();
        let mut cookie = 0;
        loop {
            // 50 per page, as a client with a small buffer asks.
            let mut it = fs.readdirplus(&root, cookie).await.unwrap();
            let mut got = 0;
            while let NextResult::Ok(e) = it.next().await {
                names.push(String::from_utf8_lossy(e.name.as_ref()).to_string());
                cookie = e.cookie;
                got += 1;
                if got == 50 {
                    break;
                }
            }
            if got < 50 {
                break;
            }
            // Entries coming and going between pages do not shift the cookies.
            if names.len() == 100 {
                new_file(&fs, &who, "late", 0o644, b"");
            }
        }
        names.retain(|n| n != "late");
        names.sort();
        let mut want: Vec<String> = (0..300).map(|n| format!("f{n:03}")).collect();
        want.extend([".".to_string(), "..".to_string()]);
        want.sort();
        assert_eq!(names, want);
        // Through the trait a caller without credentials is nobody: the 1777 top lets it create.
        let fs2 = fs.clone();
        let made = tokio::spawn(async move {
            fs2.authorize(None);
            fs2.create(
                &fs2.root_dir(),
                &filename3::from(b"anon".as_slice()),
                sattr3::default(),
            )
            .await
        });
        assert_eq!(made.await.unwrap().unwrap().1.uid, 65534);
    }
}
