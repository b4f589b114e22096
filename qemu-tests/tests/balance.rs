//! Automatic balancing end to end: two QEMU nodes booted from ombootd, omd's balancer with its
//! shipped defaults, real CRIU. On one booted lab, phase by phase: four CPU-bound jobs started
//! on node1 stay put under `lstay` and under `block` on node2, then spread two and two by
//! themselves and all finish correctly; three jobs settle after the first spread; a node pushed
//! under its free-memory mark moves a job away; `omctl stress` passes, and beats running its
//! mix at home.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use omlab::jobs::{Phases, T, diag, finished, jobs, sh, start};
use omlab::{RunningNode, cluster};

/// (node, migrations) of each job whose command contains `needle`.
fn placement(node: &RunningNode<'_>, needle: &str) -> Vec<(String, u64)> {
    jobs(node)
        .iter()
        .filter(|r| r["command"].as_str().unwrap_or("").contains(needle))
        .filter(|r| r["state"] != "exited")
        .map(|r| {
            (
                r["node"].as_str().unwrap_or("").to_owned(),
                r["migrations"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// How many of `p` run on `node`.
fn on(p: &[(String, u64)], node: &str) -> usize {
    p.iter().filter(|(n, _)| n == node).count()
}

/// Migrations of all of `p`.
fn moves(p: &[(String, u64)]) -> u64 {
    p.iter().map(|(_, m)| m).sum()
}

/// Waits until `n` jobs matching `needle` are seen.
fn wait_jobs(node: &RunningNode<'_>, needle: &str, n: usize) -> Vec<(String, u64)> {
    let t = Instant::now();
    loop {
        let p = placement(node, needle);
        if p.len() == n {
            return p;
        }
        assert!(t.elapsed() < T, "{n} jobs {needle:?} never showed: {p:?}");
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn control(node: &RunningNode<'_>, what: &str) {
    let (s, l) = sh(node, &format!("omctl {what}"));
    assert_eq!(s, 0, "omctl {what} on {}: {l:?}", node.name());
}

/// Nothing moves for `d` (the jobs stay as `want` on node1).
fn nothing_moves(n1: &RunningNode<'_>, n2: &RunningNode<'_>, needle: &str, d: Duration, why: &str) {
    let t = Instant::now();
    while t.elapsed() < d {
        let p = placement(n1, needle);
        assert!(
            moves(&p) == 0 && on(&p, "node1") == p.len(),
            "a job moved under {why}: {p:?}\n{}",
            diag(&[n1, n2])
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

#[test]
fn balancing_suite() {
    let image = cluster::built_image("rootfs/usr/local/bin/omwork").unwrap();
    cluster::with_two_nodes("balance", &image, 512, |n1, n2| -> omlab::Result<()> {
        let phases = Phases::from_env();
        phases.run("spread", || four_jobs_spread_by_themselves(n1, n2));
        phases.run("settle", || three_jobs_settle(n1, n2));
        phases.run("memory", || memory_ushering(n1, n2));
        phases.run("stress", || stress(n1, n2));
        Ok(())
    })
    .unwrap();
}

/// Four CPU-bound jobs on node1: held by `lstay`, then by `block` on node2; released, they end
/// up two and two without help, and every one finishes with its result.
fn four_jobs_spread_by_themselves(n1: &RunningNode<'_>, n2: &RunningNode<'_>) {
    control(n1, "lstay");
    for i in 0..4 {
        start(n1, &format!("spread{i}"), "-- omwork cpu 90");
    }
    wait_jobs(n1, "omwork cpu 90", 4);
    // omd runs raised (Nice=-5) to answer probes on a busy node; jobs run at the normal 0.
    let (_, ni) = sh(
        n1,
        "echo omd $(ps -o ni= -p $(pidof omd)); echo jobs $(ps -o ni= -C omwork | sort -u)",
    );
    assert!(
        ni.iter().any(|l| l.trim() == "omd -5") && ni.iter().any(|l| l.trim() == "jobs 0"),
        "nice values: {ni:?}"
    );
    nothing_moves(
        n1,
        n2,
        "omwork cpu 90",
        Duration::from_secs(20),
        "lstay on node1",
    );
    control(n2, "block");
    control(n1, "nostay");
    nothing_moves(
        n1,
        n2,
        "omwork cpu 90",
        Duration::from_secs(16),
        "block on node2",
    );
    control(n2, "noblock");
    let t = Instant::now();
    let spread = loop {
        let p = placement(n1, "omwork cpu 90");
        if on(&p, "node1") == 2 && on(&p, "node2") == 2 {
            break p;
        }
        assert!(
            t.elapsed() < Duration::from_secs(45),
            "the jobs did not spread two and two: {p:?}\n{}",
            diag(&[n1, n2])
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    println!(
        "spread: 2 + 2 after {:.0} s, {} migrations",
        t.elapsed().as_secs_f64(),
        moves(&spread)
    );
    assert_eq!(moves(&spread), 2, "more moves than needed: {spread:?}");
    // criu dumps and restores raised (nice -15); the restored jobs keep their own 0.
    let (_, ni) = sh(n2, "echo moved $(ps -o ni= -C omwork | sort -u)");
    assert!(
        ni.iter().any(|l| l.trim() == "moved 0"),
        "nice values of the moved jobs: {ni:?}"
    );
    for i in 0..4 {
        let (status, out) = finished(n1, &format!("spread{i}"), Duration::from_secs(180));
        assert_eq!(status, 0, "spread{i}: {out:?}");
        assert!(
            out.iter().any(|l| l.starts_with("result ok cpu")),
            "spread{i}: {out:?}"
        );
    }
}

/// Three CPU-bound jobs on two nodes: one move, then nothing for over a minute (2 vs 1 never
/// passes the 130% damping either way).
fn three_jobs_settle(n1: &RunningNode<'_>, n2: &RunningNode<'_>) {
    for i in 0..3 {
        start(n1, &format!("settle{i}"), "-- omwork cpu 110");
    }
    wait_jobs(n1, "omwork cpu 110", 3);
    let t = Instant::now();
    while moves(&placement(n1, "omwork cpu 110")) == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(45),
            "three jobs on one node never spread\n{}",
            diag(&[n1, n2])
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_secs(70) {
        let p = placement(n1, "omwork cpu 110");
        assert!(
            moves(&p) <= 2,
            "more than one migration in a minute after the first spread: {p:?}\n{}",
            diag(&[n1, n2])
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    let p = placement(n1, "omwork cpu 110");
    println!(
        "settle: {} on node1, {} on node2, {} migrations in all",
        on(&p, "node1"),
        on(&p, "node2"),
        moves(&p)
    );
    for i in 0..3 {
        let (status, out) = finished(n1, &format!("settle{i}"), Duration::from_secs(180));
        assert_eq!(status, 0, "settle{i}: {out:?}");
    }
}

/// MemAvailable and MemTotal on `node`, MiB.
fn meminfo(node: &RunningNode<'_>) -> (u64, u64) {
    let (_, l) = sh(
        node,
        "awk '/^MemAvailable:/ {a=$2} /^MemTotal:/ {t=$2} END {print int(a/1024), int(t/1024)}' /proc/meminfo",
    );
    let v: Vec<u64> = l
        .last()
        .unwrap()
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    (v[0], v[1])
}

/// A 24 MiB job sleeps on node1; a plain process (not a job: it cannot move) then takes
/// node1's memory under the 15% mark. The balancer moves the job to node2, which has room.
fn memory_ushering(n1: &RunningNode<'_>, n2: &RunningNode<'_>) {
    start(n1, "usher", "-- omwork mem 24 75 0");
    wait_jobs(n1, "omwork mem 24", 1);
    std::thread::sleep(Duration::from_secs(3));
    let (avail, total) = meminfo(n1);
    // Leave about 20 MiB less than the mark (15% of total).
    let hog = avail.saturating_sub(total * 15 / 100) + 20;
    println!("memory: node1 has {avail} of {total} MiB available; a process takes {hog} MiB");
    let (s, l) = sh(
        n1,
        &format!(
            "( setsid omwork mem {hog} 60 0 > /tmp/hog.out 2>&1 < /dev/null & echo $! > /tmp/hog.pid )"
        ),
    );
    assert_eq!(s, 0, "{l:?}");
    let t = Instant::now();
    loop {
        let p = placement(n1, "omwork mem 24");
        if on(&p, "node2") == 1 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the job stayed on node1 short of memory: {p:?}, node1 {:?} MiB\n{}",
            meminfo(n1),
            diag(&[n1, n2])
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    println!(
        "memory: the job left node1 after {:.0} s",
        t.elapsed().as_secs_f64()
    );
    let (_, log) = sh(
        n1,
        "journalctl -u omd --no-pager -o cat | grep 'balancer: moving' | tail -n 1",
    );
    assert!(
        log.iter().any(|l| l.contains("why=memory")),
        "not moved for memory: {log:?}"
    );
    sh(n1, "kill $(cat /tmp/hog.pid) || true");
    let (status, out) = finished(n1, "usher", Duration::from_secs(120));
    assert_eq!(status, 0, "usher: {out:?}");
}

/// `omctl stress` from node1, sized for TCG: every result right (its exit status), and the
/// report printed for the record.
fn stress(n1: &RunningNode<'_>, n2: &RunningNode<'_>) {
    let out = n1
        .shell(
            "cd / && omctl stress --cpu-jobs 4 --units 5 --mem-mib 16 --secs 20 --threads 2 --pipe-mib 1 2>&1",
            Duration::from_secs(900),
        )
        .unwrap();
    println!("omctl stress:\n{}", out.lines.join("\n"));
    assert_eq!(out.status, 0, "omctl stress failed\n{}", diag(&[n1, n2]));
    let (_, moves) = sh(n1, "omctl migrations");
    println!("omctl migrations:\n{}", moves.join("\n"));
    let (s, screen) = sh(n1, "omctl mon --once");
    println!("omctl mon --once:\n{}", screen.join("\n"));
    assert_eq!(s, 0, "omctl mon --once: {screen:?}");
}
