//! One read transfer's sockets and thread: it drives a [`Session`] with blocking calls, so a
//! lock-step block costs one `send` and one `recv`, with no event loop between the client's ACK
//! and the next block (tftpd-hpa has a process per transfer for the same reason).
//!
//! Each transfer has a port of its own (a new transfer ID, RFC 1350 §4) and two sockets on it:
//! one connected to the client, which the kernel hands only the client's packets and sends
//! without a route lookup per block; and one unconnected, which gets everything else: packets
//! from another address or port, answered with ERROR 5 as RFC 1350 §4 asks, the transfer going
//! on. Both set SO_REUSEPORT, which only sockets of the same user may join.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use super::blocks::Blocks;
use super::handler::{Opened, TftpStats};
use super::options::{Mode, Negotiated};
use super::packet::{self, DATA_HEADER, ErrorCode, Packet};
use super::session::{Session, Step};

/// Retransmissions of an unanswered packet before a transfer is dropped (atftpd's count).
pub const MAX_SEND_RETRIES: u32 = 5;

/// ERROR 5 answers to strangers, per transfer: enough to tell a confused client, too few to
/// make a transfer a reflector.
const MAX_UNKNOWN_TID_REPLIES: u32 = 16;

/// Strangers' packets are looked at on every timeout and after this many ACKs: never on the
/// path of a lock-step block.
const STRANGER_CHECK_EVERY: u32 = 64;

/// The two sockets on a transfer's port.
#[derive(Debug)]
pub struct Sockets {
    /// Connected to the client.
    client: UdpSocket,
    /// Everything else that reaches the port (non-blocking).
    strangers: UdpSocket,
}

impl Sockets {
    /// A new port on `local` for `client`.
    pub fn open(local: IpAddr, client: SocketAddr) -> io::Result<Self> {
        let socket = || -> io::Result<Socket> {
            let s = Socket::new(
                Domain::for_address(client),
                Type::DGRAM,
                Some(Protocol::UDP),
            )?;
            s.set_reuse_port(true)?;
            Ok(s)
        };
        let strangers = socket()?;
        strangers.bind(&SocketAddr::new(local, 0).into())?;
        strangers.set_nonblocking(true)?;
        let port = strangers
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("the transfer socket has no port"))?;
        let own = socket()?;
        own.bind(&port.into())?;
        own.connect(&client.into())?;
        Ok(Self {
            client: own.into(),
            strangers: strangers.into(),
        })
    }
}

/// How a transfer ended.
#[derive(Debug)]
enum Outcome {
    /// The client acknowledged the last block.
    Sent,
    /// The client sent an ERROR.
    EndedByClient { code: u16, message: String },
    /// No answer after the retransmissions.
    GaveUp { acknowledged: u64 },
    /// The client's port is closed (an ICMP port unreachable came back): it went away
    /// without an ERROR, as some firmware does after a tsize probe.
    ClientGone,
    /// Reading the file or the socket failed.
    Failed(io::Error),
}

/// One transfer, run on its own thread.
pub struct Transfer {
    /// Its port.
    pub sockets: Sockets,
    /// The client's address and port.
    pub client: SocketAddr,
    /// The file's name as asked, for the log.
    pub name: String,
    /// The file's size.
    pub len: u64,
    /// The counters.
    pub stats: Arc<TftpStats>,
    /// Called once when the transfer is dropped (it ended, or its thread never started).
    pub on_end: Box<dyn FnMut() + Send>,
}

impl std::fmt::Debug for Transfer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transfer")
            .field("client", &self.client)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Drop for Transfer {
    fn drop(&mut self) {
        (self.on_end)();
    }
}

impl Transfer {
    /// Sends `opened` in `mode` as negotiated, and logs and counts how it ended.
    pub fn run(mut self, opened: Opened, mode: Mode, n: Negotiated) {
        let started = Instant::now();
        let outcome = self.send(opened, mode, &n);
        let (client, file) = (self.client, &self.name);
        match outcome {
            Outcome::Sent => tracing::info!(
                %client, %file, bytes = self.len, ms = started.elapsed().as_millis() as u64,
                "TFTP sent"
            ),
            Outcome::EndedByClient { code, message } => {
                TftpStats::count(&self.stats.ended_early);
                // Code 8 after the OACK is how firmware ends a tsize probe: routine.
                tracing::debug!(%client, %file, code, %message, "TFTP transfer ended by the client before the end (a tsize probe, or it gave up)");
            }
            Outcome::ClientGone => {
                TftpStats::count(&self.stats.ended_early);
                tracing::debug!(%client, %file, "TFTP transfer ended: the client's port is closed");
            }
            Outcome::GaveUp { acknowledged } => {
                TftpStats::count(&self.stats.gave_up);
                tracing::info!(%client, %file, blocks_acknowledged = acknowledged, "TFTP transfer given up: the client stopped answering");
            }
            Outcome::Failed(e) => {
                tracing::warn!(%client, %file, "TFTP transfer failed: {e}");
                let _ = self.sockets.client.send(&packet::error(
                    ErrorCode::NotDefined,
                    "Read error on the server",
                ));
            }
        }
    }

