//! A deterministic in-process simulation of many agents over a lossy simulated network with a
//! simulated clock, measuring what gossip must do at scale: membership convergence against
//! log2(n) + ln(n) + 3 rounds, fresh load records per node, load-news spread, bytes per node.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt::Write as _;
use std::net::SocketAddrV4;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;

use crate::agent::{Agent, AgentConfig, SwimTuning};
use crate::identity::{NodeId, NodeIdentity};
use crate::key::ClusterKey;
use crate::load::Sample;
use crate::table::FRESH;
use crate::wire::{DEFAULT_GROUP, DEFAULT_PORT};

/// Rounds allowed on top of log2(n) + ln(n) for membership convergence.
pub const MEMBERSHIP_SLACK_ROUNDS: f64 = 3.0;
/// Share of nodes that must hold at least a window of fresh records, every second.
pub const FRESH_TARGET: f64 = 0.9;
/// Load news must reach this share of the other nodes within the run ...
pub const NEWS_REACH_TARGET: f64 = 0.99;
/// ... but less than this share one round after the change (openMosix: gradually).
pub const GRADUAL_MAX: f64 = 0.5;

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

/// How simulated nodes make first contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Discovery {
    /// ANNOUNCE to the multicast group, which the network delivers to every started node, each
    /// copy lost on its own: the lab's way.
    Multicast,
    /// ANNOUNCE unicast to this many seeds (the first nodes), as `seeds = [...]` does.
    Seeds(usize),
}

impl std::fmt::Display for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Discovery::Multicast => f.write_str("multicast"),
            Discovery::Seeds(k) => write!(f, "{k} seed(s)"),
        }
    }
}

/// Simulation parameters.
#[derive(Debug, Clone)]
pub struct SimParams {
    /// Nodes.
    pub n: usize,
    /// Packet loss, 0..1.
    pub loss: f64,
    /// First contact.
    pub discovery: Discovery,
    /// Nodes start at random instants over this span (zero: all at once, a rack booting).
    pub start_spread: Duration,
    /// Records piggybacked per LOAD packet (`load_window`).
    pub window: usize,
    /// The join phase, from the start: traffic is counted apart, fresh records after it.
    pub join_phase: Duration,
    /// When node 1's load jumps (after the join phase).
    pub load_change_at: Duration,
    /// Total simulated time.
    pub duration: Duration,
    /// RNG seed.
    pub seed: u64,
}

impl SimParams {
    /// `n` nodes on a LAN losing `loss` for `duration`, as the targets are stated: multicast
    /// first contact, every node started at once, the default window, one node's load jumping
    /// 5 s after a 20 s join phase.
    pub fn new(n: usize, loss: f64, duration: Duration) -> Self {
        let join_phase = Duration::from_secs(20);
        Self {
            n,
            loss,
            discovery: Discovery::Multicast,
            start_spread: Duration::ZERO,
            window: AgentConfig::default().window,
            join_phase,
            load_change_at: join_phase + Duration::from_secs(5),
            duration,
            seed: 42,
        }
    }
}

/// What the simulation measured. Times are simulated seconds; a round is one second
/// (the LOAD period; SWIM probes twice and gossips five times per round by default).
#[derive(Debug, Clone, Serialize)]
pub struct SimReport {
    /// Nodes.
    pub n: usize,
    /// Packet loss.
    pub loss: f64,
    /// First contact.
    pub discovery: Discovery,
    /// Records piggybacked per LOAD packet.
    pub window: usize,
    /// Span over which the nodes started (0: all at once).
    pub start_spread_s: f64,
    /// Simulated seconds.
    pub simulated_s: f64,
    /// log2(n) + ln(n).
    pub reference_rounds: f64,
    /// The membership target: reference + [`MEMBERSHIP_SLACK_ROUNDS`].
    pub target_rounds: f64,
    /// Rounds from the last node's start until every node knew every other as alive (checked
    /// every 100 ms).
    pub membership_rounds: Option<f64>,
    /// Per second after the join phase, the share of nodes holding records younger than
    /// [`FRESH`] about at least `window` peers: the lowest ...
    pub fresh_min: f64,
    /// ... and the mean.
    pub fresh_mean: f64,
    /// Rounds after the load change until 50 % / 90 % / [`NEWS_REACH_TARGET`] / all other
    /// nodes held it.
    pub load_rounds: [Option<f64>; 4],
    /// Share of the other nodes holding the change one round after it (gradual: far below 1).
    pub load_after_one_round: f64,
    /// Share of the other nodes holding the change at the end.
    pub load_final_fraction: f64,
    /// Bytes sent per node per second during the join phase.
    pub bytes_per_node_s_join: f64,
    /// Bytes sent per node per second after the join phase.
    pub bytes_per_node_s_steady: f64,
    /// Packets sent per node per second after the join phase.
    pub packets_per_node_s_steady: f64,
}

