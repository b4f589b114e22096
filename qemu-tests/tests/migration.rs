//! Process migration end to end: two QEMU nodes booted over PXE from ombootd run omd from the
//! image with real CRIU. A job started with omrun on node1 is moved node1 → node2 → node1 with
//! `omctl migrate` while it prints a numbered line every 100 ms; its deputy's output must be
//! continuous and its exit status must come back. A job holding a file in /tmp is refused with
//! that reason and keeps running. The tests share one booted lab.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use omlab::{Lab, RunningNode, cluster};

const T: Duration = Duration::from_secs(120);

fn sh(node: &RunningNode<'_>, cmd: &str) -> (i32, Vec<String>) {
    let out = node.shell(cmd, T).unwrap();
    (out.status, out.lines)
}

/// The jobs table as `omctl jobs --json` gives it on `node`.
fn jobs(node: &RunningNode<'_>) -> Vec<serde_json::Value> {
    let out = node.shell("omctl jobs --json", T).unwrap();
    assert_eq!(out.status, 0, "omctl jobs: {:?}", out.lines);
    out.json()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_else(|| panic!("no JSON: {:?}", out.lines))
}

/// Waits for the one job whose command contains `needle`; returns its row.
fn job_row(node: &RunningNode<'_>, needle: &str, on: &str) -> serde_json::Value {
    let t = Instant::now();
    loop {
        let rows = jobs(node);
        if let Some(r) = rows
            .iter()
            .find(|r| r["command"].as_str().unwrap_or("").contains(needle) && r["node"] == on)
        {
            return r.clone();
        }
        assert!(t.elapsed() < T, "no job {needle:?} on {on}: {rows:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Starts `omrun ARGS` on `node` in the background, its output and status in /tmp/NAME.*.
fn start(node: &RunningNode<'_>, name: &str, args: &str) {
    // `args` goes inside double quotes of the console's shell: keep its `$` for the job.
    let args = args.replace('$', "\\$");
    let cmd = format!(
        "( cd / && setsid sh -c \"omrun {args} > /tmp/{name}.out 2> /tmp/{name}.err < /dev/null; echo \\$? > /tmp/{name}.status\" > /dev/null 2>&1 < /dev/null & )"
    );
    let (status, lines) = sh(node, &cmd);
    assert_eq!(status, 0, "{lines:?}");
}

/// Waits for /tmp/NAME.status; returns (status, stdout lines).
fn finished(node: &RunningNode<'_>, name: &str, within: Duration) -> (i32, Vec<String>) {
    let t = Instant::now();
    loop {
        let (s, l) = sh(node, &format!("cat /tmp/{name}.status 2>/dev/null"));
        if s == 0 && !l.is_empty() {
            let status: i32 = l.last().unwrap().trim().parse().unwrap();
            let out = node
                .shell(&format!("cat /tmp/{name}.out"), T)
                .unwrap()
                .lines;
            return (status, out);
        }
        assert!(t.elapsed() < within, "{name} did not finish");
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn migrate(node: &RunningNode<'_>, job: &str, to: &str) -> (i32, String) {
    let (s, l) = sh(node, &format!("omctl migrate {job} {to} 2>&1"));
    (s, l.join("\n"))
}

/// omd's recent log on each node, for a failure message.
fn diag(nodes: &[&RunningNode<'_>]) -> String {
    nodes
        .iter()
        .map(|n| {
            let (_, l) = sh(n, "journalctl -u omd --no-pager -n 40 -o cat; tail -n 20 /run/omd/jobs/*/keeper.log 2>/dev/null");
            format!("--- {}:\n{}", n.name(), l.join("\n"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn jobs_move_between_nodes_without_losing_a_line_and_refuse_when_they_cannot() {
    let image = cluster::built_image("rootfs/usr/local/sbin/omjob").unwrap();
    let lab = Lab::new("migration").unwrap();
    let plan = cluster::bios_nodes(2, 512, false);
    let _ombootd = cluster::start_master(&lab, &image, &plan).unwrap();
    let nodes: Vec<RunningNode<'_>> = cluster::boot_all(&lab, &plan, Duration::from_secs(300))
        .into_iter()
        .map(|r| r.unwrap().0)
        .collect();
    let (n1, n2) = (&nodes[0], &nodes[1]);
    // Both omd up, CRIU checked, each sees the other take migrations.
    for n in [n1, n2] {
        let t = Instant::now();
        loop {
            let out = n.shell("omctl nodes --json", T).unwrap();
            let ok = out
                .json()
                .and_then(|v| v.as_array().cloned())
                .is_some_and(|rows| {
                    rows.iter()
                        .filter(|r| r["name"].as_str().is_some_and(|s| s.starts_with("node")))
                        .filter(|r| r["load"]["migration"] == true)
                        .count()
                        == 2
                });
            if ok {
                break;
            }
            assert!(
                t.elapsed() < T,
                "{} never saw both nodes take migrations: {:?}",
                n.name(),
                out.lines
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    // 1. A counting job, moved node1 -> node2 -> node1 (home).
    start(
        n1,
        "count",
        "-- sh -c 'i=0; while [ $i -lt 300 ]; do echo $i; i=$((i+1)); sleep 0.1; done; exit 7'",
    );
    let row = job_row(n1, "while", "node1");
    let id = row["id"].as_str().unwrap().to_owned();
    std::thread::sleep(Duration::from_secs(2));
    let t = Instant::now();
    let (s, text) = migrate(n1, &id, "node2");
    println!(
        "migrate to node2 ({:.1} s): {text}",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(s, 0, "{text}\n{}", diag(&[n1, n2]));
    job_row(n1, "while", "node2");
    job_row(n2, "while", "node2");
    std::thread::sleep(Duration::from_secs(2));
    let t = Instant::now();
    let (s, text) = migrate(n1, &id, "home");
    println!("migrate home ({:.1} s): {text}", t.elapsed().as_secs_f64());
    assert_eq!(s, 0, "{text}\n{}", diag(&[n1, n2]));
    job_row(n1, "while", "node1");
    let (status, out) = finished(n1, "count", Duration::from_secs(180));
    let want: Vec<String> = (0..300).map(|i| i.to_string()).collect();
    let got: Vec<String> = out
        .iter()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    if got != want {
        let missing: Vec<&String> = want.iter().filter(|w| !got.contains(w)).collect();
        panic!(
            "output not continuous: {} lines, missing {missing:?}, got {got:?}",
            got.len()
        );
    }
    assert_eq!(status, 7, "the deputy's exit status");

    // 2. A job holding a file in /tmp cannot move, says why, and runs on.
    start(
        n1,
        "held",
        "-- sh -c 'exec 3> /tmp/held-file; while :; do sleep 1; done'",
    );
    let row = job_row(n1, "held-file", "node1");
    let id = row["id"].as_str().unwrap().to_owned();
    let (s, text) = migrate(n1, &id, "node2");
    println!("refused as expected: {text}");
    assert_ne!(s, 0, "{text}");
    assert!(
        text.contains("/tmp/held-file") && text.contains("node-local"),
        "{text}"
    );
    let row = job_row(n1, "held-file", "node1");
    assert_eq!(row["state"], "running", "{row}");
    // Killing its deputy kills the job: no orphans.
    sh(n1, "pkill -KILL -x omrun");
    let t = Instant::now();
    while jobs(n1)
        .iter()
        .any(|r| r["command"].as_str().unwrap_or("").contains("held-file"))
    {
        assert!(t.elapsed() < T, "the job outlived its deputy");
        std::thread::sleep(Duration::from_secs(1));
    }
    drop(nodes);
    lab.teardown().unwrap();
}
