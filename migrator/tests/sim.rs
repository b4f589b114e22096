//! Simulated clusters: membership convergence against log2(n) + ln(n) rounds, load-news spread
//! and traffic per node, over a network losing 5 % of packets.
//! Full size: `cargo test --release -p migrator --test sim -- --ignored --nocapture`.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use migrator::sim::{LossyLan, SimParams, SimReport, run};

fn simulate(n: usize, secs: u64) -> SimReport {
    let p = SimParams {
        n,
        loss: 0.05,
        load_change_at: Duration::from_secs(15),
        duration: Duration::from_secs(secs),
        seed: 42,
    };
    let t0 = Instant::now();
    let r = run(&p, &mut LossyLan::new(p.loss, 7));
    println!(
        "n={n}, 5% loss, {secs} simulated s in {:?} wall",
        t0.elapsed()
    );
    println!(
        "  membership: all know all after {:?} rounds (1 round = 1 s); log2(n)+ln(n) = {:.1}",
        r.membership_rounds, r.reference_rounds
    );
    println!(
        "  load change on one node known by 50/90/99/100 %: {:?} rounds; final {:.1} %",
        r.load_rounds,
        r.load_final_fraction * 100.0
    );
    println!(
        "  traffic: {:.0} B/node/s while joining (first 10 s), {:.0} B/node/s ({:.1} pkt/node/s) steady",
        r.bytes_per_node_s_join, r.bytes_per_node_s_steady, r.packets_per_node_s_steady
    );
    r
}

#[test]
fn hundred_nodes_converge() {
    let r = simulate(100, 75);
    let m = r.membership_rounds.expect("membership never converged");
    // All 99 nodes join through one seed at the same instant (a worst case: a rack boots).
    assert!(
        m <= 2.0 * r.reference_rounds,
        "{m} rounds > 2 × {:.1}",
        r.reference_rounds
    );
    // openMosix spreads load news gradually on purpose (one peer per second, 8-record
    // window): half the cluster within ~log n rounds, nearly all within a minute.
    let half = r.load_rounds[0].expect("load change never reached 50 %");
    assert!(half <= r.reference_rounds + 5.0, "{half} rounds to 50 %");
    assert!(r.load_rounds[1].is_some(), "load change never reached 90 %");
    assert!(r.bytes_per_node_s_steady < 20_000.0);
}

#[test]
#[ignore = "1000 nodes: run in release with --ignored --nocapture"]
fn thousand_nodes() {
    let r = simulate(1000, 60);
    assert!(r.membership_rounds.is_some());
}