impl SimReport {
    /// Membership converged within [`Self::target_rounds`].
    pub fn membership_ok(&self) -> bool {
        self.membership_rounds
            .is_some_and(|m| m <= self.target_rounds)
    }

    /// At least [`FRESH_TARGET`] of the nodes held a window of fresh records every second.
    pub fn fresh_ok(&self) -> bool {
        self.fresh_min >= FRESH_TARGET
    }

    /// The load change reached [`NEWS_REACH_TARGET`] of the nodes, and not in one round.
    pub fn news_ok(&self) -> bool {
        self.load_rounds[2].is_some() && self.load_after_one_round < GRADUAL_MAX
    }

    /// The report as a markdown table: each figure with its target and their ratio.
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "Gossip simulation: {} nodes started {}, {:.0} % loss, first contact by {}, window {}, {:.0} simulated s (1 round = 1 s)\n",
            self.n,
            if self.start_spread_s > 0.0 {
                format!("over {:.0} s", self.start_spread_s)
            } else {
                "at once".to_owned()
            },
            self.loss * 100.0,
            self.discovery,
            self.window,
            self.simulated_s
        );
        let _ = writeln!(s, "| figure | measured | target | ratio | ok |");
        let _ = writeln!(s, "|---|---|---|---|---|");
        let yes = |b: bool| if b { "yes" } else { "NO" };
        let rounds = |r: Option<f64>| r.map_or("never".to_owned(), |r| format!("{r:.1}"));
        let ratio = |r: Option<f64>, t: f64| r.map_or("-".to_owned(), |r| format!("{:.2}", r / t));
        let _ = writeln!(
            s,
            "| membership: all know all, rounds | {} | ≤ {:.1} (log2 n + ln n + 3) | {} | {} |",
            rounds(self.membership_rounds),
            self.target_rounds,
            ratio(self.membership_rounds, self.target_rounds),
            yes(self.membership_ok())
        );
        let fresh = format!(
            "nodes holding < {} s old records about ≥ {} peers",
            FRESH.as_secs(),
            self.window
        );
        for (what, v) in [("lowest", self.fresh_min), ("mean", self.fresh_mean)] {
            let _ = writeln!(
                s,
                "| {fresh}, {what} per second | {:.1} % | ≥ {:.0} % | {:.2} | {} |",
                v * 100.0,
                FRESH_TARGET * 100.0,
                v / FRESH_TARGET,
                yes(v >= FRESH_TARGET)
            );
        }
        let _ = writeln!(
            s,
            "| load news: nodes holding it after 1 round | {:.1} % | < {:.0} % (gradual) | {:.2} | {} |",
            self.load_after_one_round * 100.0,
            GRADUAL_MAX * 100.0,
            self.load_after_one_round / GRADUAL_MAX,
            yes(self.load_after_one_round < GRADUAL_MAX)
        );
        for (pct, r) in [50.0, 90.0, NEWS_REACH_TARGET * 100.0, 100.0]
            .iter()
            .zip(self.load_rounds)
        {
            let (target, ok) = if *pct == NEWS_REACH_TARGET * 100.0 {
                ("reached", yes(r.is_some()))
            } else {
                ("-", "")
            };
            let _ = writeln!(
                s,
                "| load news: rounds to {pct:.0} % of the other nodes | {} | {target} | {} of log2 n + ln n | {ok} |",
                rounds(r),
                ratio(r, self.reference_rounds)
            );
        }
        let _ = writeln!(
            s,
            "| load news: nodes holding it at the end | {:.1} % | - | - | |",
            self.load_final_fraction * 100.0
        );
        let _ = writeln!(
            s,
            "| bytes / node / s, join phase | {:.0} | - | - | |",
            self.bytes_per_node_s_join
        );
        let _ = writeln!(
            s,
            "| bytes / node / s, steady ({:.1} packets) | {:.0} | - | - | |",
            self.packets_per_node_s_steady, self.bytes_per_node_s_steady
        );
        s
    }

    /// The report as pretty-printed JSON.
    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(self)
    }
}

