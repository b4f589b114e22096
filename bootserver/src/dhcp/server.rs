//! The DHCP socket: bound to the configured interface only (SO_BINDTODEVICE), so a request arriving
//! on any other interface never reaches us; each datagram is decoded, handled and answered.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex, PoisonError};

use dhcproto::v4::{Message, MessageType};
use dhcproto::{Encodable, Encoder};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::Notify;

use super::arp;
use super::boot_client::BootClient;
use super::handler::{self, DropReason, Outcome, Undecodable};
use super::log_gate::LogGate;
use super::proxy::{self, Port};
use super::rate_limit::{PER_MAC, Rate, RateLimits};
use super::reply_addr::{CLIENT_PORT, Destination, SERVER_PORT};
use super::stats::{DhcpStats, Event};
use crate::boot_stage::{self as stage, BootStages};
use crate::config::wire::{DhcpMode, UnknownMacs};
use crate::leases::LeaseStore;
use crate::leases::commits::{self, Commits};
use crate::live::LiveConfig;
use crate::mac::MacAddr;
use crate::pending::Pending;
use migrator::clock::Clock;

/// RFC 1542 §3.3: some PXE ROMs drop BOOTP messages shorter than 300 bytes.
const MIN_BOOTP_LEN: usize = 300;

/// The DHCP socket could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The configured interface does not exist.
    #[error("interface `{0}` does not exist (check `interface` in the config)")]
    NoInterface(String),
    /// Someone else serves DHCP here already.
    #[error("UDP port {0} is already in use: is another DHCP server (dnsmasq, kea) running?")]
    PortBusy(u16),
    /// Not root.
    #[error(
        "not allowed to bind UDP port {0} on `{1}`: ombootd needs root (CAP_NET_BIND_SERVICE, CAP_NET_RAW)"
    )]
    Permission(u16, String),
    /// Anything else.
    #[error("cannot open the DHCP socket on `{iface}`: {source}")]
    Other {
        /// The interface.
        iface: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Open the DHCP socket on `iface`, port `port`.
pub fn bind(iface: &str, port: u16) -> Result<std::net::UdpSocket, BindError> {
    if !std::path::Path::new("/sys/class/net").join(iface).exists() {
        return Err(BindError::NoInterface(iface.to_string()));
    }
    let other = |source| BindError::Other {
        iface: iface.to_string(),
        source,
    };
    let sock = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(other)?;
    sock.bind_device(Some(iface.as_bytes()))
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENODEV) => BindError::NoInterface(iface.to_string()),
            Some(libc::EPERM) => BindError::Permission(port, iface.to_string()),
            _ => other(e),
        })?;
    sock.set_broadcast(true).map_err(other)?;
    // Room for a burst while the loop drops it: a flood from one sender must not fill the
    // queue the other nodes' requests wait in (capped by net.core.rmem_max).
    let _ = sock.set_recv_buffer_size(4 << 20);
    sock.set_nonblocking(true).map_err(other)?;
    let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port));
    sock.bind(&addr.into())
        .map_err(|e| match e.raw_os_error() {
            Some(libc::EADDRINUSE) => BindError::PortBusy(port),
            Some(libc::EACCES) => BindError::Permission(port, iface.to_string()),
            _ => other(e),
        })?;
    Ok(sock.into())
}

/// The running server.
pub struct DhcpServer {
    socket: Arc<UdpSocket>,
    config: Arc<LiveConfig>,
    leases: Arc<Mutex<dyn LeaseStore>>,
    /// What of the lease file is on disk: an ACK waits for its lease.
    commits: Arc<Commits>,
    stats: Arc<DhcpStats>,
    clock: Arc<dyn Clock>,
    /// Which unknown MACs get an INFO line (the rest: DEBUG).
    log_gate: Mutex<LogGate>,
    /// Per-MAC and per-source budgets.
    limits: Mutex<RateLimits>,
    /// The time base of the budgets.
    started: std::time::Instant,
    /// Where each MAC's boot is (a reply sent is its DHCP stage).
    stages: Arc<BootStages>,
    /// Unknown MACs kept for approval.
    pending: Arc<Pending>,
    /// The PXE boot server port (4011), in proxy mode.
    pxe_socket: Option<Arc<UdpSocket>>,
    /// ACKs waiting for their lease to reach the disk, in the order of their generations.
    held: Mutex<VecDeque<Held>>,
    /// An ACK was held after its write had already landed: release it without waiting for
    /// the next write.
    held_late: Notify,
}

