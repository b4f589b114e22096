//! Five real agents (plus one with the wrong key) in one process on 127.0.0.x: join time,
//! failure detection, rejoin after restart, refused foreign packets, load and flag spreading;
//! and a captured packet sent again, spoofed from its sender's address or from another one.

#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use migrator::api::{MemberState, NodeInfo, Reply};
use migrator::key::ClusterKey;
use migrator::node::NodeHandle;
use migrator::wire;

mod common;
use common::spawn_node;

/// Port for the five-node test only, so it does not meet a real omd or other tests.
const PORT: u16 = 37946;
/// Port of the replay test.
const REPLAY_PORT: u16 = 37956;

fn addr(n: u8) -> SocketAddrV4 {
    SocketAddrV4::new([127, 0, 0, n].into(), PORT)
}

/// Node `n` of the five-node test, seeded with node 1.
fn start(n: u8, key: &ClusterKey, generation: u64) -> NodeHandle {
    spawn_node(addr(n), key, generation, vec![addr(1)])
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
    let mut nodes: Vec<NodeHandle> = (1..=5).map(|n| start(n, &key, 1)).collect();
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
    let foreign = start(6, &ClusterKey::from_bytes(vec![0x77; 32]).unwrap(), 1);

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
    nodes[4] = start(5, &key, 2);
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

/// A packet a running node really sent, captured by a fake seed and sent to another node
/// again: from the sender's own address (a raw socket forging the IP source) it passes the
/// address check, is news the first time and a replay the second; from any other address it is
/// re-addressed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_packet_sent_again_is_refused() {
    let key = ClusterKey::from_bytes(vec![0x3c; 32]).unwrap();
    let at = |n: u8| SocketAddrV4::new([127, 0, 0, n].into(), REPLAY_PORT);
    // The tap is node 21's only seed: node 21 announces itself to it every 2 s while alone.
    let tap = tokio::net::UdpSocket::bind(at(20)).await.unwrap();
    let sender = spawn_node(at(21), &key, 9, vec![at(20)]);
    let receiver = spawn_node(at(22), &key, 3, Vec::new());
    let mut buf = vec![0u8; 2048];
    let (n, src) = tokio::time::timeout(Duration::from_secs(5), tap.recv_from(&mut buf))
        .await
        .expect("node 21 announces to its seed")
        .unwrap();
    assert_eq!(src, SocketAddr::V4(at(21)));
    let captured = buf[..n].to_vec();
    let frame = wire::decode(std::slice::from_ref(&key), &captured).unwrap();
    assert_eq!(
        (frame.kind, frame.from.addr, frame.from.generation),
        (wire::Kind::Announce, at(21), 9)
    );
    println!(
        "captured: {n} bytes, ANNOUNCE seq {} of node 21",
        frame.from.seq
    );

    match RawUdp::open() {
        Ok(raw) => {
            // The packet went to the tap only: the receiver has not seen it, so the first copy
            // is news and introduces node 21, exactly as the genuine packet would.
            raw.send(at(21), at(22), &captured).unwrap();
            wait_for(Duration::from_secs(5), "node 22 to meet node 21", || {
                state_of(&receiver.nodes(), "node21").is_some()
            })
            .await;
            assert_eq!(receiver.drops().total(), 0, "{:?}", receiver.drops());
            raw.send(at(21), at(22), &captured).unwrap();
            wait_for(Duration::from_secs(2), "the replay to be counted", || {
                receiver.drops().replay == 1
            })
            .await;
            let d = receiver.drops();
            assert_eq!(
                (d.readdressed, d.total()),
                (0, 1),
                "only the replay was dropped: {d:?}"
            );
            println!("spoofed from 127.0.0.21: first copy taken, second dropped as replay");
        }
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            println!(
                "raw sockets are not permitted here (CAP_NET_RAW): replay from the sender's address NOT tested: {e}"
            );
        }
        Err(e) => panic!("opening a raw socket: {e}"),
    }

    // The same bytes from another address, by plain UDP.
    let before = receiver.drops();
    let elsewhere = tokio::net::UdpSocket::bind(at(23)).await.unwrap();
    elsewhere.send_to(&captured, at(22)).await.unwrap();
    wait_for(
        Duration::from_secs(2),
        "the re-addressed copy to be counted",
        || receiver.drops().readdressed == before.readdressed + 1,
    )
    .await;
    assert_eq!(receiver.drops().replay, before.replay);
    println!("sent from 127.0.0.23: dropped as re-addressed");

    sender.stop();
    receiver.stop();
}

/// A raw IPv4 socket writing its own IP and UDP headers (IPPROTO_RAW implies IP_HDRINCL), so
/// the source address is whatever the test says. Needs CAP_NET_RAW.
struct RawUdp(socket2::Socket);

impl RawUdp {
    fn open() -> std::io::Result<Self> {
        use socket2::{Domain, Protocol, Socket, Type};
        Socket::new(
            Domain::IPV4,
            Type::RAW,
            Some(Protocol::from(libc::IPPROTO_RAW)),
        )
        .map(Self)
    }

    fn send(&self, from: SocketAddrV4, to: SocketAddrV4, payload: &[u8]) -> std::io::Result<()> {
        let udp_len = u16::try_from(8 + payload.len()).unwrap();
        let total = 20 + udp_len;
        let mut p = Vec::with_capacity(usize::from(total));
        // IPv4: version 4, 5 words of header, DF, TTL 64, protocol 17 (UDP).
        p.extend_from_slice(&[0x45, 0]);
        p.extend_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
        p.extend_from_slice(&from.ip().octets());
        p.extend_from_slice(&to.ip().octets());
        let sum = ipv4_checksum(&p);
        p[10..12].copy_from_slice(&sum.to_be_bytes());
        // UDP; checksum 0 means "none", which IPv4 allows (RFC 768).
        p.extend_from_slice(&from.port().to_be_bytes());
        p.extend_from_slice(&to.port().to_be_bytes());
        p.extend_from_slice(&udp_len.to_be_bytes());
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(payload);
        let dest = socket2::SockAddr::from(SocketAddr::V4(SocketAddrV4::new(*to.ip(), 0)));
        let sent = self.0.send_to(&p, &dest)?;
        assert_eq!(sent, p.len());
        Ok(())
    }
}

/// The Internet checksum of an IPv4 header (RFC 791, RFC 1071).
fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
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
