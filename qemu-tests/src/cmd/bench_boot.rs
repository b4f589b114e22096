//! `omlab bench boot`: power-on to up of one BIOS node (iPXE ROM) booting the same image from
//! ombootd and from dnsmasq (DHCP + TFTP: the same iPXE script, kernel and initrd over its TFTP),
//! alternating, in one lab; then a boot storm of many nodes powered on at once from ombootd.
//! Writes build/bench/boot.json.
//!
//! In the dnsmasq runs ombootd still serves what dnsmasq cannot (the NFS root and the cluster
//! key), on its own ports, with its DHCP and TFTP moved aside and its IPv6 advertisements off.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use omlab::{Lab, MacAddr, Proc, anchors, cluster};
use serde::Serialize;

use super::prepare::{median, node_bench, step, workspace_root};

/// How long one node may take from power-on to up.
const ONE: Duration = Duration::from_secs(600);
/// Memory of each node, MiB (as in the boot suite).
const NODE_MIB: u32 = 512;
/// Where ombootd's DHCP and TFTP go while dnsmasq serves those (unused ports).
const ASIDE_DHCP: u16 = 6767;
const ASIDE_TFTP: u16 = 6969;

#[derive(Debug, Serialize)]
struct Report {
    /// Power-on to up, seconds, per run.
    ombootd: Vec<f64>,
    dnsmasq: Vec<f64>,
    /// Median ombootd / median dnsmasq.
    ratio: f64,
    /// The boot storm from ombootd: nodes, and each one's power-on to up (`None`: not up).
    storm_nodes: usize,
    storm_up_secs: Vec<Option<f64>>,
}

