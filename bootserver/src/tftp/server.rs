//! The TFTP server port: one thread reads requests, decides what each gets, and starts a
//! [`Transfer`] on a thread of its own for each read it accepts.
//!
//! There is no cap on transfers at once, only one per source address against floods; running
//! out of threads or file descriptors turns a request away with an ERROR, counted as `busy`.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex, PoisonError};

use super::handler::{ConfinedTftpHandler, Opened, Refusal, TftpStats};
use super::options::{self, Limits, Mode, Negotiated};
use super::packet::{self, DATA_HEADER, ErrorCode};
use super::request::{self, Answer};
use super::transfer::{self, Transfer};

/// Stack of a transfer thread: its buffers are on the heap.
const TRANSFER_STACK: usize = 128 * 1024;

/// The largest window granted: large windows speed up iPXE and edk2 downloads, and 64 blocks
/// of 1468 bytes stay well under socket buffers.
pub const MAX_WINDOW: u16 = 64;

/// Transfers one source address may have running at once. A node fetches one or two files at a
/// time, a test client or a NAT in front of many nodes some dozens; beyond this it is a flood,
/// whose requests are dropped and counted. An unacknowledged transfer holds about 130 KiB (its
/// first read, its first window, its thread), so one address can hold some 33 MiB at most.
pub const MAX_PER_SOURCE: usize = 256;

/// The largest block that fits an Ethernet frame of `mtu` bytes unfragmented: the MTU less the
/// IPv4, UDP and TFTP headers (1468 for 1500), as dnsmasq caps it. A lost fragment loses the
/// whole block, and a flood asking 64 blocks of 64 KiB would hold 4 MiB per request.
pub fn limits_for_mtu(mtu: u32) -> Limits {
    let block = mtu.saturating_sub(20 + 8 + DATA_HEADER as u32);
    Limits {
        max_block_size: u16::try_from(block)
            .unwrap_or(options::MAX_BLOCK_SIZE)
            .clamp(options::DEFAULT_BLOCK_SIZE, options::MAX_BLOCK_SIZE),
        max_window: MAX_WINDOW,
    }
}

/// The limits for a 1500-byte MTU, the usual Ethernet one.
pub const ETHERNET_LIMITS: Limits = Limits {
    max_block_size: 1468,
    max_window: MAX_WINDOW,
};

/// A bound TFTP server.
#[derive(Debug)]
pub struct TftpServer {
    socket: UdpSocket,
    local: IpAddr,
    limits: Limits,
    handler: Arc<ConfinedTftpHandler>,
    /// Transfers running, by client address and port.
    active: Arc<Mutex<Active>>,
}

/// The transfers running, by client: a request repeated byte for byte from the same port (its
/// OACK or first block was slow to come) is the same transfer, not a second one. Any other
/// request starts its own (a client may reuse its port right after ending a tsize probe).
#[derive(Debug, Default)]
struct Active {
    /// The newest transfer of each client port: its id and request.
    by_client: HashMap<SocketAddr, (u64, Vec<u8>)>,
    /// Transfers running per address.
    per_ip: HashMap<IpAddr, usize>,
    /// Addresses whose dropped requests were logged since they were last under the limit.
    warned: HashSet<IpAddr>,
    next_id: u64,
}

impl Active {
    /// Whether `request` from `client` repeats the request of its running transfer.
    fn is_repeat(&self, client: SocketAddr, request: &[u8]) -> bool {
        self.by_client
            .get(&client)
            .is_some_and(|(_, r)| r == request)
    }

    /// Transfers running to `ip`, any port.
    fn from(&self, ip: IpAddr) -> usize {
        self.per_ip.get(&ip).copied().unwrap_or(0)
    }

    /// Records a new transfer; returns its id.
    fn insert(&mut self, client: SocketAddr, request: &[u8]) -> u64 {
        self.next_id += 1;
        self.by_client
            .insert(client, (self.next_id, request.to_vec()));
        *self.per_ip.entry(client.ip()).or_default() += 1;
        self.next_id
    }

    /// Forgets transfer `id` of `client`.
    fn remove(&mut self, client: SocketAddr, id: u64) {
        // A later request from the same port may have taken the entry over.
        if self.by_client.get(&client).is_some_and(|(i, _)| *i == id) {
            self.by_client.remove(&client);
        }
        let ip = client.ip();
        match self.per_ip.get_mut(&ip) {
            Some(n) if *n > 1 => *n -= 1,
            _ => {
                self.per_ip.remove(&ip);
            }
        }
        self.warned.remove(&ip);
    }
}

impl TftpServer {
    /// Binds the server port `addr`, serving through `handler` within `limits`.
    pub fn bind(
        addr: SocketAddr,
        handler: ConfinedTftpHandler,
        limits: Limits,
    ) -> io::Result<Self> {
        Ok(Self {
            socket: UdpSocket::bind(addr)?,
            local: addr.ip(),
            limits,
            handler: Arc::new(handler),
            active: Arc::default(),
        })
    }

    /// Serves requests on the calling thread until the socket fails.
    pub fn serve(self) -> io::Result<()> {
        // The largest request RFC 2347 allows is 512 bytes; room for clients that exceed it.
        let mut buf = [0u8; 2048];
        loop {
            let (n, client) = match self.socket.recv_from(&mut buf) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.on_datagram(&buf[..n], client);
        }
    }

