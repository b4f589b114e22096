//! Bounds on the HTTP server: at most [`MAX_CONNECTIONS`] at once (past that, new ones wait in the
//! kernel's backlog), and a connection that moves no byte for [`IDLE`] is closed, so clients
//! that open connections and send nothing (or a header a byte at a time) cannot use them all up.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Connections served at once: far more than nodes booting at once ever open.
pub const MAX_CONNECTIONS: usize = 256;
/// A connection with no byte read or written for this long is closed.
pub const IDLE: Duration = Duration::from_secs(30);

/// A listener that holds a slot for every connection it hands out.
#[derive(Debug)]
pub struct LimitedListener {
    inner: TcpListener,
    slots: Arc<Semaphore>,
    idle: Duration,
}

impl LimitedListener {
    /// Bound `inner` to `max` connections, each closed after `idle` without progress.
    pub fn new(inner: TcpListener, max: usize, idle: Duration) -> Self {
        Self {
            inner,
            slots: Arc::new(Semaphore::new(max)),
            idle,
        }
    }
}

impl axum::serve::Listener for LimitedListener {
    type Io = Guarded;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Guarded, SocketAddr) {
        // A closed semaphore cannot happen (we never close it); wait for a slot otherwise.
        let slot = self.slots.clone().acquire_owned().await.ok();
        loop {
            match self.inner.accept().await {
                Ok((io, peer)) => {
                    let _ = io.set_nodelay(true);
                    return (Guarded::new(io, slot, self.idle), peer);
                }
                Err(e) => {
                    // Out of descriptors and the like: wait rather than spin.
                    tracing::debug!("HTTP accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// A connection holding its slot, closed when idle too long.
#[derive(Debug)]
pub struct Guarded {
    io: TcpStream,
    _slot: Option<OwnedSemaphorePermit>,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl Guarded {
    fn new(io: TcpStream, slot: Option<OwnedSemaphorePermit>, idle: Duration) -> Self {
        Self {
            io,
            _slot: slot,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }

    /// After an I/O call: progress pushes the deadline back; no progress past it is an error.
    fn watch<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match r {
            Poll::Ready(r) => {
                let idle = self.idle;
                self.deadline.as_mut().reset(Instant::now() + idle);
                Poll::Ready(r)
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "HTTP connection idle too long",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        self.watch(cx, r)
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.watch(cx, r)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        self.watch(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::serve::Listener;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn idle_connections_are_closed_and_slots_bound_the_connections() {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let mut l = LimitedListener::new(tcp, 1, Duration::from_millis(200));
        let mut first = TcpStream::connect(addr).await.unwrap();
        let (mut served, _) = l.accept().await;
        // The only slot is taken: a second connection is not handed out while the first lives.
        let _second = TcpStream::connect(addr).await.unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(300), l.accept())
                .await
                .is_err()
        );
        // Bytes keep it alive; silence past the deadline ends the read with TimedOut.
        first.write_all(b"GET").await.unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(served.read(&mut buf).await.unwrap(), 3);
        let e = served.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        // Its slot is freed with it: the waiting connection is handed out.
        drop(served);
        assert!(
            tokio::time::timeout(Duration::from_secs(2), l.accept())
                .await
                .is_ok()
        );
    }
}
