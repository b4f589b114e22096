//! Privileged: IPv6 router advertisements on the served interface only, so that iPXE's IPv6
//! configuration, which waits for one, ends at once instead of after its timeout (about 13 s of
//! every boot in the lab). The advertisement configures nothing ([`packet`]), unless IPv6
//! netboot is on: then it sends the nodes to DHCPv6 and marks the prefix on-link. It answers each
//! solicitation, at most one a second, and repeats every [`EVERY`].

pub mod packet;

use std::net::{Ipv6Addr, SocketAddrV6};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;

/// Unsolicited advertisements this often.
pub const EVERY: Duration = Duration::from_secs(10);
/// All-nodes multicast (RFC 4291).
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// RFC 4861 §6.1: neighbour discovery packets carry hop limit 255, and receivers check it.
const HOP_LIMIT: u32 = 255;

/// The raw ICMPv6 socket on `iface`, ready to advertise.
#[derive(Debug)]
pub struct Advertiser {
    sock: AsyncFd<Socket>,
    ifindex: u32,
    ra: Vec<u8>,
}

/// The index of `iface`.
pub fn ifindex(iface: &str) -> std::io::Result<u32> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{iface}/ifindex"))?;
    text.trim()
        .parse()
        .map_err(|_| std::io::Error::other(format!("no index for {iface}")))
}

/// The Ethernet address of `iface`.
pub fn mac_of(iface: &str) -> std::io::Result<[u8; 6]> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{iface}/address"))?;
    let mac: crate::mac::MacAddr = text
        .trim()
        .parse()
        .map_err(|_| std::io::Error::other(format!("{iface} has no Ethernet address")))?;
    Ok(mac.0)
}

impl Advertiser {
    /// Open the socket on `iface` (needs CAP_NET_RAW: call it before privileges are dropped);
    /// with `boot`, the advertisements send the nodes to DHCPv6 for that prefix.
    pub fn bind(
        iface: &str,
        boot: Option<&crate::dhcp6::prefix::Ipv6Boot>,
    ) -> std::io::Result<Self> {
        let sock = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
        sock.bind_device(Some(iface.as_bytes()))?;
        sock.set_multicast_hops_v6(HOP_LIMIT)?;
        sock.set_unicast_hops_v6(HOP_LIMIT)?;
        sock.set_nonblocking(true)?;
        let ifindex = ifindex(iface)?;
        // Solicitations arrive at all-routers (ff02::2).
        sock.join_multicast_v6(&Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2), ifindex)?;
        // SAFETY: the socket2 Socket owns its descriptor and keeps it open, unchanged, for as
        // long as the AsyncFd holds it.
        let sock = unsafe { AsyncFd::register(sock) }?;
        Ok(Self {
            sock,
            ifindex,
            ra: packet::advertisement(mac_of(iface)?, boot.map(|b| (b.network(), b.prefix_len()))),
        })
    }

    async fn send(&self) -> std::io::Result<()> {
        let to = SocketAddrV6::new(ALL_NODES, 0, 0, self.ifindex);
        loop {
            let mut guard = self.sock.writable().await?;
            match guard.try_io(|s| s.get_ref().send_to(&self.ra, &to.into())) {
                Ok(r) => return r.map(drop),
                Err(_would_block) => continue,
            }
        }
    }

    async fn recv(&self, buf: &mut [std::mem::MaybeUninit<u8>]) -> std::io::Result<usize> {
        loop {
            let mut guard = self.sock.readable().await?;
            match guard.try_io(|s| s.get_ref().recv(buf)) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    /// Advertise until an error; failures to send are logged and retried at the next turn.
    pub async fn run(self) {
        let mut every = tokio::time::interval(EVERY);
        let mut last = tokio::time::Instant::now() - Duration::from_secs(2);
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 1500];
        loop {
            let answer = tokio::select! {
                _ = every.tick() => true,
                r = self.recv(&mut buf) => match r {
                    Ok(n) => {
                        // SAFETY: recv initialised the first n bytes of buf.
                        let msg: Vec<u8> = buf[..n].iter().map(|b| unsafe { b.assume_init() }).collect();
                        packet::classify(&msg) == packet::Received::Solicitation
                            && last.elapsed() >= Duration::from_secs(1)
                    }
                    Err(e) => {
                        tracing::debug!("router solicitation socket: {e}");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        false
                    }
                },
            };
            if answer {
                last = tokio::time::Instant::now();
                if let Err(e) = self.send().await {
                    tracing::debug!("cannot send a router advertisement: {e}");
                }
            }
        }
    }
}
