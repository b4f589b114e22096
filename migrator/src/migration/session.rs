//! The authenticated TCP session between two omd (migrations, stdio relays, job requests).
//!
//! Handshake: both sides prove they hold the cluster key over fresh 32-byte nonces, so a
//! recorded session cannot be replayed; every later frame carries a MAC keyed per session,
//! direction and sequence number, so frames cannot be injected, dropped or reordered unseen.
//! ```text
//! client                                         server
//!   | "OMDP" ver nonce_c ------------------------> |
//!   | <------ "OMDP" ver nonce_s HMAC(K, "server"|nonce_c|nonce_s)
//!   | HMAC(K, "client"|nonce_s|nonce_c) ---------> |
//!   |  frames: len u32 | payload | Poly1305(K_seq, payload)
//! ```
//! K_dir = HMAC(K, "c2s" or "s2c" | nonce_c | nonce_s); K_seq = HMAC(K_dir, "frame" | seq u64),
//! a one-time Poly1305 key per frame (RFC 8439 §2.5, keyed as in its §2.6 but with HMAC as the
//! PRF): images are megabytes, and Poly1305 is several times faster than HMAC-SHA256 on the
//! nodes' CPUs. Version: [`PROTOCOL_VERSION`]; a peer
//! speaking another version is refused with a clear error.

use hmac::{Hmac, Mac};
use poly1305::Poly1305;
use poly1305::universal_hash::KeyInit;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::frame::{self, FrameError, LEN_BYTES};
use crate::key::ClusterKey;

/// The peer protocol version this build speaks (see `protocol`).
pub const PROTOCOL_VERSION: u8 = 4;
const MAGIC: &[u8; 4] = b"OMDP";
const NONCE: usize = 32;
const TAG: usize = 16;

type HmacSha256 = Hmac<Sha256>;

/// A session failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The connection failed or closed.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// The peer does not speak our protocol.
    #[error("the peer is not an omd (bad greeting)")]
    NotOmd,
    /// The peer speaks another version.
    #[error("the peer speaks protocol version {0}, this omd speaks {PROTOCOL_VERSION}")]
    Version(u8),
    /// The peer could not prove it holds the cluster key.
    #[error("the peer failed authentication (it does not hold the cluster key)")]
    Auth,
    /// A frame's tag did not verify: injected, replayed or corrupted.
    #[error("a frame failed authentication")]
    BadTag,
    /// A frame was refused.
    #[error(transparent)]
    Frame(#[from] FrameError),
}

fn hmac(key: &[u8]) -> HmacSha256 {
    match <HmacSha256 as Mac>::new_from_slice(key) {
        Ok(m) => m,
        // HMAC takes keys of any length.
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    }
}

