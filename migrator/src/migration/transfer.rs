//! Image transfer: the files of a CRIU image directory streamed over the session as
//! `File` + `Chunk`s, written on the target under a fresh directory. Names from the network
//! must be single safe path components.

use std::path::Path;

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

/// The receiving side: one open file at a time.
#[derive(Debug, Default)]
pub struct Receiver {
    file: Option<tokio::fs::File>,
    /// Bytes received.
    pub bytes: u64,
}

impl Receiver {
    /// Start file `name` in `dir`.
    pub async fn file(&mut self, dir: &Path, name: &str) -> std::io::Result<()> {
        if !safe_name(name) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("refusing image file name {name:?}"),
            ));
        }
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
        f.write_all(data).await?;
        self.bytes += data.len() as u64;
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

    #[test]
    fn only_plain_names_are_safe() {
        assert!(safe_name("pages-1.img"));
        for bad in ["", ".", "..", "a/b", "/etc/passwd", "x\0y"] {
            assert!(!safe_name(bad), "{bad:?}");
        }
    }
}