    fn on_datagram(&self, datagram: &[u8], client: SocketAddr) {
        let stats = self.handler.stats();
        match request::answer(datagram) {
            Answer::Read {
                filename,
                mode,
                options,
            } => {
                {
                    let mut active = self.active();
                    if active.is_repeat(client, datagram) {
                        tracing::debug!(%client, file = %filename, "TFTP request repeated while its transfer runs: ignored");
                        return;
                    }
                    if active.from(client.ip()) >= MAX_PER_SOURCE {
                        TftpStats::count(&stats.limited);
                        if active.warned.insert(client.ip()) {
                            tracing::warn!(%client, "TFTP requests dropped: {MAX_PER_SOURCE} transfers to this address are running already (a flood?)");
                        }
                        return;
                    }
                }
                match self.handler.open_read(&client, filename) {
                    Ok(opened) => {
                        let n = options::negotiate(&options, mode, opened.len, self.limits);
                        self.start(client, datagram, filename, (mode, n), opened);
                    }
                    Err(refusal) => self.refuse(client, &refusal),
                }
            }
            Answer::Write { filename } => {
                let refusal = self.handler.refuse_write(&client, filename);
                self.refuse(client, &refusal);
            }
            Answer::Error { code, message } => {
                TftpStats::count(&stats.malformed);
                tracing::info!(%client, "TFTP request refused: {message}");
                self.send_error(client, code, &message);
            }
            Answer::Drop(why) => {
                TftpStats::count(&stats.malformed);
                tracing::debug!(%client, "TFTP datagram dropped: {why}");
            }
        }
    }

    fn active(&self) -> std::sync::MutexGuard<'_, Active> {
        self.active.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn refuse(&self, client: SocketAddr, refusal: &Refusal) {
        self.send_error(client, refusal.code, refusal.message);
    }

    /// An ERROR from a new port, as a transfer's would come (RFC 1350 §4).
    fn send_error(&self, client: SocketAddr, code: ErrorCode, message: &str) {
        let sent = UdpSocket::bind((self.local, 0))
            .and_then(|s| s.send_to(&packet::error(code, message), client));
        if let Err(e) = sent {
            tracing::debug!(%client, "cannot send a TFTP error: {e}");
        }
    }

    fn start(
        &self,
        client: SocketAddr,
        request: &[u8],
        name: &str,
        (mode, n): (Mode, Negotiated),
        opened: Opened,
    ) {
        let stats = self.handler.stats().clone();
        let sockets = match transfer::Sockets::open(self.local, client) {
            Ok(s) => s,
            Err(e) => {
                TftpStats::count(&stats.busy);
                tracing::warn!(%client, "TFTP request turned away: no socket for it: {e}");
                self.refuse(client, &Refusal::BUSY);
                return;
            }
        };
        let id = self.active().insert(client, request);
        let active = self.active.clone();
        let transfer = Transfer {
            sockets,
            client,
            name: name.to_string(),
            len: opened.len,
            stats: stats.clone(),
            // Runs when the transfer ends, or with the closure if the thread cannot start.
            on_end: Box::new(move || {
                active
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(client, id);
            }),
        };
        let spawned = std::thread::Builder::new()
            .name("tftp-send".into())
            .stack_size(TRANSFER_STACK)
            .spawn(move || transfer.run(opened, mode, n));
        if let Err(e) = spawned {
            // The closure, and the transfer with it, was dropped: its client is no longer active.
            TftpStats::count(&stats.busy);
            tracing::warn!(%client, "TFTP request turned away: no thread for it: {e}");
            self.refuse(client, &Refusal::BUSY);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_block_fits_the_mtu() {
        assert_eq!(limits_for_mtu(1500).max_block_size, 1468);
        assert_eq!(limits_for_mtu(9000).max_block_size, 8968);
        assert_eq!(limits_for_mtu(65536).max_block_size, 65464);
        // Below the default block size, blocks stay 512 bytes (RFC 1350 sends those anyway).
        assert_eq!(limits_for_mtu(300).max_block_size, 512);
        assert_eq!(ETHERNET_LIMITS, limits_for_mtu(1500));
    }

    #[test]
    fn active_transfers_are_counted_per_address_and_forgotten() {
        let mut a = Active::default();
        let c1: SocketAddr = "10.77.0.11:2000".parse().unwrap();
        let c2: SocketAddr = "10.77.0.11:2001".parse().unwrap();
        let first = a.insert(c1, b"req");
        assert!(a.is_repeat(c1, b"req"));
        assert!(!a.is_repeat(c1, b"other"));
        // A new request from the same port takes the entry over; the old transfer's end
        // leaves it alone.
        let second = a.insert(c1, b"other");
        a.insert(c2, b"req");
        assert_eq!(a.from(c1.ip()), 3);
        a.remove(c1, first);
        assert!(a.is_repeat(c1, b"other"));
        a.remove(c1, second);
        assert!(!a.is_repeat(c1, b"other"));
        assert_eq!(a.from(c1.ip()), 1);
    }
}
