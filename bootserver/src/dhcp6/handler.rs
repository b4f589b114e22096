//! The DHCPv6 decision for IPv6 netboot (RFC 8415 §18.3): one client message in, at most one
//! reply out, no I/O. dhcproto is the codec.
//!
//! Only table nodes are answered, each with the prefix and its IPv4 address as the last 32 bits
//! ([`Ipv6Boot::address_of`]): nothing to store, and the node table stays the one record. A UEFI
//! HTTP boot client (architecture type 16, RFC 5970 §3.3) also gets the loader's URL (option 59,
//! RFC 5970 §3.1) and the vendor class `HTTPClient` that edk2 looks for.

use std::net::{IpAddr, Ipv6Addr};

use dhcproto::v6::{
    Architecture, DhcpOption, IAAddr, IANA, Message, MessageType, OptionCode, Status, StatusCode,
    UnknownOption,
};

use super::prefix::Ipv6Boot;
use crate::config::Config;
use crate::mac::MacAddr;

/// IANA enterprise number of Intel, under which UEFI's `HTTPClient` vendor class is sent.
const INTEL: u32 = 343;
/// RFC 4578 architecture type of x64 UEFI HTTP boot.
const ARCH_EFI_X86_64_HTTP: u16 = 16;

/// What to do with a message.
#[derive(Debug)]
pub enum Outcome {
    /// Send `msg` back to the client.
    Reply {
        /// The reply.
        msg: Box<Message>,
        /// The node it is for.
        node: String,
        /// The address given, if any.
        ip: Option<Ipv6Addr>,
        /// The boot file URL given, if any.
        boot_file: Option<String>,
    },
    /// Send nothing.
    Drop(DropReason),
}

/// Why no reply is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DropReason {
    /// Not a message a client sends to a server (a reply, a relay message).
    NotAClientMessage,
    /// No client identifier (RFC 8415 §16: the message is discarded).
    NoClientId,
    /// No MAC in the client's DUID or link-local address, or one outside the node table.
    UnknownClient(Option<MacAddr>),
    /// Addressed to another server (its server identifier is not ours).
    OtherServer,
}

/// The MAC behind a client: its DUID when that carries one (DUID-LLT and DUID-LL of Ethernet,
/// RFC 8415 §11.2, §11.4), else its link-local source address when that is a modified EUI-64
/// (RFC 4291 Appendix A), as edk2 and iPXE use.
pub fn client_mac(duid: &[u8], source: Ipv6Addr) -> Option<MacAddr> {
    let from_duid = match duid {
        [0, 1, 0, 1, _, _, _, _, mac @ ..] | [0, 3, 0, 1, mac @ ..] => {
            <[u8; 6]>::try_from(mac).ok()
        }
        _ => None,
    };
    from_duid
        .or_else(|| {
            let o = source.octets();
            let link_local = o[0] == 0xfe && o[1] & 0xc0 == 0x80;
            (link_local && o[11] == 0xff && o[12] == 0xfe)
                .then(|| [o[8] ^ 0x02, o[9], o[10], o[13], o[14], o[15]])
        })
        .map(MacAddr)
}

