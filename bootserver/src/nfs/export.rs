//! A directory exported read-only over NFSv3: file handles are inode numbers, so they stay the same
//! for the same file across server restarts; every write operation answers `NFS3ERR_ROFS`.
//!
//! Attributes are the real ones (modes, owners, times): the nodes' overlay copies them up.
//! Known limit: a handle is the inode number alone, so once a file is deleted and its inode number
//! reused by a new file, an old handle reaches the new file (knfsd adds the inode generation).

use std::collections::HashMap;
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use nfs3_server::nfs3_types::nfs3::{
    createverf3, fattr3, filename3, ftype3, nfspath3, nfsstat3, nfstime3, sattr3, specdata3,
    stable_how,
};
use nfs3_server::vfs::{
    DirEntryPlus, FileHandleU64, NextResult, NfsFileSystem, NfsReadFileSystem, ReadDirPlusIterator,
    VFSCapabilities,
};

use crate::confined;

/// The read-only export of one directory tree.
#[derive(Debug, Clone)]
pub struct DirExport {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    root_ino: u64,
    dev: u64,
    /// inode → one path that reaches it (hard links share an inode and its content).
    paths: RwLock<HashMap<u64, PathBuf>>,
}

impl DirExport {
    /// Export `root` (must be a directory).
    pub fn new(root: &Path) -> std::io::Result<Self> {
        let root = root.canonicalize()?;
        let meta = std::fs::metadata(&root)?;
        if !meta.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                format!("{} is not a directory", root.display()),
            ));
        }
        let paths = RwLock::new(HashMap::from([(meta.ino(), root.clone())]));
        Ok(Self {
            inner: Arc::new(Inner {
                root,
                root_ino: meta.ino(),
                dev: meta.dev(),
                paths,
            }),
        })
    }

    fn path_of(&self, id: u64) -> Result<PathBuf, nfsstat3> {
        if let Some(p) = self
            .inner
            .paths
            .read()
            .map_err(|_| nfsstat3::NFS3ERR_SERVERFAULT)?
            .get(&id)
        {
            return Ok(p.clone());
        }
        // A handle from before a restart: index the whole tree once to find it again.
        self.index_tree()?;
        self.inner
            .paths
            .read()
            .map_err(|_| nfsstat3::NFS3ERR_SERVERFAULT)?
            .get(&id)
            .cloned()
            .ok_or(nfsstat3::NFS3ERR_STALE)
    }

    fn remember(&self, ino: u64, path: PathBuf) -> Result<(), nfsstat3> {
        self.inner
            .paths
            .write()
            .map_err(|_| nfsstat3::NFS3ERR_SERVERFAULT)?
            .entry(ino)
            .or_insert(path);
        Ok(())
    }

    fn index_tree(&self) -> Result<(), nfsstat3> {
        let mut found = Vec::new();
        let mut stack = vec![self.inner.root.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                let Ok(meta) = e.metadata() else { continue };
                if meta.dev() != self.inner.dev {
                    continue;
                }
                if meta.is_dir() {
                    stack.push(e.path());
                }
                found.push((meta.ino(), e.path()));
            }
        }
        let mut paths = self
            .inner
            .paths
            .write()
            .map_err(|_| nfsstat3::NFS3ERR_SERVERFAULT)?;
        for (ino, p) in found {
            paths.entry(ino).or_insert(p);
        }
        Ok(())
    }

    fn stat(&self, path: &Path) -> Result<Metadata, nfsstat3> {
        let meta = std::fs::symlink_metadata(path).map_err(io_to_nfs)?;
        // Another file system mounted inside the image: its inode numbers could collide with ours.
        if meta.dev() != self.inner.dev {
            return Err(nfsstat3::NFS3ERR_NOENT);
        }
        Ok(meta)
    }
}

fn io_to_nfs(e: std::io::Error) -> nfsstat3 {
    match e.kind() {
        std::io::ErrorKind::NotFound => nfsstat3::NFS3ERR_NOENT,
        std::io::ErrorKind::PermissionDenied => nfsstat3::NFS3ERR_ACCES,
        std::io::ErrorKind::NotADirectory => nfsstat3::NFS3ERR_NOTDIR,
        _ => nfsstat3::NFS3ERR_IO,
    }
}

