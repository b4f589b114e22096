//! A deterministic in-process simulation of many agents over a lossy simulated network with
//! a simulated clock: membership convergence, load-news spread and bytes per node per second.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddrV4;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::agent::{Agent, AgentConfig, SwimTuning};
use crate::identity::{NodeId, NodeIdentity};
use crate::key::ClusterKey;
use crate::load::Sample;

/// The network a simulated packet crosses: decides whether and when it arrives.
pub trait SimNetwork {
    /// Arrival time of a packet sent at `now`, or `None` if it is lost.
    fn transit(&mut self, now: Duration, from: SocketAddrV4, to: SocketAddrV4) -> Option<Duration>;
}

/// A LAN with uniform random loss and 1–3 ms latency.
#[derive(Debug)]
pub struct LossyLan {
    /// Loss probability, 0..1.
    pub loss: f64,
    rng: StdRng,
}

impl LossyLan {
    /// A LAN losing `loss` of all packets.
    pub fn new(loss: f64, seed: u64) -> Self {
        Self {
            loss,
            rng: StdRng::seed_from_u64(seed),
        }
    }
}

impl SimNetwork for LossyLan {
    fn transit(&mut self, now: Duration, _: SocketAddrV4, _: SocketAddrV4) -> Option<Duration> {
        if self.rng.random_bool(self.loss.clamp(0.0, 1.0)) {
            return None;
        }
        Some(now + Duration::from_micros(self.rng.random_range(1000..3000)))
    }
}

/// Simulation parameters.
#[derive(Debug, Clone)]
pub struct SimParams {
    /// Nodes.
    pub n: usize,
    /// Packet loss, 0..1.
    pub loss: f64,
    /// When node 1's load jumps (after membership has settled).
    pub load_change_at: Duration,
    /// Total simulated time.
    pub duration: Duration,
    /// RNG seed.
    pub seed: u64,
}

/// What the simulation measured. Times are simulated seconds; a round is one second
/// (the LOAD period; SWIM probes twice and gossips five times per round by default).
#[derive(Debug, Clone)]
pub struct SimReport {
    /// Nodes.
    pub n: usize,
    /// log2(n) + ln(n), the reference figure.
    pub reference_rounds: f64,
    /// Rounds until every node knew every other as alive.
    pub membership_rounds: Option<f64>,
    /// Rounds after the change until 50 % / 90 % / 99 % / all other nodes held it.
    pub load_rounds: [Option<f64>; 4],
    /// Fraction of nodes holding the change at the end.
    pub load_final_fraction: f64,
    /// Bytes sent per node per second during the join phase (first 10 s).
    pub bytes_per_node_s_join: f64,
    /// Bytes sent per node per second after the join phase.
    pub bytes_per_node_s_steady: f64,
    /// Packets per node per second after the join phase.
    pub packets_per_node_s_steady: f64,
}

fn sim_addr(i: usize) -> SocketAddrV4 {
    // 127/8 only: these addresses never reach a socket, but keep them loopback anyway.
    SocketAddrV4::new([127, 1, (i / 250) as u8, (i % 250 + 1) as u8].into(), 7946)
}

