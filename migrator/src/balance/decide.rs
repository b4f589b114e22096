//! The balancing decision, a pure function of the [`View`] and the [`Policy`]: memory ushering
//! first, then load (MOSIX's 130% damping, oldest jobs first after Harchol-Balter and Downey,
//! a cost model of bytes over bandwidth), initial placement of new jobs, and the target's
//! admission of a load move offered to it.

use std::time::Duration;

use crate::job::record::JobId;
use crate::migration::history::Why;

use super::policy::Policy;
use super::view::{Candidate, NodeLoad, Peer, RecentMove, View};

/// One move to make.
#[derive(Debug, Clone, PartialEq)]
pub struct Move {
    /// The job.
    pub job: JobId,
    /// Target node.
    pub to: String,
    /// Memory or load.
    pub why: Why,
    /// A sentence for the log.
    pub detail: String,
    /// This node's load as the decision counted it: a load move sends it with the offer, and
    /// the target refuses when it would not stay below it ([`admit`]).
    pub load_here: f64,
}

/// The target's load as this node should count it: its record plus what our recent moves
/// there add, fading out over `settle` while its gossiped load catches up.
fn effective_load(n: &NodeLoad, v: &View, policy: &Policy) -> f64 {
    let to_n = v.recent.iter().filter(|r| r.to == n.name);
    n.load + fading(n, to_n, policy.settle)
}

/// What `moves` in or out of `n` change of its load until its own smoothed load shows them:
/// each its share, fading out over `over`.
fn fading<'a>(n: &NodeLoad, moves: impl Iterator<Item = &'a RecentMove>, over: Duration) -> f64 {
    let over = over.as_secs_f64().max(1e-3);
    moves
        .map(|r| n.share(r.demand) * (1.0 - r.ago.as_secs_f64() / over).max(0.0))
        .sum()
}

/// The target's side of a load move: `me` (this node's own record, fresher than the source's
/// copy of it) with the jobs it `received` lately must stay below the source's `source_load`
/// counting 130% of one more task. Many nodes seeing the same idle node in their gossip send to
/// it at once; the first few get in and the rest hear "busy" instead of overfilling it.
pub fn admit(
    me: &NodeLoad,
    received: &[RecentMove],
    source_load: f64,
    policy: &Policy,
) -> Result<(), String> {
    let here = me.load + fading(me, received.iter(), policy.settle);
    let with = here + policy.damping * me.share(1.0);
    if with < source_load {
        return Ok(());
    }
    Err(format!(
        "{} is busy: its load {here:.2} with {:.0}% of the job ({with:.2}) would not stay below the sender's {source_load:.2}",
        me.name,
        policy.damping * 100.0
    ))
}

/// This node's load as the balancer should count it: its smoothed load less the jobs it just
/// sent away, fading out over `pause` while the smoothing catches up (it falls 90% in about
/// 2 s). This lets a node shed several jobs back to back, each decided on the load it has
/// left, instead of waiting out a pause after every move.
fn own_load(v: &View, policy: &Policy) -> f64 {
    let sent_away = v.recent.iter().filter(|r| r.to != v.me.name);
    (v.me.load - fading(&v.me, sent_away, policy.pause)).max(0.0)
}

/// May `c` leave this node automatically at all (stay, lstay, `omrun -h`, a move under way)?
fn may_leave(c: &Candidate, v: &View) -> bool {
    c.movable && !v.flags.stay && (!v.flags.lstay || c.guest)
}

/// Would `c` (of `rss` bytes) push `t` under its low-water mark?
fn fits(t: &NodeLoad, rss: u64, policy: &Policy) -> bool {
    (t.mem_free as f64) - (rss as f64) >= policy.mem_low * t.mem_total as f64
}

/// Seconds a move of `c` costs.
fn cost(c: &Candidate, v: &View, policy: &Policy) -> f64 {
    let bw = v
        .bandwidth
        .unwrap_or(policy.bandwidth_guess)
        .max(1024.0 * 1024.0);
    policy.move_overhead.as_secs_f64() + c.rss as f64 / bw
}

