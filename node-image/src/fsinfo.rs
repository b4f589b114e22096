//! Sizes and digests of what the image serves: SHA-256 of a file, totals of a directory tree.
//!
//! The tree walk does not follow symlinks (the root's absolute links point at the node's paths).

use std::collections::HashSet;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::manifest::{FileInfo, TreeInfo};

/// Reading a file or directory failed.
#[derive(Debug, thiserror::Error)]
#[error("{path}")]
pub struct FsInfoError {
    /// The file or directory.
    pub path: PathBuf,
    /// Why.
    pub source: std::io::Error,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FsInfoError + '_ {
    move |source| FsInfoError {
        path: path.to_path_buf(),
        source,
    }
}

/// Size and SHA-256 of a file.
pub fn file_info(path: &Path) -> Result<FileInfo, FsInfoError> {
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok(FileInfo {
        size,
        sha256: hex::encode(hasher.finalize()),
    })
}

/// Totals of the tree under `root` (the root directory itself included).
pub fn tree_info(root: &Path) -> Result<TreeInfo, FsInfoError> {
    let mut info = TreeInfo::default();
    let mut seen = HashSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        info.directories += 1;
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).map_err(io(&path))?;
            if meta.is_dir() {
                stack.push(path);
            } else if meta.file_type().is_symlink() {
                info.symlinks += 1;
            } else if meta.is_file() && (meta.nlink() == 1 || seen.insert((meta.dev(), meta.ino())))
            {
                info.files += 1;
                info.bytes += meta.len();
            }
        }
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_and_totals() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::create_dir(root.join("sub")).expect("sub");
        std::fs::write(root.join("a"), b"abc").expect("a");
        std::fs::write(root.join("sub/b"), b"12345").expect("b");
        std::fs::hard_link(root.join("sub/b"), root.join("sub/b2")).expect("hard link");
        std::os::unix::fs::symlink("/nowhere", root.join("l")).expect("link");
        let a = file_info(&root.join("a")).expect("a");
        assert_eq!(a.size, 3);
        assert_eq!(
            a.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let t = tree_info(root).expect("tree");
        assert_eq!(
            t,
            TreeInfo {
                bytes: 8,
                files: 2,
                directories: 2,
                symlinks: 1
            }
        );
    }
}
