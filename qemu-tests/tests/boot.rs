//! End to end: QEMU nodes PXE-boot from the real ombootd over every path it serves (SeaBIOS +
//! iPXE ROM; OVMF + iPXE EFI ROM; OVMF's own PXE client → ipxe.efi over TFTP → iPXE; OVMF's HTTP
//! boot client → ipxe.efi by URL → iPXE, over IPv4 and, with the URL from DHCPv6, over IPv6),
//! each on another NIC model whose driver the initramfs finds by modalias, into the shared NFS
//! root of `build/image` (`omimage build`), and report systemd's state.

#![allow(clippy::unwrap_used)]

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use omlab::cluster;
use omlab::{Firmware, Lab};

/// The lease ombootd gives in this test (seconds).
const LEASE_SECS: u32 = 60;
/// The loader's URL that ombootd's DHCPv6 gives an HTTP boot client (`cluster::IPV6_BOOT`).
const IPV6_LOADER_URL: &str = "http://[fd77::1]:8080/loader/ipxe.efi";

/// A node's IPv6 address under IPv6 netboot: fd77::/64 with its IPv4 address as the last 32 bits.
fn ipv6_of(ip: Ipv4Addr) -> Ipv6Addr {
    Ipv6Addr::from((0xfd77_u128 << 112) | u128::from(u32::from(ip)))
}

