//! An in-memory file tree and its encoding as a newc cpio archive (optionally gzipped), the
//! format the kernel unpacks as initramfs.
//!
//! Entries are written sorted by path so every directory precedes its contents, all owned by root
//! with mtime 0, so the same inputs give the same bytes.

use std::collections::BTreeMap;
use std::io::Write;

use cpio::newc::{Builder, ModeFileType};

use crate::config::Compression;

/// One file system object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A directory.
    Dir,
    /// A regular file.
    File(Vec<u8>),
    /// A symbolic link to this target.
    Symlink(String),
    /// A character device.
    CharDev {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
}

/// An entry: permission bits and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Permission bits (`0o755`); the file type comes from [`Node`].
    pub perm: u32,
    /// The object.
    pub node: Node,
}

/// The tree cannot be built as asked.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LayoutError {
    /// Paths are relative, without `.`/`..` or empty components.
    #[error("invalid archive path {0:?}")]
    BadPath(String),
    /// Two different objects at one path.
    #[error("{0:?} added twice with different contents")]
    Conflict(String),
    /// A parent is not a directory.
    #[error("{0:?} is inside a non-directory")]
    NotADirectory(String),
    /// newc stores sizes in 32 bits.
    #[error("{0:?} is larger than 4 GiB, which newc cannot store")]
    TooLarge(String),
}

/// A file tree keyed by relative path (`bin/busybox`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    entries: BTreeMap<String, Entry>,
}

