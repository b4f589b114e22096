//! Writes the dhcp and tftp_request seeds: requests as PXE ROMs, iPXE, Linux and atftp send them.
//! `cargo run --manifest-path bootserver/fuzz/Cargo.toml --example seeds`.

use std::net::Ipv4Addr;
use std::path::Path;

use dhcproto::v4::{Architecture, DhcpOption, Flags, Message, MessageType, OptionCode};
use dhcproto::{Encodable, Encoder};

const NODE1: [u8; 6] = [0x52, 0x54, 0, 0x77, 0, 1];

fn request(kind: MessageType, opts: Vec<DhcpOption>) -> Message {
    let z = Ipv4Addr::UNSPECIFIED;
    let mut m = Message::new_with_id(0x1d2c_3b4a, z, z, z, z, &NODE1);
    m.set_flags(Flags::default().set_broadcast());
    m.opts_mut().insert(DhcpOption::MessageType(kind));
    for o in opts {
        m.opts_mut().insert(o);
    }
    m
}

/// A firmware PXE client's options; `arch` is RFC 4578's (0 BIOS, 7 UEFI x86-64).
fn pxe(arch: u16, class: &[u8]) -> Vec<DhcpOption> {
    vec![
        DhcpOption::MaxMessageSize(1472),
        DhcpOption::ParameterRequestList(vec![
            OptionCode::SubnetMask,
            OptionCode::Router,
            OptionCode::Hostname,
            OptionCode::BootfileName,
            OptionCode::TFTPServerName,
        ]),
        DhcpOption::ClientSystemArchitecture(Architecture(arch)),
        DhcpOption::ClassIdentifier(class.to_vec()),
    ]
}

/// The wire bytes, padded to BOOTP's 300 bytes as PXE ROMs send them.
fn bytes(m: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    m.encode(&mut Encoder::new(&mut out)).expect("encodes");
    if out.len() < 300 {
        out.resize(300, 0);
    }
    out
}

fn main() -> std::io::Result<()> {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let server = DhcpOption::ServerIdentifier([10, 77, 0, 1].into());
    let asked = DhcpOption::RequestedIpAddress([10, 77, 0, 11].into());

    let bios = request(
        MessageType::Discover,
        pxe(0, b"PXEClient:Arch:00000:UNDI:002001"),
    );
    let uefi = request(
        MessageType::Discover,
        pxe(7, b"PXEClient:Arch:00007:UNDI:003016"),
    );
    let mut ipxe_opts = pxe(7, b"PXEClient:Arch:00007:UNDI:003010");
    ipxe_opts.extend([
        DhcpOption::UserClass(b"iPXE".to_vec()),
        server.clone(),
        asked.clone(),
    ]);
    let ipxe = request(MessageType::Request, ipxe_opts);
    let mut renew = request(MessageType::Request, vec![]);
    renew
        .set_ciaddr([10, 77, 0, 11])
        .set_flags(Flags::default());
    let mut relayed = request(MessageType::Discover, vec![]);
    relayed.set_giaddr([10, 78, 0, 1]).set_hops(1);
    let release = request(MessageType::Release, vec![server]);

    let dhcp = base.join("dhcp");
    std::fs::create_dir_all(&dhcp)?;
    for (name, m) in [
        ("pxe-bios-discover", &bios),
        ("pxe-uefi-discover", &uefi),
        ("ipxe-request", &ipxe),
        ("linux-renew", &renew),
        ("relayed-discover", &relayed),
        ("release", &release),
    ] {
        std::fs::write(dhcp.join(name), bytes(m))?;
    }

    // RRQ/WRQ as RFC 1350 lays them out: opcode, name NUL, mode NUL, then RFC 2347 options.
    let tftp = base.join("tftp_request");
    std::fs::create_dir_all(&tftp)?;
    let seeds: [(&str, &[u8]); 5] = [
        (
            "rrq-blksize-tsize",
            b"\x00\x01undionly.kpxe\x00octet\x00blksize\x001468\x00tsize\x000\x00",
        ),
        (
            "rrq-windowsize",
            b"\x00\x01/efi/ipxe.efi\x00octet\x00blksize\x001428\x00tsize\x000\x00windowsize\x008\x00",
        ),
        ("rrq-escape", b"\x00\x01../outside/secret\x00netascii\x00"),
        ("rrq-symlink", b"\x00\x01leakdir/secret\x00octet\x00"),
        ("wrq", b"\x00\x02upload.bin\x00octet\x00tsize\x001024\x00"),
    ];
    for (name, b) in seeds {
        std::fs::write(tftp.join(name), b)?;
    }
    Ok(())
}
