//! `omlab bench gossip`: omd's membership and load gossip at scale, in-process: many agents
//! over a simulated lossy LAN (`migrator::sim`), no lab. Prints the markdown table of the
//! figures against the targets; writes JSON.

use std::time::Duration;

use anyhow::bail;
use migrator::sim::{Discovery, SimParams};

use super::prepare::{step, workspace_root};

/// Runs the simulation of `nodes` agents for `secs` simulated seconds on a LAN losing `loss`
/// of its packets, first contact by multicast or, if `seeds` > 0, through that many seeds.
pub fn run(nodes: usize, loss: f64, secs: u64, seeds: usize) -> anyhow::Result<()> {
    if nodes < 2 || !(0.0..1.0).contains(&loss) {
        bail!("--nodes must be at least 2 and --loss within 0..1");
    }
    let p = SimParams {
        discovery: if seeds == 0 {
            Discovery::Multicast
        } else {
            Discovery::Seeds(seeds)
        },
        ..SimParams::new(nodes, loss, Duration::from_secs(secs))
    };
    if p.duration <= p.load_change_at {
        bail!(
            "--secs must exceed {} (the load change comes after the join phase)",
            p.load_change_at.as_secs()
        );
    }
    if cfg!(debug_assertions) {
        eprintln!(
            "omlab is a debug build: the simulation runs about ten times slower \
             (cargo run --release -p qemu-tests --bin omlab -- bench gossip)"
        );
    }
    let report = step(
        &format!("simulation: {nodes} nodes, {secs} simulated s"),
        || Ok(migrator::sim::run_on_lan(&p)),
    )?;
    println!("\n{}", report.to_markdown());
    let out = workspace_root().join("build/bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("gossip.json"), report.to_json()?)?;
    println!("written: build/bench/gossip.json");
    Ok(())
}