impl Layout {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add `node` at `path`, creating missing parent directories (0755). Adding an identical
    /// entry again is allowed, so callers can add shared directories freely.
    pub fn add(&mut self, path: &str, perm: u32, node: Node) -> Result<(), LayoutError> {
        let path = path.trim_start_matches('/');
        if path.is_empty()
            || path
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(LayoutError::BadPath(path.to_owned()));
        }
        let mut parent = String::new();
        for component in path.split('/').take(path.split('/').count() - 1) {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(component);
            match self.entries.get(&parent) {
                None => {
                    self.entries.insert(
                        parent.clone(),
                        Entry {
                            perm: 0o755,
                            node: Node::Dir,
                        },
                    );
                }
                Some(Entry {
                    node: Node::Dir, ..
                }) => {}
                Some(_) => return Err(LayoutError::NotADirectory(path.to_owned())),
            }
        }
        let entry = Entry {
            perm: perm & 0o7777,
            node,
        };
        match self.entries.get(path) {
            Some(existing) if *existing == entry => Ok(()),
            // An implicitly created parent may be given explicit permissions later.
            Some(Entry {
                node: Node::Dir, ..
            }) if entry.node == Node::Dir => {
                self.entries.insert(path.to_owned(), entry);
                Ok(())
            }
            Some(_) => Err(LayoutError::Conflict(path.to_owned())),
            None => {
                self.entries.insert(path.to_owned(), entry);
                Ok(())
            }
        }
    }

    /// A directory.
    pub fn dir(&mut self, path: &str, perm: u32) -> Result<(), LayoutError> {
        self.add(path, perm, Node::Dir)
    }

    /// A regular file.
    pub fn file(
        &mut self,
        path: &str,
        perm: u32,
        data: impl Into<Vec<u8>>,
    ) -> Result<(), LayoutError> {
        self.add(path, perm, Node::File(data.into()))
    }

    /// A symbolic link.
    pub fn symlink(&mut self, path: &str, target: &str) -> Result<(), LayoutError> {
        self.add(path, 0o777, Node::Symlink(target.to_owned()))
    }

    /// The entry at `path`.
    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries.get(path.trim_start_matches('/'))
    }

    /// All entries in archive order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.entries.iter().map(|(p, e)| (p.as_str(), e))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Encode as newc cpio into `out`, compressed as asked.
    pub fn write<W: Write>(&self, out: W, compression: Compression) -> std::io::Result<W> {
        match compression {
            Compression::None => self.write_cpio(out),
            Compression::Gzip => {
                let gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
                self.write_cpio(gz)?.finish()
            }
        }
    }

    fn write_cpio<W: Write>(&self, mut out: W) -> std::io::Result<W> {
        for (index, (path, entry)) in self.entries.iter().enumerate() {
            let (file_type, data): (ModeFileType, &[u8]) = match &entry.node {
                Node::Dir => (ModeFileType::Directory, &[]),
                Node::File(data) => (ModeFileType::Regular, data),
                Node::Symlink(target) => (ModeFileType::Symlink, target.as_bytes()),
                Node::CharDev { .. } => (ModeFileType::Char, &[]),
            };
            let size = u32::try_from(data.len())
                .map_err(|_| std::io::Error::other(LayoutError::TooLarge(path.clone())))?;
            // Inode numbers only need to be unique; 0 is avoided as some unpackers treat it specially.
            let ino = u32::try_from(index + 1)
                .map_err(|_| std::io::Error::other("too many archive entries"))?;
            let mut builder = Builder::new(path)
                .ino(ino)
                .mode(entry.perm)
                .uid(0)
                .gid(0)
                .mtime(0)
                .nlink(match entry.node {
                    Node::Dir => 2,
                    _ => 1,
                });
            if let Node::CharDev { major, minor } = entry.node {
                builder = builder.rdev_major(major).rdev_minor(minor);
            }
            let mut writer = builder.set_mode_file_type(file_type).write(out, size);
            writer.write_all(data)?;
            out = writer.finish()?;
        }
        cpio::newc::trailer(out)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn sample() -> Layout {
        let mut l = Layout::new();
        l.file("init", 0o755, b"#!/bin/sh\necho hi\n".to_vec())
            .expect("init");
        l.file("bin/busybox", 0o755, vec![0x7f, b'E', b'L', b'F', 1, 2, 3])
            .expect("busybox");
        l.symlink("bin/sh", "busybox").expect("sh");
        l.symlink("sbin/modprobe", "/bin/busybox")
            .expect("modprobe");
        l.add("dev/console", 0o600, Node::CharDev { major: 5, minor: 1 })
            .expect("console");
        l.dir("run", 0o755).expect("run");
        l.dir("tmp", 0o1777).expect("tmp");
        l.file("etc/empty", 0o644, Vec::new()).expect("empty");
        l
    }

    /// One entry as read back: (name, mode, (rdev major, rdev minor), contents).
    type ReadEntry = (String, u32, (u32, u32), Vec<u8>);

    /// Read an archive back with the cpio crate's reader.
    fn read_back(bytes: &[u8]) -> Vec<ReadEntry> {
        let mut out = Vec::new();
        let mut rest = bytes;
        loop {
            let mut reader = cpio::NewcReader::new(rest).expect("entry header");
            if reader.entry().is_trailer() {
                break;
            }
            let e = reader.entry().clone();
            let mut data = Vec::new();
            reader.read_to_end(&mut data).expect("entry data");
            out.push((
                e.name().to_owned(),
                e.mode(),
                (e.rdev_major(), e.rdev_minor()),
                data,
            ));
            rest = reader.finish().expect("entry end");
        }
        out
    }

    #[test]
    fn round_trip_keeps_modes_symlinks_and_contents() {
        let mut bytes = Vec::new();
        sample()
            .write(&mut bytes, Compression::None)
            .expect("write");
        let entries = read_back(&bytes);
        let get = |name: &str| {
            entries
                .iter()
                .find(|e| e.0 == name)
                .unwrap_or_else(|| panic!("{name} missing"))
        };

        assert_eq!(get("init").1, 0o100755);
        assert_eq!(get("init").3, b"#!/bin/sh\necho hi\n");
        assert_eq!(get("bin/busybox").3, [0x7f, b'E', b'L', b'F', 1, 2, 3]);
        assert_eq!(get("bin/sh").1, 0o120777);
        assert_eq!(get("bin/sh").3, b"busybox");
        assert_eq!(get("sbin/modprobe").3, b"/bin/busybox");
        assert_eq!(get("dev/console").1, 0o020600);
        assert_eq!(get("dev/console").2, (5, 1));
        assert_eq!(get("tmp").1, 0o041777);
        assert_eq!(get("etc/empty").3, b"");
        // Implicit parents exist as directories, before their children.
        assert_eq!(get("sbin").1, 0o040755);
        let pos = |name: &str| entries.iter().position(|e| e.0 == name).expect("present");
        assert!(pos("bin") < pos("bin/busybox") && pos("sbin") < pos("sbin/modprobe"));
        assert_eq!(entries.len(), sample().len());
    }

    #[test]
    fn gzip_output_inflates_to_the_same_archive() {
        let mut plain = Vec::new();
        sample()
            .write(&mut plain, Compression::None)
            .expect("write");
        let mut gz = Vec::new();
        sample()
            .write(&mut gz, Compression::Gzip)
            .expect("write gz");
        assert_eq!(&gz[..2], [0x1f, 0x8b]);
        let mut inflated = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut inflated)
            .expect("inflate");
        assert_eq!(inflated, plain);
    }

    #[test]
    fn output_is_reproducible() {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        sample().write(&mut a, Compression::Gzip).expect("a");
        sample().write(&mut b, Compression::Gzip).expect("b");
        assert_eq!(a, b);
    }

    #[test]
    fn bad_paths_and_conflicts_are_rejected() {
        let mut l = sample();
        assert_eq!(
            l.file("../etc/passwd", 0o644, Vec::new()),
            Err(LayoutError::BadPath("../etc/passwd".into()))
        );
        assert_eq!(
            l.file("bin//x", 0o644, Vec::new()),
            Err(LayoutError::BadPath("bin//x".into()))
        );
        assert_eq!(
            l.symlink("bin/sh", "dash"),
            Err(LayoutError::Conflict("bin/sh".into()))
        );
        assert_eq!(
            l.file("init/x", 0o644, Vec::new()),
            Err(LayoutError::NotADirectory("init/x".into()))
        );
        // The same entry twice is fine.
        assert_eq!(l.symlink("bin/sh", "busybox"), Ok(()));
    }
}
