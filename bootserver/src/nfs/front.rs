//! The NFS port's front: it takes the TCP connections of the node root's export, answers the
//! NFSACL calls itself ([`nfsacl`](super::nfsacl)) and passes every other RPC record, in order,
//! to nfs3_server listening on loopback. One upstream connection per client connection.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::nfsacl;

/// Largest RPC record accepted (a READ/WRITE of 1 MiB plus headers).
pub const MAX_RECORD: usize = 2 << 20;
const LAST_FRAGMENT: u32 = 1 << 31;

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

fn framed(rec: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rec.len() + 4);
    out.extend_from_slice(&(rec.len() as u32 | LAST_FRAGMENT).to_be_bytes());
    out.extend_from_slice(rec);
    out
}

/// Serve the front on `listener`, passing NFS and MOUNT to `upstream`.
pub async fn serve(listener: TcpListener, upstream: SocketAddr) -> std::io::Result<()> {
    loop {
        let (client, from) = listener.accept().await?;
        tokio::spawn(async move {
            if let Err(e) = connection(client, upstream).await {
                tracing::debug!(%from, error = %e, "NFS connection ended");
            }
        });
    }
}

async fn connection(client: TcpStream, upstream: SocketAddr) -> std::io::Result<()> {
    let _ = client.set_nodelay(true);
    let up = TcpStream::connect(upstream).await?;
    let _ = up.set_nodelay(true);
    let (mut cr, mut cw) = client.into_split();
    let (mut ur, mut uw) = up.into_split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
    // Replies from nfs3_server, as they come.
    let from_up = {
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Ok(Some(rec)) = read_record(&mut ur).await {
                if tx.send(framed(&rec)).await.is_err() {
                    break;
                }
            }
        })
    };
    let to_client = tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if cw.write_all(&bytes).await.is_err() {
                break;
            }
        }
    });
    let result = async {
        while let Some(rec) = read_record(&mut cr).await? {
            match nfsacl::answer(&rec) {
                Some(reply) => {
                    if tx.send(framed(&reply)).await.is_err() {
                        break;
                    }
                }
                None => uw.write_all(&framed(&rec)).await?,
            }
        }
        Ok(())
    }
    .await;
    from_up.abort();
    drop(tx);
    let _ = to_client.await;
    result
}
