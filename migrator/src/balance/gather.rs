//! Building the balancer's [`View`] from omd's tables: the gossip's node rows, the jobs running
//! here measured by a [`JobMeter`], and what this node sent recently. Blocking (/proc reads):
//! call it from `spawn_blocking`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::api::{Flags, MemberState, NodeInfo};
use crate::job::keeper::Phase;
use crate::job::record::JobId;
use crate::jobs::Jobs;

use super::meter::JobMeter;
use super::policy::Policy;
use super::view::{Candidate, NodeLoad, Peer, View};

/// A row's load as the balancer reads it, if it has one.
fn node_load(n: &NodeInfo) -> Option<NodeLoad> {
    let l = n.load.as_ref()?;
    Some(NodeLoad {
        name: n.name.clone(),
        load: if l.load.is_finite() {
            l.load.max(0.0)
        } else {
            0.0
        },
        cpus: l.cpus.max(1),
        speed: l.speed.max(1),
        mem_total: l.mem_total,
        mem_free: l.mem_free,
    })
}

/// This node's load and flags, and the peers that may take a job now: alive, not observers,
/// CRIU-capable, not blocked or quiet, with a load record younger than `policy.stale`.
pub fn cluster(rows: &[NodeInfo], policy: &Policy) -> Option<(NodeLoad, Flags, Vec<Peer>)> {
    let me = rows.iter().find(|n| n.is_self)?;
    let peers = rows
        .iter()
        .filter(|n| !n.is_self && !n.observer && n.state == MemberState::Alive)
        .filter(|n| !n.flags.block && !n.flags.quiet)
        .filter(|n| n.load.is_some_and(|l| l.migration))
        .filter(|n| {
            n.load_age_ms
                .is_some_and(|a| Duration::from_millis(a) < policy.stale)
        })
        .filter_map(node_load)
        .map(|node| Peer { node })
        .collect();
    Some((node_load(me)?, me.flags, peers))
}

/// What the balancer remembers between rounds.
#[derive(Debug, Default)]
pub struct Tracker {
    /// Last CPU reading per job, to turn cumulative CPU time into a rate.
    prev: HashMap<JobId, (Duration, Instant)>,
    /// When each job was first seen here.
    arrived: HashMap<JobId, Instant>,
    /// Jobs not to try again before the given time (a failed or refused move).
    cooling: HashMap<JobId, Instant>,
    /// Peers that answered "busy", not offered a job before the given time.
    busy: HashMap<String, Instant>,
    /// Migration bandwidth measured by moves, bytes/s.
    pub bandwidth: Option<f64>,
}

impl Tracker {
    /// Do not try `job` again before `until`.
    pub fn cool(&mut self, job: JobId, until: Instant) {
        self.cooling.insert(job, until);
    }

    /// `peer` answered "busy": offer it nothing before `until`.
    pub fn busy(&mut self, peer: String, until: Instant) {
        self.busy.insert(peer, until);
    }

    /// A move of `bytes` took `total`; `overhead` of it was not bytes on the wire.
    pub fn measured(&mut self, bytes: u64, total: Duration, overhead: Duration) {
        // Small moves measure the overhead, not the network.
        if bytes < 16 << 20 {
            return;
        }
        let secs = total.saturating_sub(overhead).as_secs_f64().max(0.1);
        let bw = bytes as f64 / secs;
        self.bandwidth = Some(match self.bandwidth {
            Some(old) => old * 0.5 + bw * 0.5,
            None => bw,
        });
    }
}