/// The NFSv3 attributes of a file, from its real metadata.
pub fn fattr_of(meta: &Metadata) -> fattr3 {
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
        fsid: 1,
        fileid: meta.ino(),
        atime: time(meta.atime(), meta.atime_nsec()),
        mtime: time(meta.mtime(), meta.mtime_nsec()),
        ctime: time(meta.ctime(), meta.ctime_nsec()),
    }
}

/// A directory listing, computed whole at the first call (directories of a root image are small),
/// `.` and `..` first, then entries by name so pages are deterministic. Cookie n = n-th entry.
#[derive(Debug)]
pub struct Listing {
    entries: Vec<DirEntryPlus<FileHandleU64>>,
    next: usize,
}

impl ReadDirPlusIterator<FileHandleU64> for Listing {
    async fn next(&mut self) -> NextResult<DirEntryPlus<FileHandleU64>> {
        match self.entries.get(self.next) {
            Some(e) => {
                self.next += 1;
                NextResult::Ok(e.clone())
            }
            None => NextResult::Eof,
        }
    }
}

impl NfsReadFileSystem for DirExport {
    type Handle = FileHandleU64;

    fn root_dir(&self) -> FileHandleU64 {
        FileHandleU64::new(self.inner.root_ino)
    }

    async fn lookup(
        &self,
        dirid: &FileHandleU64,
        filename: &filename3<'_>,
    ) -> Result<FileHandleU64, nfsstat3> {
        let dir = self.path_of(dirid.as_u64())?;
        let name = filename.as_ref();
        let target = match name {
            b"." => dir,
            b".." if dir == self.inner.root => dir,
            b".." => dir
                .parent()
                .map(Path::to_path_buf)
                .ok_or(nfsstat3::NFS3ERR_NOENT)?,
            _ if name.contains(&b'/') || name.is_empty() => return Err(nfsstat3::NFS3ERR_INVAL),
            _ => dir.join(std::ffi::OsStr::from_bytes(name)),
        };
        let meta = self.stat(&target)?;
        self.remember(meta.ino(), target)?;
        Ok(FileHandleU64::new(meta.ino()))
    }

    async fn getattr(&self, id: &FileHandleU64) -> Result<fattr3, nfsstat3> {
        let path = self.path_of(id.as_u64())?;
        let meta = self.stat(&path)?;
        if meta.ino() != id.as_u64() {
            // The path now names another file (the image was rebuilt): the handle is stale.
            return Err(nfsstat3::NFS3ERR_STALE);
        }
        Ok(fattr_of(&meta))
    }

    async fn read(
        &self,
        id: &FileHandleU64,
        offset: u64,
        count: u32,
    ) -> Result<(Vec<u8>, bool), nfsstat3> {
        let path = self.path_of(id.as_u64())?;
        let root = self.inner.root.clone();
        tokio::task::spawn_blocking(move || {
            let rel = path
                .strip_prefix(&root)
                .map_err(|_| nfsstat3::NFS3ERR_STALE)?;
            let (file, len) = confined::open_regular(&root, rel, &rel.to_string_lossy()).map_err(
                |e| match e {
                    confined::ConfinedError::NotAFile(_) => nfsstat3::NFS3ERR_INVAL,
                    confined::ConfinedError::Io { source, .. } => io_to_nfs(source),
                    _ => nfsstat3::NFS3ERR_ACCES,
                },
            )?;
            let want =
                usize::try_from(u64::from(count).min(len.saturating_sub(offset))).unwrap_or(0);
            let mut buf = vec![0u8; want];
            let mut done = 0;
            while done < want {
                match file.read_at(&mut buf[done..], offset + done as u64) {
                    Ok(0) => break,
                    Ok(n) => done += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(io_to_nfs(e)),
                }
            }
            buf.truncate(done);
            Ok((buf, offset + done as u64 >= len))
        })
        .await
        .map_err(|_| nfsstat3::NFS3ERR_SERVERFAULT)?
    }