fn tag(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut m = hmac(key);
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

/// The tag of frame `seq` carrying `payload`, under direction key `dir_key`.
fn frame_tag(dir_key: &[u8], seq: u64, payload: &[u8]) -> [u8; TAG] {
    let one_time = tag(dir_key, &[b"frame", &seq.to_be_bytes()]);
    Poly1305::new(&one_time.into())
        .compute_unpadded(payload)
        .into()
}

/// Does `got` authenticate frame `seq` (compared in constant time)?
fn frame_ok(dir_key: &[u8], seq: u64, payload: &[u8], got: &[u8]) -> bool {
    frame_tag(dir_key, seq, payload).ct_eq(got).into()
}

fn verify(key: &[u8], parts: &[&[u8]], got: &[u8]) -> bool {
    let mut m = hmac(key);
    for p in parts {
        m.update(p);
    }
    m.verify_truncated_left(got).is_ok()
}

fn nonce() -> [u8; NONCE] {
    let mut n = [0u8; NONCE];
    rand::fill(&mut n[..]);
    n
}

/// The receiving half of a session.
#[derive(Debug)]
pub struct Reader {
    r: OwnedReadHalf,
    key: [u8; 32],
    seq: u64,
}

/// The sending half of a session.
#[derive(Debug)]
pub struct Writer {
    w: OwnedWriteHalf,
    key: [u8; 32],
    seq: u64,
}

/// Both halves; split them to read and write from different tasks.
#[derive(Debug)]
pub struct Session {
    /// The peer's address.
    pub peer: std::net::SocketAddr,
    /// Receiving half.
    pub reader: Reader,
    /// Sending half.
    pub writer: Writer,
}

impl Session {
    /// Connect to `addr` and authenticate as client.
    pub async fn connect(
        addr: std::net::SocketAddr,
        key: &ClusterKey,
    ) -> Result<Self, SessionError> {
        let s = TcpStream::connect(addr).await?;
        Self::client(s, key).await
    }

    /// Run the client side of the handshake on `s`.
    pub async fn client(mut s: TcpStream, key: &ClusterKey) -> Result<Self, SessionError> {
        let _ = s.set_nodelay(true);
        let nc = nonce();
        let mut hello = Vec::with_capacity(5 + NONCE);
        hello.extend_from_slice(MAGIC);
        hello.push(PROTOCOL_VERSION);
        hello.extend_from_slice(&nc);
        s.write_all(&hello).await?;
        let mut reply = [0u8; 5 + NONCE + 32];
        s.read_exact(&mut reply).await?;
        check_greeting(&reply[..5])?;
        let ns: [u8; NONCE] = reply[5..5 + NONCE]
            .try_into()
            .map_err(|_| SessionError::NotOmd)?;
        if !verify(key.bytes(), &[b"server", &nc, &ns], &reply[5 + NONCE..]) {
            return Err(SessionError::Auth);
        }
        s.write_all(&tag(key.bytes(), &[b"client", &ns, &nc]))
            .await?;
        Ok(Self::keyed(s, key, &nc, &ns, true))
    }

    /// Run the server side of the handshake on an accepted `s`.
    pub async fn server(mut s: TcpStream, key: &ClusterKey) -> Result<Self, SessionError> {
        let _ = s.set_nodelay(true);
        let mut hello = [0u8; 5 + NONCE];
        s.read_exact(&mut hello).await?;
        check_greeting(&hello[..5])?;
        let nc: [u8; NONCE] = hello[5..].try_into().map_err(|_| SessionError::NotOmd)?;
        let ns = nonce();
        let mut reply = Vec::with_capacity(5 + NONCE + 32);
        reply.extend_from_slice(MAGIC);
        reply.push(PROTOCOL_VERSION);
        reply.extend_from_slice(&ns);
        reply.extend_from_slice(&tag(key.bytes(), &[b"server", &nc, &ns]));
        s.write_all(&reply).await?;
        let mut proof = [0u8; 32];
        s.read_exact(&mut proof).await?;
        if !verify(key.bytes(), &[b"client", &ns, &nc], &proof) {
            return Err(SessionError::Auth);
        }
        Ok(Self::keyed(s, key, &nc, &ns, false))
    }

    fn keyed(s: TcpStream, key: &ClusterKey, nc: &[u8], ns: &[u8], client: bool) -> Self {
        let c2s = tag(key.bytes(), &[b"c2s", nc, ns]);
        let s2c = tag(key.bytes(), &[b"s2c", nc, ns]);
        let (send, recv) = if client { (c2s, s2c) } else { (s2c, c2s) };
        let peer = s
            .peer_addr()
            .unwrap_or_else(|_| std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
        let (r, w) = s.into_split();
        Self {
            peer,
            reader: Reader {
                r,
                key: recv,
                seq: 0,
            },
            writer: Writer {
                w,
                key: send,
                seq: 0,
            },
        }
    }

    /// Send one message.
    pub async fn send<T: Serialize>(&mut self, msg: &T) -> Result<(), SessionError> {
        self.writer.send(msg).await
    }

    /// Receive one message; `Ok(None)` when the peer closed cleanly.
    pub async fn recv<T: DeserializeOwned>(&mut self) -> Result<Option<T>, SessionError> {
        self.reader.recv().await
    }
}

fn check_greeting(g: &[u8]) -> Result<(), SessionError> {
    if &g[..4] != MAGIC {
        return Err(SessionError::NotOmd);
    }
    if g[4] != PROTOCOL_VERSION {
        return Err(SessionError::Version(g[4]));
    }
    Ok(())
}

impl Writer {
    /// Send one message.
    pub async fn send<T: Serialize>(&mut self, msg: &T) -> Result<(), SessionError> {
        let payload = frame::to_payload(msg)?;
        let t = frame_tag(&self.key, self.seq, &payload);
        self.seq += 1;
        let mut out = Vec::with_capacity(LEN_BYTES + payload.len() + TAG);
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(&payload);
        out.extend_from_slice(&t);
        self.w.write_all(&out).await?;
        Ok(())
    }
}

impl Reader {
    /// Read messages on a task of their own into a channel: `Some(msg)` each, then one `None`
    /// when the session ends (closed, failed, or a frame refused), so a `select!` loop can
    /// read without holding the session.
    pub fn spawn_into_channel<T: DeserializeOwned + Send + 'static>(
        mut self,
    ) -> tokio::sync::mpsc::Receiver<Option<T>> {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let m = self.recv::<T>().await.ok().flatten();
                let end = m.is_none();
                if tx.send(m).await.is_err() || end {
                    return;
                }
            }
        });
        rx
    }

    /// Receive one message; `Ok(None)` when the peer closed cleanly between frames.
    pub async fn recv<T: DeserializeOwned>(&mut self) -> Result<Option<T>, SessionError> {
        let mut prefix = [0u8; LEN_BYTES];
        match self.r.read_exact(&mut prefix).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        let n = frame::payload_len(prefix)?;
        let mut buf = vec![0u8; n + TAG];
        self.r.read_exact(&mut buf).await?;
        let (payload, t) = buf.split_at(n);
        if !frame_ok(&self.key, self.seq, payload, t) {
            return Err(SessionError::BadTag);
        }
        self.seq += 1;
        Ok(Some(frame::from_payload(payload)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    fn key(b: u8) -> ClusterKey {
        ClusterKey::from_bytes(vec![b; 32]).unwrap()
    }

    async fn pair(
        ck: ClusterKey,
        sk: ClusterKey,
    ) -> (Result<Session, SessionError>, Result<Session, SessionError>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            Session::server(s, &sk).await
        });
        let client = Session::connect(addr, &ck).await;
        (client, server.await.unwrap())
    }

    #[tokio::test]
    async fn same_key_talks_both_ways() {
        let (c, s) = pair(key(1), key(1)).await;
        let (mut c, mut s) = (c.unwrap(), s.unwrap());
        c.send(&("ping".to_string(), 1u32)).await.unwrap();
        let got: (String, u32) = s.recv().await.unwrap().unwrap();
        assert_eq!(got, ("ping".into(), 1));
        s.send(&42u64).await.unwrap();
        assert_eq!(c.recv::<u64>().await.unwrap(), Some(42));
    }

    #[tokio::test]
    async fn a_wrong_key_fails_on_both_sides() {
        let (c, s) = pair(key(1), key(2)).await;
        assert!(matches!(c, Err(SessionError::Auth)), "{c:?}");
        assert!(s.is_err());
    }

    #[test]
    fn a_frame_tag_binds_its_sequence_number_and_every_byte() {
        let k = [3u8; 32];
        let t = frame_tag(&k, 5, b"payload");
        assert!(frame_ok(&k, 5, b"payload", &t));
        assert!(!frame_ok(&k, 6, b"payload", &t), "another seq");
        assert!(!frame_ok(&k, 5, b"paylOad", &t), "a changed byte");
        assert!(!frame_ok(&k, 5, b"payload\0", &t), "a longer payload");
        assert!(!frame_ok(&[4u8; 32], 5, b"payload", &t), "another key");
        assert!(!frame_ok(&k, 5, b"payload", &t[..8]), "a short tag");
    }

    #[tokio::test]
    async fn a_replayed_or_forged_frame_is_refused() {
        // A raw client that copies an earlier session's frame after a fresh handshake.
        let (c, s) = pair(key(1), key(1)).await;
        let (mut c, mut s) = (c.unwrap(), s.unwrap());
        // Frame 0 from the client, then a forged frame with seq 0's tag under seq 1.
        c.send(&7u64).await.unwrap();
        assert_eq!(s.recv::<u64>().await.unwrap(), Some(7));
        let payload = frame::to_payload(&7u64).unwrap();
        let stale = frame_tag(&c.writer.key, 0, &payload);
        let mut raw = (payload.len() as u32).to_be_bytes().to_vec();
        raw.extend_from_slice(&payload);
        raw.extend_from_slice(&stale);
        c.writer.w.write_all(&raw).await.unwrap();
        assert!(matches!(s.recv::<u64>().await, Err(SessionError::BadTag)));
    }
}
