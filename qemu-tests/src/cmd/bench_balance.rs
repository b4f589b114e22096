//! `omlab bench balance`: the makespan of CPU-bound jobs of unequal length, all started on
//! node1 of a two-node lab, with omd's balancer held back (`omctl stay`), then free, then free
//! with each job placed at its start (`omrun --best`), in the same run on the same nodes. Every
//! job's result is checked. Prints a markdown table with the speedups; writes JSON.

use std::time::Duration;

use anyhow::bail;
use omlab::{RunningNode, cluster};
use serde::Serialize;

use super::bench_migrate::{last_f64, sh};
use super::prepare::{node_image, step, workspace_root};

/// One count of jobs, both ways.
#[derive(Debug, Serialize)]
struct Row {
    jobs: usize,
    /// `omwork spin` units of each job.
    units: Vec<u32>,
    /// All on node1, balancer held (`stay`): start to last exit, s.
    home_s: f64,
    /// Balancer free: start to last exit, s.
    balanced_s: f64,
    /// Migrations the balancer made.
    migrations: usize,
    /// Balancer free, every job started with `omrun --best`: start to last exit, s.
    placed_s: f64,
    /// Migrations the balancer made after those placements.
    placed_migrations: usize,
}

/// Balancer moves made so far on `n` (its omd log).
fn balancer_moves(n: &RunningNode<'_>) -> anyhow::Result<usize> {
    let l = sh(
        n,
        "journalctl -u omd --no-pager -o cat | grep -c 'balancer: job .* moved' || true",
    )?;
    Ok(last_f64(&l)? as usize)
}

/// Runs the jobs from node1; returns the makespan in seconds (node1's clock).
fn makespan(n1: &RunningNode<'_>, units: &[u32], omrun: &str) -> anyhow::Result<f64> {
    sh(n1, "rm -f /tmp/bal.*; date +%s.%N > /tmp/bal.start")?;
    for (i, u) in units.iter().enumerate() {
        sh(
            n1,
            &format!(
                "( cd / && setsid sh -c 'omrun {omrun} -- omwork spin {u} > /tmp/bal.{i}.out 2>&1 < /dev/null; echo $? > /tmp/bal.{i}.status; date +%s.%N > /tmp/bal.{i}.end' > /dev/null 2>&1 < /dev/null & )"
            ),
        )?;
    }
    let n = units.len();
    for _ in 0..7200 {
        let done = last_f64(&sh(n1, "ls /tmp/bal.*.end 2>/dev/null | wc -l")?)? as usize;
        if done == n {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    for (i, u) in units.iter().enumerate() {
        let l = sh(
            n1,
            &format!("cat /tmp/bal.{i}.status; grep -c '^result ok spin' /tmp/bal.{i}.out || true"),
        )?;
        if l.len() < 2 || l[l.len() - 2].trim() != "0" || l[l.len() - 1].trim() != "1" {
            bail!("job {i} ({u} units) failed: {l:?}");
        }
    }
    let t = sh(
        n1,
        "e=$(cat /tmp/bal.*.end | sort -n | tail -1); awk -v s=$(cat /tmp/bal.start) -v e=$e 'BEGIN {print e - s}'",
    )?;
    last_f64(&t)
}

fn control(nodes: &[&RunningNode<'_>], what: &str) -> anyhow::Result<()> {
    for n in nodes {
        sh(n, &format!("omctl {what}"))?;
    }
    Ok(())
}

/// Runs `omlab bench balance`.
pub fn run(counts: &[usize], base_units: u32) -> anyhow::Result<()> {
    if counts.is_empty() || base_units == 0 {
        bail!("--counts and --base-units must not be empty or 0");
    }
    step("node image", node_image)?;
    step("build", || {
        super::prepare::cargo(&["build", "-p", "bootserver"])
    })?;
    let image = cluster::built_image("rootfs/usr/local/bin/omwork")?;
    let rows = cluster::with_two_nodes(
        "bench-balance",
        &image,
        512,
        |n1, n2| -> anyhow::Result<Vec<Row>> {
            let mut rows = Vec::new();
            for &count in counts {
                // Unequal lengths: 1, 2, 3, 4 times the base, repeated.
                let units: Vec<u32> = (0..count)
                    .map(|i| base_units * (1 + (i % 4) as u32))
                    .collect();
                control(&[n1, n2], "stay")?;
                let home_s = makespan(n1, &units, "")?;
                println!("{count} jobs, balancer held: {home_s:.1} s");
                control(&[n1, n2], "nostay")?;
                let before = balancer_moves(n1)? + balancer_moves(n2)?;
                let balanced_s = makespan(n1, &units, "")?;
                let migrations = balancer_moves(n1)? + balancer_moves(n2)? - before;
                println!("{count} jobs, balancer free: {balanced_s:.1} s, {migrations} migrations");
                let before = balancer_moves(n1)? + balancer_moves(n2)?;
                let placed_s = makespan(n1, &units, "--best")?;
                let placed_migrations = balancer_moves(n1)? + balancer_moves(n2)? - before;
                println!(
                    "{count} jobs, omrun --best: {placed_s:.1} s, {placed_migrations} migrations"
                );
                rows.push(Row {
                    jobs: count,
                    units,
                    home_s,
                    balanced_s,
                    migrations,
                    placed_s,
                    placed_migrations,
                });
            }
            // What an operator sees afterwards, for the record.
            for cmd in ["omctl migrations", "omctl mon --once"] {
                println!("$ {cmd}\n{}", sh(n1, cmd)?.join("\n"));
            }
            Ok(rows)
        },
    )?;
    println!();
    println!(
        "| jobs on node1 (2 nodes) | all at home (stay) | balanced | speedup | migrations | placed (`omrun --best`) + balanced | speedup | migrations |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {:.1} s | {:.1} s | {:.2}x | {} | {:.1} s | {:.2}x | {} |",
            r.jobs,
            r.home_s,
            r.balanced_s,
            r.home_s / r.balanced_s,
            r.migrations,
            r.placed_s,
            r.home_s / r.placed_s,
            r.placed_migrations
        );
    }
    let out = workspace_root().join("build/bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("balance.json"), serde_json::to_vec_pretty(&rows)?)?;
    println!("written: build/bench/balance.json");
    Ok(())
}
