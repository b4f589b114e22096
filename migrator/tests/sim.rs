//! Simulated clusters against the gossip targets, over a network losing 5 % of packets:
//! membership within log2(n) + ln(n) + 3 rounds, 90 % of nodes holding fresh load records
//! about a window of peers, load news reaching every node, gradually.
//! Full size: `cargo test --release -p migrator --test sim -- --ignored --nocapture`.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use migrator::sim::{Discovery, SimParams, SimReport, run_on_lan};

fn simulate(p: &SimParams) -> SimReport {
    let t0 = Instant::now();
    let r = run_on_lan(p);
    println!("{}({:?} wall)", r.to_markdown(), t0.elapsed());
    r
}

/// Every target of the issue, with the report in the message.
fn assert_targets(r: &SimReport) {
    let table = r.to_markdown();
    assert!(r.membership_ok(), "membership too slow\n{table}");
    assert!(r.fresh_ok(), "too few fresh records\n{table}");
    assert!(r.news_ok(), "load news stalled, or spread at once\n{table}");
}

#[test]
fn hundred_nodes_meet_the_targets() {
    // A rack of 100 booting at once, first contact by multicast as in the lab.
    let r = simulate(&SimParams::new(100, 0.05, Duration::from_secs(60)));
    assert_targets(&r);
    // openMosix spreads load news gradually on purpose: each node tells one peer a round, so
    // a newly idle node is not flooded by the whole cluster at once.
    assert!(
        r.load_after_one_round <= 0.05,
        "{} of the nodes knew after one round",
        r.load_after_one_round
    );
    let half = r.load_rounds[0].unwrap();
    assert!(half >= 2.0, "half the cluster knew after {half} rounds");
    assert!(r.bytes_per_node_s_steady < 5_000.0);
}

#[test]
fn hundred_nodes_join_through_three_seeds() {
    // Without multicast: every node knows three seeds.
    let p = SimParams {
        discovery: Discovery::Seeds(3),
        ..SimParams::new(100, 0.05, Duration::from_secs(30))
    };
    let r = simulate(&p);
    assert!(r.membership_ok(), "{}", r.to_markdown());
    assert!(r.fresh_ok(), "{}", r.to_markdown());
}

#[test]
#[ignore = "1000 nodes: run in release with --ignored --nocapture"]
fn thousand_nodes() {
    let r = simulate(&SimParams::new(1000, 0.05, Duration::from_secs(60)));
    assert_targets(&r);
}
