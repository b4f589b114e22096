//! The NFS ports' front: it takes the TCP connections of an export, answers some calls itself
//! (what an [`Answers`] picks: NFSACL for the node root, LINK for the cluster directory) and passes
//! every other RPC record, in order, to nfs3_server listening on loopback. One upstream connection
//! per client connection.

use std::future::Future;
use std::io::IoSlice;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};

use super::clamp;
use super::gate::{Gate, Refused};
use super::rpc_call::{self, Malformed};
use crate::boot_stage::{BootStages, Stage};

/// Largest RPC record accepted (a READ/WRITE of 1 MiB plus headers).
pub const MAX_RECORD: usize = 2 << 20;
/// Replies made here at once per connection; past that the client's calls wait to be read, so a
/// client cannot pile up tasks.
const MAX_IN_FLIGHT: usize = 64;
const LAST_FRAGMENT: u32 = 1 << 31;

/// A reply record the front makes itself; awaited in a task of its own, so a slow one (a LINK
/// waits for the disk) holds up neither the client's other calls nor their replies.
pub type Reply = Pin<Box<dyn Future<Output = Vec<u8>> + Send>>;

/// What a front answers itself instead of nfs3_server.
pub trait Answers: Send + Sync + 'static {
    /// The reply to `call` (one whole RPC record), or `None` to pass the call on unchanged.
    /// Decided at once, so the calls passed on keep their order.
    fn answer(&self, call: &[u8]) -> Option<Reply>;
}

/// The answer to a call a front parsed (`None`: not one of its calls, pass it on): `serve` makes
/// the reply of a well-formed call, a malformed one gets the RPC error (logged at debug only:
/// anyone on the network can send them).
pub fn answer_parsed<C>(
    parsed: Option<Result<C, Malformed>>,
    serve: impl FnOnce(C) -> Reply,
) -> Option<Reply> {
    match parsed? {
        Ok(call) => Some(serve(call)),
        Err(m) => {
            tracing::debug!(error = %m, "refusing a malformed call");
            Some(Box::pin(std::future::ready(rpc_call::refusal(&m))))
        }
    }
}

/// The usual [`Answers::answer`]: a call `parse` read is served by `serve` on a clone of `this`
/// (owned, so the reply's task needs no borrow); a malformed one gets the RPC error.
pub fn answer_with<S: Clone, C, F>(
    this: &S,
    parsed: Option<Result<C, Malformed>>,
    serve: fn(S, C) -> F,
) -> Option<Reply>
where
    F: Future<Output = Vec<u8>> + Send + 'static,
{
    answer_parsed(parsed, |call| Box::pin(serve(this.clone(), call)))
}

/// Two sets of answers: the first that picks a call answers it.
impl<A: Answers, B: Answers> Answers for (A, B) {
    fn answer(&self, call: &[u8]) -> Option<Reply> {
        self.0.answer(call).or_else(|| self.1.answer(call))
    }
}

/// Read one RPC record (RFC 5531 §11 record marking); `Ok(None)` at a clean end.
async fn read_record<R: AsyncReadExt + Unpin>(r: &mut R) -> std::io::Result<Option<Vec<u8>>> {
    let mut rec = Vec::new();
    loop {
        let mut h = [0u8; 4];
        match r.read_exact(&mut h).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && rec.is_empty() => {
                return Ok(None);
            }
            Err(e) => return Err(e),
        }
        let h = u32::from_be_bytes(h);
        let len = (h & !LAST_FRAGMENT) as usize;
        if rec.len() + len > MAX_RECORD {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "RPC record too large",
            ));
        }
        let at = rec.len();
        rec.resize(at + len, 0);
        r.read_exact(&mut rec[at..]).await?;
        if h & LAST_FRAGMENT != 0 {
            return Ok(Some(rec));
        }
    }
}

/// Writes `rec` as one RPC record: its mark and its bytes in one vectored write, without
/// copying a READ's megabyte behind a four-byte mark.
async fn write_record<W: AsyncWriteExt + Unpin>(w: &mut W, rec: &[u8]) -> std::io::Result<()> {
    let mark = (rec.len() as u32 | LAST_FRAGMENT).to_be_bytes();
    let mut done = 0;
    while done < mark.len() + rec.len() {
        let slices = if done < mark.len() {
            [IoSlice::new(&mark[done..]), IoSlice::new(rec)]
        } else {
            [IoSlice::new(&rec[done - mark.len()..]), IoSlice::new(&[])]
        };
        match w.write_vectored(&slices).await? {
            0 => return Err(std::io::ErrorKind::WriteZero.into()),
            n => done += n,
        }
    }
    Ok(())
}

