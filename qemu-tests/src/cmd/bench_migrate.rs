//! `omlab bench migrate`: jobs of a given resident size moved between two lab nodes by omd,
//! against the anchor, plain CRIU by hand (dump to /cluster over NFS, restore on the other node
//! from there), and against the bound RSS / bandwidth with the bandwidth measured by iperf3
//! between the same nodes in the same run. Then a job that rewrites 10% of its pages per second,
//! moved with iterative pre-dump and with one frozen dump (`pre_dump_rounds = 0`). Prints
//! markdown tables; writes JSON.

use std::time::Duration;

use anyhow::{Context, bail};
use omlab::{RunningNode, cluster};
use serde::Serialize;

use super::prepare::{node_image, step, workspace_root};

const T: Duration = Duration::from_secs(900);

/// One size's figures.
#[derive(Debug, Serialize)]
struct Row {
    rss_mib: usize,
    /// omd: the job's frozen time (dump start to commit), ms.
    downtime_ms: f64,
    /// omd: offer to done, ms.
    total_ms: f64,
    /// Image bytes moved.
    bytes: u64,
    /// RSS / bandwidth, ms.
    bound_ms: f64,
    /// Plain CRIU through /cluster: dump + restore, ms.
    anchor_ms: f64,
    /// Pre-dump rounds made.
    rounds: usize,
}

/// A job that keeps writing, moved with and without pre-dump.
#[derive(Debug, Serialize)]
struct Dirtying {
    rss_mib: usize,
    /// Percent of its pages rewritten per second.
    pct: f64,
    /// Frozen time with pre-dump, ms.
    pre_dump_ms: f64,
    /// Pre-dump rounds made.
    rounds: usize,
    /// Frozen time in one dump, ms.
    single_ms: f64,
}

/// What the run writes.
#[derive(Debug, Serialize)]
struct Report {
    bandwidth_mib_s: f64,
    sizes: Vec<Row>,
    dirtying: Vec<Dirtying>,
}

/// One move by omd, node1 -> node2.
struct Move {
    img_mib: f64,
    frozen: f64,
    total: f64,
    rounds: usize,
}