/// An ACK held until the write of its lease generation is on disk.
#[derive(Debug)]
struct Held {
    generation: u64,
    since: std::time::Instant,
    reply: Prepared,
}

impl std::fmt::Debug for DhcpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DhcpServer")
            .field("socket", &self.socket)
            .finish_non_exhaustive()
    }
}

impl DhcpServer {
    /// Wrap a socket from [`bind`].
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        socket: std::net::UdpSocket,
        config: Arc<LiveConfig>,
        leases: Arc<Mutex<dyn LeaseStore>>,
        commits: Arc<Commits>,
        stats: Arc<DhcpStats>,
        clock: Arc<dyn Clock>,
        stages: Arc<BootStages>,
        pending: Arc<Pending>,
    ) -> std::io::Result<Self> {
        let source_rate = config.get().dhcp_source_rate;
        Ok(Self {
            socket: Arc::new(UdpSocket::from_std(socket)?),
            config,
            leases,
            commits,
            stats,
            clock,
            log_gate: Mutex::default(),
            limits: Mutex::new(RateLimits::new(PER_MAC, Rate::per_source(source_rate))),
            started: std::time::Instant::now(),
            stages,
            pending,
            pxe_socket: None,
            held: Mutex::default(),
            held_late: Notify::new(),
        })
    }

    /// Also serve the PXE boot server port (proxyDHCP: PXE firmware asks it for its boot file).
    pub fn with_pxe_port(mut self, socket: std::net::UdpSocket) -> std::io::Result<Self> {
        self.pxe_socket = Some(Arc::new(UdpSocket::from_std(socket)?));
        Ok(self)
    }

    /// Serve until the task is dropped. Per-datagram failures are counted and logged, never fatal.
    pub async fn run(mut self) -> std::io::Result<()> {
        let pxe = self.pxe_socket.take();
        let me = Arc::new(self);
        if let Some(socket) = pxe {
            tokio::spawn(me.clone().serve(socket, Port::Pxe));
        }
        let release = tokio::spawn(me.clone().release_held());
        let socket = me.socket.clone();
        let served = me.serve(socket, Port::Dhcp).await;
        release.abort();
        served
    }

    /// Sends the held ACKs whose leases are on disk, all of them at each write: one wake-up per
    /// fsync rather than one task per ACK (at thousands of ACKs a second the hand-offs were
    /// most of the cost). An ACK held longer than [`commits::WAIT`] is dropped and counted; the
    /// client asks again.
    async fn release_held(self: Arc<Self>) {
        let mut durable = self.commits.subscribe();
        loop {
            // Woken by each write, and now and then to drop what waited too long.
            tokio::select! {
                r = durable.changed() => if r.is_err() { return },
                () = self.held_late.notified() => {}
                () = tokio::time::sleep(commits::WAIT / 4) => {}
            }
            let done = *durable.borrow_and_update();
            let (ready, late) = {
                let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
                let n = held.partition_point(|h| h.generation <= done);
                let ready: Vec<Held> = held.drain(..n).collect();
                let n = held.partition_point(|h| h.since.elapsed() >= commits::WAIT);
                let late: Vec<Held> = held.drain(..n).collect();
                (ready, late)
            };
            for h in ready {
                send(&self.socket, &self.stats, &self.stages, h.reply).await;
            }
            for h in late {
                self.stats.count(Event::Failed);
                tracing::error!(node = %h.reply.node, "no DHCP {:?} sent: its lease did not reach the disk in time", h.reply.kind);
            }
        }
    }

    /// The receive loop of one port.
    async fn serve(self: Arc<Self>, socket: Arc<UdpSocket>, port: Port) -> std::io::Result<()> {
        let mut buf = vec![0u8; 1500];
        loop {
            let (len, from) = match socket.recv_from(&mut buf).await {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!("DHCP receive failed: {e}");
                    continue;
                }
            };
            self.stats.count(Event::Received);
            let source = match from {
                SocketAddr::V4(a) => *a.ip(),
                SocketAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
            };
            let now_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
            let limited = self
                .limits
                .lock()
                .ok()
                .map(|mut l| l.check(&buf[..len], source, now_ms));
            if let Some(Err(why)) = limited {
                self.stats.count(Event::RateLimited);
                tracing::debug!(%from, ?why, "dropped a DHCP datagram over its sender's rate");
                continue;
            }
            let req = match handler::decode(&buf[..len]) {
                Ok(m) => m,
                Err(Undecodable::NotDhcp) => {
                    self.stats.count(Event::NotDhcp);
                    tracing::debug!(%from, "dropped a datagram without the DHCP magic cookie (BOOTP)");
                    continue;
                }
                Err(e @ Undecodable::Malformed(_)) => {
                    self.stats.count(Event::Malformed);
                    tracing::debug!(%from, "dropped a {e}");
                    continue;
                }
            };
            let Some(reply) = self.answer(&req, port, from) else {
                continue;
            };
            match reply.after {
                // The lease this ACK grants is not on disk yet: the reply waits for the write
                // that holds it (together with every other ACK of that write), off this loop.
                Some(generation) if generation > self.commits.durable() => {
                    self.held
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push_back(Held {
                            generation,
                            since: std::time::Instant::now(),
                            reply,
                        });
                    self.commits.want();
                    // The write may have landed between the look above and the push.
                    if generation <= self.commits.durable() {
                        self.held_late.notify_one();
                    }
                }
                _ => send(&socket, &self.stats, &self.stages, reply).await,
            }
        }
    }

    /// Whether a line about `req` is logged at its level (else at debug): one a minute per MAC,
    /// so a flood cannot fill the log.
    fn loud(&self, req: &Message) -> bool {
        let now = self.clock.now().as_secs();
        MacAddr::from_chaddr(req.chaddr())
            .is_some_and(|m| self.log_gate.lock().is_ok_and(|mut g| g.allow(m, now)))
    }

    /// The reply to `req`, received on `port` from `from`, if any, encoded and addressed.
    fn answer(&self, req: &Message, port: Port, from: SocketAddr) -> Option<Prepared> {
        let config = self.config.get();
        let proxy = config.dhcp_mode == DhcpMode::Proxy;
        let (outcome, generation) = if proxy {
            // No address, no lease: nothing to wait for on disk.
            (Ok(proxy::handle(req, &config, port)), None)
        } else {
            let Ok(mut leases) = self.leases.lock() else {
                self.stats.count(Event::Failed);
                return None;
            };
            let outcome = handler::handle(req, &config, &mut *leases, self.clock.now().as_secs());
            (outcome, Some(leases.generation()))
        };
        let (msg, kind, dest, node, boot_file) = match outcome {
            Ok(Outcome::Reply {
                msg,
                kind,
                dest,
                node,
                boot_file,
            }) => (msg, kind, dest, node, boot_file),
            Ok(Outcome::Drop(DropReason::UnknownClient(mac))) => {
                self.stats.count(Event::UnknownClient);
                let now = self.clock.now().as_secs();
                self.stages.record(mac, stage::Event::Offer);
                if config.unknown_macs == UnknownMacs::Register {
                    if self.pending.record(mac, now) {
                        tracing::info!(%mac, "a MAC not in the node table waits for approval: ombootd node approve {mac} --name NAME");
                    }
                    return None;
                }
                if self.log_gate.lock().is_ok_and(|mut g| g.allow(mac, now)) {
                    tracing::info!(%mac, "ignoring DHCP from a MAC not in the node table");
                } else {
                    tracing::debug!(%mac, "ignoring DHCP from a MAC not in the node table");
                }
                return None;
            }
            Ok(Outcome::Drop(DropReason::PoolExhausted(mac))) => {
                self.stats.count(Event::PoolExhausted);
                let now = self.clock.now().as_secs();
                if self.log_gate.lock().is_ok_and(|mut g| g.allow(mac, now)) {
                    let pool = config.pool.map(|p| p.to_string()).unwrap_or_default();
                    tracing::warn!(%mac, "no address left in the pool {pool}: the DISCOVER goes unanswered");
                }
                return None;
            }
            Ok(Outcome::Drop(DropReason::Declined { node, ip })) => {
                self.stats.count(Event::Declined);
                tracing::warn!(%node, %ip, "the node declined its address: another host answers for it; kept out of use for {} s", handler::DECLINE_HOLD_SECS);
                return None;
            }
            Ok(Outcome::Drop(DropReason::NoMessageType)) => {
                self.stats.count(Event::NotDhcp);
                tracing::debug!("dropped a request without option 53 (BOOTP)");
                return None;
            }
            Ok(Outcome::Drop(DropReason::WrongNetwork { node, ip, network })) => {
                self.stats.count(Event::Ignored);
                let msg = "a node asks from another network than its address's: no answer (fix its `ip`, or declare its subnet as [[relayed_subnet]])";
                if self.loud(req) {
                    tracing::warn!(%node, %ip, %network, "{msg}");
                } else {
                    tracing::debug!(%node, %ip, %network, "{msg}");
                }
                return None;
            }
            Ok(Outcome::Drop(DropReason::UnknownRelay(giaddr))) => {
                self.stats.count(Event::Ignored);
                let msg = "DHCP forwarded by a relay agent of a subnet not served: no answer (declare it as [[relayed_subnet]])";
                if self.loud(req) {
                    tracing::info!(%giaddr, "{msg}");
                } else {
                    tracing::debug!(%giaddr, "{msg}");
                }
                return None;
            }
            Ok(Outcome::Drop(DropReason::NotForProxy)) => {
                // The site's server answers it; not worth a counter of ours.
                return None;
            }
            Ok(Outcome::Drop(reason)) => {
                self.stats.count(Event::Ignored);
                tracing::debug!(?reason, "no DHCP reply");
                return None;
            }
            Err(e) => {
                self.stats.count(Event::Failed);
                tracing::error!("no DHCP reply sent: {e}");
                return None;
            }
        };
        let mut bytes = Vec::with_capacity(MIN_BOOTP_LEN);
        if let Err(e) = msg.encode(&mut Encoder::new(&mut bytes)) {
            self.stats.count(Event::Failed);
            tracing::error!("cannot encode DHCP reply: {e}");
            return None;
        }
        if bytes.len() < MIN_BOOTP_LEN {
            bytes.resize(MIN_BOOTP_LEN, 0);
        }
        let to = match (dest, port, from) {
            // The PXE port answers where the request came from (the client's port, 68 or 4011).
            (_, Port::Pxe, SocketAddr::V4(from)) => from,
            (_, Port::Pxe, SocketAddr::V6(_)) => return None,
            (dest, Port::Dhcp, _) => match dest {
                Destination::Relay(ip) => SocketAddrV4::new(ip, SERVER_PORT),
                Destination::Unicast(ip) => SocketAddrV4::new(ip, CLIENT_PORT),
                Destination::UnicastNoArp { ip, mac } => {
                    match arp::insert(&self.socket, &config.interface, ip, mac) {
                        Ok(()) => SocketAddrV4::new(ip, CLIENT_PORT),
                        Err(e) => {
                            tracing::debug!("ARP insert failed ({e}); broadcasting instead");
                            SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT)
                        }
                    }
                }
                Destination::Broadcast => SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT),
            },
        };
        Some(Prepared {
            bytes,
            to,
            kind,
            node,
            ip: msg.yiaddr(),
            boot_file,
            mac: MacAddr::from_chaddr(req.chaddr()),
            boot_offer: kind == MessageType::Offer && BootClient::of(req) != BootClient::Plain,
            after: generation.filter(|_| kind == MessageType::Ack),
            proxy,
        })
    }
}