/// The view of this round, or `None` while this node has no load record yet.
pub fn view(
    jobs: &Jobs,
    tracker: &mut Tracker,
    meter: &mut dyn JobMeter,
    policy: &Policy,
    now: Instant,
    tiebreak: u64,
) -> Option<View> {
    let (me, flags, peers) = cluster(&jobs.0.node.nodes(), policy)?;
    let now_ms = crate::migration::history::now_ms();
    let name = jobs.0.cfg.name.clone();
    let local: Vec<_> = {
        let s = jobs.state();
        s.local
            .values()
            .filter(|l| matches!(l.phase, Phase::Running) && l.pid > 0)
            .map(|l| (l.record.clone(), l.pid, l.migrating))
            .collect()
    };
    // Runnable tasks per CPU here: above 1, a CPU-bound task gets only a share of a CPU.
    let per_cpu = (me.load * f64::from(me.speed) / 1000.0).max(1.0);
    let mut out = Vec::new();
    for (record, pid, migrating) in local {
        let Some(u) = meter.usage(pid) else { continue };
        let id = record.id.clone();
        let share = match tracker.prev.insert(id.clone(), (u.cpu, now)) {
            Some((cpu, at)) if now > at => {
                u.cpu.saturating_sub(cpu).as_secs_f64() / (now - at).as_secs_f64()
            }
            _ => 0.0,
        };
        let arrived = *tracker.arrived.entry(id.clone()).or_insert(now);
        let age = Duration::from_millis(now_ms.saturating_sub(record.started_ms));
        let cooling = tracker.cooling.get(&id).is_some_and(|t| *t > now);
        out.push(Candidate {
            resident: if record.migrations == 0 {
                age
            } else {
                now.saturating_duration_since(arrived)
            },
            age,
            rss: u.rss,
            demand: share * per_cpu,
            guest: record.home.name != name,
            movable: !record.home_only && !migrating && !cooling,
            id,
        });
    }
    let live: std::collections::HashSet<&JobId> = out.iter().map(|c| &c.id).collect();
    tracker.prev.retain(|k, _| live.contains(k));
    tracker.arrived.retain(|k, _| live.contains(k));
    tracker.cooling.retain(|_, t| *t > now);
    tracker.busy.retain(|_, t| *t > now);
    Some(View {
        me,
        flags,
        peers,
        jobs: out,
        bandwidth: tracker.bandwidth,
        recent: jobs.0.sent.within(policy.settle, now),
        busy: tracker.busy.keys().cloned().collect(),
        tiebreak,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Load;

    fn row(name: &str, is_self: bool, load: f64, age_ms: u64) -> NodeInfo {
        NodeInfo {
            id: name.into(),
            name: name.into(),
            addr: "10.0.0.1:7946".into(),
            state: MemberState::Alive,
            is_self,
            observer: false,
            load: Some(Load {
                cpus: 1,
                speed: 1000,
                load,
                loadavg1: load,
                mem_total: 1 << 30,
                mem_free: 1 << 29,
                guests: 0,
                migration: true,
            }),
            load_age_ms: Some(age_ms),
            flags: Flags::default(),
        }
    }

    #[test]
    fn only_peers_that_may_take_a_job() {
        let p = Policy::default();
        let mut blocked = row("blocked", false, 0.0, 100);
        blocked.flags.block = true;
        let mut quiet = row("quiet", false, 0.0, 100);
        quiet.flags.quiet = true;
        let mut dead = row("dead", false, 0.0, 100);
        dead.state = MemberState::Dead;
        let mut observer = row("master", false, 0.0, 100);
        observer.observer = true;
        let mut no_criu = row("nocriu", false, 0.0, 100);
        no_criu.load.as_mut().unwrap().migration = false;
        let rows = vec![
            row("me", true, 2.0, 0),
            row("ok", false, 0.5, 100),
            row("stale", false, 0.0, 60_000),
            blocked,
            quiet,
            dead,
            observer,
            no_criu,
        ];
        let (me, _, peers) = cluster(&rows, &p).unwrap();
        assert_eq!(me.name, "me");
        let names: Vec<&str> = peers.iter().map(|p| p.node.name.as_str()).collect();
        assert_eq!(names, ["ok"]);
    }

    #[test]
    fn bandwidth_from_large_moves_only() {
        let mut t = Tracker::default();
        t.measured(1 << 20, Duration::from_secs(2), Duration::from_secs(1));
        assert_eq!(t.bandwidth, None);
        t.measured(100 << 20, Duration::from_secs(3), Duration::from_secs(1));
        assert_eq!(t.bandwidth, Some(50.0 * 1048576.0));
    }
}