/// Run the simulation.
pub fn run(p: &SimParams, net: &mut dyn SimNetwork) -> SimReport {
    let key = ClusterKey::from_bytes(vec![9; 32]).unwrap_or_else(|_| unreachable!("32 bytes"));
    let cfg = AgentConfig {
        swim: SwimTuning {
            cluster_size_hint: p.n as u32,
            ..SwimTuning::default()
        },
        seeds: vec![sim_addr(0)],
        ..AgentConfig::default()
    };
    let mut agents: Vec<Agent> = (0..p.n)
        .map(|i| {
            let id = NodeIdentity {
                id: NodeId(0xa000_0000 + i as u64),
                name: format!("sim{i}"),
                addr: sim_addr(i),
                generation: 1,
                observer: false,
            };
            Agent::new(
                id,
                key.clone(),
                cfg.clone(),
                Some(p.seed ^ (i as u64 * 0x9e37)),
                Duration::ZERO,
            )
        })
        .collect();
    let index: HashMap<SocketAddrV4, usize> = (0..p.n).map(|i| (sim_addr(i), i)).collect();
    let mut queue: BinaryHeap<Reverse<(Duration, u64)>> = BinaryHeap::new();
    let mut packets: HashMap<u64, (usize, SocketAddrV4, Vec<u8>)> = HashMap::new();
    let mut pkt_seq = 0u64;
    let step = Duration::from_millis(10);
    let watched = 1usize;
    let watched_id = agents[watched].identity().id;
    let mut change_seq: Option<u32> = None;
    let mut seq_counter = 0u32;
    let mut report = SimReport {
        n: p.n,
        reference_rounds: (p.n as f64).log2() + (p.n as f64).ln(),
        membership_rounds: None,
        load_rounds: [None; 4],
        load_final_fraction: 0.0,
        bytes_per_node_s_join: 0.0,
        bytes_per_node_s_steady: 0.0,
        packets_per_node_s_steady: 0.0,
    };
    let join_phase = Duration::from_secs(10);
    let mut bytes_at_join_end = (0u64, 0u64);
    let mut now = Duration::ZERO;
    let mut next_second = Duration::ZERO;
    while now <= p.duration {
        // Deliver what has arrived.
        while let Some(Reverse((t, k))) = queue.peek().copied() {
            if t > now {
                break;
            }
            queue.pop();
            if let Some((to, from, data)) = packets.remove(&k) {
                agents[to].handle_data(&data, from, now);
            }
        }
        // Once a second every node samples its load.
        if now >= next_second {
            seq_counter += 1;
            let changed = now >= p.load_change_at;
            if changed && change_seq.is_none() {
                change_seq = Some(seq_counter);
            }
            for (i, a) in agents.iter_mut().enumerate() {
                let busy = i == watched && changed;
                a.set_sample(Sample {
                    cpus: 4,
                    loadavg1: if busy { 16.0 } else { 0.5 },
                    runnable: if busy { 16.0 } else { 0.5 },
                    mem_total: 4 << 30,
                    mem_free: 2 << 30,
                });
            }
            next_second += Duration::from_secs(1);
        }
        for agent in agents.iter_mut() {
            if agent.next_wakeup() <= now {
                agent.poll(now);
            }
            let from = agent.identity().addr;
            for o in agent.drain_outgoing() {
                let Some(&to) = index.get(&o.to) else {
                    continue;
                };
                if let Some(at) = net.transit(now, from, o.to) {
                    pkt_seq += 1;
                    queue.push(Reverse((at.max(now + step), pkt_seq)));
                    packets.insert(pkt_seq, (to, from, o.data));
                }
            }
        }
        // Measurements every 100 ms.
        if now.as_millis().is_multiple_of(100) {
            let secs = now.as_secs_f64();
            if report.membership_rounds.is_none()
                && agents.iter().all(|a| a.num_members() == p.n - 1)
            {
                report.membership_rounds = Some(secs);
            }
            if let Some(cs) = change_seq {
                let knowing = agents
                    .iter()
                    .enumerate()
                    .filter(|(i, a)| {
                        *i != watched && a.record_of(watched_id).is_some_and(|r| r.seq >= cs)
                    })
                    .count();
                let frac = knowing as f64 / (p.n - 1) as f64;
                report.load_final_fraction = frac;
                let since = secs - p.load_change_at.as_secs_f64();
                for (slot, want) in report.load_rounds.iter_mut().zip([0.5, 0.9, 0.99, 1.0]) {
                    if slot.is_none() && frac >= want {
                        *slot = Some(since);
                    }
                }
            }
            if now == join_phase {
                bytes_at_join_end = agents.iter().fold((0, 0), |(b, k), a| {
                    (b + a.stats().sent_bytes, k + a.stats().sent_packets)
                });
            }
        }
        now += step;
    }
    let (bytes, pkts) = agents.iter().fold((0u64, 0u64), |(b, k), a| {
        (b + a.stats().sent_bytes, k + a.stats().sent_packets)
    });
    let n = p.n as f64;
    report.bytes_per_node_s_join = bytes_at_join_end.0 as f64 / n / join_phase.as_secs_f64();
    let steady = (p.duration.saturating_sub(join_phase))
        .as_secs_f64()
        .max(1.0);
    report.bytes_per_node_s_steady = (bytes - bytes_at_join_end.0) as f64 / n / steady;
    report.packets_per_node_s_steady = (pkts - bytes_at_join_end.1) as f64 / n / steady;
    report
}