/// Decide the reply to `msg` from `source`; `server_duid` is ours, `lease_secs` the lifetime.
pub fn handle(
    msg: &Message,
    source: Ipv6Addr,
    cfg: &Config,
    boot: &Ipv6Boot,
    server_duid: &[u8],
) -> Outcome {
    let kind = msg.msg_type();
    let reply_kind = match kind {
        MessageType::Solicit if msg.opts().get(OptionCode::RapidCommit).is_some() => {
            MessageType::Reply
        }
        MessageType::Solicit => MessageType::Advertise,
        MessageType::Request
        | MessageType::Confirm
        | MessageType::Renew
        | MessageType::Rebind
        | MessageType::Release
        | MessageType::Decline
        | MessageType::InformationRequest => MessageType::Reply,
        _ => return Outcome::Drop(DropReason::NotAClientMessage),
    };
    let Some(DhcpOption::ClientId(duid)) = msg.opts().get(OptionCode::ClientId) else {
        return Outcome::Drop(DropReason::NoClientId);
    };
    // §16.2–16.11: these name the server they are for; the others must not be answered by a
    // server they do not name.
    let named = match msg.opts().get(OptionCode::ServerId) {
        Some(DhcpOption::ServerId(id)) => Some(id.as_slice()),
        _ => None,
    };
    if named.is_some_and(|id| id != server_duid) {
        return Outcome::Drop(DropReason::OtherServer);
    }
    let mac = client_mac(duid, source);
    let Some(node) = mac.and_then(|m| cfg.node_by_mac(m)) else {
        return Outcome::Drop(DropReason::UnknownClient(mac));
    };
    let addr = boot.address_of(node.ip);
    let lease = cfg.lease_secs;

    let mut reply = Message::new_with_id(reply_kind, msg.xid());
    let opts = reply.opts_mut();
    opts.insert(DhcpOption::ServerId(server_duid.to_vec()));
    opts.insert(DhcpOption::ClientId(duid.clone()));
    if kind == MessageType::Solicit && reply_kind == MessageType::Reply {
        opts.insert(DhcpOption::RapidCommit);
    }
    let mut given = None;
    match kind {
        MessageType::Release | MessageType::Decline => {
            opts.insert(status(
                Status::Success,
                "nothing is kept: addresses follow the table",
            ));
        }
        MessageType::Confirm => {
            // §18.3.3: are the client's addresses still on this link?
            let all_ours = ia_addresses(msg).all(|a| boot.ipv4_of(a).is_some());
            let (s, text) = if all_ours {
                (Status::Success, "on link")
            } else {
                (Status::NotOnLink, "not on this link")
            };
            opts.insert(status(s, text));
        }
        MessageType::InformationRequest => {}
        _ => {
            for ia in msg.opts().get_all(OptionCode::IANA).unwrap_or(&[]) {
                if let DhcpOption::IANA(ia) = ia {
                    let mut ia_opts = dhcproto::v6::DhcpOptions::new();
                    ia_opts.insert(DhcpOption::IAAddr(IAAddr {
                        addr,
                        preferred_life: lease,
                        valid_life: lease,
                        opts: dhcproto::v6::DhcpOptions::new(),
                    }));
                    opts.insert(DhcpOption::IANA(IANA {
                        id: ia.id,
                        t1: lease / 2,
                        t2: lease / 8 * 7,
                        opts: ia_opts,
                    }));
                    given = Some(addr);
                }
            }
        }
    }
    let http_arch = matches!(msg.opts().get(OptionCode::ClientArchType),
        Some(DhcpOption::ClientArchType(a)) if a.contains(&Architecture(ARCH_EFI_X86_64_HTTP)));
    let http_class = matches!(msg.opts().get(OptionCode::VendorClass),
        Some(DhcpOption::VendorClass(v)) if v.data.iter().any(|d| d.starts_with(b"HTTPClient")));
    let boot_file = ((http_arch || http_class)
        && !matches!(kind, MessageType::Release | MessageType::Decline))
    .then(|| crate::http::loader_url(IpAddr::V6(boot.master()), cfg.ports.http));
    if let Some(url) = &boot_file {
        let opts = reply.opts_mut();
        opts.insert(DhcpOption::Unknown(UnknownOption::new(
            OptionCode::OptBootfileUrl,
            url.as_bytes().to_vec(),
        )));
        // Only to a client that sent the class (edk2 takes the offer for HTTP boot by it): ISC's
        // dhclient, for one, reads option 16 otherwise and drops the whole reply.
        if http_class {
            opts.insert(http_client_class());
        }
    }
    Outcome::Reply {
        msg: Box::new(reply),
        node: node.name.clone(),
        ip: given,
        boot_file,
    }
}

