//! End to end: proxyDHCP beside a site DHCP server. The lab network has its own DHCP server
//! (dnsmasq, on another machine of the bridge: a namespace of its own), which gives the addresses
//! and no boot information; ombootd in `dhcp_mode = "proxy"` adds only the boot files. A BIOS node
//! (iPXE ROM: boots the proxy offer's file) and a UEFI node without ROM (edk2's PXE: asks the PXE
//! port 4011) boot into the NFS root with the addresses the site server gave them.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use bootserver::config::wire::DhcpMode;
use omlab::{Lab, anchors, cluster};

/// The site DHCP server's own address on the lab network.
const SITE_IP: &str = "10.77.0.2";

#[test]
fn nodes_boot_through_proxy_dhcp_beside_the_site_dhcp_server() {
    let image = cluster::built_image("rootfs/sbin/init").unwrap();
    let dnsmasq = anchors::dnsmasq(&cluster::workspace_root().join("build/anchors")).unwrap();
    let lab = Lab::new("proxy").unwrap();
    // node1: BIOS with the NIC's iPXE ROM; node3: UEFI without ROM (edk2's own PXE client).
    let plan: Vec<_> = cluster::every_boot_path(512, false)
        .into_iter()
        .filter(|p| ["node1", "node3"].contains(&p.node.name()))
        .collect();

    // The site's DHCP server: addresses (the table's, reserved by MAC) and nothing about booting.
    let site = lab.add_client_ns("site", true).unwrap();
    lab.add_client_addr(&site, &format!("{SITE_IP}/24"))
        .unwrap();
    let mut cmd = dnsmasq.command(lab.dir(), "site");
    cmd.args([
        "--no-ping",
        "--log-dhcp",
        "--log-facility=-",
        "--interface=eth0",
        "--bind-interfaces",
        "--dhcp-range=10.77.0.100,10.77.0.150,255.255.255.0,1h",
    ]);
    for p in &plan {
        cmd.arg(format!("--dhcp-host={},{}", p.node.mac(), p.ip));
    }
    let site_dhcp = lab.spawn("dnsmasq", cmd, site.netns()).unwrap();
    lab.wait_for_output(&site_dhcp, "DHCP, IP range", Duration::from_secs(10))
        .unwrap();

    let mut config = cluster::config_for(&lab, &image, &plan);
    config.dhcp_mode = DhcpMode::Proxy;
    let ombootd = cluster::start_master_with(&lab, &config).unwrap();

    let results = cluster::boot_all(&lab, &plan, Duration::from_secs(300));
    let mut nodes = Vec::new();
    for (p, r) in plan.iter().zip(results) {
        let name = p.node.name();
        let (running, up) = r.unwrap_or_else(|e| panic!("{name} did not come up: {e}"));
        println!(
            "{name} ({}, NIC ROM {}): up in {:.1} s at {}, state {}",
            p.node.firmware_kind(),
            if p.node.has_nic_rom() { "on" } else { "off" },
            up.up_secs,
            up.ip,
            up.state
        );
        assert_eq!(up.name, name);
        assert_eq!(up.ip, p.ip);
        assert_eq!(
            up.state, "running",
            "{name}: failed units {:?}",
            up.failed_units
        );
        nodes.push(running);
    }
    for n in nodes {
        n.power_off().unwrap();
    }

    // The addresses came from the site server; ombootd sent boot files only, on the DHCP port
    // to both, and on the PXE port to edk2.
    let site_log = std::fs::read_to_string(lab.dir().join("dnsmasq.log")).unwrap();
    let log = std::fs::read_to_string(ombootd.log()).unwrap();
    for p in &plan {
        let mac = p.node.mac().to_string();
        assert!(
            site_log
                .lines()
                .any(|l| l.contains(&format!("DHCPACK(eth0) {} {mac}", p.ip))),
            "{}: no ACK from the site server",
            p.node.name()
        );
        assert!(
            log.lines()
                .any(|l| l.contains("proxyDHCP Offer")
                    && l.contains(&format!("node={}", p.node.name()))),
            "{}: no proxy offer",
            p.node.name()
        );
    }
    let to_4011 = log
        .lines()
        .find(|l| l.contains("proxyDHCP Ack") && l.contains("node=node3"))
        .unwrap_or_else(|| panic!("no ACK on the PXE port for edk2"));
    println!("{}", to_4011.trim());
    assert!(
        !log.lines()
            .any(|l| l.contains(" DHCP Offer") || l.contains(" DHCP Ack")),
        "ombootd gave an address in proxy mode"
    );
    lab.teardown().unwrap();
}