    async fn readdirplus(
        &self,
        dirid: &FileHandleU64,
        cookie: u64,
    ) -> Result<impl ReadDirPlusIterator<FileHandleU64>, nfsstat3> {
        let dir = self.path_of(dirid.as_u64())?;
        let meta = self.stat(&dir)?;
        if !meta.is_dir() {
            return Err(nfsstat3::NFS3ERR_NOTDIR);
        }
        let parent = if dir == self.inner.root {
            dir.clone()
        } else {
            dir.parent().map_or_else(|| dir.clone(), Path::to_path_buf)
        };
        let mut named: Vec<(Vec<u8>, PathBuf)> =
            vec![(b".".to_vec(), dir.clone()), (b"..".to_vec(), parent)];
        let mut children: Vec<(Vec<u8>, PathBuf)> = std::fs::read_dir(&dir)
            .map_err(io_to_nfs)?
            .flatten()
            .map(|e| (e.file_name().as_bytes().to_vec(), e.path()))
            .collect();
        children.sort();
        named.extend(children);
        let start = usize::try_from(cookie).map_err(|_| nfsstat3::NFS3ERR_BAD_COOKIE)?;
        if start > named.len() {
            return Err(nfsstat3::NFS3ERR_BAD_COOKIE);
        }
        let mut entries = Vec::with_capacity(named.len() - start);
        for (i, (name, path)) in named.into_iter().enumerate().skip(start) {
            let Ok(meta) = self.stat(&path) else { continue };
            let ino = meta.ino();
            if name != b"." && name != b".." {
                self.remember(ino, path)?;
            }
            entries.push(DirEntryPlus {
                fileid: ino,
                name: filename3::from(name),
                cookie: i as u64 + 1,
                name_attributes: Some(fattr_of(&meta)),
                name_handle: Some(FileHandleU64::new(ino)),
            });
        }
        Ok(Listing { entries, next: 0 })
    }

    async fn readlink(&self, id: &FileHandleU64) -> Result<nfspath3<'_>, nfsstat3> {
        let path = self.path_of(id.as_u64())?;
        let target = std::fs::read_link(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidInput => nfsstat3::NFS3ERR_INVAL,
            _ => io_to_nfs(e),
        })?;
        Ok(nfspath3::from(target.as_os_str().as_bytes().to_vec()))
    }
}

