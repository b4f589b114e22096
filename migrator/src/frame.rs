//! Length-prefixed frames, each carrying one postcard-encoded message: the framing of omd's job
//! channels (deputy, keeper, peer). Pure encoding and an incremental decoder; no sockets here.
//!
//! ```text
//! | len: u32 big-endian | payload: postcard(message), len bytes |
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Largest payload accepted: a stdio or image chunk plus its header.
pub const MAX_PAYLOAD: usize = 2 << 20;
/// Bytes of the length prefix.
pub const LEN_BYTES: usize = 4;

/// A frame could not be built or understood.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer announced a frame larger than [`MAX_PAYLOAD`].
    #[error("frame of {0} bytes is larger than the limit of {MAX_PAYLOAD}")]
    TooLarge(usize),
    /// The payload is not a message of the expected type.
    #[error("malformed message: {0}")]
    Malformed(#[from] postcard::Error),
}

/// Encode `msg` as a payload (no length prefix).
pub fn to_payload<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let p = postcard::to_stdvec(msg)?;
    if p.len() > MAX_PAYLOAD {
        return Err(FrameError::TooLarge(p.len()));
    }
    Ok(p)
}

/// Decode a payload.
pub fn from_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    Ok(postcard::from_bytes(payload)?)
}

/// Encode `msg` as a whole frame, length prefix included.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let p = to_payload(msg)?;
    let mut out = Vec::with_capacity(LEN_BYTES + p.len());
    out.extend_from_slice(&(p.len() as u32).to_be_bytes());
    out.extend_from_slice(&p);
    Ok(out)
}

/// Read the length prefix; an over-long frame is an error before any of it is buffered.
pub fn payload_len(prefix: [u8; LEN_BYTES]) -> Result<usize, FrameError> {
    let n = u32::from_be_bytes(prefix) as usize;
    if n > MAX_PAYLOAD {
        return Err(FrameError::TooLarge(n));
    }
    Ok(n)
}

/// Incremental decoder for non-blocking readers: push what arrived, pop whole payloads.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    /// Append received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole payload, if one has arrived.
    pub fn next_payload(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        if self.buf.len() < LEN_BYTES {
            return Ok(None);
        }
        let mut prefix = [0u8; LEN_BYTES];
        prefix.copy_from_slice(&self.buf[..LEN_BYTES]);
        let n = payload_len(prefix)?;
        if self.buf.len() < LEN_BYTES + n {
            return Ok(None);
        }
        let payload = self.buf[LEN_BYTES..LEN_BYTES + n].to_vec();
        self.buf.drain(..LEN_BYTES + n);
        Ok(Some(payload))
    }
}

/// Async helpers over any tokio stream half.
pub mod io {
    use serde::Serialize;
    use serde::de::DeserializeOwned;
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

    use super::{FrameError, LEN_BYTES};

    /// A channel failed.
    #[derive(Debug, thiserror::Error)]
    pub enum ChannelError {
        /// The connection failed or closed mid-frame.
        #[error("connection: {0}")]
        Io(#[from] std::io::Error),
        /// A frame was refused.
        #[error(transparent)]
        Frame(#[from] FrameError),
    }

    /// Read one message; `Ok(None)` at a clean end of stream.
    pub async fn read<T: DeserializeOwned, R: AsyncRead + Unpin>(
        r: &mut R,
    ) -> Result<Option<T>, ChannelError> {
        let mut prefix = [0u8; LEN_BYTES];
        match r.read_exact(&mut prefix).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        let n = super::payload_len(prefix)?;
        let mut payload = vec![0u8; n];
        r.read_exact(&mut payload).await?;
        Ok(Some(super::from_payload(&payload)?))
    }

    /// Read messages from `r` on a task of their own into a channel: `Some(msg)` each, then one
    /// `None` when the stream ends or fails.
    pub fn spawn_reader<T, R>(mut r: R) -> tokio::sync::mpsc::Receiver<Option<T>>
    where
        T: DeserializeOwned + Send + 'static,
        R: AsyncRead + Unpin + Send + 'static,
    {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let m = read::<T, R>(&mut r).await.ok().flatten();
                let end = m.is_none();
                if tx.send(m).await.is_err() || end {
                    return;
                }
            }
        });
        rx
    }

    /// Write one message.
    pub async fn write<T: Serialize, W: AsyncWrite + Unpin>(
        w: &mut W,
        msg: &T,
    ) -> Result<(), ChannelError> {
        w.write_all(&super::encode(msg)?).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_through_the_decoder_in_pieces() {
        let a = encode(&("hello".to_string(), 7u64)).unwrap();
        let b = encode(&vec![1u8, 2, 3]).unwrap();
        let all: Vec<u8> = a.iter().chain(&b).copied().collect();
        let mut d = Decoder::default();
        let mut got = Vec::new();
        for byte in all {
            d.push(&[byte]);
            while let Some(p) = d.next_payload().unwrap() {
                got.push(p);
            }
        }
        assert_eq!(got.len(), 2);
        let first: (String, u64) = from_payload(&got[0]).unwrap();
        assert_eq!(first, ("hello".into(), 7));
    }

    #[test]
    fn oversized_and_malformed_frames_are_errors() {
        let mut d = Decoder::default();
        d.push(&u32::MAX.to_be_bytes());
        assert!(matches!(d.next_payload(), Err(FrameError::TooLarge(_))));
        assert!(from_payload::<(String, u64)>(&[0xff, 0xff, 0xff]).is_err());
    }
}
