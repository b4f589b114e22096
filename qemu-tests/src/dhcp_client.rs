//! A DHCP client for tests that need many leases (RFC 2131 DISCOVER → OFFER → REQUEST → ACK):
//! one UDP socket made inside a client namespace with no address, bound to its interface, so it
//! sends from 0.0.0.0 as a booting node does. Several clients may share port 68; each keeps only
//! the replies carrying its own transaction id.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use bootserver::mac::MacAddr;
use dhcproto::v4::{DhcpOption, Flags, HType, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use socket2::{Domain, Protocol, Socket, Type};

use crate::error::{Result, io};
use crate::netns;

/// What a DORA ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dora {
    /// ACKed this address.
    Bound(Ipv4Addr),
    /// The server refused the request.
    Nak,
    /// No OFFER or no answer to the REQUEST in time.
    NoAnswer,
}

/// One client socket.
#[derive(Debug)]
pub struct DhcpClient {
    socket: UdpSocket,
    xid: u32,
    /// How long each step waits for its reply.
    pub wait: Duration,
}

impl DhcpClient {
    /// A client on `iface` inside `ns`; `seed` makes its transaction ids its own.
    pub fn open(ns: &str, iface: &str, seed: u32) -> Result<DhcpClient> {
        let iface = iface.to_owned();
        let socket = netns::make_in(ns, move || {
            let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
            s.set_reuse_address(true)?;
            s.set_broadcast(true)?;
            s.bind_device(Some(iface.as_bytes()))?;
            s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, 68)).into())?;
            Ok(UdpSocket::from(s))
        })
        .map_err(io(format!("open a DHCP client socket in {ns}")))?;
        Ok(DhcpClient {
            socket,
            xid: seed.wrapping_mul(0x9E37_79B9),
            wait: Duration::from_secs(2),
        })
    }

    /// Takes a lease for `mac`: DISCOVER, then REQUEST of the offered address.
    pub fn dora(&mut self, mac: MacAddr) -> Result<Dora> {
        self.xid = self.xid.wrapping_add(1);
        let discover = request(mac, self.xid, MessageType::Discover, &[]);
        let Some(offer) = self.exchange(&discover, MessageType::Offer)? else {
            return Ok(Dora::NoAnswer);
        };
        let server = match offer.opts().get(OptionCode::ServerIdentifier) {
            Some(DhcpOption::ServerIdentifier(ip)) => *ip,
            _ => return Ok(Dora::NoAnswer),
        };
        let req = request(
            mac,
            self.xid,
            MessageType::Request,
            &[
                DhcpOption::ServerIdentifier(server),
                DhcpOption::RequestedIpAddress(offer.yiaddr()),
            ],
        );
        match self.exchange(&req, MessageType::Ack)? {
            Some(ack) if ack.opts().msg_type() == Some(MessageType::Ack) => {
                Ok(Dora::Bound(ack.yiaddr()))
            }
            Some(_) => Ok(Dora::Nak),
            None => Ok(Dora::NoAnswer),
        }
    }

    /// Broadcasts `msg` and waits for a reply of type `want` (or a NAK) with our xid.
    fn exchange(&self, msg: &Message, want: MessageType) -> Result<Option<Message>> {
        let mut bytes = Vec::new();
        msg.encode(&mut Encoder::new(&mut bytes))
            .map_err(|e| io("encode a DHCP request")(std::io::Error::other(e)))?;
        let to = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);
        self.socket
            .send_to(&bytes, to)
            .map_err(io("send a DHCP request"))?;
        let deadline = Instant::now() + self.wait;
        let mut buf = [0u8; 1500];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.socket
                .set_read_timeout(Some(left))
                .map_err(io("set the DHCP client's timeout"))?;
            let n = match self.socket.recv(&mut buf) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(io("receive a DHCP reply")(e)),
            };
            let Ok(reply) = Message::decode(&mut Decoder::new(&buf[..n])) else {
                continue;
            };
            let kind = reply.opts().msg_type();
            if reply.opcode() == Opcode::BootReply
                && reply.xid() == msg.xid()
                && (kind == Some(want) || kind == Some(MessageType::Nak))
            {
                return Ok(Some(reply));
            }
        }
    }
}

/// A BOOTREQUEST of `kind` from `mac`, asking for broadcast replies (we have no address).
fn request(mac: MacAddr, xid: u32, kind: MessageType, extra: &[DhcpOption]) -> Message {
    let mut m = Message::default();
    m.set_opcode(Opcode::BootRequest)
        .set_htype(HType::Eth)
        .set_xid(xid)
        .set_flags(Flags::default().set_broadcast())
        .set_chaddr(&mac.0);
    m.opts_mut().insert(DhcpOption::MessageType(kind));
    for o in extra {
        m.opts_mut().insert(o.clone());
    }
    m
}
