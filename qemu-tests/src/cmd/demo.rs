//! `omlab demo`: builds what is missing, then one lab, ombootd, node1 (BIOS, 10.77.0.11) and
//! node2 (UEFI, 10.77.0.12) booted at once; prints how each came up, then tears everything down
//! (with `--keep`, after leaving the cluster and its dashboard up for a while).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use omlab::Lab;
use omlab::cluster::{self, Planned};
use omlab::forward::Forward;

use super::prepare::{cargo, debian_packages, node_image, step, workspace_root};

/// Options of `omlab demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Skip installing packages and building; use the binaries and image as they are.
    #[arg(long)]
    no_build: bool,
    /// The image built by `omimage build` (default: `build/image` of the workspace).
    #[arg(long)]
    image: Option<PathBuf>,
    /// The ombootd binary (default: `target/debug/ombootd` of the workspace).
    #[arg(long)]
    ombootd: Option<PathBuf>,
    /// Use KVM instead of TCG (guests hang under KVM on the usual lab hosts).
    #[arg(long)]
    kvm: bool,
    /// Memory per node.
    #[arg(long, default_value_t = 512)]
    memory_mib: u32,
    /// How long each node may take from power-on to OMBOOT-READY.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
    /// Keep the cluster up afterwards (for `--keep-minutes`, or until Ctrl-C), with ombootd's
    /// dashboard forwarded to the host's loopback, and keep the lab directory.
    #[arg(long)]
    keep: bool,
    /// How long `--keep` keeps the cluster up.
    #[arg(long, default_value_t = 10)]
    keep_minutes: u64,
}

/// Runs `omlab demo`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let root = workspace_root();
    let image = args
        .image
        .clone()
        .unwrap_or_else(|| root.join("build/image"));
    let ombootd = args
        .ombootd
        .clone()
        .unwrap_or_else(|| root.join("target/debug/ombootd"));
    if !args.no_build {
        step("Debian packages", debian_packages)?;
        step("build", || {
            cargo(&["build", "-p", "bootserver", "-p", "node-image"])
        })?;
        step("node image", node_image)?;
    }
    if !image.is_dir() {
        bail!(
            "no image directory at {} (build one with `omimage build`, or pass --image)",
            image.display()
        );
    }
    let plan = cluster::bios_and_uefi(args.memory_mib, args.kvm);
    let lab = Lab::new("demo").context("cannot create the lab")?;
    println!("lab {} in {}", lab.netns(), lab.dir().display());
    if args.keep {
        lab.keep_dir();
    }
    let mut result = boot_all(&lab, args, &image, &ombootd, &plan);
    if result.is_ok() && args.keep {
        result = stay_up(&lab, args.keep_minutes);
    }
    if result.is_err() {
        lab.keep_dir();
    }
    let teardown = lab.teardown().context("teardown failed");
    result.and(teardown)
}

/// Keeps the booted cluster up for `minutes` (or until Ctrl-C), its dashboard reachable from
/// the host at a loopback URL.
fn stay_up(lab: &Lab, minutes: u64) -> anyhow::Result<()> {
    let http = std::net::SocketAddr::from((lab.master_ip(), 8080));
    let forward = Forward::start(lab.netns(), http).context("cannot forward the dashboard")?;
    println!();
    println!(
        "dashboard: {}  (open it in a browser on this machine)",
        forward.url()
    );
    println!(
        "controls need the token: sudo cat {}",
        lab.dir().join("state/dashboard.token").display()
    );
    println!(
        "nodes' consoles: {}/<node>.serial; the cluster stays up {minutes} min (Ctrl-C ends it)",
        lab.dir().display()
    );
    let until = std::time::Instant::now() + Duration::from_secs(minutes * 60);
    while std::time::Instant::now() < until && !omlab::cancel::is_aborted() {
        std::thread::sleep(Duration::from_millis(250));
    }
    drop(forward);
    Ok(())
}

fn boot_all(
    lab: &Lab,
    args: &Args,
    image: &std::path::Path,
    ombootd: &std::path::Path,
    plan: &[Planned],
) -> anyhow::Result<()> {
    let path = lab
        .write_ombootd_config(&cluster::config_for(lab, image, plan))
        .context("cannot write the ombootd config")?;
    lab.start_ombootd(ombootd, &path)
        .context("ombootd did not start")?;
    println!("ombootd ready; powering on {} nodes", plan.len());
    let results = cluster::boot_concurrently(lab, plan, Duration::from_secs(args.timeout_secs));

    println!(
        "{:<8}{:<10}{:<14}{:<10}{:>7}",
        "NODE", "FIRMWARE", "IP", "STATE", "UP(s)"
    );
    for (p, r) in plan.iter().zip(&results) {
        let (ip, state, secs) = match r {
            Ok(up) => (
                up.ip.to_string(),
                up.state.clone(),
                format!("{:.1}", up.up_secs),
            ),
            Err(_) => ("-".to_owned(), "FAILED".to_owned(), "-".to_owned()),
        };
        println!(
            "{:<8}{:<10}{:<14}{:<10}{:>7}",
            p.node.name(),
            p.node.firmware_kind(),
            ip,
            state,
            secs
        );
        if let Ok(up) = r
            && !up.failed_units.is_empty()
        {
            println!("        failed units: {}", up.failed_units.join(", "));
        }
    }
    let mut failures = results.into_iter().zip(plan).filter_map(|(r, p)| {
        r.err()
            .map(|e| anyhow::Error::new(e).context(format!("{} did not come up", p.node.name())))
    });
    match failures.next() {
        None => Ok(()),
        Some(first) => {
            for other in failures {
                eprintln!("error: {other:#}");
            }
            Err(first)
        }
    }
}
