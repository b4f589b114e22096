//! The standard virtual clusters of the demo and the boot test (BIOS and UEFI nodes),
//! booted at once from one ombootd, each waited for until it reports up.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::LabConfig;
use crate::error::{Error, Result};
use crate::firmware::Firmware;
use crate::lab::Lab;
use crate::mac::{LabMac, MacAddr};
use crate::nic::Nic;
use crate::node::{Node, NodeUp, RunningNode};
use crate::process::Proc;

/// The master's IPv6 address and prefix when a plan has a node that boots over IPv6: ombootd's
/// `ipv6_boot`, also put on the lab bridge.
pub const IPV6_BOOT: &str = "fd77::1/64";

/// A node and the address reserved for it.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The QEMU node.
    pub node: Node,
    /// Its address in the ombootd table.
    pub ip: Ipv4Addr,
}

/// node1 (BIOS, 10.77.0.11) and node2 (UEFI, 10.77.0.12) with `memory_mib` each; both
/// start from the NIC's iPXE ROM.
pub fn bios_and_uefi(memory_mib: u32, kvm: bool) -> Vec<Planned> {
    plan(
        &[
            (1, Firmware::Bios, true, Nic::Virtio),
            (2, Firmware::Uefi, true, Nic::Virtio),
        ],
        memory_mib,
        kvm,
    )
}

/// Every boot path ombootd serves, each on another NIC model, so the initramfs must find each
/// one's driver by modalias: node1 (BIOS, iPXE ROM, RTL8139, 10.77.0.11), node2 (UEFI, iPXE ROM,
/// e1000e, 10.77.0.12), node3 (UEFI without the NIC ROM, virtio-net, the one NIC edk2 drives
/// itself: its PXE client loads `ipxe.efi` over TFTP, 10.77.0.13), node4 (the same, but edk2's
/// HTTP boot client loads `ipxe.efi` by URL, 10.77.0.14) and node5 (the same over IPv6: its
/// address and the URL by DHCPv6, 10.77.0.15 and fd77::a4d:f).
pub fn every_boot_path(memory_mib: u32, kvm: bool) -> Vec<Planned> {
    plan(
        &[
            (1, Firmware::Bios, true, Nic::Rtl8139),
            (2, Firmware::Uefi, true, Nic::E1000e),
            (3, Firmware::Uefi, false, Nic::Virtio),
            (4, Firmware::UefiHttp, false, Nic::Virtio),
            (5, Firmware::UefiHttpIpv6, false, Nic::Virtio),
        ],
        memory_mib,
        kvm,
    )
}

/// `count` BIOS nodes, node1 at 10.77.0.11 onwards (the cheapest boot under TCG).
pub fn bios_nodes(count: u8, memory_mib: u32, kvm: bool) -> Vec<Planned> {
    let nodes: Vec<(u8, Firmware, bool, Nic)> = (1..=count)
        .map(|n| (n, Firmware::Bios, true, Nic::Virtio))
        .collect();
    plan(&nodes, memory_mib, kvm)
}

fn plan(nodes: &[(u8, Firmware, bool, Nic)], memory_mib: u32, kvm: bool) -> Vec<Planned> {
    nodes
        .iter()
        .map(|&(n, fw, rom, nic)| Planned {
            node: Node::new(&format!("node{n}"), MacAddr::lab(n))
                .firmware(fw)
                .nic(nic)
                .nic_rom(rom)
                .memory_mib(memory_mib)
                .kvm(kvm),
            ip: Ipv4Addr::new(10, 77, 0, 10 + n),
        })
        .collect()
}

/// The workspace root (where `build/` and `target/` are).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The workspace's node image (`build/image`), once it is known to hold `needed` (a path inside
/// it, such as `rootfs/usr/local/sbin/omd`).
pub fn built_image(needed: &str) -> Result<PathBuf> {
    let image = workspace_root().join("build/image");
    if !image.join(needed).exists() {
        return Err(Error::Missing {
            what: "the node image (run `omimage build`; `omlab test` does)",
            path: image.join(needed),
        });
    }
    Ok(image)
}

/// Writes the config serving `image` to `plan` and starts the workspace's debug ombootd.
pub fn start_master(lab: &Lab, image: &Path, plan: &[Planned]) -> Result<Proc> {
    start_master_with(lab, &config_for(lab, image, plan))
}

