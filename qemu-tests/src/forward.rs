//! Privileged: a TCP port on the host's loopback that leads to an address inside a lab
//! namespace, so a program on the host reaches a service on the lab bridge (`omlab demo --keep`
//! and the dashboard, the browser tests and chromedriver). One thread enters the namespace
//! (`setns`, which changes only that thread) to make the connections; a socket stays in the
//! namespace it was made in, so ordinary threads copy the bytes.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Error, Result, io};
use crate::netns::enter;

type Reply = mpsc::Sender<std::io::Result<TcpStream>>;

/// A running forward; it stops taking connections when dropped.
#[derive(Debug)]
pub struct Forward {
    port: u16,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

/// Copies `from` into `to` until either ends, then shuts both directions down.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

impl Forward {
    /// Listens on `127.0.0.1:<free port>` and connects each client to `target` inside `ns`.
    pub fn start(ns: &str, target: SocketAddr) -> Result<Forward> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(io("bind a loopback port to forward"))?;
        let port = listener
            .local_addr()
            .map_err(io("the forward's port"))?
            .port();
        let (tx, rx) = mpsc::channel::<Reply>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let namespace = ns.to_owned();
        std::thread::Builder::new()
            .name(format!("connect-in-{ns}"))
            .spawn(move || {
                let entered = enter(&namespace);
                let ok = entered.is_ok();
                let _ = ready_tx.send(entered);
                if !ok {
                    return;
                }
                for reply in rx {
                    let _ = reply.send(TcpStream::connect_timeout(&target, Duration::from_secs(5)));
                }
            })
            .map_err(io("start the forward's connecting thread"))?;
        ready_rx
            .recv()
            .map_err(|_| Error::Io {
                what: format!("enter namespace {ns}"),
                source: std::io::Error::other("the connecting thread ended"),
            })?
            .map_err(io(format!("enter namespace {ns}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let accept = std::thread::Builder::new()
            .name(format!("forward-{port}"))
            .spawn(move || {
                for client in listener.incoming() {
                    if stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    let (reply, answer) = mpsc::channel();
                    if tx.send(reply).is_err() {
                        break;
                    }
                    let Ok(Ok(server)) = answer.recv() else {
                        continue;
                    };
                    let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
                        continue;
                    };
                    std::thread::spawn(move || pipe(client, server));
                    std::thread::spawn(move || pipe(s2, c2));
                }
            })
            .map_err(io("start the forward's accepting thread"))?;
        Ok(Forward {
            port,
            stop,
            accept: Some(accept),
        })
    }

    /// The host's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accepting thread so it sees the flag.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}
