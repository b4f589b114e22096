//! The tokio runtime around an [`Agent`]: one UDP socket on the gossip address, an optional
//! multicast listener, timers from the agent, and a load sampler. Runs on the caller's runtime.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use crate::agent::{Agent, AgentConfig, Event};
use crate::api::{Flags, NodeInfo};
use crate::clock::{Clock, MonotonicClock};
use crate::identity::NodeIdentity;
use crate::key::ClusterKey;
use crate::load::LoadSource;
use crate::wire::{DropCounters, MAX_FRAME};

/// How to run one node.
pub struct NodeConfig {
    /// Who we are; `identity.addr` is also where we bind.
    pub identity: NodeIdentity,
    /// Cluster key.
    pub key: ClusterKey,
    /// Agent settings (seeds, multicast group:port, tuning).
    pub agent: AgentConfig,
    /// Where load comes from; `None` for observers.
    pub load_source: Option<Box<dyn LoadSource>>,
}

impl std::fmt::Debug for NodeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeConfig")
            .field("identity", &self.identity)
            .field("agent", &self.agent)
            .finish_non_exhaustive()
    }
}

/// Socket setup failures.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Binding or configuring a socket failed.
    #[error("{what} {addr}")]
    Socket {
        /// What we were doing.
        what: &'static str,
        /// Address involved.
        addr: SocketAddrV4,
        /// Cause.
        source: std::io::Error,
    },
}

/// A running node. Dropping it does not stop it; call [`NodeHandle::stop`].
#[derive(Debug, Clone)]
pub struct NodeHandle {
    agent: Arc<Mutex<Agent>>,
    clock: MonotonicClock,
    task: Arc<JoinHandle<()>>,
    local: SocketAddrV4,
}

fn lock(a: &Mutex<Agent>) -> MutexGuard<'_, Agent> {
    // A panic while holding the lock cannot leave the agent half-updated in a way that
    // matters more than stopping would; keep serving.
    a.lock().unwrap_or_else(|p| p.into_inner())
}

impl NodeHandle {
    /// The table, this node first.
    pub fn nodes(&self) -> Vec<NodeInfo> {
        lock(&self.agent).nodes(self.clock.now())
    }

    /// Current identity (the generation changes on rejoin).
    pub fn identity(&self) -> NodeIdentity {
        lock(&self.agent).identity().clone()
    }

    /// Drop counters.
    pub fn drops(&self) -> DropCounters {
        lock(&self.agent).drops()
    }

    /// Bound address.
    pub fn local_addr(&self) -> SocketAddrV4 {
        self.local
    }

    /// Run `f` with the agent locked (control requests).
    pub fn with_agent<R>(&self, f: impl FnOnce(&mut Agent, Duration) -> R) -> R {
        let now = self.clock.now();
        f(&mut lock(&self.agent), now)
    }

    /// Current flags.
    pub fn flags(&self) -> Flags {
        lock(&self.agent).flags()
    }

    /// Stop the node abruptly (as if killed: no leave message).
    pub fn stop(&self) {
        self.task.abort();
    }
}

fn sock_err(what: &'static str, addr: SocketAddrV4) -> impl FnOnce(std::io::Error) -> NodeError {
    move |source| NodeError::Socket { what, addr, source }
}

/// Bind the gossip socket: `addr`, multicast sent out of its interface with TTL 1.
fn gossip_socket(addr: SocketAddrV4) -> Result<UdpSocket, NodeError> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
        .map_err(sock_err("creating socket for", addr))?;
    s.set_nonblocking(true)
        .map_err(sock_err("configuring", addr))?;
    s.bind(&SocketAddr::V4(addr).into())
        .map_err(sock_err("binding", addr))?;
    s.set_multicast_if_v4(addr.ip())
        .map_err(sock_err("IP_MULTICAST_IF", addr))?;
    s.set_multicast_ttl_v4(1)
        .map_err(sock_err("IP_MULTICAST_TTL", addr))?;
    UdpSocket::from_std(s.into()).map_err(sock_err("registering", addr))
}

