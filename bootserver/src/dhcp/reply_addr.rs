//! Where a reply goes, per RFC 2131 §4.1 ("the server ... sends the reply"):
//!
//! > If the 'giaddr' field in a DHCP message from a client is non-zero, the server sends any return
//! > messages to the 'DHCP server' port on the BOOTP relay agent whose address appears in 'giaddr'.
//! > If the 'giaddr' field is zero and the 'ciaddr' field is nonzero, then the server unicasts DHCPOFFER
//! > and DHCPACK messages to the address in 'ciaddr'. If 'giaddr' is zero and 'ciaddr' is zero, and the
//! > broadcast bit is set, then the server broadcasts DHCPOFFER and DHCPACK messages to 0xffffffff. If the
//! > broadcast bit is not set and 'giaddr' is zero and 'ciaddr' is zero, then the server unicasts DHCPOFFER
//! > and DHCPACK messages to the client's hardware address and 'yiaddr' address. In all cases, when
//! > 'giaddr' is zero, the server broadcasts any DHCPNAK messages to 0xffffffff.

use std::net::Ipv4Addr;

use dhcproto::v4::{Message, MessageType};

use crate::mac::MacAddr;

/// DHCP server port, where relays listen.
pub const SERVER_PORT: u16 = 67;
/// DHCP client port.
pub const CLIENT_PORT: u16 = 68;

/// The destination of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// To the relay agent at giaddr, server port.
    Relay(Ipv4Addr),
    /// Unicast to an address the client already holds (ciaddr).
    Unicast(Ipv4Addr),
    /// Unicast to a client that has no address yet: needs an ARP entry for `ip` → `mac` first,
    /// since the client cannot answer ARP; broadcast when that entry cannot be made.
    UnicastNoArp {
        /// yiaddr.
        ip: Ipv4Addr,
        /// chaddr.
        mac: MacAddr,
    },
    /// Limited broadcast.
    Broadcast,
}

/// Decide where the reply `reply` (of type `kind`) to `req` goes.
pub fn destination(req: &Message, kind: MessageType, reply: &Message) -> Destination {
    let giaddr = req.giaddr();
    if !giaddr.is_unspecified() {
        return Destination::Relay(giaddr);
    }
    if kind == MessageType::Nak {
        return Destination::Broadcast;
    }
    let ciaddr = req.ciaddr();
    if !ciaddr.is_unspecified() {
        return Destination::Unicast(ciaddr);
    }
    if req.flags().broadcast() {
        return Destination::Broadcast;
    }
    match MacAddr::from_chaddr(req.chaddr()) {
        Some(mac) if !reply.yiaddr().is_unspecified() => Destination::UnicastNoArp {
            ip: reply.yiaddr(),
            mac,
        },
        _ => Destination::Broadcast,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dhcproto::v4::Flags;

    const MAC: [u8; 6] = [0x52, 0x54, 0, 0x77, 0, 1];

    fn req(ciaddr: [u8; 4], giaddr: [u8; 4], broadcast: bool) -> Message {
        let mut m = Message::new(
            ciaddr.into(),
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            giaddr.into(),
            &MAC,
        );
        if broadcast {
            m.set_flags(Flags::default().set_broadcast());
        }
        m
    }

    fn reply() -> Message {
        let mut m = Message::default();
        m.set_yiaddr([10, 77, 0, 11]);
        m
    }

    #[test]
    fn follows_rfc2131_section_4_1() {
        let ack = MessageType::Ack;
        assert_eq!(
            destination(&req([0; 4], [10, 1, 0, 1], true), ack, &reply()),
            Destination::Relay([10, 1, 0, 1].into())
        );
        assert_eq!(
            destination(
                &req([0; 4], [10, 1, 0, 1], false),
                MessageType::Nak,
                &reply()
            ),
            Destination::Relay([10, 1, 0, 1].into())
        );
        assert_eq!(
            destination(
                &req([10, 77, 0, 11], [0; 4], true),
                MessageType::Nak,
                &reply()
            ),
            Destination::Broadcast
        );
        assert_eq!(
            destination(&req([10, 77, 0, 11], [0; 4], true), ack, &reply()),
            Destination::Unicast([10, 77, 0, 11].into())
        );
        assert_eq!(
            destination(&req([0; 4], [0; 4], true), ack, &reply()),
            Destination::Broadcast
        );
        assert_eq!(
            destination(&req([0; 4], [0; 4], false), MessageType::Offer, &reply()),
            Destination::UnicastNoArp {
                ip: [10, 77, 0, 11].into(),
                mac: MacAddr(MAC)
            }
        );
    }
}