#[test]
fn nodes_pxe_boot_from_ombootd_into_the_nfs_root() {
    let image = cluster::built_image("rootfs/sbin/init").unwrap();
    let lab = Lab::new("boot").unwrap();
    let plan = cluster::every_boot_path(512, false);
    // A short lease: each node's renewal service must renew it (at half time) within the test.
    let mut config = cluster::config_for(&lab, &image, &plan);
    config.lease_secs = omlab::config::set(LEASE_SECS);
    let _ombootd = cluster::start_master_with(&lab, &config).unwrap();

    let results = cluster::boot_all(&lab, &plan, Duration::from_secs(300));
    let mut nodes = Vec::new();
    for (p, r) in plan.iter().zip(results) {
        let name = p.node.name();
        let (running, up) = r.unwrap_or_else(|e| panic!("{name} did not come up: {e}"));
        // Asked on the node itself, on its serial console (root autologin).
        let state = running
            .shell("systemctl is-system-running", Duration::from_secs(60))
            .unwrap();
        println!(
            "{name} ({}, {}, NIC ROM {}): up in {:.1} s at {}; systemctl is-system-running: {} (exit {})",
            p.node.firmware_kind(),
            p.node.nic_model().qemu_device(),
            if p.node.has_nic_rom() { "on" } else { "off" },
            up.up_secs,
            up.ip,
            state.lines.join(" "),
            state.status,
        );
        assert_eq!(up.name, name);
        assert_eq!(up.ip, p.ip);
        assert_eq!(
            up.state, "running",
            "{name}: failed units {:?}",
            up.failed_units
        );
        assert_eq!(
            (state.lines.last().map(String::as_str), state.status),
            (Some("running"), 0),
            "{name}"
        );
        let root = running
            .shell("findmnt -no FSTYPE / && hostname", Duration::from_secs(60))
            .unwrap();
        assert!(
            root.lines.first().map(String::as_str) == Some("overlay"),
            "{name}: / is not the overlay: {:?}",
            root.lines
        );
        assert_eq!(
            root.lines.last().map(String::as_str),
            Some(name),
            "{name}: wrong host name"
        );
        // A node is for people: an ordinary user runs programs and the procps tools, and
        // writes in the shared /cluster.
        let user = running
            .shell(
                "setpriv --reuid=65534 --regid=65534 --clear-groups sh -c 'id -u; ps -o comm= -p $$; free -m | head -1; touch /cluster/u65534-$(hostname) && echo wrote'",
                Duration::from_secs(60),
            )
            .unwrap();
        assert_eq!(
            (
                user.status,
                user.lines
                    .iter()
                    .map(|l| l.split_whitespace().next().unwrap_or(""))
                    .collect::<Vec<_>>()
            ),
            (0, vec!["65534", "sh", "total", "wrote"]),
            "{name}: an ordinary user cannot work on the node: {:?}",
            user.lines
        );
        let serial = std::fs::read_to_string(running.serial_log()).unwrap();
        // The initramfs loaded this NIC's own driver by modalias, and said so.
        let drivers = p.node.nic_model().linux_drivers();
        let said = serial
            .lines()
            .find(|l| l.contains("omboot: interface ") && l.contains(", driver "))
            .unwrap_or_else(|| panic!("{name}: the initramfs named no NIC driver"));
        assert!(
            drivers
                .iter()
                .any(|d| said.contains(&format!(", driver {d} for "))),
            "{name}: expected driver {drivers:?}: {said}"
        );
        println!("{name}: {}", said.trim());
        // The root is the image version current at boot: `<master>:/<version>/rootfs`.
        let version = node_image::image_dir::current(&image).unwrap();
        assert!(
            serial.contains(&format!(
                "mounted {}:/{version}/rootfs read-only",
                lab.master_ip()
            )),
            "{name}: no NFS root mount of version {version}"
        );
        nodes.push(running);
    }
    // After switch_root the node keeps its lease: omboot-lease.service renews it at half time
    // (the initramfs's own client exits once bound), and the address stays.
    for (p, n) in plan.iter().zip(&nodes) {
        let name = p.node.name();
        let deadline = std::time::Instant::now() + Duration::from_secs(u64::from(LEASE_SECS));
        let journal = loop {
            let j = n
                .shell(
                    "journalctl -b -o cat -u omboot-lease | grep 'omboot: lease'; ip -4 -o addr show | grep -c 'inet '",
                    Duration::from_secs(60),
                )
                .unwrap();
            if j.lines.iter().any(|l| l.contains(" renewed for "))
                || std::time::Instant::now() > deadline
            {
                break j.lines;
            }
            std::thread::sleep(Duration::from_secs(5));
        };
        assert!(
            journal.iter().any(|l| l.contains(&format!(
                "lease of {} on eth0 renewed for {LEASE_SECS}s",
                p.ip
            ))),
            "{name}: no renewal after switch_root: {journal:?}"
        );
        assert!(
            !journal.iter().any(|l| l.contains("WARNING")),
            "{name}: {journal:?}"
        );
        println!(
            "{name}: {}",
            journal.iter().rev().nth(1).map_or("", String::as_str)
        );
    }
    for n in nodes {
        n.power_off().unwrap();
    }

    // The chain really went through ombootd: a TFTP download of ipxe.efi for the ROM-less PXE
    // node, the same file over HTTP (and no TFTP at all) for the HTTP boot node, an iPXE script
    // and kernel over HTTP for every node.
    let log = std::fs::read_to_string(lab.dir().join("ombootd.log")).unwrap();
    for p in &plan {
        let ip = format!("{}:", p.ip);
        let tftp = log
            .lines()
            .any(|l| l.contains("TFTP") && l.contains("file=ipxe.efi") && l.contains(&ip));
        let http = log
            .lines()
            .any(|l| l.contains("serving the boot loader over HTTP") && l.contains(&ip));
        let (want_tftp, want_http) = match (p.node.firmware_kind(), p.node.has_nic_rom()) {
            (Firmware::UefiHttp, _) => (false, true),
            (Firmware::Uefi, false) => (true, false),
            _ => (false, false),
        };
        assert_eq!(
            (tftp, http),
            (want_tftp, want_http),
            "{} ({}): ipxe.efi over (TFTP, HTTP over IPv4)",
            p.node.name(),
            p.node.firmware_kind()
        );
    }
    // The IPv6 HTTP boot node: its firmware asked DHCPv6 (Solicit, then Request) and got its
    // address and the loader's URL, then fetched the loader over IPv6 from that address. The
    // boot option it started carries no URL, so the one it used came from DHCPv6.
    for p in plan
        .iter()
        .filter(|p| p.node.firmware_kind() == Firmware::UefiHttpIpv6)
    {
        let name = p.node.name();
        let v6 = ipv6_of(p.ip);
        for reply in ["Advertise", "Reply"] {
            assert!(
                log.lines().any(
                    |l| l.contains(&format!("DHCPv6 {reply} node={name} ip={v6} "))
                        && l.contains(&format!("boot_file=\"{IPV6_LOADER_URL}\""))
                ),
                "{name}: no DHCPv6 {reply} with {v6} and the loader's URL"
            );
        }
        assert!(
            log.lines()
                .any(|l| l.contains("serving the boot loader over HTTP")
                    && l.contains(&format!("peer=[{v6}]:"))),
            "{name}: the loader was not fetched over HTTP from {v6}"
        );
        let serial = std::fs::read_to_string(lab.dir().join(format!("{name}.serial"))).unwrap();
        for said in [
            ">>Start HTTP Boot over IPv6".to_owned(),
            format!("URI: {IPV6_LOADER_URL}"),
            "BdsDxe: starting Boot0001 \"HTTP boot over IPv6, URL from DHCPv6\"".to_owned(),
        ] {
            assert!(
                serial.contains(&said),
                "{name}: the firmware did not say {said:?}"
            );
        }
        println!("{name}: ipxe.efi over HTTP from [{v6}], URL by DHCPv6");
    }
    for p in &plan {
        assert!(
            log.contains(&format!("serving iPXE script node={}", p.node.name())),
            "no script served to {}",
            p.node.name()
        );
    }
    lab.teardown().unwrap();
}
