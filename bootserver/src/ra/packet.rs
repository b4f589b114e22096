//! Router Advertisement and Router Solicitation (RFC 4861 §4.1, §4.2), as ICMPv6 message bodies
//! without the IPv6 header (a raw ICMPv6 socket adds it, and the kernel fills the checksum).
//!
//! ombootd's advertisement says only "a router is here, it is not a default router (lifetime
//! 0), and there is nothing to configure (M = O = 0, no prefix)"; with IPv6 netboot on, it adds
//! "ask DHCPv6, and this prefix is on-link". A netbooting iPXE waits for an
//! RA before it calls its IPv6 configuration done; this ends that wait without giving the nodes
//! an IPv6 route or address.

/// ICMPv6 type of a Router Solicitation.
pub const ROUTER_SOLICITATION: u8 = 133;
/// ICMPv6 type of a Router Advertisement.
pub const ROUTER_ADVERTISEMENT: u8 = 134;
/// Option type: source link-layer address (RFC 4861 §4.6.1).
const SOURCE_LINK_LAYER: u8 = 1;
/// Option type: prefix information (RFC 4861 §4.6.2).
const PREFIX_INFORMATION: u8 = 3;
/// Lifetimes of the advertised prefix, seconds (it is repeated every few seconds).
const PREFIX_LIFETIME: u32 = 3600;
/// Hop limit the node puts in packets it sends (RFC 4861 §4.2 Cur Hop Limit; 0 = unspecified).
const CUR_HOP_LIMIT: u8 = 64;

/// The advertisement, from the interface with hardware address `mac`. With `dhcp6` (a prefix
/// and its length), IPv6 netboot: M = O = 1 (addresses and the boot URL from DHCPv6) and a
/// Prefix Information option (§4.6.2) marking the prefix on-link, with no autoconfiguration
/// (A = 0). It stays no default router either way.
pub fn advertisement(mac: [u8; 6], dhcp6: Option<(std::net::Ipv6Addr, u8)>) -> Vec<u8> {
    let mut p = vec![
        ROUTER_ADVERTISEMENT,
        0, // code
        0,
        0, // checksum: the kernel's
        CUR_HOP_LIMIT,
        if dhcp6.is_some() { 0xc0 } else { 0 }, // M, O
        0,
        0, // router lifetime 0: not a default router
        0,
        0,
        0,
        0, // reachable time: unspecified
        0,
        0,
        0,
        0, // retrans timer: unspecified
    ];
    // Source link-layer address: type, length in units of 8 bytes, the address.
    p.extend_from_slice(&[SOURCE_LINK_LAYER, 1]);
    p.extend_from_slice(&mac);
    if let Some((prefix, len)) = dhcp6 {
        // Type, length 4 (32 bytes), prefix length, L = 1 and A = 0, valid and preferred
        // lifetimes, reserved, the prefix.
        p.extend_from_slice(&[PREFIX_INFORMATION, 4, len, 0x80]);
        p.extend_from_slice(&PREFIX_LIFETIME.to_be_bytes());
        p.extend_from_slice(&PREFIX_LIFETIME.to_be_bytes());
        p.extend_from_slice(&[0; 4]);
        p.extend_from_slice(&prefix.octets());
    }
    p
}

/// What an ICMPv6 message received on the socket is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// A node asks for routers.
    Solicitation,
    /// Anything else (an advertisement of another router, other ICMPv6): ignored.
    Other,
}

/// Classify `msg` (an ICMPv6 message, header first). RFC 4861 §6.1.1: a valid RS has code 0
/// and is at least 8 bytes long.
pub fn classify(msg: &[u8]) -> Received {
    match msg {
        [ROUTER_SOLICITATION, 0, _, _, _, _, _, _, ..] => Received::Solicitation,
        _ => Received::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_advertisement_says_no_router_and_nothing_to_configure() {
        let ra = advertisement([0x52, 0x54, 0, 0x77, 0, 1], None);
        assert_eq!(ra.len(), 16 + 8);
        assert_eq!(ra[0], 134);
        assert_eq!(ra[5] & 0xc0, 0, "M and O clear");
        assert_eq!(&ra[6..8], &[0, 0], "router lifetime 0");
        assert_eq!(&ra[16..24], &[1, 1, 0x52, 0x54, 0, 0x77, 0, 1]);
        assert_eq!(
            classify(&[133, 0, 0, 0, 0, 0, 0, 0]),
            Received::Solicitation
        );
        assert_eq!(classify(&[133, 1, 0, 0, 0, 0, 0, 0]), Received::Other);
        assert_eq!(classify(&[133, 0, 0]), Received::Other);
        assert_eq!(classify(&ra), Received::Other);
        assert_eq!(classify(&[]), Received::Other);
    }

    #[test]
    fn for_ipv6_netboot_it_sends_nodes_to_dhcpv6_and_marks_the_prefix_on_link() {
        let prefix: std::net::Ipv6Addr = "fd77::".parse().unwrap();
        let ra = advertisement([0x52, 0x54, 0, 0x77, 0, 1], Some((prefix, 64)));
        assert_eq!(ra.len(), 16 + 8 + 32);
        assert_eq!(ra[5] & 0xc0, 0xc0, "M and O set");
        assert_eq!(&ra[6..8], &[0, 0], "still no default router");
        assert_eq!(
            &ra[24..28],
            &[3, 4, 64, 0x80],
            "on-link, no autoconfiguration"
        );
        assert_eq!(&ra[40..56], &prefix.octets());
    }
}
