//! `omlab bench dashboard`: what open dashboards cost the master. ombootd's CPU time (its
//! /proc stat) over the same window with no viewer, one and ten, each viewer a live SSE stream
//! of `/api/events` (what a browser tab holds open); the anchor is the first row, where ombootd
//! only receives the cluster's gossip and builds its snapshots. Prints a markdown table; writes
//! JSON.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use omlab::{Lab, Proc, cluster};
use serde::Serialize;

use super::prepare::{node_image, step, workspace_root};

/// One measurement.
#[derive(Debug, Serialize)]
struct Row {
    viewers: usize,
    /// ombootd's CPU use over the window, percent of one core.
    cpu_pct: f64,
    /// Snapshots each viewer received, on average.
    snapshots_per_viewer: f64,
    /// Bytes each viewer received per second, on average.
    bytes_per_s_per_viewer: f64,
}

/// ombootd's user + system time so far, seconds.
fn cpu_secs(pid: u32) -> anyhow::Result<f64> {
    let stat =
        omlab::proc_stat::Stat::of(pid).with_context(|| format!("ombootd (pid {pid}) is gone"))?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok((stat.utime + stat.stime) as f64 / hz)
}

fn measure(lab: &Lab, ombootd: &Proc, viewers: usize, window: Duration) -> anyhow::Result<Row> {
    let url = format!("http://{}:8080/api/events", lab.master_ip());
    let mut procs = Vec::new();
    for i in 0..viewers {
        let out = lab.dir().join(format!("viewer-{viewers}-{i}.sse"));
        let mut curl = Command::new("curl");
        curl.args(["-sN", "-o"]).arg(&out).arg(&url);
        procs.push((
            lab.spawn(&format!("viewer-{viewers}-{i}"), curl, lab.netns())?,
            out,
        ));
    }
    // Every stream open and past its first snapshot before the clock starts.
    std::thread::sleep(Duration::from_secs(3));
    let sizes = |procs: &[(Proc, std::path::PathBuf)]| -> Vec<u64> {
        procs
            .iter()
            .map(|(_, p)| std::fs::metadata(p).map_or(0, |m| m.len()))
            .collect()
    };
    let before = sizes(&procs);
    let (t0, c0) = (Instant::now(), cpu_secs(ombootd.pid())?);
    std::thread::sleep(window);
    let (secs, c1) = (t0.elapsed().as_secs_f64(), cpu_secs(ombootd.pid())?);
    let after = sizes(&procs);
    let mut snapshots = 0usize;
    for (p, out) in &procs {
        lab.stop(p)?;
        let text = std::fs::read_to_string(out).unwrap_or_default();
        let n = text.matches("event: snapshot").count();
        if n == 0 {
            bail!("viewer {} received no snapshot", out.display());
        }
        snapshots += n;
    }
    let bytes: u64 = after.iter().zip(&before).map(|(a, b)| a - b).sum();
    let per = viewers.max(1) as f64;
    Ok(Row {
        viewers,
        cpu_pct: 100.0 * (c1 - c0) / secs,
        snapshots_per_viewer: snapshots as f64 / per,
        bytes_per_s_per_viewer: bytes as f64 / secs / per,
    })
}

/// Runs `omlab bench dashboard`.
pub fn run(window_s: u64, rounds: usize) -> anyhow::Result<()> {
    if window_s == 0 || rounds == 0 {
        bail!("--window-s and --rounds must be at least 1");
    }
    step("node image", node_image)?;
    step("build", || {
        super::prepare::cargo(&["build", "-p", "bootserver"])
    })?;
    let image = cluster::built_image("rootfs/usr/local/sbin/omd")?;
    let window = Duration::from_secs(window_s);
    let rows = cluster::with_lab_nodes(
        "bench-dashboard",
        &image,
        512,
        2,
        |lab, ombootd, _nodes| -> anyhow::Result<Vec<Row>> {
            let mut rows = Vec::new();
            // Alternating, so a drift of the machine's load hits every count alike.
            for _ in 0..rounds {
                for viewers in [0, 1, 10] {
                    let r = measure(lab, ombootd, viewers, window)?;
                    println!(
                        "{viewers:>2} viewers: ombootd {:.2}% of a core, {:.0} B/s per viewer",
                        r.cpu_pct, r.bytes_per_s_per_viewer
                    );
                    rows.push(r);
                }
            }
            Ok(rows)
        },
    )?;
    let mean = |v: usize| {
        let xs: Vec<f64> = rows
            .iter()
            .filter(|r| r.viewers == v)
            .map(|r| r.cpu_pct)
            .collect();
        xs.iter().sum::<f64>() / xs.len().max(1) as f64
    };
    let base = mean(0);
    println!();
    println!(
        "| viewers (live SSE streams) | ombootd CPU, % of one core | minus 0 viewers (gossip only) | bytes/s per viewer |"
    );
    println!("|---|---|---|---|");
    for v in [0, 1, 10] {
        let bps: Vec<f64> = rows
            .iter()
            .filter(|r| r.viewers == v)
            .map(|r| r.bytes_per_s_per_viewer)
            .collect();
        println!(
            "| {v} | {:.2} | {:+.2} | {:.0} |",
            mean(v),
            mean(v) - base,
            bps.iter().sum::<f64>() / bps.len().max(1) as f64
        );
    }
    let out = workspace_root().join("build/bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(
        out.join("dashboard.json"),
        serde_json::to_vec_pretty(&rows)?,
    )?;
    println!("written: build/bench/dashboard.json");
    Ok(())
}