/// Runs `omlab bench boot`.
pub fn run(runs: usize, storm: u8) -> anyhow::Result<()> {
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    node_bench()?;
    let root = workspace_root();
    let dnsmasq = step("dnsmasq (unpacked, not installed)", || {
        Ok(anchors::dnsmasq(&root.join("build/anchors"))?)
    })?;
    let image = cluster::built_image("rootfs/sbin/init")?;

    let lab = Lab::new("bench-boot").context("cannot create the lab")?;
    let result = (|| -> anyhow::Result<Report> {
        let plan = cluster::bios_nodes(1, NODE_MIB, false);
        let node = &plan[0];
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for i in 0..runs {
            // ombootd alone, as deployed.
            let master = start_ombootd(&lab, &image, &plan, false)?;
            let up = boot_once(&lab, node)?;
            println!("run {}: ombootd  up in {:.1} s", i + 1, up);
            ours.push(up);
            lab.stop(&master)?;

            // dnsmasq for DHCP and TFTP; ombootd only for the root and the key.
            let master = start_ombootd(&lab, &image, &plan, true)?;
            let site = start_dnsmasq(&lab, &dnsmasq, &image, node)?;
            let up = boot_once(&lab, node)?;
            println!("run {}: dnsmasq  up in {:.1} s", i + 1, up);
            theirs.push(up);
            lab.stop(&site)?;
            lab.stop(&master)?;
        }

        let mut storm_up = Vec::new();
        if storm > 0 {
            let plan = cluster::bios_nodes(storm, NODE_MIB, false);
            let master = start_ombootd(&lab, &image, &plan, false)?;
            for (p, r) in plan
                .iter()
                .zip(cluster::boot_concurrently(&lab, &plan, ONE))
            {
                match r {
                    Ok(up) => {
                        println!("storm: {} up in {:.1} s", p.node.name(), up.up_secs);
                        storm_up.push(Some(up.up_secs));
                    }
                    Err(e) => {
                        println!("storm: {} not up: {e}", p.node.name());
                        storm_up.push(None);
                    }
                }
            }
            lab.stop(&master)?;
        }
        Ok(Report {
            ratio: median(&ours) / median(&theirs),
            ombootd: ours,
            dnsmasq: theirs,
            storm_nodes: usize::from(storm),
            storm_up_secs: storm_up,
        })
    })();
    let report = lab.close(result)?;

    println!(
        "\nBoot, power-on to up, one BIOS node (iPXE ROM, virtio-net, {NODE_MIB} MiB, TCG), median of {runs}:\n"
    );
    println!("| server | up (s) | ombootd vs it |");
    println!("|---|---:|---:|");
    println!("| ombootd | {:.1} | |", median(&report.ombootd));
    println!(
        "| dnsmasq (DHCP + TFTP) | {:.1} | {:.2}x |",
        median(&report.dnsmasq),
        report.ratio
    );
    if storm > 0 {
        let up: Vec<f64> = report.storm_up_secs.iter().flatten().copied().collect();
        let last = up.iter().copied().fold(0.0, f64::max);
        println!(
            "\nBoot storm, {storm} nodes powered on at once from ombootd: {} up; median {:.1} s, last {last:.1} s",
            up.len(),
            median(&up)
        );
    }
    let out = root.join("build/bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("boot.json"), serde_json::to_vec_pretty(&report)?)?;
    println!("\nwrote {}", out.join("boot.json").display());
    Ok(())
}

/// Starts the release ombootd serving `plan`; `aside`: DHCP and TFTP on unused ports and no
/// IPv6 advertisements (dnsmasq serves those, and sends none).
fn start_ombootd(
    lab: &Lab,
    image: &Path,
    plan: &[cluster::Planned],
    aside: bool,
) -> anyhow::Result<Proc> {
    let mut cfg = cluster::config_for(lab, image, plan);
    if aside {
        cfg.ports.dhcp = ASIDE_DHCP;
        cfg.ports.tftp = ASIDE_TFTP;
        cfg.ipv6_ra = false;
    }
    let path = lab.write_ombootd_config(&cfg)?;
    Ok(lab.start_ombootd(&workspace_root().join("target/release/ombootd"), &path)?)
}

/// Powers `p` on, waits until it is up, powers it off; returns the seconds to up.
fn boot_once(lab: &Lab, p: &cluster::Planned) -> anyhow::Result<f64> {
    let running = p.node.boot(lab)?;
    let up = running.wait_up(ONE)?;
    running.power_off()?;
    if up.state != "running" {
        bail!(
            "{} came up {} (failed: {:?})",
            up.name,
            up.state,
            up.failed_units
        );
    }
    Ok(up.up_secs)
}

/// dnsmasq giving `p` its table address and, over its own TFTP, the iPXE script ombootd would
/// serve it (kernel and initrd then from the same TFTP). Fetching that script from ombootd opens
/// the node's boot window, so the node still gets its key.
fn start_dnsmasq(
    lab: &Lab,
    dnsmasq: &anchors::Dnsmasq,
    image: &Path,
    p: &cluster::Planned,
) -> anyhow::Result<Proc> {
    let tftp = lab.dir().join("dnsmasq-tftp");
    std::fs::create_dir_all(&tftp)?;
    let version = node_image::image_dir::current(image)?;
    let files = node_image::image_dir::version_dir(image, &version);
    for f in node_image::image_dir::BOOT_FILES {
        std::fs::copy(files.join(f), tftp.join(f)).with_context(|| format!("copy {f}"))?;
    }
    // For a PXE ROM that is not iPXE (the bench's nodes carry iPXE).
    std::fs::copy(image.join("tftp/undionly.kpxe"), tftp.join("undionly.kpxe"))?;
    let mac: MacAddr = p.node.mac();
    let mut curl = Command::new("curl");
    curl.args(["-sf"]).arg(format!(
        "http://{}:8080/boot/{}.ipxe",
        lab.master_ip(),
        mac.hyphenated()
    ));
    let out = lab.run(curl, lab.netns(), Duration::from_secs(30))?;
    if !out.status.success() {
        bail!("no boot script from ombootd for {mac}");
    }
    let script = String::from_utf8(out.stdout)?.replace(
        &format!("http://{}:8080/image/{version}/", lab.master_ip()),
        "",
    );
    let name = format!("{}.ipxe", p.node.name());
    std::fs::write(tftp.join(&name), script)?;

    let mut cmd = dnsmasq.command(lab.dir(), "dnsmasq");
    cmd.args([
        "--log-facility=-",
        "--bind-interfaces",
        "--enable-tftp",
        // iPXE says so with its option 175; the ROM asks for the script, a bare PXE ROM for iPXE.
        "--dhcp-match=set:ipxe,175",
        "--dhcp-boot=tag:!ipxe,undionly.kpxe",
    ])
    .arg(format!("--interface={}", lab.bridge()))
    .arg(format!(
        "--dhcp-range={},static,255.255.255.0,1h",
        lab.subnet().split('/').next().unwrap_or_default()
    ))
    .arg(format!("--dhcp-host={mac},{},{}", p.ip, p.node.name()))
    .arg(format!("--dhcp-boot=tag:ipxe,{name}"))
    .arg(format!("--tftp-root={}", tftp.display()));
    let proc = lab.spawn("dnsmasq", cmd, lab.netns())?;
    lab.wait_for_output(&proc, "TFTP root is", Duration::from_secs(10))?;
    Ok(proc)
}