/// The vendor class option (RFC 8415 §21.16) naming `HTTPClient` under Intel's enterprise number,
/// written out byte by byte: dhcproto 0.15 encodes its `VendorClass` with the number of class
/// items where the option length belongs (5 here instead of 16), and edk2, walking the options
/// by their lengths, then finds neither the class nor the boot file URL after it, so it drops
/// the offer ("Remote boot cancelled").
fn http_client_class() -> DhcpOption {
    const CLASS: &[u8; 10] = b"HTTPClient";
    let mut data = INTEL.to_be_bytes().to_vec();
    data.extend_from_slice(&(CLASS.len() as u16).to_be_bytes());
    data.extend_from_slice(CLASS);
    DhcpOption::Unknown(UnknownOption::new(OptionCode::VendorClass, data))
}

fn status(status: Status, msg: &str) -> DhcpOption {
    DhcpOption::StatusCode(StatusCode {
        status,
        msg: msg.to_string(),
    })
}

/// The addresses inside the IA_NAs of `msg`.
fn ia_addresses(msg: &Message) -> impl Iterator<Item = Ipv6Addr> + '_ {
    msg.opts()
        .get_all(OptionCode::IANA)
        .unwrap_or(&[])
        .iter()
        .filter_map(|o| match o {
            DhcpOption::IANA(ia) => Some(ia),
            _ => None,
        })
        .flat_map(|ia| ia.opts.iter())
        .filter_map(|o| match o {
            DhcpOption::IAAddr(a) => Some(a.addr),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dhcproto::v6::{ORO, VendorClass};

    const SERVER: [u8; 10] = [0, 3, 0, 1, 0x52, 0x54, 0, 0x77, 0, 0xfe];

    fn cfg() -> Config {
        Config::parse(
            &crate::dhcp::handler::tests::CONFIG
                .replace("state_dir", "ipv6_boot = \"fd77::1/64\"\nstate_dir"),
            std::path::Path::new("t.toml"),
        )
        .unwrap()
    }

    fn boot() -> Ipv6Boot {
        "fd77::1/64".parse().unwrap()
    }

    /// node1's EUI-64 link-local address.
    fn node1_ll() -> Ipv6Addr {
        "fe80::5054:ff:fe77:1".parse().unwrap()
    }

    fn solicit(extra: Vec<DhcpOption>) -> Message {
        let mut m = Message::new_with_id(MessageType::Solicit, [1, 2, 3]);
        // DUID-UUID (type 4), as edk2 sends: no MAC in it.
        m.opts_mut()
            .insert(DhcpOption::ClientId(vec![0, 4, 9, 9, 9, 9]));
        m.opts_mut().insert(DhcpOption::IANA(IANA {
            id: 7,
            t1: 0,
            t2: 0,
            opts: dhcproto::v6::DhcpOptions::new(),
        }));
        for o in extra {
            m.opts_mut().insert(o);
        }
        m
    }

    fn reply(o: Outcome) -> (Message, Option<Ipv6Addr>, Option<String>) {
        match o {
            Outcome::Reply {
                msg, ip, boot_file, ..
            } => (*msg, ip, boot_file),
            Outcome::Drop(why) => panic!("dropped: {why:?}"),
        }
    }

    #[test]
    fn macs_come_from_the_duid_or_the_eui64_link_local_address() {
        let mac = MacAddr([0x52, 0x54, 0, 0x77, 0, 1]);
        let none: Ipv6Addr = "fe80::1".parse().unwrap();
        assert_eq!(
            client_mac(&[0, 1, 0, 1, 1, 2, 3, 4, 0x52, 0x54, 0, 0x77, 0, 1], none),
            Some(mac)
        );
        assert_eq!(
            client_mac(&[0, 3, 0, 1, 0x52, 0x54, 0, 0x77, 0, 1], none),
            Some(mac)
        );
        assert_eq!(client_mac(&[0, 4, 1, 2], node1_ll()), Some(mac));
        assert_eq!(client_mac(&[0, 4, 1, 2], none), None);
        // An Ethernet DUID of the wrong length, and a global address, give nothing.
        assert_eq!(client_mac(&[0, 3, 0, 1, 1, 2], none), None);
        assert_eq!(
            client_mac(&[0, 4], "fd77::5054:ff:fe77:1".parse().unwrap()),
            None
        );
    }

    #[test]
    fn a_node_is_offered_its_address_and_an_http_client_the_loader() {
        let (m, ip, url) = reply(handle(
            &solicit(vec![]),
            node1_ll(),
            &cfg(),
            &boot(),
            &SERVER,
        ));
        assert_eq!(m.msg_type(), MessageType::Advertise);
        assert_eq!(m.xid(), [1, 2, 3]);
        assert_eq!(ip, Some("fd77::a4d:b".parse().unwrap()));
        assert_eq!(
            url, None,
            "no boot URL for a client that is not an HTTP boot client"
        );
        let Some(DhcpOption::IANA(ia)) = m.opts().get(OptionCode::IANA) else {
            panic!("no IA_NA: {m:?}");
        };
        assert_eq!((ia.id, ia.t1, ia.t2), (7, 1800, 3150));
        assert_eq!(
            m.opts().get(OptionCode::ServerId),
            Some(&DhcpOption::ServerId(SERVER.to_vec()))
        );

        let http = vec![
            DhcpOption::ClientArchType(vec![Architecture(16)]),
            DhcpOption::VendorClass(VendorClass {
                num: INTEL,
                data: vec![b"HTTPClient:Arch:00016:UNDI:003001".to_vec()],
            }),
            DhcpOption::ORO(ORO {
                opts: vec![OptionCode::OptBootfileUrl],
            }),
            DhcpOption::RapidCommit,
        ];
        let (m, _, url) = reply(handle(&solicit(http), node1_ll(), &cfg(), &boot(), &SERVER));
        assert_eq!(m.msg_type(), MessageType::Reply, "rapid commit");
        assert!(m.opts().get(OptionCode::RapidCommit).is_some());
        let want = "http://[fd77::1]:8080/loader/ipxe.efi";
        assert_eq!(url.as_deref(), Some(want));
        assert_eq!(
            m.opts().get(OptionCode::OptBootfileUrl),
            Some(&DhcpOption::Unknown(UnknownOption::new(
                OptionCode::OptBootfileUrl,
                want.as_bytes().to_vec()
            )))
        );

        // By its architecture alone: the URL, but no vendor class it did not send.
        let arch_only = vec![DhcpOption::ClientArchType(vec![Architecture(16)])];
        let (m, _, url) = reply(handle(
            &solicit(arch_only),
            node1_ll(),
            &cfg(),
            &boot(),
            &SERVER,
        ));
        assert_eq!(url.as_deref(), Some(want));
        assert_eq!(m.opts().get(OptionCode::VendorClass), None);
    }

    /// The options of an encoded message as edk2's HttpBootParseDhcp6Packet walks them: code,
    /// length, data, each length taken as it is written.
    fn options_on_the_wire(m: &Message) -> Vec<(u16, Vec<u8>)> {
        let mut bytes = Vec::new();
        dhcproto::Encodable::encode(m, &mut dhcproto::Encoder::new(&mut bytes)).unwrap();
        // Message type and transaction id come first (RFC 8415 §8).
        let mut rest = &bytes[4..];
        let mut opts = Vec::new();
        while !rest.is_empty() {
            let code = u16::from_be_bytes([rest[0], rest[1]]);
            let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
            assert!(rest.len() >= 4 + len, "option {code} overruns the message");
            opts.push((code, rest[4..4 + len].to_vec()));
            rest = &rest[4 + len..];
        }
        opts
    }

    #[test]
    fn an_http_boot_advertise_reads_as_edk2_reads_it() {
        // What OVMF's HttpBootDxe sends (edk2-stable202211): no rapid commit, its class string.
        let edk2 = vec![
            DhcpOption::ClientArchType(vec![Architecture(16)]),
            DhcpOption::VendorClass(VendorClass {
                num: INTEL,
                data: vec![b"HTTPClient:Arch:00016:UNDI:003000".to_vec()],
            }),
        ];
        let (m, _, _) = reply(handle(&solicit(edk2), node1_ll(), &cfg(), &boot(), &SERVER));
        assert_eq!(m.msg_type(), MessageType::Advertise);
        let opts = options_on_the_wire(&m);
        let find = |code: u16| {
            opts.iter()
                .find(|(c, _)| *c == code)
                .map(|(_, d)| d.clone())
                .unwrap_or_else(|| panic!("no option {code} in {opts:?}"))
        };
        // edk2 takes an offer for HTTP boot when option 16 is at least 16 bytes long and
        // "HTTPClient" follows the enterprise number and the class length.
        let class = find(16);
        assert_eq!(class.len(), 16, "{class:?}");
        assert_eq!(&class[..6], &[0, 0, 0x01, 0x57, 0, 10]);
        assert_eq!(&class[6..], b"HTTPClient");
        assert_eq!(find(59), b"http://[fd77::1]:8080/loader/ipxe.efi");
        assert_eq!(find(3).len(), 12 + 28, "IA_NA with one IA address");
    }

    #[test]
    fn strangers_and_other_servers_get_nothing() {
        let stranger: Ipv6Addr = "fe80::5054:ff:fe99:1".parse().unwrap();
        assert!(matches!(
            handle(&solicit(vec![]), stranger, &cfg(), &boot(), &SERVER),
            Outcome::Drop(DropReason::UnknownClient(Some(_)))
        ));
        let mut r = solicit(vec![DhcpOption::ServerId(vec![
            0, 3, 0, 1, 1, 2, 3, 4, 5, 6,
        ])]);
        r.set_msg_type(MessageType::Request);
        assert!(matches!(
            handle(&r, node1_ll(), &cfg(), &boot(), &SERVER),
            Outcome::Drop(DropReason::OtherServer)
        ));
        let mut anon = Message::new(MessageType::Solicit);
        anon.opts_mut().insert(DhcpOption::ElapsedTime(0));
        assert!(matches!(
            handle(&anon, node1_ll(), &cfg(), &boot(), &SERVER),
            Outcome::Drop(DropReason::NoClientId)
        ));
        let advertise = Message::new(MessageType::Advertise);
        assert!(matches!(
            handle(&advertise, node1_ll(), &cfg(), &boot(), &SERVER),
            Outcome::Drop(DropReason::NotAClientMessage)
        ));
    }

    #[test]
    fn confirm_says_whether_the_addresses_are_on_link() {
        let confirm = |addr: &str| {
            let mut m = Message::new_with_id(MessageType::Confirm, [4, 5, 6]);
            m.opts_mut().insert(DhcpOption::ClientId(vec![0, 4, 1]));
            let mut ia_opts = dhcproto::v6::DhcpOptions::new();
            ia_opts.insert(DhcpOption::IAAddr(IAAddr {
                addr: addr.parse().unwrap(),
                preferred_life: 0,
                valid_life: 0,
                opts: dhcproto::v6::DhcpOptions::new(),
            }));
            m.opts_mut().insert(DhcpOption::IANA(IANA {
                id: 1,
                t1: 0,
                t2: 0,
                opts: ia_opts,
            }));
            let (r, _, _) = reply(handle(&m, node1_ll(), &cfg(), &boot(), &SERVER));
            match r.opts().get(OptionCode::StatusCode) {
                Some(DhcpOption::StatusCode(s)) => s.status,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(confirm("fd77::a4d:b"), Status::Success);
        assert_eq!(confirm("2001:db8::1"), Status::NotOnLink);
    }
}
