//! The DHCP decision: one request in, at most one reply out, no I/O (RFC 2131 §4.3).
//!
//! MACs of the node table get their reserved address; with `unknown_macs = "boot"` other MACs get
//! one from the dynamic pool ([`crate::pool`]). The lease store records offers and bindings so
//! restarts and the status API see them, and the addresses clients declined.

use std::net::Ipv4Addr;

use dhcproto::error::DecodeError;
use dhcproto::v4::{DhcpOption, HType, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder};

use super::boot_client::BootClient;
use super::reply_addr::{self, Destination};
use crate::config::wire::UnknownMacs;
use crate::config::{Config, Network, Node};
use crate::leases::{Lease, LeaseError, LeaseState, LeaseStore};
use crate::mac::MacAddr;

/// How long an OFFER holds the address for the client before it REQUESTs it.
const OFFER_HOLD_SECS: u64 = 60;
/// How long an address a client declined (someone else answers for it) stays out of use.
pub const DECLINE_HOLD_SECS: u64 = 600;

/// What to do with a request.
#[derive(Debug)]
pub enum Outcome {
    /// Send `msg` to `dest`.
    Reply {
        /// The reply.
        msg: Box<Message>,
        /// OFFER, ACK or NAK.
        kind: MessageType,
        /// Where it goes.
        dest: Destination,
        /// The node it is for.
        node: String,
        /// The boot file handed out, if any.
        boot_file: Option<String>,
    },
    /// Send nothing.
    Drop(DropReason),
}

/// Why no reply is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DropReason {
    /// A BOOTREPLY or a non-Ethernet request: not for a server.
    NotAClientRequest,
    /// No option 53: plain BOOTP, which we do not serve.
    NoMessageType,
    /// The MAC is not in the node table.
    UnknownClient(MacAddr),
    /// The client selected another server's offer.
    OtherServerSelected,
    /// RELEASE or DECLINE handled; they get no reply by design.
    NoReplyNeeded(MessageType),
    /// A client declined its address (RFC 2131 §4.3.3: another host answers for it).
    Declined {
        /// The node.
        node: String,
        /// The address, now kept out of use for [`DECLINE_HOLD_SECS`].
        ip: Ipv4Addr,
    },
    /// A MAC outside the table asked while every pool address is taken.
    PoolExhausted(MacAddr),
    /// A message type a server does not act on.
    Unsupported(MessageType),
    /// proxyDHCP: not a network-boot client we have a loader for; the site's server answers it.
    NotForProxy,
    /// Forwarded by a relay agent on a subnet we do not serve (no `[[relayed_subnet]]` holds
    /// its giaddr).
    UnknownRelay(Ipv4Addr),
    /// A table node asked from another network than its address's.
    WrongNetwork {
        /// The node.
        node: String,
        /// Its table address.
        ip: Ipv4Addr,
        /// The network it asked from.
        network: String,
    },
}

/// Does `datagram` carry the DHCP magic cookie (RFC 2131 §3: 99.130.83.99 at offset 236,
/// after BOOTP's fixed fields)? Without it, it is plain BOOTP, which we do not serve, and
/// dhcproto would read the options anyway.
pub fn has_magic_cookie(datagram: &[u8]) -> bool {
    datagram.get(236..240) == Some(&dhcproto::v4::MAGIC[..])
}