/// Writes `config` (a [`config_for`] changed by the caller) and starts the workspace's debug
/// ombootd on it; with `ipv6_boot` set, the bridge gets that address first.
pub fn start_master_with(lab: &Lab, config: &LabConfig) -> Result<Proc> {
    if let Some(cidr) = &config.ipv6_boot {
        lab.add_master_ipv6(cidr.get_ref())?;
    }
    let path = lab.write_ombootd_config(config)?;
    lab.start_ombootd(&workspace_root().join("target/debug/ombootd"), &path)
}

/// The lab's ombootd config serving `image` to `plan`, with IPv6 netboot ([`IPV6_BOOT`]) when a
/// planned node boots over IPv6.
pub fn config_for(lab: &Lab, image: &Path, plan: &[Planned]) -> LabConfig {
    let mut config = plan.iter().fold(lab.ombootd_config(image), |c, p| {
        c.node(p.node.name(), p.node.mac(), p.ip)
    });
    if plan
        .iter()
        .any(|p| p.node.firmware_kind() == Firmware::UefiHttpIpv6)
    {
        config.ipv6_boot = Some(crate::config::set(IPV6_BOOT.to_owned()));
    }
    config
}

/// Powers on every planned node at once and waits up to `timeout` for each to report up. The
/// nodes stay on: one result per node, in plan order.
pub fn boot_all<'l>(
    lab: &'l Lab,
    plan: &[Planned],
    timeout: Duration,
) -> Vec<Result<(RunningNode<'l>, NodeUp)>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = plan
            .iter()
            .map(|p| {
                s.spawn(move || -> Result<(RunningNode<'l>, NodeUp)> {
                    let running = p.node.boot(lab)?;
                    let up = running.wait_up(timeout)?;
                    Ok((running, up))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(crate::error::Error::Panicked("node boot".into())))
            })
            .collect()
    })
}

/// [`boot_all`], then powers every node off: one result per node, in plan order.
pub fn boot_concurrently(lab: &Lab, plan: &[Planned], timeout: Duration) -> Vec<Result<NodeUp>> {
    boot_all(lab, plan, timeout)
        .into_iter()
        .map(|r| {
            let (running, up) = r?;
            running.power_off()?;
            Ok(up)
        })
        .collect()
}

/// Boots `count` BIOS nodes of `memory_mib` from ombootd serving `image` in a new lab, waits
/// until each omd sees node1 and node2 alive and taking migrations, runs `f` with the lab,
/// ombootd's process and the nodes, and tears the lab down (keeping its directory if anything
/// failed).
pub fn with_lab_nodes<T, E: From<crate::Error>>(
    name: &str,
    image: &Path,
    memory_mib: u32,
    count: u8,
    f: impl FnOnce(&Lab, &Proc, &[RunningNode<'_>]) -> std::result::Result<T, E>,
) -> std::result::Result<T, E> {
    let lab = Lab::new(name)?;
    let plan = bios_nodes(count, memory_mib, false);
    let result = (|| {
        let ombootd = start_master(&lab, image, &plan)?;
        let mut nodes = Vec::new();
        for r in boot_all(&lab, &plan, Duration::from_secs(300)) {
            nodes.push(r?.0);
        }
        for n in &nodes {
            crate::jobs::peers_ready(n, crate::jobs::T)?;
        }
        f(&lab, &ombootd, &nodes)
    })();
    lab.close(result)
}

/// Boots node1 and node2 (BIOS, `memory_mib` each) from an ombootd serving `image` in a new lab
/// called `name`, waits until both omd see both nodes take migrations, and runs `f` on them.
/// The lab is torn down afterwards whatever `f` returned (and on a panic, by its drop), its
/// directory kept on an error for the logs; `f`'s error comes first.
pub fn with_two_nodes<T, E: From<crate::Error>>(
    name: &str,
    image: &Path,
    memory_mib: u32,
    f: impl FnOnce(&RunningNode<'_>, &RunningNode<'_>) -> std::result::Result<T, E>,
) -> std::result::Result<T, E> {
    with_lab_nodes(name, image, memory_mib, 2, |_, _, n| f(&n[0], &n[1]))
}