fn sim_addr(i: usize) -> SocketAddrV4 {
    // 127/8 only: these addresses never reach a socket, but keep them loopback anyway.
    SocketAddrV4::new([127, 1, (i / 250) as u8, (i % 250 + 1) as u8].into(), 7946)
}

/// Bytes and packets all agents have sent so far.
fn sent(agents: &[Agent]) -> (u64, u64) {
    agents.iter().fold((0, 0), |(b, k), a| {
        (b + a.stats().sent_bytes, k + a.stats().sent_packets)
    })
}

/// A packet in flight: receiver index, sender address, frame.
type InFlight = (usize, SocketAddrV4, Vec<u8>);

/// Run the simulation over a [`LossyLan`] losing `p.loss`, seeded from `p.seed`: what the
/// tests and `omlab bench gossip` measure.
pub fn run_on_lan(p: &SimParams) -> SimReport {
    run(p, &mut LossyLan::new(p.loss, p.seed ^ 7))
}

/// Run the simulation.
pub fn run(p: &SimParams, net: &mut dyn SimNetwork) -> SimReport {
    let key = ClusterKey::from_bytes(vec![9; 32]).unwrap_or_else(|_| unreachable!("32 bytes"));
    let group = SocketAddrV4::new(DEFAULT_GROUP, DEFAULT_PORT);
    let n = p.n.max(2);
    let mut cfg = AgentConfig {
        swim: SwimTuning {
            cluster_size_hint: n as u32,
            ..SwimTuning::default()
        },
        window: p.window,
        ..AgentConfig::default()
    };
    match p.discovery {
        Discovery::Multicast => cfg.multicast = Some(group),
        Discovery::Seeds(k) => cfg.seeds = (0..k.clamp(1, n)).map(sim_addr).collect(),
    }
    let mut rng = StdRng::seed_from_u64(p.seed);
    let spread = p.start_spread.as_millis() as u64;
    let mut starts: Vec<Duration> = (0..n)
        .map(|_| {
            Duration::from_millis(if spread == 0 {
                0
            } else {
                rng.random_range(0..spread)
            })
        })
        .collect();
    // Seeds are up first: the others would only announce into the void before.
    if let Discovery::Seeds(k) = p.discovery {
        starts.iter_mut().take(k).for_each(|s| *s = Duration::ZERO);
    }
    let last_start = starts.iter().copied().max().unwrap_or_default();
    let mut agents: Vec<Agent> = (0..n)
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
                starts[i],
            )
        })
        .collect();
    let index: HashMap<SocketAddrV4, usize> = (0..n).map(|i| (sim_addr(i), i)).collect();
    let mut queue: BinaryHeap<Reverse<(Duration, u64)>> = BinaryHeap::new();
    let mut packets: HashMap<u64, InFlight> = HashMap::new();
    let mut pkt_seq = 0u64;
    let step = Duration::from_millis(10);
    let watched = 1usize;
    let watched_id = agents[watched].identity().id;
    let mut change_seq: Option<u32> = None;
    let mut seq_counter = 0u32;
    let reference = (n as f64).log2() + (n as f64).ln();
    let mut report = SimReport {
        n,
        loss: p.loss,
        discovery: p.discovery,
        window: p.window,
        start_spread_s: p.start_spread.as_secs_f64(),
        simulated_s: p.duration.as_secs_f64(),
        reference_rounds: reference,
        target_rounds: reference + MEMBERSHIP_SLACK_ROUNDS,
        membership_rounds: None,
        fresh_min: 1.0,
        fresh_mean: 0.0,
        load_rounds: [None; 4],
        load_after_one_round: 0.0,
        load_final_fraction: 0.0,
        bytes_per_node_s_join: 0.0,
        bytes_per_node_s_steady: 0.0,
        packets_per_node_s_steady: 0.0,
    };
    let mut fresh_samples = 0u32;
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
            // A node not started yet has no socket: its packets are lost.
            if let Some((to, from, data)) = packets.remove(&k)
                && starts[to] <= now
            {
                agents[to].handle_data(&data, from, now);
            }
        }
        let second = now >= next_second;
        // Once a second every started node samples its load.
        if second {
            seq_counter += 1;
            let changed = now >= p.load_change_at;
            if changed && change_seq.is_none() {
                change_seq = Some(seq_counter);
            }
            for (i, a) in agents.iter_mut().enumerate() {
                if starts[i] > now {
                    continue;
                }
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
        for (i, agent) in agents.iter_mut().enumerate() {
            if starts[i] > now {
                continue;
            }
            if agent.next_wakeup() <= now {
                agent.poll(now);
            }
            let from = agent.identity().addr;
            for o in agent.drain_outgoing() {
                let to: Vec<usize> = if o.to == group {
                    (0..n).filter(|&j| j != i && starts[j] <= now).collect()
                } else {
                    index.get(&o.to).copied().into_iter().collect()
                };
                for j in to {
                    if let Some(at) = net.transit(now, from, sim_addr(j)) {
                        pkt_seq += 1;
                        queue.push(Reverse((at.max(now + step), pkt_seq)));
                        packets.insert(pkt_seq, (j, from, o.data.clone()));
                    }
                }
            }
        }
        // Measurements every 100 ms.
        if now.as_millis().is_multiple_of(100) {
            let secs = now.as_secs_f64();
            if report.membership_rounds.is_none()
                && now >= last_start
                && agents.iter().all(|a| a.num_members() == n - 1)
            {
                report.membership_rounds = Some(secs - last_start.as_secs_f64());
            }
            if let Some(cs) = change_seq {
                let knowing = agents
                    .iter()
                    .enumerate()
                    .filter(|(i, a)| {
                        *i != watched && a.record_of(watched_id).is_some_and(|r| r.seq >= cs)
                    })
                    .count();
                let frac = knowing as f64 / (n - 1) as f64;
                report.load_final_fraction = frac;
                let since = secs - p.load_change_at.as_secs_f64();
                if since <= 1.0 {
                    report.load_after_one_round = frac;
                }
                let wants = [0.5, 0.9, NEWS_REACH_TARGET, 1.0];
                for (slot, want) in report.load_rounds.iter_mut().zip(wants) {
                    if slot.is_none() && frac >= want {
                        *slot = Some(since);
                    }
                }
            }
            if now == p.join_phase {
                bytes_at_join_end = sent(&agents);
            }
        }
        if second && now >= p.join_phase {
            let holding = agents
                .iter()
                .filter(|a| a.fresh_records(now) >= p.window)
                .count();
            let frac = holding as f64 / n as f64;
            report.fresh_min = report.fresh_min.min(frac);
            report.fresh_mean += frac;
            fresh_samples += 1;
        }
        now += step;
    }
    if fresh_samples == 0 {
        report.fresh_min = 0.0;
    } else {
        report.fresh_mean /= f64::from(fresh_samples);
    }
    let (bytes, pkts) = sent(&agents);
    let nodes = n as f64;
    let join = p.join_phase.as_secs_f64().max(1.0);
    report.bytes_per_node_s_join = bytes_at_join_end.0 as f64 / nodes / join;
    let steady = (p.duration.saturating_sub(p.join_phase))
        .as_secs_f64()
        .max(1.0);
    report.bytes_per_node_s_steady = (bytes - bytes_at_join_end.0) as f64 / nodes / steady;
    report.packets_per_node_s_steady = (pkts - bytes_at_join_end.1) as f64 / nodes / steady;
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_lossless_cluster_meets_the_targets_and_reports_them() {
        let r = run_on_lan(&SimParams::new(10, 0.0, Duration::from_secs(30)));
        assert!(r.membership_ok() && r.fresh_ok() && r.news_ok(), "{r:?}");
        let md = r.to_markdown();
        let rows = md.lines().filter(|l| l.starts_with("| ")).count();
        assert_eq!(rows, 12, "header and eleven figures\n{md}");
        assert!(md.contains("| membership: all know all, rounds |"), "{md}");
        let json: serde_json::Value = serde_json::from_str(&r.to_json().unwrap()).unwrap();
        assert_eq!(json["n"], 10);
        assert_eq!(json["discovery"], "multicast");
        assert!(json["membership_rounds"].as_f64().is_some());
        assert_eq!(json["load_rounds"].as_array().map(Vec::len), Some(4));
    }
}
