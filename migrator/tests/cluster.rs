//! Five real agents (plus one with the wrong key) in one process on 127.0.0.x: join time,
//! failure detection, rejoin after restart, refused foreign packets, load and flag spreading.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use migrator::agent::AgentConfig;
use migrator::api::{MemberState, NodeInfo, Reply};
use migrator::identity::{NodeId, NodeIdentity, fresh_generation};
use migrator::key::ClusterKey;
use migrator::load::{Sample, ScriptedLoadSource};
use migrator::node::{self, NodeConfig, NodeHandle};

/// Port for this test only, so it does not meet a real omd or other tests.
const PORT: u16 = 37946;

fn addr(n: u8) -> SocketAddrV4 {
    SocketAddrV4::new([127, 0, 0, n].into(), PORT)
}

fn start(n: u8, key: &ClusterKey) -> NodeHandle {
    let sample = Sample {
        cpus: 2,
        loadavg1: f64::from(n),
        mem_total: 1 << 30,
        mem_free: 1 << 29,
    };
    node::spawn(NodeConfig {
        identity: NodeIdentity {
            id: NodeId(0x1000 + u64::from(n)),
            name: format!("node{n}"),
            addr: addr(n),
            generation: fresh_generation(),
            observer: false,
        },
        key: key.clone(),
        agent: AgentConfig {
            seeds: vec![addr(1)],
            ..AgentConfig::default()
        },
        load_source: Some(Box::new(ScriptedLoadSource::new([sample]))),
    })
    .unwrap()
}

fn state_of(rows: &[NodeInfo], name: &str) -> Option<MemberState> {
    rows.iter().find(|r| r.name == name).map(|r| r.state)
}

