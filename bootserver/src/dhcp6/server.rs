//! The DHCPv6 socket: UDP port 547 bound to the served interface (SO_BINDTODEVICE), joined to
//! All_DHCP_Relay_Agents_and_Servers (ff02::1:2) there; each message is decoded, handled and
//! answered to the address and port it came from.

use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::Arc;

use dhcproto::v6::Message;
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use super::handler::{self, Outcome};
use super::prefix::Ipv6Boot;
use crate::live::LiveConfig;

/// The DHCPv6 server port (RFC 8415 §7.2).
pub const SERVER_PORT: u16 = 547;
/// All_DHCP_Relay_Agents_and_Servers (RFC 8415 §7.1).
const ALL_SERVERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);

/// The running server.
#[derive(Debug)]
pub struct Dhcp6Server {
    socket: UdpSocket,
    config: Arc<LiveConfig>,
    boot: Ipv6Boot,
    /// Our DUID-LL (RFC 8415 §11.4), from the interface's MAC.
    duid: Vec<u8>,
}

/// Open the socket on `iface` (call it before privileges are dropped); `mac` is the interface's.
pub fn bind(iface: &str, mac: [u8; 6]) -> std::io::Result<(std::net::UdpSocket, Vec<u8>)> {
    let sock = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    sock.set_only_v6(true)?;
    sock.bind_device(Some(iface.as_bytes()))?;
    sock.set_reuse_address(true)?;
    sock.set_nonblocking(true)?;
    let addr = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, SERVER_PORT, 0, 0));
    sock.bind(&addr.into())?;
    let ifindex = crate::ra::ifindex(iface)?;
    sock.join_multicast_v6(&ALL_SERVERS, ifindex)?;
    let mut duid = vec![0, 3, 0, 1];
    duid.extend_from_slice(&mac);
    Ok((sock.into(), duid))
}

impl Dhcp6Server {
    /// Wrap a socket from [`bind`].
    pub fn new(
        socket: std::net::UdpSocket,
        duid: Vec<u8>,
        config: Arc<LiveConfig>,
        boot: Ipv6Boot,
    ) -> std::io::Result<Self> {
        Ok(Self {
            socket: UdpSocket::from_std(socket)?,
            config,
            boot,
            duid,
        })
    }

    /// Serve until the task is dropped; a bad message is dropped and logged at debug level.
    pub async fn run(self) {
        let mut buf = vec![0u8; 1500];
        loop {
            let (len, from) = match self.socket.recv_from(&mut buf).await {
                Ok((n, SocketAddr::V6(from))) => (n, from),
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!("DHCPv6 receive failed: {e}");
                    continue;
                }
            };
            let msg = match Message::decode(&mut Decoder::new(&buf[..len])) {
                Ok(m) => m,
                Err(e) => {
                    tracing::debug!(%from, "dropped a malformed DHCPv6 message: {e}");
                    continue;
                }
            };
            let config = self.config.get();
            let (reply, node, ip, boot_file) =
                match handler::handle(&msg, *from.ip(), &config, &self.boot, &self.duid) {
                    Outcome::Reply {
                        msg,
                        node,
                        ip,
                        boot_file,
                    } => (msg, node, ip, boot_file),
                    Outcome::Drop(why) => {
                        tracing::debug!(%from, ?why, "no DHCPv6 reply");
                        continue;
                    }
                };
            let mut bytes = Vec::new();
            if let Err(e) = reply.encode(&mut Encoder::new(&mut bytes)) {
                tracing::error!("cannot encode a DHCPv6 reply: {e}");
                continue;
            }
            match self.socket.send_to(&bytes, from).await {
                Ok(_) => tracing::info!(
                    %node,
                    ip = %ip.map_or_else(|| "-".to_string(), |a| a.to_string()),
                    to = %from,
                    boot_file = boot_file.as_deref().unwrap_or("-"),
                    "DHCPv6 {:?}",
                    reply.msg_type()
                ),
                Err(e) => tracing::warn!(%node, "sending a DHCPv6 reply to {from} failed: {e}"),
            }
        }
    }
}