/// Every write operation: the export is read-only by design (nodes write to their tmpfs overlay).
impl NfsFileSystem for DirExport {
    fn capabilities(&self) -> VFSCapabilities {
        VFSCapabilities::ReadOnly
    }
    async fn setattr(&self, _: &FileHandleU64, _: sattr3) -> Result<fattr3, nfsstat3> {
        Err(nfsstat3::NFS3ERR_ROFS)
    }
    async fn write(
        &self,
        _: &FileHandleU64,
        _: u64,
        _: &[u8],
        _: stable_how,
    ) -> Result<(fattr3, stable_how), nfsstat3> {
        Err(nfsstat3::NFS3ERR_ROFS)
    }
    async fn create(
        &self,
        _: &FileHandleU64,
        _: &filename3<'_>,
        _: sattr3,
    ) -> Result<(FileHandleU64, fattr3), nfsstat3> {
        Err(nfsstat3::NFS3ERR_ROFS)
    }
    async fn create_exclusive(
        &self,
        _: &FileHandleU64,
        _: &filename3<'_>,
        _: createverf3,
    ) -> Result<FileHandleU64, nfsstat3> {
        Err(nfsstat3::NFS3ERR_ROFS)
    }
    async fn mkdir(
        &self,
        _: &FileHandleU64,
        _: &filename3<'_>,
    ) -> Result<(FileHandleU64, fattr3), nfsstat3> {
        Err(nfsstat3::NFS3ERR_ROFS)
    }
    async fn remove(&self, _: &FileHandleU64, _: &filename3<'_>) -> Result<(), nfsstat3> {
        Err(nfsstat3::NFS3ERR_ROFS)
    }
    async fn rename<'a>(
        &self,
        _: &FileHandleU64,
        _: &filename3<'a>,
        _: &FileHandleU64,
        _: &filename3<'a>,
    ) -> Result<(), nfsstat3> {
        Err(nfsstat3::NFS3ERR_ROFS)
    }
    async fn symlink<'a>(
        &self,
        _: &FileHandleU64,
        _: &filename3<'a>,
        _: &nfspath3<'a>,
        _: &sattr3,
    ) -> Result<(FileHandleU64, fattr3), nfsstat3> {
        Err(nfsstat3::NFS3ERR_ROFS)
    }
    async fn commit(&self, _: &FileHandleU64, _: u64, _: u32) -> Result<(), nfsstat3> {
        Err(nfsstat3::NFS3ERR_ROFS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc/many")).unwrap();
        std::fs::write(d.path().join("etc/hostname"), b"node\n").unwrap();
        for i in 0..50 {
            std::fs::write(d.path().join(format!("etc/many/f{i:02}")), b"x").unwrap();
        }
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("etc/passwd-link")).unwrap();
        d
    }

    async fn walk(fs: &DirExport, path: &[&str]) -> FileHandleU64 {
        let mut h = fs.root_dir();
        for part in path {
            h = fs
                .lookup(&h, &filename3::from(part.as_bytes()))
                .await
                .unwrap();
        }
        h
    }

    #[tokio::test]
    async fn handles_survive_a_restart_and_go_stale_when_the_file_is_replaced() {
        let d = tree();
        let h = walk(&DirExport::new(d.path()).unwrap(), &["etc", "hostname"]).await;
        // A new export (ombootd restarted) has never seen this handle: it must find the file again.
        let fresh = DirExport::new(d.path()).unwrap();
        assert_eq!(
            fresh.read(&h, 0, 100).await.unwrap(),
            (b"node\n".to_vec(), true)
        );
        assert_eq!(fresh.getattr(&h).await.unwrap().size, 5);
        // Replaced by a new file written beside it and renamed over it (as a rebuild does, so the
        // old inode is still in use when the new one is made): the old handle is stale, not wrong data.
        std::fs::write(d.path().join("etc/hostname.new"), b"other").unwrap();
        std::fs::rename(
            d.path().join("etc/hostname.new"),
            d.path().join("etc/hostname"),
        )
        .unwrap();
        assert!(matches!(
            fresh.getattr(&h).await,
            Err(nfsstat3::NFS3ERR_STALE)
        ));
        assert!(
            DirExport::new(d.path())
                .unwrap()
                .read(&h, 0, 10)
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn readdir_pages_lose_nothing() {
        let d = tree();
        let fs = DirExport::new(d.path()).unwrap();
        let dir = walk(&fs, &["etc", "many"]).await;
        let mut names = Vec::new();
        let mut cookie = 0;
        loop {
            // Take at most 7 per page, as a client with a small buffer would.
            let mut it = fs.readdirplus(&dir, cookie).await.unwrap();
            let mut got = 0;
            while let NextResult::Ok(e) = it.next().await {
                names.push(String::from_utf8_lossy(e.name.as_ref()).to_string());
                cookie = e.cookie;
                got += 1;
                if got == 7 {
                    break;
                }
            }
            if got < 7 {
                break;
            }
        }
        let mut want = vec![".".to_string(), "..".to_string()];
        want.extend((0..50).map(|i| format!("f{i:02}")));
        assert_eq!(names, want);
    }

    #[tokio::test]
    async fn symlinks_are_returned_not_followed_and_modes_are_real() {
        let d = tree();
        std::fs::set_permissions(
            d.path().join("etc/hostname"),
            std::os::unix::fs::PermissionsExt::from_mode(0o640),
        )
        .unwrap();
        let fs = DirExport::new(d.path()).unwrap();
        let link = walk(&fs, &["etc", "passwd-link"]).await;
        assert_eq!(fs.getattr(&link).await.unwrap().type_, ftype3::NF3LNK);
        assert_eq!(fs.readlink(&link).await.unwrap().as_ref(), b"/etc/passwd");
        assert!(
            fs.read(&link, 0, 100).await.is_err(),
            "READ through a symlink must not reach the host file"
        );
        let host = walk(&fs, &["etc", "hostname"]).await;
        assert_eq!(fs.getattr(&host).await.unwrap().mode, 0o640);
        assert!(matches!(
            fs.lookup(&fs.root_dir(), &filename3::from(b"a/b".as_slice()))
                .await,
            Err(nfsstat3::NFS3ERR_INVAL)
        ));
        assert!(matches!(
            fs.write(&host, 0, b"x", stable_how::FILE_SYNC).await,
            Err(nfsstat3::NFS3ERR_ROFS)
        ));
    }
}
