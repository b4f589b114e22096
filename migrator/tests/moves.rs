//! The cluster-wide move history end to end, in one process on 127.0.0.x: two real agents with
//! their jobs subsystems and peer listeners, a move in each node's history, and one node's
//! answer to `omctl migrations` holding both, oldest first, long texts cut for the wire.

#![allow(clippy::unwrap_used)]

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use migrator::api::MemberState;
use migrator::job::record::JobId;
use migrator::jobs::{Jobs, JobsConfig, peer, requests};
use migrator::key::ClusterKey;
use migrator::migration::criu::{CriuCli, NodeCheck};
use migrator::migration::history::{MoveEvent, WIRE_TEXT, Why};
use migrator::node::NodeHandle;

mod common;

/// Gossip port of this test only, so it meets no real omd and no other test.
const PORT: u16 = 37976;
/// Peer (TCP) port of this test.
const PEER_PORT: u16 = 37977;

fn ip(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, n)
}

/// Node `n` on 127.0.0.n, seeded with node `seed`.
fn spawn_node(n: u8, key: &ClusterKey, seed: u8) -> NodeHandle {
    common::spawn_node(
        SocketAddrV4::new(ip(n), PORT),
        key,
        1,
        vec![SocketAddrV4::new(ip(seed), PORT)],
    )
}

async fn start_jobs(n: u8, key: &ClusterKey, node: NodeHandle, dir: &std::path::Path) -> Jobs {
    let cfg = JobsConfig {
        jobs_dir: dir.join(format!("jobs{n}")),
        outcomes_dir: dir.join(format!("outcomes{n}")),
        name: format!("node{n}"),
        ip: ip(n),
        peer_port: PEER_PORT,
        omjob: "/nonexistent/omjob".into(),
        pre_dump: Default::default(),
        policy: Default::default(),
    };
    let check = NodeCheck {
        ok: false,
        reason: Some("not in this test".into()),
        version: String::new(),
        track_mem: false,
    };
    let criu = Arc::new(CriuCli {
        program: "/nonexistent/criu".into(),
    });
    let jobs = Jobs::new(cfg, key.clone(), node, criu, check).unwrap();
    let l = peer::bind(SocketAddr::new(ip(n).into(), PEER_PORT))
        .await
        .unwrap();
    tokio::spawn(peer::serve(jobs.clone(), l));
    jobs
}

fn event(job: JobId, from: &str, to: &str, at_ms: u64, command: String) -> MoveEvent {
    MoveEvent {
        job,
        command,
        from: from.into(),
        to: to.into(),
        at_ms,
        why: Why::Load,
        ok: true,
        frozen_ms: 10,
        total_ms: 20,
        bytes: 30,
        error: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moves_are_gathered_from_every_live_node() {
    let key = ClusterKey::from_bytes(vec![0x6b; 32]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (h1, h2) = (spawn_node(81, &key, 81), spawn_node(82, &key, 81));
    let j1 = start_jobs(81, &key, h1.clone(), dir.path()).await;
    let j2 = start_jobs(82, &key, h2.clone(), dir.path()).await;

    // node82 remembers an older move with a huge command line; node81 a newer one.
    let long = "x".repeat(100_000);
    j2.0.history.push(event(
        JobId::new("node82", 5),
        "node82",
        "node81",
        1_000,
        long,
    ));
    j1.0.history.push(event(
        JobId::new("node81", 7),
        "node81",
        "node82",
        2_000,
        "sleep 9".into(),
    ));

    let t0 = Instant::now();
    while !h1
        .nodes()
        .iter()
        .any(|r| r.name == "node82" && r.state == MemberState::Alive)
    {
        assert!(t0.elapsed() < Duration::from_secs(5), "node82 never joined");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let moves = requests::moves(&j1).await;
    let got: Vec<(&str, &str)> = moves
        .iter()
        .map(|e| (e.job.0.as_str(), e.from.as_str()))
        .collect();
    assert_eq!(got, [("node82.5", "node82"), ("node81.7", "node81")]);
    assert_eq!(moves[0].command.chars().count(), WIRE_TEXT + 1);
    assert_eq!(moves[1].command, "sleep 9");
}