/// Why a datagram on the DHCP port is not read as a request.
#[derive(Debug, thiserror::Error)]
pub enum Undecodable {
    /// No magic cookie: plain BOOTP.
    #[error("no DHCP magic cookie (BOOTP)")]
    NotDhcp,
    /// dhcproto cannot read it.
    #[error("malformed DHCP datagram: {0}")]
    Malformed(#[from] DecodeError),
}

/// Read a received datagram as a DHCP message, the server's one path from bytes to [`handle`].
pub fn decode(datagram: &[u8]) -> Result<Message, Undecodable> {
    if !has_magic_cookie(datagram) {
        return Err(Undecodable::NotDhcp);
    }
    Ok(Message::decode(&mut Decoder::new(datagram))?)
}

/// The message type and client MAC of a request a server should read: a BOOTREQUEST from
/// Ethernet with option 53.
pub fn sender(req: &Message) -> Result<(MessageType, MacAddr), DropReason> {
    if req.opcode() != Opcode::BootRequest || req.htype() != HType::Eth || req.hlen() != 6 {
        return Err(DropReason::NotAClientRequest);
    }
    let kind = req.opts().msg_type().ok_or(DropReason::NoMessageType)?;
    let mac = MacAddr::from_chaddr(req.chaddr()).ok_or(DropReason::NotAClientRequest)?;
    Ok((kind, mac))
}

/// Decide the reply to `req`, at time `now` (seconds since the epoch).
pub fn handle(
    req: &Message,
    cfg: &Config,
    leases: &mut dyn LeaseStore,
    now: u64,
) -> Result<Outcome, LeaseError> {
    let (kind, mac) = match sender(req) {
        Ok(x) => x,
        Err(why) => return Ok(Outcome::Drop(why)),
    };
    let server_id = match req.opts().get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(ip)) => Some(*ip),
        _ => None,
    };
    let requested = match req.opts().get(OptionCode::RequestedIpAddress) {
        Some(DhcpOption::RequestedIpAddress(ip)) => Some(*ip),
        _ => None,
    };
    // §4.3.2: SELECTING carries the server identifier; INIT-REBOOT a requested address;
    // RENEWING/REBINDING only ciaddr.
    let asked = requested.unwrap_or(req.ciaddr());
    // Which network the client is on: ours, or the subnet of the relay agent that forwarded it.
    let Some(net) = cfg.network_of(req.giaddr()) else {
        return Ok(Outcome::Drop(DropReason::UnknownRelay(req.giaddr())));
    };
    let (node, pooled) = match cfg.node_by_mac(mac) {
        Some(n) => (n.clone(), false),
        None => match (cfg.unknown_macs, cfg.pool) {
            // The pool lies in the served subnet: only clients on it get its addresses.
            (UnknownMacs::Boot, Some(pool)) if !net.relayed => {
                let mac_text = mac.to_string();
                let taken = |ip| {
                    leases.declined(ip, now)
                        || leases
                            .holder(ip)
                            .is_some_and(|l| l.mac != mac_text && l.expires > now)
                };
                let ip = match kind {
                    MessageType::Discover => {
                        let own = leases.get(mac).map(|l| l.ip);
                        match pool.pick(mac, own, &taken) {
                            Some(ip) => ip,
                            None => return Ok(Outcome::Drop(DropReason::PoolExhausted(mac))),
                        }
                    }
                    // Not this client's to take: the REQUEST below gets its NAK.
                    MessageType::Request if !pool.contains(asked) || taken(asked) => {
                        Ipv4Addr::UNSPECIFIED
                    }
                    MessageType::Request => asked,
                    _ => leases.get(mac).map_or(Ipv4Addr::UNSPECIFIED, |l| l.ip),
                };
                let name = format!("node-{}", mac.to_string().replace(':', ""));
                (Node { mac, name, ip }, true)
            }
            _ => return Ok(Outcome::Drop(DropReason::UnknownClient(mac))),
        },
    };
    let node = &node;
    if !pooled && !net.subnet.contains_host(node.ip) {
        // The node asks from another network than its address's: moved to another segment, or
        // its entry is wrong. It gets no address there (and a NAK for a REQUEST).
        if kind == MessageType::Request {
            let why = format!(
                "{} of {} is not in this network ({})",
                node.ip, node.name, net.subnet
            );
            return Ok(nak(req, cfg, &net, node, why));
        }
        return Ok(Outcome::Drop(DropReason::WrongNetwork {
            node: node.name.clone(),
            ip: node.ip,
            network: net.subnet.to_string(),
        }));
    }
    let lease = |state, secs| Lease {
        mac: mac.to_string(),
        ip: node.ip,
        name: node.name.clone(),
        state,
        expires: now + secs,
    };

    match kind {
        MessageType::Discover => {
            leases.put(mac, lease(LeaseState::Offered, OFFER_HOLD_SECS))?;
            Ok(reply(req, cfg, &net, node, MessageType::Offer))
        }
        MessageType::Request => {
            if server_id.is_some_and(|id| id != cfg.master_ip) {
                if leases
                    .get(mac)
                    .is_some_and(|l| l.state == LeaseState::Offered)
                {
                    leases.remove(mac)?;
                }
                return Ok(Outcome::Drop(DropReason::OtherServerSelected));
            }
            if asked != node.ip {
                let why = if !net.subnet.contains_host(asked) {
                    format!("{asked} is not in this network ({})", net.subnet)
                } else if pooled {
                    format!("{asked} is not free for {mac}")
                } else {
                    format!("{} is reserved for {} ({})", node.ip, node.name, node.mac)
                };
                return Ok(nak(req, cfg, &net, node, why));
            }
            leases.put(mac, lease(LeaseState::Bound, u64::from(cfg.lease_secs)))?;
            Ok(reply(req, cfg, &net, node, MessageType::Ack))
        }
        MessageType::Inform => Ok(reply(req, cfg, &net, node, MessageType::Ack)),
        MessageType::Release => {
            if server_id.is_none_or(|id| id == cfg.master_ip) {
                leases.remove(mac)?;
            }
            Ok(Outcome::Drop(DropReason::NoReplyNeeded(kind)))
        }
        MessageType::Decline => {
            if server_id.is_some_and(|id| id != cfg.master_ip) {
                return Ok(Outcome::Drop(DropReason::NoReplyNeeded(kind)));
            }
            leases.remove(mac)?;
            let ip = requested.unwrap_or(node.ip);
            // Only addresses we hand out are marked: a made-up DECLINE cannot fill the table.
            let ours = ip == node.ip || cfg.pool.is_some_and(|p| p.contains(ip));
            if !ours {
                return Ok(Outcome::Drop(DropReason::NoReplyNeeded(kind)));
            }
            leases.decline(ip, now, now + DECLINE_HOLD_SECS);
            Ok(Outcome::Drop(DropReason::Declined {
                node: node.name.clone(),
                ip,
            }))
        }
        other => Ok(Outcome::Drop(DropReason::Unsupported(other))),
    }
}