/// Poll `cond` every 20 ms until true or `limit`; returns the time it took.
async fn wait_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !cond() {
        assert!(
            t0.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    t0.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_agents_join_detect_rejoin_and_refuse_foreign_key() {
    let key = ClusterKey::from_bytes(vec![0x5a; 32]).unwrap();
    let mut nodes: Vec<NodeHandle> = (1..=5).map(|n| start(n, &key)).collect();
    let names: Vec<String> = (1..=5).map(|n| format!("node{n}")).collect();

    // 1. Join: all five see four live peers.
    let join = wait_for(Duration::from_secs(2), "5 nodes to join", || {
        nodes.iter().all(|h| {
            let rows = h.nodes();
            names
                .iter()
                .all(|n| state_of(&rows, n) == Some(MemberState::Alive))
        })
    })
    .await;
    println!("join: all 5 see each other after {join:?} (bound 2 s)");

    // 2. A node with another key: never a member, its packets counted as refused.
    let foreign = start(6, &ClusterKey::from_bytes(vec![0x77; 32]).unwrap());

    // 3. Load spreads (one random peer per second + window) and so do flags.
    let load = wait_for(
        Duration::from_secs(8),
        "every node to hold every load",
        || {
            nodes
                .iter()
                .all(|h| h.nodes().iter().filter(|r| r.load.is_some()).count() == 5)
        },
    )
    .await;
    println!("load: every node has all 5 load records after {load:?}");
    let row = nodes[0]
        .nodes()
        .into_iter()
        .find(|r| r.name == "node3")
        .unwrap();
    let l = row.load.unwrap();
    assert!(
        (l.load - 1.5).abs() < 1e-3,
        "node3: loadavg 3 on 2 cpus at speed 1000: {l:?}"
    );
    nodes[1].with_agent(|a, _| {
        let mut f = a.flags();
        f.block = true;
        a.set_flags(f)
    });
    let flags = wait_for(
        Duration::from_secs(8),
        "node2's block flag to reach all",
        || {
            nodes
                .iter()
                .all(|h| h.nodes().iter().any(|r| r.name == "node2" && r.flags.block))
        },
    )
    .await;
    println!("flags: node2 block seen by all after {flags:?}");

    // 4. Kill node5: declared dead by the other four.
    nodes[4].stop();
    let dead = wait_for(Duration::from_secs(5), "node5 declared dead", || {
        nodes[..4]
            .iter()
            .all(|h| state_of(&h.nodes(), "node5") == Some(MemberState::Dead))
    })
    .await;
    println!("failure detection: node5 dead on all 4 after {dead:?} (bound 5 s)");

    // 5. Restart node5 (same id and address, newer generation): alive again everywhere.
    tokio::time::sleep(Duration::from_millis(50)).await; // let the aborted task close its socket
    nodes[4] = start(5, &key);
    let rejoin = wait_for(Duration::from_secs(5), "node5 to rejoin", || {
        nodes.iter().all(|h| {
            let rows = h.nodes();
            names
                .iter()
                .all(|n| state_of(&rows, n) == Some(MemberState::Alive))
        })
    })
    .await;
    println!("rejoin: restarted node5 alive on all after {rejoin:?}");
    assert!(
        nodes[0]
            .nodes()
            .iter()
            .filter(|r| r.name == "node5")
            .count()
            == 1,
        "the restarted node replaces its old identity"
    );

    // 6. The foreign node never joined, and its packets were refused by MAC.
    let refused: u64 = nodes.iter().map(|h| h.drops().mac).sum();
    println!(
        "wrong key: refused by MAC on the cluster: {refused}; foreign node sees {} members",
        foreign.nodes().len() - 1
    );
    assert!(
        refused >= 2,
        "the foreign node announces every 2 s: {refused}"
    );
    assert!(
        nodes
            .iter()
            .all(|h| state_of(&h.nodes(), "node6").is_none())
    );
    assert_eq!(foreign.nodes().len(), 1);

    // 7. The control socket answers one JSON line per request.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("omd.sock");
    let listener = migrator::server::bind(&path).unwrap();
    tokio::spawn(migrator::server::serve(listener, nodes[0].clone(), None));
    let reply = ask(&path, r#"{"cmd":"whois","who":"127.0.0.3"}"#).await;
    assert!(
        matches!(reply, Reply::Node { ref node } if node.name == "node3"),
        "{reply:?}"
    );
    let reply = ask(&path, r#"{"cmd":"control","action":"expel"}"#).await;
    assert!(matches!(reply, Reply::Error { ref error } if error.contains("runs no jobs")));
    let reply = ask(&path, "garbage").await;
    assert!(matches!(reply, Reply::Error { .. }));
    let reply = ask(&path, r#"{"cmd":"nodes"}"#).await;
    assert!(matches!(reply, Reply::Nodes { ref nodes } if nodes[0].is_self && nodes.len() == 5));
    // A 10 MB line is refused once the limit is read: omd answers and closes long before the
    // sender is done, so it never held the line.
    let (sent, reply) = flood(&path, 10 << 20).await;
    assert!(
        matches!(reply, Reply::Error { ref error } if error.contains("too long")),
        "{reply:?}"
    );
    assert!(
        sent < 10 << 20,
        "omd took all {sent} bytes of an over-long line"
    );
    println!("control socket: a 10 MB line refused after {sent} bytes sent");
    let reply = ask(&path, r#"{"cmd":"nodes"}"#).await;
    assert!(
        matches!(reply, Reply::Nodes { .. }),
        "still serving: {reply:?}"
    );

    for h in nodes.iter().chain([&foreign]) {
        h.stop();
    }
}

/// Sends `len` bytes with no newline; returns how many the socket took before omd closed it,
/// and omd's reply.
async fn flood(path: &std::path::Path, len: usize) -> (usize, Reply) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let s = tokio::net::UnixStream::connect(path).await.unwrap();
    let (r, mut w) = s.into_split();
    let writer = tokio::spawn(async move {
        let chunk = vec![b'x'; 64 * 1024];
        let mut sent = 0;
        while sent < len {
            match w.write(&chunk).await {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        sent
    });
    let mut out = String::new();
    BufReader::new(r).read_line(&mut out).await.unwrap();
    let sent = writer.await.unwrap();
    (sent, serde_json::from_str(&out).unwrap())
}

async fn ask(path: &std::path::Path, line: &str) -> Reply {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let s = tokio::net::UnixStream::connect(path).await.unwrap();
    let (r, mut w) = s.into_split();
    w.write_all(format!("{line}\n").as_bytes()).await.unwrap();
    let mut out = String::new();
    BufReader::new(r).read_line(&mut out).await.unwrap();
    serde_json::from_str(&out).unwrap()
}