/// A small deterministic hash for spreading near-equal choices.
fn mix(a: u64, b: &str) -> u64 {
    b.bytes().fold(a ^ 0x9e37_79b9_7f4a_7c15, |h, x| {
        (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Pick among `(score, peer name, job)` options the best one, or, when several score within
/// 25% of the best, one of those by the tiebreak: many nodes seeing the same idle node do not
/// all send it work in the same round.
fn choose<'a>(
    mut opts: Vec<(f64, &'a Peer, &'a Candidate)>,
    tiebreak: u64,
) -> Option<(f64, &'a Peer, &'a Candidate)> {
    opts.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| b.2.age.cmp(&a.2.age)));
    let best = opts.first()?.0;
    let near: Vec<_> = opts.into_iter().filter(|o| o.0 >= best * 0.75).collect();
    near.iter()
        .min_by_key(|o| mix(tiebreak, &o.1.node.name))
        .copied()
}

/// Memory ushering: this node is short of memory; move the smallest job that lifts it back
/// over the mark (else the largest), to the peer with the most room, whatever the loads.
fn usher(v: &View, policy: &Policy) -> Option<Move> {
    let deficit = policy.mem_low * v.me.mem_total as f64 - v.me.mem_free as f64;
    let mut jobs: Vec<&Candidate> = v
        .jobs
        .iter()
        .filter(|c| may_leave(c, v) && c.rss > 0)
        .collect();
    jobs.sort_by_key(|c| c.rss);
    let pick = jobs
        .iter()
        .find(|c| c.rss as f64 >= deficit)
        .or(jobs.last())?;
    let to = v
        .peers
        .iter()
        .filter(|p| fits(&p.node, pick.rss, policy) && !p.node.short_of_memory(policy.mem_low))
        .max_by(|a, b| {
            let room = |p: &Peer| p.node.mem_free as f64 / p.node.mem_total.max(1) as f64;
            room(a).total_cmp(&room(b))
        })?;
    Some(Move {
        job: pick.id.clone(),
        to: to.node.name.clone(),
        why: Why::Memory,
        detail: format!(
            "{} MiB free of {} MiB here, below {:.0}%; {} has {} MiB free",
            v.me.mem_free >> 20,
            v.me.mem_total >> 20,
            policy.mem_low * 100.0,
            to.node.name,
            to.node.mem_free >> 20
        ),
        load_here: v.me.load,
    })
}

/// The decision of one round: at most one move.
pub fn decide(v: &View, policy: &Policy) -> Option<Move> {
    if !policy.enabled || v.flags.stay {
        return None;
    }
    if v.me.short_of_memory(policy.mem_low)
        && let Some(m) = usher(v, policy)
    {
        return Some(m);
    }
    let mine = own_load(v, policy);
    let here = v.me.rate(mine);
    let mut opts = Vec::new();
    for c in v.jobs.iter().filter(|c| may_leave(c, v)) {
        // Residency holds jobs that arrived by migration (resident < age); a job that never
        // moved is held only by the cost rule below, or a burst would sit `residency` idle.
        let arrived_by_move = c.resident < c.age;
        if c.demand < policy.min_demand || (arrived_by_move && c.resident < policy.residency) {
            continue;
        }
        let cost = cost(c, v, policy);
        for p in v.peers.iter().filter(|p| !v.busy.contains(&p.node.name)) {
            let t = effective_load(&p.node, v, policy);
            // A job busy enough to move counts as at least one whole task against ping-pong:
            // its measured share is low exactly when the CPU is contended.
            let added = p.node.share(c.demand.max(1.0));
            // MOSIX's damping: the target stays below us even counting 130% of the job.
            if t + policy.damping * added >= mine || !fits(&p.node, c.rss, policy) {
                continue;
            }
            let there = p.node.rate(t + added);
            if there <= here {
                continue;
            }
            // Heavy tails: a job that ran `age` is expected to run about as long again; at the
            // new rate that remaining work takes (1 − here/there) less time.
            let saved = c.age.as_secs_f64() * (1.0 - here / there);
            if saved > policy.gain_factor * cost {
                opts.push((saved - cost, p, c));
            }
        }
    }
    let (score, p, c) = choose(opts, v.tiebreak)?;
    Some(Move {
        job: c.id.clone(),
        to: p.node.name.clone(),
        why: Why::Load,
        detail: format!(
            "load {:.2} here, {:.2} on {}; job age {:.0} s, demand {:.2}, {} MiB; saves about {:.0} s",
            mine,
            p.node.load,
            p.node.name,
            c.age.as_secs_f64(),
            c.demand,
            c.rss >> 20,
            score
        ),
        load_here: mine,
    })
}

/// Where a new job of one runnable task should start: the peer where it would run fastest,
/// if clearly (20%) faster than here counting the damping, else `None` (here). Recent starts
/// count on every node, this one included: jobs started in the same second spread.
pub fn place(v: &View, policy: &Policy) -> Option<String> {
    let here =
        v.me.rate(effective_load(&v.me, v, policy) + v.me.share(1.0));
    v.peers
        .iter()
        .filter(|p| fits(&p.node, 0, policy))
        .map(|p| {
            let t = effective_load(&p.node, v, policy);
            (p.node.rate(t + policy.damping * p.node.share(1.0)), p)
        })
        .filter(|(rate, _)| *rate > here * 1.2)
        .max_by(|a, b| {
            a.0.total_cmp(&b.0)
                .then_with(|| mix(v.tiebreak, &b.1.node.name).cmp(&mix(v.tiebreak, &a.1.node.name)))
        })
        .map(|(_, p)| p.node.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Flags;
    use crate::balance::view::RecentMove;

    const MIB: u64 = 1 << 20;

    fn secs(s: f64) -> std::time::Duration {
        std::time::Duration::from_secs_f64(s)
    }

    fn node(name: &str, load: f64) -> NodeLoad {
        NodeLoad {
            name: name.into(),
            load,
            cpus: 1,
            speed: 1000,
            mem_total: 512 * MIB,
            mem_free: 400 * MIB,
        }
    }

    fn job(i: u32, age: f64) -> Candidate {
        Candidate {
            id: JobId(format!("node1.{i}")),
            age: secs(age),
            // Long past the minimum residency unless a test says otherwise.
            resident: secs(1000.0),
            rss: 2 * MIB,
            demand: 1.0,
            guest: false,
            movable: true,
        }
    }

    /// node1 with `n` CPU-bound jobs of ages 10, 20, ... s, node2 at `other`.
    fn view(n: u32, other: f64) -> View {
        View {
            me: node("node1", f64::from(n)),
            flags: Flags::default(),
            peers: vec![Peer {
                node: node("node2", other),
            }],
            jobs: (1..=n).map(|i| job(i, 10.0 * f64::from(i))).collect(),
            bandwidth: None,
            recent: Vec::new(),
            busy: Vec::new(),
            tiebreak: 1,
        }
    }

    #[test]
    fn four_jobs_spread_two_and_two_then_stop() {
        let p = Policy::default();
        // 4 vs 0: the oldest job goes.
        let m = decide(&view(4, 0.0), &p).unwrap();
        assert_eq!(
            (m.job.0.as_str(), m.to.as_str(), m.why),
            ("node1.4", "node2", Why::Load)
        );
        // 3 vs 1: 1 + 1.3 < 3, another goes.
        assert!(decide(&view(3, 1.0), &p).is_some());
        // 2 vs 2, and 2 vs 1 (three jobs on two nodes): 1 + 1.3 ≥ 2, nothing moves either way.
        assert_eq!(decide(&view(2, 2.0), &p), None);
        assert_eq!(decide(&view(2, 1.0), &p), None);
        assert_eq!(decide(&view(1, 2.0), &p), None);
    }

    #[test]
    fn flags_and_home_only_are_honoured() {
        let p = Policy::default();
        let mut v = view(4, 0.0);
        v.flags.stay = true;
        assert_eq!(decide(&v, &p), None, "stay");
        v.flags.stay = false;
        v.flags.lstay = true;
        assert_eq!(decide(&v, &p), None, "lstay keeps local jobs");
        v.jobs[0].guest = true;
        assert_eq!(
            decide(&v, &p).unwrap().job,
            v.jobs[0].id,
            "lstay lets guests go"
        );
        let mut v = view(4, 0.0);
        v.jobs.iter_mut().for_each(|j| j.movable = false);
        assert_eq!(decide(&v, &p), None, "omrun -h / moving");
        let mut v = view(4, 0.0);
        v.peers.clear();
        assert_eq!(
            decide(&v, &p),
            None,
            "block/quiet peers are not in the view"
        );
        assert_eq!(
            decide(
                &view(4, 0.0),
                &Policy {
                    enabled: false,
                    ..p
                }
            ),
            None
        );
    }

    #[test]
    fn young_small_or_resident_jobs_stay() {
        let p = Policy::default();
        let mut v = view(4, 0.0);
        v.jobs.iter_mut().for_each(|j| j.age = secs(2.0));
        assert_eq!(decide(&v, &p), None, "too young to repay the move");
        let mut v = view(4, 0.0);
        v.jobs.iter_mut().for_each(|j| j.demand = 0.05);
        assert_eq!(decide(&v, &p), None, "sleepers gain nothing");
        let mut v = view(4, 0.0);
        v.jobs.iter_mut().for_each(|j| j.resident = secs(5.0));
        assert_eq!(decide(&v, &p), None, "minimum residency");
        let mut v = view(4, 0.0);
        v.jobs.iter_mut().for_each(|j| j.rss = 4096 * MIB);
        v.peers[0].node.mem_free = 8192 * MIB;
        v.peers[0].node.mem_total = 16384 * MIB;
        assert_eq!(
            decide(&v, &p),
            None,
            "4 GiB at 50 MiB/s costs more than it saves"
        );
        v.bandwidth = Some(10_000.0 * MIB as f64);
        assert!(decide(&v, &p).is_some(), "measured fast network");
    }

    #[test]
    fn residency_holds_only_jobs_that_arrived_by_migration() {
        let p = Policy::default();
        // Eight jobs started here 10 s ago, never moved (gather: resident = age): the oldest
        // may go at once; waiting out the residency would only idle the burst.
        let mut v = view(8, 0.0);
        v.jobs.iter_mut().for_each(|j| {
            j.age = secs(10.0);
            j.resident = j.age;
        });
        assert!(decide(&v, &p).is_some());
        // The same jobs having arrived here by migration 10 s ago stay.
        v.jobs.iter_mut().for_each(|j| j.age = secs(100.0));
        assert_eq!(decide(&v, &p), None);
    }

    #[test]
    fn recent_moves_count_on_the_target_until_it_shows_them() {
        let p = Policy::default();
        let mut v = view(3, 0.2);
        v.recent = vec![RecentMove {
            to: "node2".into(),
            demand: 1.0,
            ago: secs(1.0),
        }];
        // Just after the move, both ends count it: 3 − 0.75 here, 0.2 + 0.9 + 1.3 there.
        assert_eq!(decide(&v, &p), None, "the move just made still counts");
        v.recent[0].ago = secs(5.0);
        // 0.2 + 0.5 pending + 1.3 = 2.0 < 3: still worth it.
        assert!(decide(&v, &p).is_some());
        v.recent.push(RecentMove {
            to: "node2".into(),
            demand: 1.0,
            ago: secs(5.0),
        });
        // Three pending at half weight: 0.2 + 1.5 + 1.3 ≥ 3.
        v.recent.push(RecentMove {
            to: "node2".into(),
            demand: 1.0,
            ago: secs(5.0),
        });
        assert_eq!(decide(&v, &p), None);
    }

    #[test]
    fn sheds_back_to_back_on_the_load_left() {
        let p = Policy::default();
        let mut v = view(4, 0.0);
        let sent = |ago| RecentMove {
            to: "node2".into(),
            demand: 1.0,
            ago: secs(ago),
        };
        // One job just left: 3 here against 1 + 1.3 there, the next goes at once.
        v.recent = vec![sent(0.1)];
        assert!(decide(&v, &p).is_some());
        // Two left: 2 here against 2 + 1.3 there, done.
        v.recent.push(sent(0.1));
        assert_eq!(decide(&v, &p), None);
    }

    #[test]
    fn a_busy_target_refuses_and_is_skipped() {
        let p = Policy::default();
        let me = node("node2", 0.2);
        // Idle enough for a sender at 3: 0.2 + 1.3 < 3.
        assert!(admit(&me, &[], 3.0, &p).is_ok());
        // Two jobs just arrived from others: 0.2 + 2 + 1.3 ≥ 3.
        let got = |ago| RecentMove {
            to: "node2".into(),
            demand: 1.0,
            ago: secs(ago),
        };
        let e = admit(&me, &[got(0.5), got(1.0)], 3.0, &p).unwrap_err();
        assert!(e.starts_with("node2 is busy"), "{e}");
        // They fade as its own load catches up.
        assert!(admit(&me, &[got(9.0), got(9.5)], 3.0, &p).is_ok());
        // A sender that counted the target busy does not offer to it again for a while.
        let mut v = view(4, 0.0);
        assert!(decide(&v, &p).is_some());
        v.busy = vec!["node2".into()];
        assert_eq!(decide(&v, &p), None);
    }

    #[test]
    fn many_sources_spread_over_equal_targets() {
        let p = Policy::default();
        let mut v = view(4, 0.0);
        v.peers = (2..10)
            .map(|i| Peer {
                node: node(&format!("node{i}"), 0.0),
            })
            .collect();
        let targets: std::collections::HashSet<String> = (0..50)
            .map(|t| {
                v.tiebreak = t;
                decide(&v, &p).unwrap().to
            })
            .collect();
        assert!(targets.len() >= 4, "{targets:?}");
    }

    #[test]
    fn slow_to_fast() {
        let p = Policy::default();
        let mut v = view(1, 0.0);
        // One job alone on a slow node; an idle node twice as fast.
        v.me.speed = 500;
        v.me.load = 2.0; // normalised: one task per CPU at half speed
        v.peers[0].node.speed = 2000;
        let m = decide(&v, &p).unwrap();
        assert_eq!(m.to, "node2");
        // Fast to slow never pays.
        let mut v = view(1, 0.0);
        v.peers[0].node.speed = 500;
        assert_eq!(decide(&v, &p), None);
    }

    #[test]
    fn memory_ushering() {
        let p = Policy::default();
        let mut v = view(2, 2.0);
        v.me.mem_free = 40 * MIB; // under 15% of 512
        v.jobs[0].rss = 30 * MIB;
        v.jobs[1].rss = 100 * MIB;
        v.jobs.iter_mut().for_each(|j| j.resident = secs(1.0));
        let m = decide(&v, &p).unwrap();
        // Deficit 76.8 − 40 = 36.8 MiB: the 30 MiB job is not enough, the 100 MiB one is.
        assert_eq!((m.job.0.as_str(), m.why), ("node1.2", Why::Memory));
        // No room anywhere: nothing (and no load move on 2 vs 2 either).
        v.peers[0].node.mem_free = 120 * MIB;
        assert_eq!(decide(&v, &p), None);
        // stay still holds.
        v.peers[0].node.mem_free = 400 * MIB;
        v.flags.stay = true;
        assert_eq!(decide(&v, &p), None);
    }

    #[test]
    fn placement() {
        let p = Policy::default();
        let mut v = view(0, 0.0);
        v.me.load = 2.0;
        assert_eq!(place(&v, &p).as_deref(), Some("node2"));
        v.me.load = 0.0;
        assert_eq!(place(&v, &p), None, "idle here: stay home");
        v.me.load = 1.0;
        v.peers[0].node.load = 1.0;
        assert_eq!(place(&v, &p), None);
        // Idle here, but two jobs just started here: the third goes to the idle peer.
        v.me.load = 0.0;
        v.peers[0].node.load = 0.0;
        v.recent = (0..2)
            .map(|_| RecentMove {
                to: "node1".into(),
                demand: 1.0,
                ago: secs(0.5),
            })
            .collect();
        assert_eq!(place(&v, &p).as_deref(), Some("node2"));
        // ... and those starts do not pause the balancer's moves.
        let mut w = view(4, 0.0);
        w.recent = v.recent.clone();
        assert!(decide(&w, &p).is_some());
    }
}