/// A NAK saying `why` (RFC 2131 §4.3.2: the client starts over).
fn nak(req: &Message, cfg: &Config, net: &Network, node: &Node, why: String) -> Outcome {
    let mut out = reply(req, cfg, net, node, MessageType::Nak);
    if let Outcome::Reply { msg, .. } = &mut out {
        msg.opts_mut().insert(DhcpOption::Message(why));
    }
    out
}

/// A BOOTREPLY to `req` with the fields a server copies from it (RFC 2131 Table 3: xid, flags,
/// giaddr, chaddr), no options yet.
pub fn reply_to(req: &Message) -> Message {
    let mut m = Message::default();
    m.set_opcode(Opcode::BootReply)
        .set_htype(HType::Eth)
        .set_xid(req.xid())
        .set_flags(req.flags())
        .set_giaddr(req.giaddr())
        .set_chaddr(req.chaddr());
    m
}

/// Build the reply of type `kind` (RFC 2131 Table 3) and decide where it goes.
fn reply(req: &Message, cfg: &Config, net: &Network, node: &Node, kind: MessageType) -> Outcome {
    let is_inform = req.opts().msg_type() == Some(MessageType::Inform);
    let mut m = reply_to(req);
    let opts = m.opts_mut();
    opts.insert(DhcpOption::MessageType(kind));
    opts.insert(DhcpOption::ServerIdentifier(cfg.master_ip));

    let mut boot_file = None;
    if kind != MessageType::Nak {
        if matches!(kind, MessageType::Ack) {
            m.set_ciaddr(req.ciaddr());
        }
        if !is_inform {
            m.set_yiaddr(node.ip);
            m.opts_mut()
                .insert(DhcpOption::AddressLeaseTime(cfg.lease_secs));
            m.opts_mut().insert(DhcpOption::Renewal(cfg.lease_secs / 2));
            m.opts_mut()
                .insert(DhcpOption::Rebinding(cfg.lease_secs / 8 * 7));
        }
        m.set_siaddr(cfg.master_ip);
        let opts = m.opts_mut();
        opts.insert(DhcpOption::SubnetMask(net.subnet.mask()));
        opts.insert(DhcpOption::BroadcastAddr(net.subnet.broadcast()));
        if let Some(r) = net.router {
            opts.insert(DhcpOption::Router(vec![r]));
        }
        opts.insert(DhcpOption::Hostname(node.name.clone()));

        // No vendor class `PXEClient` in the reply: edk2 takes a PXEClient offer without PXE
        // vendor options (43) for a BINL offer and asks a boot server on port 4011 we do not run,
        // whereas a plain offer with a boot file (option 67 + file) is booted directly.
        let client = BootClient::of(req);
        if client == BootClient::Ipxe {
            // iPXE otherwise waits 2 s for a ProxyDHCP offer after ours (its
            // DHCP_DISC_PROXY_TIMEOUT_SEC): there is none, this offer names the boot file.
            m.opts_mut().insert(ipxe_no_proxydhcp());
        }
        boot_file = boot_file_for(client, node.mac, cfg.master_ip, cfg.ports.http);
        if let Some(f) = &boot_file {
            m.set_fname_str(f);
            m.opts_mut()
                .insert(DhcpOption::BootfileName(f.as_bytes().to_vec()));
            if client == BootClient::UefiHttp {
                // edk2 takes an offer for HTTP boot only when it says `HTTPClient` (UEFI 2.5
                // §24.7.2); the boot file is then a URL and there is no TFTP server to name.
                m.opts_mut()
                    .insert(DhcpOption::ClassIdentifier(b"HTTPClient".to_vec()));
            } else {
                m.opts_mut().insert(DhcpOption::TFTPServerName(
                    cfg.master_ip.to_string().into_bytes(),
                ));
            }
        }
    }
    let dest = reply_addr::destination(req, kind, &m);
    Outcome::Reply {
        msg: Box::new(m),
        kind,
        dest,
        node: node.name.clone(),
        boot_file,
    }
}

/// iPXE's encapsulated options (175) with `no-pxedhcp` (176) = 1: "take this offer without
/// waiting for a ProxyDHCP offer" (iPXE `include/ipxe/dhcp.h`, DHCP_EB_NO_PXEDHCP). Other
/// clients ignore option 175.
fn ipxe_no_proxydhcp() -> DhcpOption {
    DhcpOption::Unknown(dhcproto::v4::UnknownOption::new(
        OptionCode::from(IPXE_ENCAPSULATED),
        vec![IPXE_NO_PXEDHCP, 1, 1],
    ))
}