/// Listen on `group:port`, joined on the interface with address `iface`.
fn multicast_socket(group: SocketAddrV4, iface: Ipv4Addr) -> Result<UdpSocket, NodeError> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
        .map_err(sock_err("creating socket for", group))?;
    // Several processes on one host (tests, an observer beside omd) may listen to the group.
    s.set_reuse_address(true)
        .map_err(sock_err("SO_REUSEADDR", group))?;
    s.set_reuse_port(true)
        .map_err(sock_err("SO_REUSEPORT", group))?;
    s.set_nonblocking(true)
        .map_err(sock_err("configuring", group))?;
    s.bind(&SocketAddr::V4(group).into())
        .map_err(sock_err("binding", group))?;
    s.join_multicast_v4(group.ip(), &iface)
        .map_err(sock_err("joining", group))?;
    UdpSocket::from_std(s.into()).map_err(sock_err("registering", group))
}

/// Start a node on the current tokio runtime.
pub fn spawn(cfg: NodeConfig) -> Result<NodeHandle, NodeError> {
    let clock = MonotonicClock::default();
    let local = cfg.identity.addr;
    let sock = gossip_socket(local)?;
    let mcast = match cfg.agent.multicast {
        Some(g) => Some(multicast_socket(g, *local.ip())?),
        None => None,
    };
    let agent = Arc::new(Mutex::new(Agent::new(
        cfg.identity,
        cfg.key,
        cfg.agent,
        None,
        clock.now(),
    )));
    let task = tokio::spawn(run(agent.clone(), clock, sock, mcast, cfg.load_source));
    Ok(NodeHandle {
        agent,
        clock,
        task: Arc::new(task),
        local,
    })
}

async fn recv_opt(s: &Option<UdpSocket>, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    match s {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

async fn run(
    agent: Arc<Mutex<Agent>>,
    clock: MonotonicClock,
    sock: UdpSocket,
    mcast: Option<UdpSocket>,
    mut source: Option<Box<dyn LoadSource>>,
) {
    let start = tokio::time::Instant::now() - clock.now();
    let mut buf = vec![0u8; MAX_FRAME + 1];
    let mut mbuf = vec![0u8; MAX_FRAME + 1];
    let mut sample_every =
        tokio::time::interval(Duration::from_secs(1) / crate::load::READINGS_PER_SAMPLE as u32);
    let mut readings = crate::load::Readings::default();
    sample_every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let wake = lock(&agent).next_wakeup();
        let received = tokio::select! {
            r = sock.recv_from(&mut buf) => r.ok().map(|(n, from)| (n, from, false)),
            r = recv_opt(&mcast, &mut mbuf) => r.ok().map(|(n, from)| (n, from, true)),
            _ = tokio::time::sleep_until(start + wake) => None,
            _ = sample_every.tick(), if source.is_some() => {
                if let Some(src) = source.as_mut() {
                    match src.sample() {
                        Ok(s) => {
                            if let Some(s) = readings.add(s) {
                                lock(&agent).set_sample(s);
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "load sample failed"),
                    }
                }
                None
            }
        };
        let (out, events) = {
            let mut a = lock(&agent);
            let now = clock.now();
            if let Some((n, SocketAddr::V4(from), is_m)) = received {
                let data = if is_m { &mbuf[..n] } else { &buf[..n] };
                a.handle_data(data, from, now);
            }
            a.poll(now);
            (a.drain_outgoing(), a.drain_events())
        };
        for ev in events {
            match ev {
                Event::Up(id) => {
                    tracing::info!(id = %id.id, name = %id.name, addr = %id.addr, "member up")
                }
                Event::Down(id) => tracing::info!(id = %id.id, name = %id.name, "member down"),
                Event::Renamed(_, id) => {
                    tracing::info!(id = %id.id, name = %id.name, "member restarted")
                }
                Event::Rejoined(id) => tracing::warn!(
                    generation = id.generation,
                    "we were declared down; rejoined"
                ),
            }
        }
        for o in out {
            if let Err(e) = sock.send_to(&o.data, o.to).await {
                tracing::debug!(to = %o.to, error = %e, "send failed");
            }
        }
    }
}
