//! proxyDHCP (PXE 2.1 §2.2.5 and §2.2.6; UEFI 2.5 §24.7 for HTTP boot): beside the site's own
//! DHCP server, ombootd answers only the network-boot clients of its table, with the boot file
//! and no address. No I/O here.
//!
//! On the DHCP port a DISCOVER gets a proxy OFFER: no yiaddr, vendor class `PXEClient` (or
//! `HTTPClient`), next server and boot file. iPXE boots that file at once; edk2's PXE client,
//! finding no PXE vendor options (43) in it, asks the PXE port (4011) and boots the file of the
//! ACK it gets there. REQUESTs on the DHCP port belong to the site's server.

use dhcproto::v4::{DhcpOption, Message, MessageType, OptionCode};

use super::boot_client::BootClient;
use super::handler::{self, DropReason, Outcome};
use super::reply_addr;
use crate::config::Config;

/// Which of the two proxyDHCP ports a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// The DHCP server port (67): broadcast DISCOVERs.
    Dhcp,
    /// The PXE boot server port (4011): REQUESTs sent to us, from a client with an address.
    Pxe,
}

/// Decide the proxyDHCP reply to `req`, received on `port`.
pub fn handle(req: &Message, cfg: &Config, port: Port) -> Outcome {
    let (kind, mac) = match handler::sender(req) {
        Ok(x) => x,
        Err(why) => return Outcome::Drop(why),
    };
    let client = BootClient::of(req);
    if matches!(client, BootClient::Plain | BootClient::UnsupportedPxe(_)) {
        return Outcome::Drop(DropReason::NotForProxy);
    }
    let Some(node) = cfg.node_by_mac(mac) else {
        return Outcome::Drop(DropReason::UnknownClient(mac));
    };
    let reply_kind = match (port, kind) {
        (Port::Dhcp, MessageType::Discover) => MessageType::Offer,
        (Port::Pxe, MessageType::Request | MessageType::Inform) => MessageType::Ack,
        (Port::Dhcp, MessageType::Request | MessageType::Release | MessageType::Decline) => {
            return Outcome::Drop(DropReason::NoReplyNeeded(kind));
        }
        (_, other) => return Outcome::Drop(DropReason::Unsupported(other)),
    };

    let mut m = handler::reply_to(req);
    m.set_siaddr(cfg.master_ip);
    if reply_kind == MessageType::Ack {
        m.set_ciaddr(req.ciaddr());
    }
    let boot_file = handler::boot_file_for(client, mac, cfg.master_ip, cfg.ports.http);
    let opts = m.opts_mut();
    opts.insert(DhcpOption::MessageType(reply_kind));
    opts.insert(DhcpOption::ServerIdentifier(cfg.master_ip));
    // The vendor class is what makes a client read an address-less offer as proxyDHCP.
    let class: &[u8] = if client == BootClient::UefiHttp {
        b"HTTPClient"
    } else {
        b"PXEClient"
    };
    opts.insert(DhcpOption::ClassIdentifier(class.to_vec()));
    // PXE 2.1 §2.2.5: the reply echoes the client's machine identifier (UUID).
    if let Some(uuid) = req.opts().get(OptionCode::ClientMachineIdentifier) {
        opts.insert(uuid.clone());
    }
    if let Some(f) = &boot_file {
        m.set_fname_str(f);
        m.opts_mut()
            .insert(DhcpOption::BootfileName(f.as_bytes().to_vec()));
    }
    let dest = reply_addr::destination(req, reply_kind, &m);
    Outcome::Reply {
        msg: Box::new(m),
        kind: reply_kind,
        dest,
        node: node.name.clone(),
        boot_file,
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use dhcproto::v4::{Architecture, Flags};

    use super::*;
    use crate::dhcp::handler::tests::{reply_of, req};
    use crate::dhcp::reply_addr::Destination;
    use crate::mac::MacAddr;

    const MAC: [u8; 6] = [0x52, 0x54, 0, 0x77, 0, 1];

    fn cfg() -> Config {
        Config::parse(
            &handler::tests::CONFIG.replace("state_dir", "dhcp_mode = \"proxy\"\nstate_dir"),
            std::path::Path::new("t.toml"),
        )
        .unwrap()
    }

    fn pxe(arch: u16) -> Vec<DhcpOption> {
        vec![
            DhcpOption::ClassIdentifier(b"PXEClient:Arch:00000:UNDI:002001".to_vec()),
            DhcpOption::ClientSystemArchitecture(Architecture(arch)),
            DhcpOption::ClientMachineIdentifier(vec![0, 1, 2, 3]),
        ]
    }

    #[test]
    fn a_pxe_discover_gets_the_boot_file_and_no_address() {
        let (m, kind, dest, boot) = reply_of(handle(
            &req(MessageType::Discover, MAC, pxe(0)),
            &cfg(),
            Port::Dhcp,
        ));
        assert_eq!(kind, MessageType::Offer);
        assert_eq!(m.yiaddr(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(m.siaddr(), Ipv4Addr::new(10, 77, 0, 1));
        assert_eq!(boot.as_deref(), Some("undionly.kpxe"));
        assert_eq!(m.fname_str().and_then(Result::ok), Some("undionly.kpxe"));
        assert_eq!(
            m.opts().get(OptionCode::ClassIdentifier),
            Some(&DhcpOption::ClassIdentifier(b"PXEClient".to_vec()))
        );
        assert_eq!(
            m.opts().get(OptionCode::ClientMachineIdentifier),
            Some(&DhcpOption::ClientMachineIdentifier(vec![0, 1, 2, 3]))
        );
        // No address, no lease, no network settings: those are the site server's.
        for code in [
            OptionCode::AddressLeaseTime,
            OptionCode::SubnetMask,
            OptionCode::Router,
            OptionCode::Hostname,
        ] {
            assert_eq!(m.opts().get(code), None, "{code:?}");
        }
        // The client has no address yet.
        assert_eq!(dest, Destination::Broadcast);
    }

    #[test]
    fn the_pxe_port_acks_a_request_to_the_client_address() {
        let mut r = req(MessageType::Request, MAC, pxe(7));
        r.set_ciaddr(Ipv4Addr::new(10, 77, 0, 11))
            .set_flags(Flags::default());
        let (m, kind, _, boot) = reply_of(handle(&r, &cfg(), Port::Pxe));
        assert_eq!(kind, MessageType::Ack);
        assert_eq!(m.ciaddr(), Ipv4Addr::new(10, 77, 0, 11));
        assert_eq!(m.yiaddr(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(boot.as_deref(), Some("ipxe.efi"));
        // A DISCOVER does not belong on the PXE port.
        assert!(matches!(
            handle(&req(MessageType::Discover, MAC, pxe(7)), &cfg(), Port::Pxe),
            Outcome::Drop(DropReason::Unsupported(MessageType::Discover))
        ));
    }

    #[test]
    fn ipxe_and_http_clients_get_their_urls() {
        let mut opts = pxe(7);
        opts.push(DhcpOption::UserClass(b"iPXE".to_vec()));
        let (_, _, _, boot) = reply_of(handle(
            &req(MessageType::Discover, MAC, opts),
            &cfg(),
            Port::Dhcp,
        ));
        assert_eq!(
            boot.as_deref(),
            Some("http://10.77.0.1:8080/boot/52-54-00-77-00-01.ipxe")
        );
        let http = vec![
            DhcpOption::ClassIdentifier(b"HTTPClient:Arch:00016:UNDI:003001".to_vec()),
            DhcpOption::ClientSystemArchitecture(Architecture(16)),
        ];
        let (m, _, _, boot) = reply_of(handle(
            &req(MessageType::Discover, MAC, http),
            &cfg(),
            Port::Dhcp,
        ));
        assert_eq!(
            boot.as_deref(),
            Some("http://10.77.0.1:8080/loader/ipxe.efi")
        );
        assert_eq!(
            m.opts().get(OptionCode::ClassIdentifier),
            Some(&DhcpOption::ClassIdentifier(b"HTTPClient".to_vec()))
        );
    }

    #[test]
    fn everything_else_is_left_to_the_site_server() {
        let c = cfg();
        let cases = [
            // An OS's own DHCP client.
            (
                req(MessageType::Discover, MAC, vec![]),
                DropReason::NotForProxy,
            ),
            // A PXE client of an architecture we have no loader for.
            (
                req(MessageType::Discover, MAC, pxe(11)),
                DropReason::NotForProxy,
            ),
            // The REQUEST for the site server's offer.
            (
                req(MessageType::Request, MAC, pxe(0)),
                DropReason::NoReplyNeeded(MessageType::Request),
            ),
            (
                req(MessageType::Discover, [0x52, 0x54, 0, 0x99, 0, 1], pxe(0)),
                DropReason::UnknownClient(MacAddr([0x52, 0x54, 0, 0x99, 0, 1])),
            ),
        ];
        for (r, want) in cases {
            match handle(&r, &c, Port::Dhcp) {
                Outcome::Drop(why) => assert_eq!(why, want),
                Outcome::Reply { .. } => panic!("answered, want {want:?}"),
            }
        }
    }
}
