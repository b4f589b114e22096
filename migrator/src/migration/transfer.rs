//! Image transfer: the files of a CRIU image directory streamed over the session as
//! `File` + `Chunk`s, one directory per pre-dump or dump round (`Round`), written on the target
//! under a fresh directory in which round n's `parent` names round n-1, as CRIU's restore
//! expects. Names from the network must be single safe path components.

use std::path::{Path, PathBuf};

use serde_bytes::ByteBuf;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::migration::protocol::Msg;
use crate::migration::session::{SessionError, Writer};

/// Bytes per `Chunk`.
pub const CHUNK: usize = 1 << 20;

/// Is `name` one safe file name?
pub fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('\0')
}

/// Send every regular file of `dir` except CRIU's logs; returns the bytes sent.
pub async fn send_dir(w: &mut Writer, dir: &Path) -> Result<u64, SessionError> {
    let mut names = Vec::new();
    let mut rd = tokio::fs::read_dir(dir).await?;
    while let Some(e) = rd.next_entry().await? {
        if e.file_type().await?.is_file()
            && let Some(n) = e.file_name().to_str()
            && !n.ends_with(".log")
        {
            names.push(n.to_owned());
        }
    }
    names.sort();
    let mut total = 0u64;
    let mut buf = vec![0u8; CHUNK];
    for name in names {
        let mut f = tokio::fs::File::open(dir.join(&name)).await?;
        w.send(&Msg::File { name }).await?;
        loop {
            let n = f.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            total += n as u64;
            w.send(&Msg::Chunk {
                data: ByteBuf::from(buf[..n].to_vec()),
            })
            .await?;
        }
    }
    Ok(total)
}

/// Round `n`'s directory under `base`, on either side.
pub fn round_dir(base: &Path, n: u32) -> PathBuf {
    base.join(n.to_string())
}

/// Round `n`'s parent, relative to its directory (CRIU's `--prev-images-dir` and the target's
/// `parent` link); round 0 has none.
pub fn round_parent(n: u32) -> Option<PathBuf> {
    n.checked_sub(1).map(|p| PathBuf::from(format!("../{p}")))
}

/// Empty the page files (`pages-*.img`) of a round already sent, keeping the files: the next
/// round's dump opens them, but reads only the page map beside them.
pub fn drop_pages(dir: &Path) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("pages-") && name.ends_with(".img") && e.file_type()?.is_file() {
            std::fs::OpenOptions::new()
                .write(true)
                .open(e.path())?
                .set_len(0)?;
        }
    }
    Ok(())
}

/// The receiving side: one round directory and one open file at a time.
#[derive(Debug, Default)]
pub struct Receiver {
    file: Option<tokio::fs::File>,
    /// The current round's number and directory.
    round: Option<(u32, PathBuf)>,
    /// Bytes received.
    pub bytes: u64,
    /// Most bytes accepted (images are kept in RAM): beyond it the transfer is refused.
    limit: Option<u64>,
}

impl Receiver {
    /// A receiver that refuses more than `limit` bytes of images.
    pub fn with_limit(limit: u64) -> Self {
        Self {
            limit: Some(limit),
            ..Self::default()
        }
    }

    /// Start round `n` under `base`: rounds come 0, 1, ... in order.
    pub async fn round(&mut self, base: &Path, n: u32) -> std::io::Result<()> {
        let expected = self.round.as_ref().map_or(0, |(r, _)| r + 1);
        if n != expected {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("image round {n} out of order (expected {expected})"),
            ));
        }
        self.finish().await?;
        let dir = round_dir(base, n);
        tokio::fs::create_dir(&dir).await?;
        if let Some(parent) = round_parent(n) {
            tokio::fs::symlink(parent, dir.join("parent")).await?;
        }
        self.round = Some((n, dir));
        Ok(())
    }

    /// The last round's directory: the one to restore from.
    pub fn last_round(&self) -> Option<&Path> {
        self.round.as_ref().map(|(_, d)| d.as_path())
    }

    /// Start file `name` in the current round.
    pub async fn file(&mut self, name: &str) -> std::io::Result<()> {
        if !safe_name(name) || name == "parent" {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("refusing image file name {name:?}"),
            ));
        }
        let dir = match &self.round {
            Some((_, d)) => d.clone(),
            None => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "image file before a round",
                ));
            }
        };
        self.finish().await?;
        self.file = Some(
            tokio::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(dir.join(name))
                .await?,
        );
        Ok(())
    }

    /// Append to the current file.
    pub async fn chunk(&mut self, data: &[u8]) -> std::io::Result<()> {
        let f = self.file.as_mut().ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "image data before a file name",
            )
        })?;
        let bytes = self.bytes + data.len() as u64;
        if let Some(limit) = self.limit
            && bytes > limit
        {
            return Err(std::io::Error::new(
                std::io::ErrorKind::OutOfMemory,
                format!(
                    "the images outgrow the {} MiB this node can hold",
                    limit >> 20
                ),
            ));
        }
        f.write_all(data).await?;
        self.bytes = bytes;
        Ok(())
    }

    /// Close the current file.
    pub async fn finish(&mut self) -> std::io::Result<()> {
        if let Some(mut f) = self.file.take() {
            f.flush().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rounds_come_in_order_and_chain_to_their_parents() {
        let base = tempfile::tempdir().unwrap();
        let mut rx = Receiver::default();
        assert!(rx.file("x.img").await.is_err(), "a file before any round");
        assert!(rx.round(base.path(), 1).await.is_err(), "round 1 first");
        rx.round(base.path(), 0).await.unwrap();
        rx.file("pages-1.img").await.unwrap();
        rx.chunk(b"old").await.unwrap();
        assert!(rx.file("pages-1.img").await.is_err(), "a file twice");
        rx.round(base.path(), 1).await.unwrap();
        assert!(rx.file("parent").await.is_err(), "the parent link is ours");
        rx.file("pages-1.img").await.unwrap();
        rx.chunk(b"new").await.unwrap();
        rx.finish().await.unwrap();
        assert!(rx.round(base.path(), 1).await.is_err(), "a round twice");
        let last = rx.last_round().unwrap().to_owned();
        assert_eq!(last, base.path().join("1"));
        assert_eq!(
            std::fs::read(last.join("parent/pages-1.img")).unwrap(),
            b"old"
        );
        assert_eq!(std::fs::read(last.join("pages-1.img")).unwrap(), b"new");
        assert_eq!(rx.bytes, 6);
        let mut small = Receiver::with_limit(4);
        small.round(&base.path().join("1"), 0).await.unwrap();
        small.file("a").await.unwrap();
        small.chunk(b"abc").await.unwrap();
        let e = small.chunk(b"de").await.unwrap_err();
        assert!(e.to_string().contains("outgrow"), "{e}");
    }

    #[test]
    fn only_plain_names_are_safe() {
        assert!(safe_name("pages-1.img"));
        for bad in ["", ".", "..", "a/b", "/etc/passwd", "x\0y"] {
            assert!(!safe_name(bad), "{bad:?}");
        }
    }
}