/// Serve the front on `listener` to the clients `gate` admits (the others are counted in
/// `refused` and disconnected): calls `answers` picks are answered here, the rest (NFS and MOUNT)
/// passed to `upstream`, their counts cut to what FSINFO advertises. A connection admitted from
/// a table node is its boot's NFS stage in `stages`, if given.
pub async fn serve<A: Answers>(
    listener: TcpListener,
    upstream: SocketAddr,
    answers: Arc<A>,
    gate: Gate,
    refused: Arc<Refused>,
    stages: Option<Arc<BootStages>>,
) -> std::io::Result<()> {
    loop {
        let (client, from) = listener.accept().await?;
        let admitted = gate.admits(from);
        if let (Ok(()), Some(stages), IpAddr::V4(ip)) =
            (&admitted, &stages, from.ip().to_canonical())
        {
            stages.record_ip(ip, Stage::Nfs);
        }
        if let Err(why) = admitted {
            if refused.count(why) {
                tracing::info!(%from, "refusing NFS connections like this one: {why} (counted; further ones are logged at debug)");
            } else {
                tracing::debug!(%from, "refused an NFS connection: {why}");
            }
            drop(client);
            continue;
        }
        let answers = answers.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(client, upstream, answers).await {
                tracing::debug!(%from, error = %e, "NFS connection ended");
            }
        });
    }
}

async fn connection<A: Answers>(
    client: TcpStream,
    upstream: SocketAddr,
    answers: Arc<A>,
) -> std::io::Result<()> {
    let _ = client.set_nodelay(true);
    let up = TcpStream::connect(upstream).await?;
    let _ = up.set_nodelay(true);
    let (cr, mut cw) = client.into_split();
    // A call's mark and body usually arrive together: one read for both, not two.
    let mut cr = tokio::io::BufReader::with_capacity(64 * 1024, cr);
    let (mut ur, mut uw) = up.into_split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
    // Replies from nfs3_server, as they come.
    let from_up = {
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Ok(Some(rec)) = read_record(&mut ur).await {
                if tx.send(rec).await.is_err() {
                    break;
                }
            }
        })
    };
    let to_client = tokio::spawn(async move {
        while let Some(rec) = rx.recv().await {
            if write_record(&mut cw, &rec).await.is_err() {
                break;
            }
        }
    });
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let result = async {
        while let Some(mut rec) = read_record(&mut cr).await? {
            clamp::clamp(&mut rec);
            match answers.answer(&rec) {
                Some(reply) => {
                    let Ok(permit) = in_flight.clone().acquire_owned().await else {
                        break;
                    };
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        let _ = tx.send(reply.await).await;
                        drop(permit);
                    });
                }
                None => write_record(&mut uw, &rec).await?,
            }
        }
        Ok(())
    }
    .await;
    from_up.abort();
    drop(tx);
    // Replies still being made are sent before the connection closes.
    let _ = to_client.await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// `rec` as one record on the wire: its mark, then its bytes.
    fn framed(rec: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(rec.len() + 4);
        out.extend_from_slice(&(rec.len() as u32 | LAST_FRAGMENT).to_be_bytes());
        out.extend_from_slice(rec);
        out
    }

    /// Answers the records that start with `b'L'` with "local:" and the record, each once the
    /// test hands out a permit.
    struct Marked(Arc<Semaphore>);

    impl Answers for Marked {
        fn answer(&self, call: &[u8]) -> Option<Reply> {
            let (call, gate) = (call.to_vec(), self.0.clone());
            (call.first() == Some(&b'L')).then(|| -> Reply {
                Box::pin(async move {
                    if let Ok(p) = gate.acquire().await {
                        p.forget();
                    }
                    [b"local:".as_slice(), &call].concat()
                })
            })
        }
    }

    /// A stand-in for nfs3_server: answers every record with "up:" and the record.
    async fn echo_upstream() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.into_split();
                    while let Ok(Some(rec)) = read_record(&mut r).await {
                        let reply = [b"up:".as_slice(), &rec].concat();
                        if w.write_all(&framed(&reply)).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn next(c: &mut TcpStream) -> Option<Vec<u8>> {
        tokio::time::timeout(Duration::from_secs(10), read_record(c))
            .await
            .expect("no reply within 10 s")
            .unwrap()
    }

    #[tokio::test]
    async fn picked_calls_are_answered_here_and_the_rest_passed_on_in_order() {
        let upstream = echo_upstream().await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let gate = Arc::new(Semaphore::new(0));
        tokio::spawn(serve(
            listener,
            upstream,
            Arc::new(Marked(gate.clone())),
            Gate::OPEN,
            Arc::default(),
            None,
        ));
        let mut c = TcpStream::connect(addr).await.unwrap();
        // The local call first: while its reply waits, the others must go through.
        for rec in [b"L1".as_slice(), b"a", b"b", b"c"] {
            c.write_all(&framed(rec)).await.unwrap();
        }
        // A record in two fragments is passed on whole.
        c.write_all(&2u32.to_be_bytes()).await.unwrap();
        c.write_all(b"d1").await.unwrap();
        c.write_all(&framed(b"d2")).await.unwrap();
        for want in [b"up:a".as_slice(), b"up:b", b"up:c", b"up:d1d2"] {
            assert_eq!(next(&mut c).await.unwrap(), want);
        }
        gate.add_permits(1);
        assert_eq!(next(&mut c).await.unwrap(), b"local:L1");
        // The client's end: a local reply still on its way is sent before the connection closes.
        c.write_all(&framed(b"L2")).await.unwrap();
        c.shutdown().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        gate.add_permits(1);
        assert_eq!(next(&mut c).await.unwrap(), b"local:L2");
        assert!(next(&mut c).await.is_none());
    }
}