/// Starts `omwork mem MIB 3600 PCT` under omrun on `n1`, moves it to node2, kills it.
fn omd_move(n1: &RunningNode<'_>, mib: usize, pct: f64) -> anyhow::Result<Move> {
    let tag = format!("omwork mem {mib} 3600 {pct}");
    sh(
        n1,
        &format!("( cd / && setsid omrun -- {tag} > /tmp/mem{mib}.out 2>&1 < /dev/null & )"),
    )?;
    let id = loop {
        let l = sh(
            n1,
            &format!(
                "grep -c resident /tmp/mem{mib}.out; omctl jobs | awk '/{tag}/ {{print $1}}'; true"
            ),
        )?;
        if l.first().is_some_and(|c| c.trim() == "1") && l.len() > 1 {
            break l[1].trim().to_owned();
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    let said = sh(n1, &format!("omctl migrate {id} node2"))?.join(" ");
    let (img_mib, frozen, total) =
        parse_moved(&said).with_context(|| format!("cannot read omd's figures in {said:?}"))?;
    println!("omd {mib} MiB, {pct}%/s: {said}");
    sh(
        n1,
        &format!("pkill -KILL -f '{tag}' ; pkill -KILL -x omrun; true"),
    )?;
    Ok(Move {
        img_mib,
        frozen,
        total,
        rounds: pre_dump_rounds(&said),
    })
}

/// "N pre-dump round(s)" in omd's sentence, else 0.
fn pre_dump_rounds(said: &str) -> usize {
    // omd's own log lines ("pre-dump round sent") may come before its sentence on the console.
    let said = said.rfind(" moved from ").map_or(said, |i| &said[i..]);
    said.split(" pre-dump round")
        .next()
        .filter(|head| head.len() < said.len())
        .and_then(|head| head.split_whitespace().last()?.parse().ok())
        .unwrap_or(0)
}

/// Sets node1's `pre_dump_rounds` and restarts its omd (jobs survive; none runs now).
fn set_pre_dump(n1: &RunningNode<'_>, rounds: u32) -> anyhow::Result<()> {
    sh(
        n1,
        &format!(
            "sed -i 's/^pre_dump_rounds = .*/pre_dump_rounds = {rounds}/' /etc/omd/omd.toml && systemctl restart omd"
        ),
    )?;
    wait_migration_ready(n1)
}

/// Until omd on `n` sees both nodes take migrations (omd may be restarting: up to 180 s).
fn wait_migration_ready(n: &RunningNode<'_>) -> anyhow::Result<()> {
    Ok(omlab::jobs::peers_ready(n, Duration::from_secs(180))?)
}

/// Runs `cmd` on `n`'s console; its output lines, or an error naming the command.
pub(super) fn sh(n: &RunningNode<'_>, cmd: &str) -> anyhow::Result<Vec<String>> {
    let out = n.shell(cmd, T)?;
    if out.status != 0 {
        bail!(
            "`{cmd}` on {} failed ({}): {:?}",
            n.name(),
            out.status,
            out.lines
        );
    }
    Ok(out.lines)
}

/// The last line of `lines` that is a number.
pub(super) fn last_f64(lines: &[String]) -> anyhow::Result<f64> {
    lines
        .iter()
        .rev()
        .find_map(|l| l.trim().parse().ok())
        .with_context(|| format!("no number in {lines:?}"))
}

/// Figures from omd's sentence: "(X MiB of images, frozen N ms, total M ms)".
fn parse_moved(text: &str) -> Option<(f64, f64, f64)> {
    let num_before = |key: &str| -> Option<f64> {
        let i = text.find(key)?;
        text[..i]
            .split_whitespace()
            .last()?
            .trim_start_matches('(')
            .parse()
            .ok()
    };
    let mib = num_before(" MiB of images")?;
    let frozen = text
        .split("frozen ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let total = text
        .split("total ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some((mib, frozen, total))
}

/// Runs the benchmark for `sizes` (MiB) on two nodes of `node_mib` MiB, then the largest size
/// rewriting each of `dirty_pcts` percent of its pages per second.
pub fn run(sizes: &[usize], node_mib: u32, dirty_pcts: &[f64]) -> anyhow::Result<()> {
    step("node image", node_image)?;
    step("build", || {
        super::prepare::cargo(&["build", "-p", "bootserver"])
    })?;
    let image = cluster::built_image("rootfs/usr/local/bin/omwork")?;
    let report = cluster::with_two_nodes(
        "bench-migrate",
        &image,
        node_mib,
        |n1, n2| -> anyhow::Result<Report> {
            // Bandwidth between the two nodes, now.
            sh(n2, "( iperf3 -s -1 > /dev/null 2>&1 & )")?;
            std::thread::sleep(Duration::from_secs(2));
            let bw = sh(
                n1,
                "iperf3 -c 10.77.0.12 -t 5 -J | grep -m1 -A8 '\"sum_received\"' | grep bits_per_second | tr -dc '0-9.\\n'",
            )?;
            let bits = last_f64(&bw)?;
            let bytes_per_s = bits / 8.0;
            println!(
                "iperf3 node1 -> node2: {:.1} MiB/s",
                bytes_per_s / (1 << 20) as f64
            );
            let mut rows = Vec::new();
            for &mib in sizes {
                let m = omd_move(n1, mib, 0.0)?;
                // The anchor: plain CRIU by hand, through /cluster.
                let dir = format!("/cluster/anchor-{mib}");
                sh(
                    n1,
                    &format!(
                        "rm -rf {dir}; mkdir -p {dir}; ( cd / && setsid unshare -p -f setsid omwork mem {mib} 3600 > /dev/null 2>&1 < /dev/null & )"
                    ),
                )?;
                let pid = loop {
                    let l = sh(
                        n1,
                        &format!("pgrep -f '^unshare -p -f setsid omwork mem {mib}' | head -1"),
                    )?;
                    if let Some(p) = l.iter().rev().find_map(|x| x.trim().parse::<u32>().ok()) {
                        let c = sh(n1, &format!("echo $(cat /proc/{p}/task/{p}/children)"))?;
                        if let Some(c) = c.iter().rev().find_map(|x| x.trim().parse::<u32>().ok()) {
                            // Let it reach its resident size.
                            std::thread::sleep(Duration::from_secs((mib / 32 + 3) as u64));
                            break c;
                        }
                    }
                    std::thread::sleep(Duration::from_secs(1));
                };
                let dump = last_f64(&sh(
                    n1,
                    &format!(
                        "a=$(date +%s.%N); criu dump -t {pid} -D {dir} --shell-job -o dump.log && b=$(date +%s.%N) && echo \"$b - $a\" | bc -l"
                    ),
                )?)?;
                let restore = last_f64(&sh(
                    n2,
                    &format!(
                        "a=$(date +%s.%N); criu restore -D {dir} --shell-job -d -o restore.log && b=$(date +%s.%N) && echo \"$b - $a\" | bc -l"
                    ),
                )?)?;
                sh(
                    n2,
                    &format!("pkill -KILL -f 'omwork mem {mib} 3600'; rm -rf {dir}; true"),
                )?;
                let row = Row {
                    rss_mib: mib,
                    downtime_ms: m.frozen,
                    total_ms: m.total,
                    rounds: m.rounds,
                    bytes: (m.img_mib * (1 << 20) as f64) as u64,
                    bound_ms: (mib as f64 * (1 << 20) as f64) / bytes_per_s * 1000.0,
                    anchor_ms: (dump + restore) * 1000.0,
                };
                println!("{row:?}");
                rows.push(row);
            }
            // A job that keeps writing: pre-dump against one frozen dump.
            let mut dirtying = Vec::new();
            if let Some(&mib) = sizes.iter().max() {
                for &pct in dirty_pcts {
                    let pre = omd_move(n1, mib, pct)?;
                    set_pre_dump(n1, 0)?;
                    let single = omd_move(n1, mib, pct)?;
                    set_pre_dump(n1, 3)?;
                    dirtying.push(Dirtying {
                        rss_mib: mib,
                        pct,
                        pre_dump_ms: pre.frozen,
                        rounds: pre.rounds,
                        single_ms: single.frozen,
                    });
                }
            }
            Ok(Report {
                bandwidth_mib_s: bytes_per_s / (1 << 20) as f64,
                sizes: rows,
                dirtying,
            })
        },
    )?;
    let rows = &report.sizes;
    println!(
        "\n| RSS | pre-dump rounds | downtime | total | moved | RSS/bandwidth | downtime / bound | plain CRIU via /cluster | downtime / plain CRIU |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} MiB | {} | {:.0} ms | {:.0} ms | {:.1} MiB | {:.0} ms | {:.2}x | {:.0} ms | {:.2}x |",
            r.rss_mib,
            r.rounds,
            r.downtime_ms,
            r.total_ms,
            r.bytes as f64 / (1 << 20) as f64,
            r.bound_ms,
            r.downtime_ms / r.bound_ms,
            r.anchor_ms,
            r.downtime_ms / r.anchor_ms
        );
    }
    let out = workspace_root().join("build/bench");
    std::fs::create_dir_all(&out)?;
    if !report.dirtying.is_empty() {
        println!(
            "\n| RSS, pages rewritten per second | pre-dump rounds | downtime, pre-dump | downtime, one dump | ratio |"
        );
        println!("|---|---|---|---|---|");
    }
    for d in &report.dirtying {
        println!(
            "| {} MiB, {}% | {} | {:.0} ms | {:.0} ms | {:.2}x |",
            d.rss_mib,
            d.pct,
            d.rounds,
            d.pre_dump_ms,
            d.single_ms,
            d.pre_dump_ms / d.single_ms
        );
    }
    std::fs::write(
        out.join("migrate.json"),
        serde_json::to_vec_pretty(&report)?,
    )?;
    println!("written: build/bench/migrate.json");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_omds_sentence() {
        let s = "job node1.5 moved from node1 to node2 (64.3 MiB of images, frozen 3068 ms, total 3213 ms)";
        assert_eq!(parse_moved(s), Some((64.3, 3068.0, 3213.0)));
        assert_eq!(parse_moved("nonsense"), None);
        assert_eq!(pre_dump_rounds(s), 0);
        let p = "job a moved from node1 to node2 (9.0 MiB of images, frozen 1 ms, total 2 ms, 2 pre-dump rounds of 4.0 + 1.0 MiB while it ran)";
        assert_eq!(parse_moved(p), Some((9.0, 1.0, 2.0)));
        assert_eq!(pre_dump_rounds(p), 2);
        let noisy = format!("INFO source: pre-dump round sent round=0 {p}");
        assert_eq!(pre_dump_rounds(&noisy), 2);
    }
}
