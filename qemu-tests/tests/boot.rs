//! End to end: QEMU nodes PXE-boot from the real ombootd over every path it serves (SeaBIOS +
//! iPXE ROM; OVMF + iPXE EFI ROM; OVMF's own PXE client → ipxe.efi over TFTP → iPXE), each on
//! another NIC model whose driver the initramfs finds by modalias, into the shared NFS root of
//! `build/image` (`omimage build`), and report systemd's state.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use omlab::Lab;
use omlab::cluster;

#[test]
fn nodes_pxe_boot_from_ombootd_into_the_nfs_root() {
    let image = cluster::built_image("rootfs/sbin/init").unwrap();
    let lab = Lab::new("boot").unwrap();
    let plan = cluster::every_boot_path(512, false);
    let _ombootd = cluster::start_master(&lab, &image, &plan).unwrap();

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
    for n in nodes {
        n.power_off().unwrap();
    }

    // The chain really went through ombootd: a TFTP download of ipxe.efi for the ROM-less node,
    // an iPXE script and kernel over HTTP for every node.
    let log = std::fs::read_to_string(lab.dir().join("ombootd.log")).unwrap();
    assert!(
        log.contains("file=ipxe.efi"),
        "no TFTP ipxe.efi download in the ombootd log"
    );
    for p in &plan {
        assert!(
            log.contains(&format!("serving iPXE script node={}", p.node.name())),
            "no script served to {}",
            p.node.name()
        );
    }
    lab.teardown().unwrap();
}
