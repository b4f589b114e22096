//! `omlab demo`: one lab, ombootd, node1 (BIOS, 10.77.0.11) and node2 (UEFI, 10.77.0.12) booted
//! at once; prints a table of how each came up, then tears everything down.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use omlab::{Firmware, Lab, MacAddr, Node, NodeUp};

/// Options of `omlab demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image built by `omimage build`.
    #[arg(long, default_value = "build/image")]
    image: PathBuf,
    /// The ombootd binary.
    #[arg(long, default_value = "target/debug/ombootd")]
    ombootd: PathBuf,
    /// Use KVM instead of TCG (guests hang under KVM on the usual lab hosts).
    #[arg(long)]
    kvm: bool,
    /// Memory per node.
    #[arg(long, default_value_t = 512)]
    memory_mib: u32,
    /// How long each node may take from power-on to OMBOOT-READY.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
    /// Keep the lab directory (logs, serial consoles) even on success.
    #[arg(long)]
    keep: bool,
}

struct Planned {
    node: Node,
    ip: Ipv4Addr,
}

/// Runs `omlab demo`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    if !args.image.is_dir() {
        bail!(
            "no image directory at {} (build one with `omimage build`, or pass --image)",
            args.image.display()
        );
    }
    let plan = [
        Planned {
            node: Node::new("node1", MacAddr::lab(1)),
            ip: Ipv4Addr::new(10, 77, 0, 11),
        },
        Planned {
            node: Node::new("node2", MacAddr::lab(2)).firmware(Firmware::Uefi),
            ip: Ipv4Addr::new(10, 77, 0, 12),
        },
    ]
    .map(|p| Planned {
        node: p.node.memory_mib(args.memory_mib).kvm(args.kvm),
        ..p
    });

    let lab = Lab::new("demo").context("cannot create the lab")?;
    println!("lab {} in {}", lab.netns(), lab.dir().display());
    if args.keep {
        lab.keep_dir();
    }
    let result = boot_all(&lab, args, &plan);
    if result.is_err() {
        lab.keep_dir();
    }
    let teardown = lab.teardown().context("teardown failed");
    result.and(teardown)
}

fn boot_all(lab: &Lab, args: &Args, plan: &[Planned]) -> anyhow::Result<()> {
    let config = plan.iter().fold(lab.ombootd_config(&args.image), |c, p| {
        c.node(p.node.name(), p.node.mac(), p.ip)
    });
    let path = lab
        .write_ombootd_config(&config)
        .context("cannot write the ombootd config")?;
    lab.start_ombootd(&args.ombootd, &path)
        .context("ombootd did not start")?;
    let timeout = Duration::from_secs(args.timeout_secs);
    let results: Vec<anyhow::Result<NodeUp>> = std::thread::scope(|s| {
        let handles: Vec<_> = plan
            .iter()
            .map(|p| {
                s.spawn(move || -> anyhow::Result<NodeUp> {
                    let name = p.node.name();
                    let running = p
                        .node
                        .boot(lab)
                        .with_context(|| format!("cannot power on {name}"))?;
                    let up = running
                        .wait_up(timeout)
                        .with_context(|| format!("{name} did not come up"))?;
                    running
                        .power_off()
                        .with_context(|| format!("cannot power off {name}"))?;
                    Ok(up)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("boot thread panicked")))
            })
            .collect()
    });

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
    let mut failures = results.into_iter().filter_map(Result::err);
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