    fn send(&mut self, opened: Opened, mode: Mode, n: &Negotiated) -> Outcome {
        let block_size = usize::from(n.block_size);
        let mut blocks = Blocks::new(opened.file, n.block_size, mode);
        let oack = (!n.reply.is_empty()).then(|| packet::oack(&n.reply));
        let mut session = Session::new(n.window, oack.is_some(), n.timeout, MAX_SEND_RETRIES);
        let mut waiting = Waiting::new(&self.sockets.client);
        let mut strangers = Strangers::default();
        let mut acks = 0u32;
        let mut step = session.start();
        loop {
            match step {
                Step::SendOack => {
                    if let Some(oack) = &oack
                        && let Err(e) = self.sockets.client.send(oack)
                    {
                        return failed(e);
                    }
                    waiting.restart(session.timeout());
                }
                Step::Send(range) => {
                    for index in range {
                        let packet = match blocks.packet(index) {
                            Ok(Some(p)) => p,
                            Ok(None) => break,
                            Err(e) => return Outcome::Failed(e),
                        };
                        if let Err(e) = self.sockets.client.send(packet) {
                            return failed(e);
                        }
                        if packet.len() < DATA_HEADER + block_size {
                            session.last_block(index);
                            break;
                        }
                    }
                    waiting.restart(session.timeout());
                }
                Step::Wait => {}
                Step::Done => return Outcome::Sent,
                Step::GiveUp => {
                    return Outcome::GaveUp {
                        acknowledged: session.acknowledged(),
                    };
                }
            }
            step = match waiting.next() {
                Err(e) => return failed(e),
                Ok(None) => {
                    strangers.answer(&self.sockets.strangers, &self.stats);
                    session.on_timeout()
                }
                Ok(Some(Heard::Ack(block))) => {
                    acks = acks.wrapping_add(1);
                    if acks.is_multiple_of(STRANGER_CHECK_EVERY) {
                        strangers.answer(&self.sockets.strangers, &self.stats);
                    }
                    let s = session.on_ack(block);
                    blocks.release_before(session.base());
                    s
                }
                Ok(Some(Heard::Error { code, message })) => {
                    return Outcome::EndedByClient { code, message };
                }
                Ok(Some(Heard::Other)) => Step::Wait,
            };
        }
    }
}

/// How a socket error ends a transfer: a connected socket reports an ICMP port unreachable
/// for what it sent as ECONNREFUSED on its next call.
fn failed(e: io::Error) -> Outcome {
    if e.kind() == io::ErrorKind::ConnectionRefused {
        Outcome::ClientGone
    } else {
        Outcome::Failed(e)
    }
}

/// The ERROR 5 answers a transfer has given.
#[derive(Debug, Default)]
struct Strangers {
    answered: u32,
}

impl Strangers {
    /// Answers (up to the limit) and counts every packet waiting on the strangers' socket.
    fn answer(&mut self, socket: &UdpSocket, stats: &TftpStats) {
        let mut buf = [0u8; 16];
        // Bounded: a flood of strangers cannot keep the transfer here.
        for _ in 0..256 {
            let Ok((_, from)) = socket.recv_from(&mut buf) else {
                return;
            };
            TftpStats::count(&stats.unknown_tid);
            if self.answered < MAX_UNKNOWN_TID_REPLIES {
                self.answered += 1;
                let e = packet::error(ErrorCode::UnknownTransferId, "Unknown transfer ID");
                let _ = socket.send_to(&e, from);
            }
        }
    }
}

/// What arrived from the client.
enum Heard {
    Ack(u16),
    Error {
        code: u16,
        message: String,
    },
    /// A packet that changes nothing (a DATA, an OACK, garbage).
    Other,
}

/// The wait for the client's answer, until a deadline set when something was sent.
struct Waiting<'s> {
    socket: &'s UdpSocket,
    deadline: Instant,
    /// The receive timeout set on the socket: set again only when it changes, which in a
    /// steady transfer is never (one system call less per block).
    set: Option<Duration>,
    /// The next receive may use the whole timeout.
    fresh: Option<Duration>,
    buf: [u8; 1024],
}

impl<'s> Waiting<'s> {
    fn new(socket: &'s UdpSocket) -> Self {
        Self {
            socket,
            deadline: Instant::now(),
            set: None,
            fresh: None,
            buf: [0; 1024],
        }
    }

    fn restart(&mut self, timeout: Duration) {
        self.deadline = Instant::now() + timeout;
        self.fresh = Some(timeout);
    }

    /// The client's next packet, or None when the deadline passed.
    fn next(&mut self) -> io::Result<Option<Heard>> {
        loop {
            let wait = match self.fresh.take() {
                Some(t) => t,
                None => {
                    let left = self.deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    left
                }
            };
            if self.set != Some(wait) {
                self.socket.set_read_timeout(Some(wait))?;
                self.set = Some(wait);
            }
            match self.socket.recv(&mut self.buf) {
                Ok(n) => {
                    return Ok(Some(match packet::parse(&self.buf[..n]) {
                        Ok(Packet::Ack(block)) => Heard::Ack(block),
                        Ok(Packet::Error { code, message }) => Heard::Error {
                            code,
                            message: message.into_owned(),
                        },
                        _ => Heard::Other,
                    }));
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    if Instant::now() >= self.deadline {
                        return Ok(None);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}