/// A reply encoded and addressed, waiting to be sent.
#[derive(Debug)]
struct Prepared {
    bytes: Vec<u8>,
    to: SocketAddrV4,
    kind: MessageType,
    node: String,
    ip: Ipv4Addr,
    boot_file: Option<String>,
    mac: Option<MacAddr>,
    /// An offer to a network-boot client: a boot starts.
    boot_offer: bool,
    /// The lease generation that must be on disk first (ACKs only).
    after: Option<u64>,
    /// A proxyDHCP reply (no address).
    proxy: bool,
}

async fn send(socket: &UdpSocket, stats: &DhcpStats, stages: &BootStages, p: Prepared) {
    let Prepared {
        bytes,
        to,
        kind,
        node,
        ip,
        boot_file,
        mac,
        boot_offer,
        proxy,
        ..
    } = p;
    match socket.send_to(&bytes, to).await {
        Ok(_) => {
            stats.count(Event::Replied);
            if let Some(mac) = mac {
                let event = if boot_offer {
                    stage::Event::Offer
                } else {
                    stage::Event::At(stage::Stage::Dhcp)
                };
                stages.record(mac, event);
            }
            let what = if proxy { "proxyDHCP" } else { "DHCP" };
            tracing::info!(%node, %ip, to = %to, boot_file = boot_file.as_deref().unwrap_or("-"), "{what} {kind:?}");
        }
        Err(e) => {
            stats.count(Event::Failed);
            tracing::warn!(%node, "sending DHCP {kind:?} to {to} failed: {e}");
        }
    }
}