/// iPXE's encapsulated option space, and its `no-pxedhcp` setting in it.
const IPXE_ENCAPSULATED: u8 = 175;
const IPXE_NO_PXEDHCP: u8 = 176;

/// The boot file for a client: the iPXE script URL, an iPXE binary from the TFTP root, or (for
/// UEFI HTTP boot) the URL of `ipxe.efi`.
pub fn boot_file_for(
    client: BootClient,
    mac: MacAddr,
    master: Ipv4Addr,
    http_port: u16,
) -> Option<String> {
    match client {
        BootClient::Ipxe => Some(format!(
            "http://{master}:{http_port}/boot/{}.ipxe",
            mac.hyphenated()
        )),
        BootClient::UefiPxe => Some("ipxe.efi".to_string()),
        BootClient::UefiHttp => Some(crate::http::loader_url(master.into(), http_port)),
        BootClient::BiosPxe => Some("undionly.kpxe".to_string()),
        BootClient::UnsupportedPxe(_) | BootClient::Plain => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::Path;

    use dhcproto::v4::{Architecture, Flags};

    use super::*;
    use crate::leases::MemoryLeases;

    const MAC: [u8; 6] = [0x52, 0x54, 0, 0x77, 0, 1];

    pub(crate) const CONFIG: &str = r#"
interface = "ombr0"
master_ip = "10.77.0.1"
subnet = "10.77.0.0/24"
image_dir = "/img"
state_dir = "/state"
[[node]]
mac = "52:54:00:77:00:01"
name = "node1"
ip = "10.77.0.11"
"#;

    fn cfg() -> Config {
        Config::parse(CONFIG, Path::new("t.toml")).unwrap()
    }

    pub(crate) fn req(kind: MessageType, mac: [u8; 6], opts: Vec<DhcpOption>) -> Message {
        let z = Ipv4Addr::UNSPECIFIED;
        let mut m = Message::new_with_id(42, z, z, z, z, &mac);
        m.set_flags(Flags::default().set_broadcast());
        m.opts_mut().insert(DhcpOption::MessageType(kind));
        for o in opts {
            m.opts_mut().insert(o);
        }
        m
    }

    pub(crate) fn reply_of(o: Outcome) -> (Message, MessageType, Destination, Option<String>) {
        match o {
            Outcome::Reply {
                msg,
                kind,
                dest,
                boot_file,
                ..
            } => (*msg, kind, dest, boot_file),
            Outcome::Drop(r) => panic!("dropped: {r:?}"),
        }
    }

    #[test]
    fn discover_gets_reserved_address_and_options() {
        let mut leases = MemoryLeases::default();
        let (m, kind, dest, boot) = reply_of(
            handle(
                &req(MessageType::Discover, MAC, vec![]),
                &cfg(),
                &mut leases,
                1000,
            )
            .unwrap(),
        );
        assert_eq!(kind, MessageType::Offer);
        assert_eq!(m.opcode(), Opcode::BootReply);
        assert_eq!(m.xid(), 42);
        assert_eq!(m.yiaddr(), Ipv4Addr::new(10, 77, 0, 11));
        assert_eq!(m.siaddr(), Ipv4Addr::new(10, 77, 0, 1));
        assert_eq!(dest, Destination::Broadcast);
        assert_eq!(boot, None, "a plain client gets no boot file");
        assert_eq!(
            m.opts().get(OptionCode::Hostname),
            Some(&DhcpOption::Hostname("node1".into()))
        );
        assert_eq!(
            m.opts().get(OptionCode::SubnetMask),
            Some(&DhcpOption::SubnetMask([255, 255, 255, 0].into()))
        );
        assert_eq!(
            m.opts().get(OptionCode::ServerIdentifier),
            Some(&DhcpOption::ServerIdentifier([10, 77, 0, 1].into()))
        );
        let l = leases.get(MacAddr(MAC)).unwrap();
        assert_eq!(
            (l.state, l.expires),
            (LeaseState::Offered, 1000 + OFFER_HOLD_SECS)
        );
    }

    #[test]
    fn boot_file_depends_on_client() {
        let pxe = || DhcpOption::ClassIdentifier(b"PXEClient:Arch:00000:UNDI:002001".to_vec());
        let arch = |a| DhcpOption::ClientSystemArchitecture(Architecture(a));
        let cases = [
            (vec![pxe(), arch(0)], Some("undionly.kpxe")),
            (vec![pxe(), arch(7)], Some("ipxe.efi")),
            (
                vec![pxe(), arch(7), DhcpOption::UserClass(b"iPXE".to_vec())],
                Some("http://10.77.0.1:8080/boot/52-54-00-77-00-01.ipxe"),
            ),
            (vec![pxe(), arch(11)], None),
        ];
        for (opts, want) in cases {
            let (m, _, _, boot) = reply_of(
                handle(
                    &req(MessageType::Discover, MAC, opts),
                    &cfg(),
                    &mut MemoryLeases::default(),
                    0,
                )
                .unwrap(),
            );
            assert_eq!(boot.as_deref(), want);
            assert_eq!(m.fname_str().and_then(Result::ok), want);
            // A PXEClient vendor class in the reply would make edk2 look for a BINL server.
            assert_eq!(m.opts().get(OptionCode::ClassIdentifier), None);
            // Only iPXE is told not to wait for a ProxyDHCP offer.
            let no_proxy = m.opts().get(OptionCode::from(IPXE_ENCAPSULATED));
            if want.is_some_and(|w| w.starts_with("http://")) {
                assert_eq!(no_proxy, Some(&ipxe_no_proxydhcp()));
                let mut bytes = Vec::new();
                dhcproto::Encodable::encode(&m, &mut dhcproto::Encoder::new(&mut bytes)).unwrap();
                assert!(
                    bytes.windows(5).any(|w| w == [175, 3, 176, 1, 1]),
                    "option 175 with no-pxedhcp = 1 on the wire"
                );
            } else {
                assert_eq!(no_proxy, None);
            }
            if let Some(f) = want {
                assert_eq!(
                    m.opts().get(OptionCode::BootfileName),
                    Some(&DhcpOption::BootfileName(f.as_bytes().to_vec()))
                );
            }
        }
    }

    #[test]
    fn uefi_http_client_gets_the_loader_url_and_no_tftp_server() {
        let opts = vec![
            DhcpOption::ClassIdentifier(b"HTTPClient:Arch:00016:UNDI:003001".to_vec()),
            DhcpOption::ClientSystemArchitecture(Architecture(16)),
        ];
        let (m, _, _, boot) = reply_of(
            handle(
                &req(MessageType::Discover, MAC, opts),
                &cfg(),
                &mut MemoryLeases::default(),
                0,
            )
            .unwrap(),
        );
        let url = "http://10.77.0.1:8080/loader/ipxe.efi";
        assert_eq!(boot.as_deref(), Some(url));
        assert_eq!(
            m.opts().get(OptionCode::BootfileName),
            Some(&DhcpOption::BootfileName(url.as_bytes().to_vec()))
        );
        assert_eq!(
            m.opts().get(OptionCode::ClassIdentifier),
            Some(&DhcpOption::ClassIdentifier(b"HTTPClient".to_vec()))
        );
        assert_eq!(m.opts().get(OptionCode::TFTPServerName), None);
    }

    /// node1 on the served subnet, node2 behind a relay agent at 10.78.0.1.
    fn relayed_cfg() -> Config {
        let text = CONFIG.replace(
            "[[node]]",
            "[[relayed_subnet]]\nsubnet = \"10.78.0.0/24\"\nrouter = \"10.78.0.1\"\n\n[[node]]",
        ) + "[[node]]\nmac = \"52:54:00:77:00:02\"\nname = \"node2\"\nip = \"10.78.0.12\"\n";
        Config::parse(&text, Path::new("t.toml")).unwrap()
    }

    #[test]
    fn a_relayed_client_gets_its_subnet_and_the_reply_goes_to_the_relay() {
        let node2 = [0x52, 0x54, 0, 0x77, 0, 2];
        let mut r = req(MessageType::Discover, node2, vec![]);
        r.set_giaddr(Ipv4Addr::new(10, 78, 0, 1));
        let mut leases = MemoryLeases::default();
        let (m, kind, dest, _) = reply_of(handle(&r, &relayed_cfg(), &mut leases, 0).unwrap());
        assert_eq!(kind, MessageType::Offer);
        assert_eq!(m.yiaddr(), Ipv4Addr::new(10, 78, 0, 12));
        assert_eq!(m.giaddr(), Ipv4Addr::new(10, 78, 0, 1));
        assert_eq!(dest, Destination::Relay(Ipv4Addr::new(10, 78, 0, 1)));
        assert_eq!(
            m.opts().get(OptionCode::Router),
            Some(&DhcpOption::Router(vec![Ipv4Addr::new(10, 78, 0, 1)]))
        );
        assert_eq!(
            m.opts().get(OptionCode::BroadcastAddr),
            Some(&DhcpOption::BroadcastAddr(Ipv4Addr::new(10, 78, 0, 255)))
        );
    }

    #[test]
    fn a_node_on_the_wrong_network_or_an_unknown_relay_gets_no_address() {
        let cfg = relayed_cfg();
        let mut leases = MemoryLeases::default();
        // node1 (10.77.0.11) behind the relay.
        let mut r = req(MessageType::Discover, MAC, vec![]);
        r.set_giaddr(Ipv4Addr::new(10, 78, 0, 1));
        assert!(matches!(
            handle(&r, &cfg, &mut leases, 0).unwrap(),
            Outcome::Drop(DropReason::WrongNetwork { ref node, .. }) if node == "node1"
        ));
        let mut r = req(
            MessageType::Request,
            MAC,
            vec![DhcpOption::RequestedIpAddress([10, 77, 0, 11].into())],
        );
        r.set_giaddr(Ipv4Addr::new(10, 78, 0, 1));
        let (m, kind, _, _) = reply_of(handle(&r, &cfg, &mut leases, 0).unwrap());
        assert_eq!(kind, MessageType::Nak);
        assert_eq!(
            m.opts().get(OptionCode::Message),
            Some(&DhcpOption::Message(
                "10.77.0.11 of node1 is not in this network (10.78.0.0/24)".into()
            ))
        );
        // node2 (10.78.0.12) on the served segment itself.
        let r = req(MessageType::Discover, [0x52, 0x54, 0, 0x77, 0, 2], vec![]);
        assert!(matches!(
            handle(&r, &cfg, &mut leases, 0).unwrap(),
            Outcome::Drop(DropReason::WrongNetwork { ref node, .. }) if node == "node2"
        ));
        // A relay agent of a subnet we do not serve.
        let mut r = req(MessageType::Discover, MAC, vec![]);
        r.set_giaddr(Ipv4Addr::new(10, 99, 0, 1));
        assert!(matches!(
            handle(&r, &cfg, &mut leases, 0).unwrap(),
            Outcome::Drop(DropReason::UnknownRelay(ip)) if ip == Ipv4Addr::new(10, 99, 0, 1)
        ));
        assert_eq!(
            leases.get(MacAddr(MAC)),
            None,
            "no lease for a refused client"
        );
    }

    #[test]
    fn unknown_mac_is_dropped() {
        let other = [0x52, 0x54, 0, 0x99, 0, 1];
        let o = handle(
            &req(MessageType::Discover, other, vec![]),
            &cfg(),
            &mut MemoryLeases::default(),
            0,
        )
        .unwrap();
        assert!(matches!(o, Outcome::Drop(DropReason::UnknownClient(m)) if m == MacAddr(other)));
    }

    #[test]
    fn request_selecting_acks_and_binds() {
        let mut leases = MemoryLeases::default();
        let r = req(
            MessageType::Request,
            MAC,
            vec![
                DhcpOption::ServerIdentifier([10, 77, 0, 1].into()),
                DhcpOption::RequestedIpAddress([10, 77, 0, 11].into()),
            ],
        );
        let (m, kind, _, _) = reply_of(handle(&r, &cfg(), &mut leases, 5).unwrap());
        assert_eq!(kind, MessageType::Ack);
        assert_eq!(m.yiaddr(), Ipv4Addr::new(10, 77, 0, 11));
        assert_eq!(
            m.opts().get(OptionCode::AddressLeaseTime),
            Some(&DhcpOption::AddressLeaseTime(3600))
        );
        let l = leases.get(MacAddr(MAC)).unwrap();
        assert_eq!((l.state, l.expires), (LeaseState::Bound, 3605));
    }

    #[test]
    fn request_for_wrong_address_is_naked_by_broadcast() {
        let r = req(
            MessageType::Request,
            MAC,
            vec![DhcpOption::RequestedIpAddress([10, 77, 0, 50].into())],
        );
        let (m, kind, dest, _) =
            reply_of(handle(&r, &cfg(), &mut MemoryLeases::default(), 0).unwrap());
        assert_eq!(kind, MessageType::Nak);
        assert_eq!(dest, Destination::Broadcast);
        assert_eq!(m.yiaddr(), Ipv4Addr::UNSPECIFIED);
    }

    #[test]
    fn request_for_other_server_drops_our_offer() {
        let mut leases = MemoryLeases::default();
        handle(
            &req(MessageType::Discover, MAC, vec![]),
            &cfg(),
            &mut leases,
            0,
        )
        .unwrap();
        let r = req(
            MessageType::Request,
            MAC,
            vec![
                DhcpOption::ServerIdentifier([10, 77, 0, 2].into()),
                DhcpOption::RequestedIpAddress([10, 77, 0, 11].into()),
            ],
        );
        let o = handle(&r, &cfg(), &mut leases, 0).unwrap();
        assert!(matches!(o, Outcome::Drop(DropReason::OtherServerSelected)));
        assert_eq!(leases.get(MacAddr(MAC)), None);
    }

    #[test]
    fn renewing_unicasts_to_ciaddr() {
        let mut r = req(MessageType::Request, MAC, vec![]);
        r.set_ciaddr([10, 77, 0, 11]).set_flags(Flags::default());
        let (m, kind, dest, _) =
            reply_of(handle(&r, &cfg(), &mut MemoryLeases::default(), 0).unwrap());
        assert_eq!(kind, MessageType::Ack);
        assert_eq!(m.ciaddr(), Ipv4Addr::new(10, 77, 0, 11));
        assert_eq!(dest, Destination::Unicast([10, 77, 0, 11].into()));
    }

    #[test]
    fn release_forgets_the_lease_without_reply() {
        let mut leases = MemoryLeases::default();
        handle(
            &req(MessageType::Discover, MAC, vec![]),
            &cfg(),
            &mut leases,
            0,
        )
        .unwrap();
        let mut r = req(
            MessageType::Release,
            MAC,
            vec![DhcpOption::ServerIdentifier([10, 77, 0, 1].into())],
        );
        r.set_ciaddr([10, 77, 0, 11]);
        let o = handle(&r, &cfg(), &mut leases, 0).unwrap();
        assert!(matches!(
            o,
            Outcome::Drop(DropReason::NoReplyNeeded(MessageType::Release))
        ));
        assert_eq!(leases.get(MacAddr(MAC)), None);
    }

    fn pool_cfg() -> Config {
        let text = CONFIG.replace(
            "[[node]]",
            "unknown_macs = \"boot\"\npool = \"10.77.0.100-10.77.0.101\"\n[[node]]",
        );
        Config::parse(&text, Path::new("t.toml")).unwrap()
    }

    fn nak_text(m: &Message) -> String {
        match m.opts().get(OptionCode::Message) {
            Some(DhcpOption::Message(t)) => t.clone(),
            other => panic!("no message in the NAK: {other:?}"),
        }
    }

    /// DISCOVER then REQUEST of the offer; the address bound.
    fn dora(mac: [u8; 6], cfg: &Config, leases: &mut MemoryLeases, now: u64) -> Ipv4Addr {
        let (offer, kind, _, _) =
            reply_of(handle(&req(MessageType::Discover, mac, vec![]), cfg, leases, now).unwrap());
        assert_eq!(kind, MessageType::Offer);
        let r = req(
            MessageType::Request,
            mac,
            vec![
                DhcpOption::ServerIdentifier([10, 77, 0, 1].into()),
                DhcpOption::RequestedIpAddress(offer.yiaddr()),
            ],
        );
        let (ack, kind, _, _) = reply_of(handle(&r, cfg, leases, now).unwrap());
        assert_eq!(kind, MessageType::Ack);
        ack.yiaddr()
    }

    #[test]
    fn unknown_macs_boot_from_the_pool_until_it_runs_out() {
        let cfg = pool_cfg();
        let mut leases = MemoryLeases::default();
        let a = [2, 0, 0, 0, 0, 0xa];
        let b = [2, 0, 0, 0, 0, 0xb];
        let pool = [Ipv4Addr::new(10, 77, 0, 100), Ipv4Addr::new(10, 77, 0, 101)];
        let ip_a = dora(a, &cfg, &mut leases, 0);
        let ip_b = dora(b, &cfg, &mut leases, 0);
        assert!(pool.contains(&ip_a) && pool.contains(&ip_b) && ip_a != ip_b);
        // A client keeps its address; the table node keeps its reservation.
        assert_eq!(dora(a, &cfg, &mut leases, 5), ip_a);
        assert_eq!(
            dora(MAC, &cfg, &mut leases, 5),
            Ipv4Addr::new(10, 77, 0, 11)
        );
        let (offer, ..) =
            reply_of(handle(&req(MessageType::Discover, a, vec![]), &cfg, &mut leases, 5).unwrap());
        assert_eq!(
            offer.opts().get(OptionCode::Hostname),
            Some(&DhcpOption::Hostname("node-02000000000a".into()))
        );
        // A third is left unanswered, and said so.
        let c = [2, 0, 0, 0, 0, 0xc];
        assert!(matches!(
            handle(&req(MessageType::Discover, c, vec![]), &cfg, &mut leases, 5).unwrap(),
            Outcome::Drop(DropReason::PoolExhausted(m)) if m == MacAddr(c)
        ));
        // Someone else's pool address is refused with a NAK naming it.
        let r = req(
            MessageType::Request,
            c,
            vec![DhcpOption::RequestedIpAddress(ip_a)],
        );
        let (m, kind, ..) = reply_of(handle(&r, &cfg, &mut leases, 5).unwrap());
        assert_eq!(kind, MessageType::Nak);
        assert!(
            nak_text(&m).contains(&format!("{ip_a} is not free")),
            "{}",
            nak_text(&m)
        );
        // After the leases ran out, the addresses go to the next client.
        assert!(pool.contains(&dora(c, &cfg, &mut leases, 4000)));
    }

    #[test]
    fn a_declined_address_is_kept_out_of_use_and_the_client_gets_another() {
        let cfg = pool_cfg();
        let mut leases = MemoryLeases::default();
        let a = [2, 0, 0, 0, 0, 0xa];
        let first = dora(a, &cfg, &mut leases, 0);
        let d = req(
            MessageType::Decline,
            a,
            vec![
                DhcpOption::ServerIdentifier([10, 77, 0, 1].into()),
                DhcpOption::RequestedIpAddress(first),
            ],
        );
        assert!(matches!(
            handle(&d, &cfg, &mut leases, 1).unwrap(),
            Outcome::Drop(DropReason::Declined { ip, .. }) if ip == first
        ));
        let second = dora(a, &cfg, &mut leases, 2);
        assert_ne!(second, first, "given the declined address again");
        // Until the hold is over: then the only address left is the declined one.
        let b = [2, 0, 0, 0, 0, 0xb];
        let c = [2, 0, 0, 0, 0, 0xc];
        assert!(matches!(
            handle(&req(MessageType::Discover, b, vec![]), &cfg, &mut leases, 3).unwrap(),
            Outcome::Drop(DropReason::PoolExhausted(_))
        ));
        assert_eq!(dora(c, &cfg, &mut leases, 2 + DECLINE_HOLD_SECS), first);
        // A DECLINE of an address that is not ours marks nothing.
        let forged = req(
            MessageType::Decline,
            b,
            vec![DhcpOption::RequestedIpAddress([192, 168, 1, 1].into())],
        );
        assert!(matches!(
            handle(&forged, &cfg, &mut leases, 3).unwrap(),
            Outcome::Drop(DropReason::NoReplyNeeded(MessageType::Decline))
        ));
        assert!(!leases.declined(Ipv4Addr::new(192, 168, 1, 1), 3));
    }

    #[test]
    fn a_request_from_a_foreign_network_is_naked_saying_so() {
        let r = req(
            MessageType::Request,
            MAC,
            vec![DhcpOption::RequestedIpAddress([192, 168, 1, 50].into())],
        );
        let (m, kind, ..) = reply_of(handle(&r, &cfg(), &mut MemoryLeases::default(), 0).unwrap());
        assert_eq!(kind, MessageType::Nak);
        assert_eq!(
            nak_text(&m),
            "192.168.1.50 is not in this network (10.77.0.0/24)"
        );
    }

    #[test]
    fn inform_gets_the_options_without_an_address_or_lease() {
        let mut r = req(MessageType::Inform, MAC, vec![]);
        r.set_ciaddr([10, 77, 0, 11]).set_flags(Flags::default());
        let (m, kind, dest, _) =
            reply_of(handle(&r, &cfg(), &mut MemoryLeases::default(), 0).unwrap());
        assert_eq!(kind, MessageType::Ack);
        assert_eq!(m.yiaddr(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(m.opts().get(OptionCode::AddressLeaseTime), None);
        assert!(m.opts().get(OptionCode::SubnetMask).is_some());
        assert_eq!(dest, Destination::Unicast([10, 77, 0, 11].into()));
    }

    #[test]
    fn only_datagrams_with_the_magic_cookie_are_dhcp() {
        use dhcproto::Encodable;
        let mut bytes = Vec::new();
        req(MessageType::Discover, MAC, vec![])
            .encode(&mut dhcproto::Encoder::new(&mut bytes))
            .unwrap();
        assert!(has_magic_cookie(&bytes));
        let mut bootp = bytes.clone();
        bootp[236..240].copy_from_slice(&[0, 0, 0, 0]);
        assert!(!has_magic_cookie(&bootp));
        assert!(!has_magic_cookie(&bytes[..239]), "too short");
        assert!(!has_magic_cookie(&[]));
    }

    #[test]
    fn option_with_a_bad_length_is_not_a_panic() {
        // Found by the dhcp fuzz target: option 155 (RFC 6926 query end time) of length 0 hit a
        // debug_assert in dhcproto, so one datagram took down a debug-build ombootd (the root
        // Cargo.toml now builds dhcproto without them). dhcproto stops reading options at one
        // it cannot read and keeps those before it.
        use dhcproto::Encodable;
        let mut datagram = Vec::new();
        req(MessageType::Discover, MAC, vec![])
            .encode(&mut dhcproto::Encoder::new(&mut datagram))
            .unwrap();
        assert_eq!(datagram.pop(), Some(255), "the End option");
        datagram.extend_from_slice(&[155, 0, 255]);
        let m = decode(&datagram).unwrap();
        assert_eq!(m.opts().get(OptionCode::BulkLeaseQueryQueryEndTime), None);
        let (_, kind, _, _) =
            reply_of(handle(&m, &cfg(), &mut MemoryLeases::default(), 0).unwrap());
        assert_eq!(kind, MessageType::Offer);
        assert!(matches!(
            decode(&datagram[..239]),
            Err(Undecodable::NotDhcp)
        ));
    }

    #[test]
    fn non_requests_are_dropped() {
        let mut r = req(MessageType::Discover, MAC, vec![]);
        r.set_opcode(Opcode::BootReply);
        assert!(matches!(
            handle(&r, &cfg(), &mut MemoryLeases::default(), 0).unwrap(),
            Outcome::Drop(DropReason::NotAClientRequest)
        ));
        let mut r = req(MessageType::Discover, MAC, vec![]);
        r.opts_mut().remove(OptionCode::MessageType);
        assert!(matches!(
            handle(&r, &cfg(), &mut MemoryLeases::default(), 0).unwrap(),
            Outcome::Drop(DropReason::NoMessageType)
        ));
    }
}
