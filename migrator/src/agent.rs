//! The sans-I/O node agent: SWIM membership (foca), first contact and load gossip.
//! Feed it packets (`handle_data`) and time (`poll`); collect datagrams with `drain_outgoing`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::SocketAddrV4;
use std::num::{NonZeroU8, NonZeroU32, NonZeroUsize};
use std::time::Duration;

use foca::{AccumulatingRuntime, Foca, NoCustomBroadcast, OwnedNotification, PostcardCodec, Timer};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::api::{Flags, Load, MemberState, NodeInfo};
use crate::identity::{NodeId, NodeIdentity};
use crate::key::ClusterKey;
use crate::load::{Sample, Smoother, normalise};
use crate::replay::ReplayWindow;
use crate::table::LoadTable;
use crate::wire::{self, DropCounters, DropReason, Kind, LoadRecord, Sender};

/// SWIM timing. Defaults detect a dead LAN node in about 3 s and converge 5 nodes in < 1 s.
#[derive(Debug, Clone, PartialEq)]
pub struct SwimTuning {
    /// Each member probes one random member this often.
    pub probe_period: Duration,
    /// Wait for a direct ack before asking others to probe indirectly.
    pub probe_rtt: Duration,
    /// A suspect not refuting within this time is declared dead.
    pub suspect_to_down: Duration,
    /// Extra gossip of membership updates this often ...
    pub gossip_period: Duration,
    /// ... to this many random members.
    pub gossip_fanout: usize,
    /// Expected cluster size; sets how often each update is retransmitted (log n).
    pub cluster_size_hint: u32,
    /// Ask one random member for its member list this often (fills rosters after a join storm).
    pub announce_period: Duration,
    /// Right after joining, ANNOUNCE ourselves to this many members (0: only to whom we reached).
    pub join_fanout: usize,
}

impl Default for SwimTuning {
    fn default() -> Self {
        Self {
            probe_period: Duration::from_millis(500),
            probe_rtt: Duration::from_millis(150),
            suspect_to_down: Duration::from_millis(2000),
            gossip_period: Duration::from_millis(200),
            gossip_fanout: 3,
            cluster_size_hint: 64,
            announce_period: Duration::from_secs(2),
            join_fanout: 3,
        }
    }
}

impl SwimTuning {
    /// The foca configuration for this tuning.
    pub fn foca_config(&self) -> foca::Config {
        let size = NonZeroU32::new(self.cluster_size_hint.max(1)).unwrap_or(NonZeroU32::MIN);
        let mut c = foca::Config::new_lan(size);
        c.probe_period = self.probe_period;
        c.probe_rtt = self.probe_rtt;
        c.suspect_to_down_after = self.suspect_to_down;
        c.max_packet_size = NonZeroUsize::new(wire::MAX_BODY).unwrap_or(NonZeroUsize::MIN);
        // Each node sends each update at least 2 ln n times, so a node misses one with odds of
        // about 1/n²: a whole cluster joining at once leaves about one (node, member) pair to
        // the slow repair of periodic member lists. foca's 4 log10(n + 1) (1.7 ln n) left a
        // dozen at 1000 nodes and 5 % loss.
        let tx = (2.0 * f64::from(size.get()).ln()).ceil().clamp(6.0, 255.0) as u8;
        c.max_transmissions = c
            .max_transmissions
            .max(NonZeroU8::new(tx).unwrap_or(NonZeroU8::MIN));
        c.periodic_gossip = Some(foca::PeriodicParams {
            frequency: self.gossip_period,
            num_members: NonZeroUsize::new(self.gossip_fanout.max(1)).unwrap_or(NonZeroUsize::MIN),
        });
        // Ask a peer for its member list now and then, so partitions heal and a big cluster's
        // roster fills in even if some updates were lost.
        c.periodic_announce = Some(foca::PeriodicParams {
            frequency: self.announce_period,
            num_members: NonZeroUsize::MIN,
        });
        // A restarted node's old identity is down; talk to down members so they learn it
        // quickly and renew.
        c.periodic_announce_to_down_members = Some(foca::PeriodicParams {
            frequency: Duration::from_secs(5),
            num_members: NonZeroUsize::MIN,
        });
        c
    }
}

/// Everything the agent needs besides its identity and key.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    /// Another key accepted, never sent with (a key rotation); see `accept_key_file` in omd's
    /// configuration.
    pub accept_key: Option<ClusterKey>,
    /// SWIM timing.
    pub swim: SwimTuning,
    /// Speed figure of this node (1000 = standard CPU).
    pub speed: u32,
    /// Unicast addresses to send ANNOUNCE to for first contact.
    pub seeds: Vec<SocketAddrV4>,
    /// Multicast group:port for ANNOUNCE, if enabled.
    pub multicast: Option<SocketAddrV4>,
    /// Records about others piggybacked on each LOAD packet.
    pub window: usize,
    /// Most nodes kept in the load table.
    pub table_cap: usize,
    /// How often LOAD is sent (openMosix: every second).
    pub load_period: Duration,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            accept_key: None,
            swim: SwimTuning::default(),
            speed: 1000,
            seeds: Vec::new(),
            multicast: None,
            window: 8,
            table_cap: 4096,
            load_period: Duration::from_secs(1),
        }
    }
}

/// Announce every this often while alone ...
pub const ANNOUNCE_ALONE: Duration = Duration::from_millis(500);
/// ... and this often once in a cluster (heals partitions, costs one packet).
pub const ANNOUNCE_JOINED: Duration = Duration::from_secs(30);
/// Our load moving by at least this (normalised, × 1000) since our last news is news again ...
pub const NEWS_LOAD_MILLI: u32 = 250;
/// ... and our records carry [`wire::FLAG_NEWS`] for this many samples (seconds) after it, so
/// nodes forward them first while they are fresh.
pub const NEWS_ROUNDS: u32 = 10;
/// At most one warning about frames of another wire version this often: every packet of a
/// node on another build would otherwise log one.
pub const VERSION_WARN_EVERY: Duration = Duration::from_secs(600);

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Destination (a multicast group for ANNOUNCE).
    pub to: SocketAddrV4,
    /// Complete authenticated frame.
    pub data: Vec<u8>,
}

/// Membership changes, for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A member came up.
    Up(NodeIdentity),
    /// A member was declared dead.
    Down(NodeIdentity),
    /// A member restarted (old, new).
    Renamed(NodeIdentity, NodeIdentity),
    /// We were declared dead and rejoined under a newer generation.
    Rejoined(NodeIdentity),
}

/// Traffic counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Datagrams produced.
    pub sent_packets: u64,
    /// Bytes produced (UDP payload).
    pub sent_bytes: u64,
    /// Datagrams that authenticated, came from their header's address and were fresh.
    pub accepted_packets: u64,
}

/// Where a join stands (see [`Agent::join_steps`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JoinStep {
    /// Ask a member for its member list at the next poll.
    AskList,
    /// ANNOUNCE ourselves to a few members from that list at this time.
    FanOut(Duration),
}

/// Our own latest load.
#[derive(Debug, Clone, Copy)]
struct OwnLoad {
    sample: Sample,
    load: f64,
    seq: u32,
}

/// The agent. One per node; no I/O inside.
pub struct Agent {
    foca: Foca<NodeIdentity, PostcardCodec, StdRng, NoCustomBroadcast>,
    rt: AccumulatingRuntime<NodeIdentity>,
    /// The key we send with first, then any other we accept.
    keys: Vec<ClusterKey>,
    /// Sequence number of the last frame we sent (0: none yet).
    sent_seq: u64,
    replay: ReplayWindow,
    /// When we last warned about another wire version, and drops of it since.
    version_warned: Option<Duration>,
    version_drops: u64,
    cfg: AgentConfig,
    rng: StdRng,
    timers: BinaryHeap<Reverse<(Duration, u64)>>,
    timer_events: HashMap<u64, Timer<NodeIdentity>>,
    timer_seq: u64,
    next_tick: Duration,
    next_announce: Duration,
    /// Since when we have had members (none: alone).
    connected_since: Option<Duration>,
    /// The join's next step, if one is due.
    join: Option<JoinStep>,
    table: LoadTable,
    /// Members foca reported up and not since down: who may have load records.
    active: HashSet<NodeId>,
    smoother: Smoother,
    own: Option<OwnLoad>,
    /// Our load when we last made news, and how many more samples carry the news flag.
    news_load: Option<f64>,
    news_left: u32,
    seq: u32,
    flags: Flags,
    quiet_sent: bool,
    guests: u32,
    migration: bool,
    drops: DropCounters,
    stats: Stats,
    out: Vec<Outgoing>,
    events: Vec<Event>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("identity", self.foca.identity())
            .field("members", &self.foca.num_members())
            .field("drops", &self.drops)
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// A new agent; `seed` makes its randomness reproducible (simulation), `None` = OS entropy.
    pub fn new(
        identity: NodeIdentity,
        key: ClusterKey,
        cfg: AgentConfig,
        seed: Option<u64>,
        now: Duration,
    ) -> Self {
        let mut rng: StdRng = match seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => rand::make_rng(),
        };
        let foca_rng = StdRng::seed_from_u64(rng.random());
        let foca = Foca::new(identity, cfg.swim.foca_config(), foca_rng, PostcardCodec);
        // Spread the first LOAD sends so nodes started together do not tick in lockstep.
        let jitter =
            Duration::from_millis(rng.random_range(0..cfg.load_period.as_millis().max(1) as u64));
        let keys = std::iter::once(key).chain(cfg.accept_key.clone()).collect();
        Self {
            foca,
            rt: AccumulatingRuntime::new(),
            keys,
            sent_seq: 0,
            replay: ReplayWindow::default(),
            version_warned: None,
            version_drops: 0,
            table: LoadTable::new(cfg.table_cap),
            active: HashSet::new(),
            cfg,
            rng,
            timers: BinaryHeap::new(),
            timer_events: HashMap::new(),
            timer_seq: 0,
            next_tick: now + jitter,
            next_announce: now,
            connected_since: None,
            join: None,
            smoother: Smoother::default(),
            own: None,
            news_load: None,
            news_left: 0,
            seq: 0,
            flags: Flags::default(),
            quiet_sent: false,
            guests: 0,
            migration: false,
            drops: DropCounters::default(),
            stats: Stats::default(),
            out: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Our identity (its generation changes when we rejoin).
    pub fn identity(&self) -> &NodeIdentity {
        self.foca.identity()
    }

    /// Drop counters by reason.
    pub fn drops(&self) -> DropCounters {
        self.drops
    }

    /// Traffic counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Current flags.
    pub fn flags(&self) -> Flags {
        self.flags
    }

    /// Replace the flags (after a control request).
    pub fn set_flags(&mut self, flags: Flags) {
        if !flags.quiet {
            self.quiet_sent = false;
        }
        if flags != self.flags {
            self.news_left = NEWS_ROUNDS;
        }
        self.flags = flags;
    }

    /// What the node advertises about jobs: guests running here, and whether it takes
    /// migrations (CRIU's checks passed).
    pub fn set_job_caps(&mut self, guests: u32, migration: bool) {
        if migration != self.migration {
            self.news_left = NEWS_ROUNDS;
        }
        self.guests = guests;
        self.migration = migration;
    }

    /// Active members other than us.
    pub fn num_members(&self) -> usize {
        self.foca.num_members()
    }

    /// Ids of active members other than us.
    pub fn active_ids(&self) -> Vec<NodeId> {
        self.foca.iter_members().map(|m| m.id().id).collect()
    }

    /// The load record we hold about `id`, if any.
    pub fn record_of(&self, id: NodeId) -> Option<LoadRecord> {
        self.table.get(id).map(|e| e.record)
    }

    /// Peers whose load record we hold younger than [`crate::table::FRESH`].
    pub fn fresh_records(&self, now: Duration) -> usize {
        self.table.count_fresh(now, &[self.foca.identity().id])
    }

    /// Take the datagrams produced so far.
    pub fn drain_outgoing(&mut self) -> Vec<Outgoing> {
        std::mem::take(&mut self.out)
    }

    /// Take the membership events produced so far.
    pub fn drain_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// When `poll` next has work.
    pub fn next_wakeup(&self) -> Duration {
        let t = self.timers.peek().map(|Reverse((t, _))| *t);
        let join = self.join.map(|j| match j {
            JoinStep::AskList => Duration::ZERO,
            JoinStep::FanOut(at) => at,
        });
        [Some(self.next_tick), Some(self.next_announce), t, join]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(self.next_tick)
    }

    /// Feed a local load sample (once a second; observers never do).
    pub fn set_sample(&mut self, sample: Sample) {
        let load = self
            .smoother
            .update(normalise(sample.runnable, sample.cpus, self.cfg.speed));
        let moved = self
            .news_load
            .is_none_or(|l| (load - l).abs() * 1000.0 >= f64::from(NEWS_LOAD_MILLI));
        if moved {
            self.news_load = Some(load);
            self.news_left = NEWS_ROUNDS;
        } else {
            self.news_left = self.news_left.saturating_sub(1);
        }
        self.seq = self.seq.wrapping_add(1);
        self.own = Some(OwnLoad {
            sample,
            load,
            seq: self.seq,
        });
    }

    /// Contact `to` directly (an ANNOUNCE with our identity), e.g. a seed.
    pub fn announce_to(&mut self, to: SocketAddrV4) {
        let body = wire::encode_announce(self.foca.identity());
        self.push(to, Kind::Announce, &body);
    }

    /// Handle one datagram received from UDP source `from`. Never panics; bad input is
    /// counted in [`Self::drops`].
    pub fn handle_data(&mut self, pkt: &[u8], from: SocketAddrV4, now: Duration) {
        if let Err(reason) = self.handle_inner(pkt, from, now) {
            self.drops.count(reason);
            if let DropReason::Version(v) = reason {
                self.warn_version(v, from, now);
            }
        }
        self.drain_runtime(now);
    }

    /// One WARN line per [`VERSION_WARN_EVERY`] while nodes of another build talk to us.
    fn warn_version(&mut self, version: u8, from: SocketAddrV4, now: Duration) {
        self.version_drops += 1;
        if self
            .version_warned
            .is_some_and(|t| now.saturating_sub(t) < VERSION_WARN_EVERY)
        {
            return;
        }
        let us = if self.foca.identity().observer {
            "ombootd"
        } else {
            "omd"
        };
        tracing::warn!(
            %from,
            dropped = self.version_drops,
            "a node speaks cluster wire version {version}; this {us} speaks {}: upgrade every node to the same build",
            wire::VERSION
        );
        self.version_warned = Some(now);
        self.version_drops = 0;
    }

    fn handle_inner(
        &mut self,
        pkt: &[u8],
        source: SocketAddrV4,
        now: Duration,
    ) -> Result<(), DropReason> {
        let wire::Frame { kind, from, body } = wire::decode(&self.keys, pkt)?;
        // Authentic, but a copy is authentic too: it must come from where its sender gossips,
        // and be news (checked only now, so forged noise cannot move anyone's window).
        if from.addr != source {
            return Err(DropReason::Readdressed);
        }
        self.replay.accept(from.id, from.generation, from.seq)?;
        self.stats.accepted_packets += 1;
        match kind {
            Kind::Swim => self
                .foca
                .handle_data(body, &mut self.rt)
                .map_err(|_| DropReason::Rejected),
            Kind::Announce => {
                let who = wire::decode_announce(body)?;
                if who.addr != from.addr {
                    return Err(DropReason::Readdressed);
                }
                if who.id != from.id || who.generation != from.generation {
                    return Err(DropReason::Rejected);
                }
                if who.id == self.foca.identity().id {
                    return Ok(()); // our own multicast looped back
                }
                self.on_announce(who, now)
            }
            Kind::Load => {
                let records = wire::decode_load(body)?;
                let me = self.foca.identity().id;
                for r in records {
                    // Only members we believe alive: records of the dead must not resurrect.
                    if r.id != me && self.active.contains(&r.id) {
                        self.table.offer(r, now);
                    }
                }
                Ok(())
            }
        }
    }

    /// An authenticated ANNOUNCE from `who`, not us. It spoke to us itself, so it is alive:
    /// learn it first-hand (as foca learns any sender) and gossip it on, rather than trade a
    /// full member list with it; with multicast every node hears the ANNOUNCE, and a list per
    /// hearer would cost n² when a rack boots. Settled members answer with an ANNOUNCE so a
    /// newcomer learns the cluster at once, and so do seeds, whom joiners reach before anyone;
    /// nodes that are joining themselves do not: a rack booting would trade n² of them.
    fn on_announce(&mut self, who: NodeIdentity, now: Duration) -> Result<(), DropReason> {
        let state = self
            .foca
            .iter_membership_state()
            .find(|m| *m.id() == who)
            .map(|m| m.state());
        match state {
            Some(foca::State::Alive | foca::State::Suspect) => Ok(()),
            // We declared this very identity dead: let foca tell it (it renews and rejoins).
            Some(foca::State::Down) => self
                .foca
                .announce(who, &mut self.rt)
                .map_err(|_| DropReason::Rejected),
            None => {
                let alone = self.foca.num_members() == 0;
                let addr = who.addr;
                self.foca
                    .apply_many(
                        std::iter::once(foca::Member::alive(who)),
                        true,
                        &mut self.rt,
                    )
                    .map_err(|_| DropReason::Rejected)?;
                // A joiner left unanswered announces again after ANNOUNCE_ALONE; by then the
                // nodes that joined with it are settled and answer.
                let settled = self
                    .connected_since
                    .is_some_and(|t| now.saturating_sub(t) >= ANNOUNCE_ALONE);
                let seed = self.cfg.seeds.contains(&self.foca.identity().addr);
                if alone || settled || seed {
                    self.announce_to(addr);
                }
                Ok(())
            }
        }
    }

    /// Right after we joined: ask one member for its member list (a foca feed), then, once it
    /// came, ANNOUNCE ourselves to `join_fanout` members, so our arrival spreads from several
    /// nodes rather than only from the one we reached (a seed hearing a whole rack).
    fn join_steps(&mut self, now: Duration) {
        match self.join {
            Some(JoinStep::AskList) => {
                if let Some(m) = self.random_members(1).pop()
                    && let Err(e) = self.foca.announce(m, &mut self.rt)
                {
                    tracing::debug!(error = %e, "asking for the member list");
                }
                self.drain_runtime(now);
                // A LAN round trip: the list is in by then.
                self.join = Some(JoinStep::FanOut(now + self.cfg.swim.probe_rtt));
            }
            Some(JoinStep::FanOut(at)) if now >= at => {
                for m in self.random_members(self.cfg.swim.join_fanout) {
                    self.announce_to(m.addr);
                }
                self.join = None;
            }
            _ => {}
        }
    }

    /// Up to `k` distinct active members, at random.
    fn random_members(&mut self, k: usize) -> Vec<NodeIdentity> {
        let mut all: Vec<NodeIdentity> = self.foca.iter_members().map(|m| m.id().clone()).collect();
        let k = k.min(all.len());
        for i in 0..k {
            let j = self.rng.random_range(i..all.len());
            all.swap(i, j);
        }
        all.truncate(k);
        all
    }

    /// Run due timers and the once-a-second work.
    pub fn poll(&mut self, now: Duration) {
        while let Some(Reverse((t, n))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            if let Some(ev) = self.timer_events.remove(&n)
                && !self.stale_suspicion(&ev)
                && let Err(e) = self.foca.handle_timer(ev, &mut self.rt)
            {
                tracing::debug!(error = %e, "foca timer");
            }
            self.drain_runtime(now);
        }
        self.join_steps(now);
        if now >= self.next_announce {
            let alone = self.foca.num_members() == 0;
            if let Some(group) = self.cfg.multicast {
                self.announce_to(group);
            }
            // Seeds only while alone: once in, SWIM keeps us in.
            if alone {
                for s in self.cfg.seeds.clone() {
                    if s != self.foca.identity().addr {
                        self.announce_to(s);
                    }
                }
            }
            self.next_announce = now
                + if alone {
                    ANNOUNCE_ALONE
                } else {
                    ANNOUNCE_JOINED
                };
        }
        if now >= self.next_tick {
            self.send_load(now);
            self.next_tick = now + self.cfg.load_period;
        }
    }

    /// Whether `ev` is a suspicion running out for a member that is no longer suspect at that
    /// incarnation (it refuted, or went). foca 2.0 would still send it TurnUndead, and the
    /// member, alive, would rejoin under a new generation: at 1000 nodes and 5 % loss about
    /// one a second, each a membership change for the whole cluster to learn. The timer has
    /// nothing else left to do, so it is not handed to foca.
    fn stale_suspicion(&self, ev: &Timer<NodeIdentity>) -> bool {
        let Timer::ChangeSuspectToDown {
            member_id,
            incarnation,
            ..
        } = ev
        else {
            return false;
        };
        !self.foca.iter_membership_state().any(|m| {
            m.id() == member_id
                && m.state() == foca::State::Suspect
                && m.incarnation() == *incarnation
        })
    }

    /// The LOAD record we would send about ourselves.
    fn own_record(&self) -> Option<LoadRecord> {
        let o = self.own?;
        let milli = |x: f64| (x * 1000.0).round().clamp(0.0, f64::from(u32::MAX)) as u32;
        Some(LoadRecord {
            id: self.foca.identity().id,
            seq: o.seq,
            age_ms: 0,
            cpus: u16::try_from(o.sample.cpus).unwrap_or(u16::MAX),
            speed: self.cfg.speed,
            load_milli: milli(o.load),
            loadavg1_milli: milli(o.sample.loadavg1),
            mem_total: o.sample.mem_total,
            mem_free: o.sample.mem_free,
            guests: self.guests,
            flags: wire::flags_to_bits(self.flags, self.foca.identity().observer)
                | if self.migration {
                    wire::FLAG_MIGRATION
                } else {
                    0
                }
                | if self.news_left > 0 {
                    wire::FLAG_NEWS
                } else {
                    0
                },
        })
    }

    /// openMosix spreading: one LOAD packet per period to ONE random live peer, carrying our
    /// record and a window of fresh ones, news first (never to everyone: an idle node is not
    /// flooded).
    fn send_load(&mut self, now: Duration) {
        if self.foca.identity().observer {
            return;
        }
        let peers: Vec<(SocketAddrV4, NodeId)> = self
            .foca
            .iter_members()
            .filter(|m| m.state() == foca::State::Alive)
            .map(|m| (m.id().addr, m.id().id))
            .collect();
        if peers.is_empty() {
            return;
        }
        let (to, to_id) = peers[self.rng.random_range(0..peers.len())];
        let mut recs = Vec::with_capacity(self.cfg.window + 1);
        let send_own = !self.flags.quiet || !self.quiet_sent;
        if send_own && let Some(r) = self.own_record() {
            recs.push(r);
            // The record announcing "quiet" goes out once so others see the flag, then silence.
            self.quiet_sent = self.flags.quiet;
        }
        let me = self.foca.identity().id;
        // Nothing about the receiver itself: it knows better.
        recs.extend(self.table.window(self.cfg.window, &[me, to_id], now));
        if recs.is_empty() {
            return;
        }
        self.push(to, Kind::Load, &wire::encode_load(&recs));
    }

    /// Frame `body` under our primary key with the next sequence number, and queue it.
    fn push(&mut self, to: SocketAddrV4, kind: Kind, body: &[u8]) {
        self.sent_seq += 1;
        let me = self.foca.identity();
        let from = Sender {
            id: me.id,
            generation: me.generation,
            seq: self.sent_seq,
            addr: me.addr,
        };
        let data = wire::encode(&self.keys[0], kind, &from, body);
        self.stats.sent_packets += 1;
        self.stats.sent_bytes += data.len() as u64;
        self.out.push(Outgoing { to, data });
    }

    /// Move what foca produced into our queues.
    fn drain_runtime(&mut self, now: Duration) {
        while let Some((to, body)) = self.rt.to_send() {
            self.push(to.addr, Kind::Swim, &body);
        }
        while let Some((after, ev)) = self.rt.to_schedule() {
            self.timer_seq += 1;
            self.timers.push(Reverse((now + after, self.timer_seq)));
            self.timer_events.insert(self.timer_seq, ev);
        }
        while let Some(n) = self.rt.to_notify() {
            match n {
                OwnedNotification::MemberUp(id) => {
                    self.active.insert(id.id);
                    self.events.push(Event::Up(id));
                }
                OwnedNotification::MemberDown(id) => {
                    self.active.remove(&id.id);
                    self.table.remove(id.id);
                    self.events.push(Event::Down(id));
                }
                OwnedNotification::Rename(old, new) => {
                    self.table.remove(old.id);
                    self.events.push(Event::Renamed(old, new));
                }
                OwnedNotification::Rejoin(id) => self.events.push(Event::Rejoined(id)),
                _ => {}
            }
        }
        match (self.connected_since, self.foca.num_members() > 0) {
            (None, true) => {
                self.connected_since = Some(now);
                self.join = Some(JoinStep::AskList);
            }
            (Some(_), false) => {
                self.connected_since = None;
                self.join = None;
            }
            _ => {}
        }
    }

    /// The cluster table: this node first, then every member foca knows (dead ones too).
    pub fn nodes(&self, now: Duration) -> Vec<NodeInfo> {
        let me = self.foca.identity();
        let mut rows = vec![NodeInfo {
            id: me.id.to_string(),
            name: me.name.clone(),
            addr: me.addr.to_string(),
            state: MemberState::Alive,
            is_self: true,
            observer: me.observer,
            load: self.own_record().map(|r| load_of(&r)),
            load_age_ms: self.own.map(|_| 0),
            flags: self.flags,
        }];
        let mut others: Vec<NodeInfo> = self
            .foca
            .iter_membership_state()
            .filter(|m| m.id().id != me.id)
            .map(|m| {
                let id = m.id();
                let entry = self.table.get(id.id);
                NodeInfo {
                    id: id.id.to_string(),
                    name: id.name.clone(),
                    addr: id.addr.to_string(),
                    state: match m.state() {
                        foca::State::Alive => MemberState::Alive,
                        foca::State::Suspect => MemberState::Suspect,
                        foca::State::Down => MemberState::Dead,
                    },
                    is_self: false,
                    observer: id.observer,
                    load: entry.map(|e| load_of(&e.record)),
                    load_age_ms: entry.map(|e| now.saturating_sub(e.origin_at).as_millis() as u64),
                    flags: entry
                        .map(|e| wire::flags_from_bits(e.record.flags))
                        .unwrap_or_default(),
                }
            })
            .collect();
        others.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        rows.extend(others);
        rows
    }
}

/// The API's view of a wire record.
pub fn load_of(r: &LoadRecord) -> Load {
    Load {
        cpus: u32::from(r.cpus),
        speed: r.speed,
        load: f64::from(r.load_milli) / 1000.0,
        loadavg1: f64::from(r.loadavg1_milli) / 1000.0,
        mem_total: r.mem_total,
        mem_free: r.mem_free,
        guests: r.guests,
        migration: r.flags & wire::FLAG_MIGRATION != 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident(n: u8) -> NodeIdentity {
        NodeIdentity {
            id: NodeId(u64::from(n)),
            name: format!("n{n}"),
            addr: SocketAddrV4::new([127, 0, 0, n].into(), 7946),
            generation: 1,
            observer: false,
        }
    }

    fn key() -> ClusterKey {
        ClusterKey::from_bytes(vec![3; 32]).unwrap()
    }

    /// Deliver everything between two agents until quiet, at time `now`.
    fn exchange(agents: &mut [Agent], now: Duration) {
        for _ in 0..20 {
            let mut moved = false;
            for i in 0..agents.len() {
                for o in agents[i].drain_outgoing() {
                    if let Some(j) = agents.iter().position(|a| a.identity().addr == o.to) {
                        let from = agents[i].identity().addr;
                        agents[j].handle_data(&o.data, from, now);
                        moved = true;
                    }
                }
            }
            if !moved {
                break;
            }
        }
    }

    #[test]
    fn two_agents_join_via_seed_and_share_load() {
        let cfg = AgentConfig {
            seeds: vec![ident(1).addr],
            ..AgentConfig::default()
        };
        let mut a = vec![
            Agent::new(ident(1), key(), cfg.clone(), Some(1), Duration::ZERO),
            Agent::new(ident(2), key(), cfg, Some(2), Duration::ZERO),
        ];
        let sample = Sample {
            cpus: 2,
            loadavg1: 2.0,
            runnable: 2.0,
            mem_total: 100,
            mem_free: 50,
        };
        a[1].set_sample(sample);
        let mut now = Duration::ZERO;
        for _ in 0..30 {
            for ag in a.iter_mut() {
                ag.poll(now);
            }
            exchange(&mut a, now);
            now += Duration::from_millis(100);
        }
        assert_eq!(a[0].num_members(), 1);
        assert_eq!(a[1].num_members(), 1);
        let rows = a[0].nodes(now);
        assert_eq!(rows.len(), 2);
        assert!(rows[0].is_self);
        let l = rows[1].load.unwrap();
        assert!((l.load - 1.0).abs() < 1e-9, "{l:?}");
        assert_eq!(l.cpus, 2);
    }

    fn sender(n: u8, generation: u64, seq: u64) -> Sender {
        let id = ident(n);
        Sender {
            id: id.id,
            generation,
            seq,
            addr: id.addr,
        }
    }

    fn lone(n: u8, cfg: AgentConfig) -> Agent {
        Agent::new(ident(n), key(), cfg, Some(u64::from(n)), Duration::ZERO)
    }

    #[test]
    fn garbage_is_counted_not_fatal() {
        let mut a = lone(1, AgentConfig::default());
        let from = ident(2).addr;
        a.handle_data(b"", from, Duration::ZERO);
        a.handle_data(&[0xff; 64], from, Duration::ZERO);
        a.handle_data(
            &wire::encode(&key(), Kind::Swim, &sender(2, 1, 1), b"\xff\xff\xff"),
            from,
            Duration::ZERO,
        );
        a.handle_data(
            &wire::encode(&key(), Kind::Load, &sender(2, 1, 2), b"\x05"),
            from,
            Duration::ZERO,
        );
        let d = a.drops();
        assert_eq!((d.length, d.magic, d.rejected, d.body), (1, 1, 1, 1));
    }

    #[test]
    fn a_replayed_or_readdressed_frame_is_dropped() {
        let mut a = lone(1, AgentConfig::default());
        let load = wire::encode_load(&[]);
        let pkt = wire::encode(&key(), Kind::Load, &sender(2, 5, 1), &load);
        let from = ident(2).addr;
        a.handle_data(&pkt, from, Duration::ZERO);
        assert_eq!(a.drops().total(), 0);
        assert_eq!(a.stats().accepted_packets, 1);
        a.handle_data(&pkt, from, Duration::ZERO);
        assert_eq!(a.drops().replay, 1);
        // The next frame of that sender, copied and sent from elsewhere: it never counts as
        // seen, so the genuine one still gets through afterwards.
        let next = wire::encode(&key(), Kind::Load, &sender(2, 5, 2), &load);
        a.handle_data(&next, ident(3).addr, Duration::ZERO);
        assert_eq!(a.drops().readdressed, 1);
        a.handle_data(&next, from, Duration::ZERO);
        assert_eq!(a.drops().total(), 2);
        // An older life of that sender is refused, a newer one starts a new window.
        let old = wire::encode(&key(), Kind::Load, &sender(2, 4, 100), &load);
        a.handle_data(&old, from, Duration::ZERO);
        assert_eq!(a.drops().old_generation, 1);
        let newer = wire::encode(&key(), Kind::Load, &sender(2, 6, 1), &load);
        a.handle_data(&newer, from, Duration::ZERO);
        assert_eq!(a.drops().total(), 3);
        assert_eq!(a.stats().accepted_packets, 3);
    }

    #[test]
    fn an_announce_must_name_its_header_address() {
        let mut a = lone(1, AgentConfig::default());
        let from = ident(2).addr;
        let elsewhere = NodeIdentity {
            addr: ident(3).addr,
            ..ident(2)
        };
        let body = wire::encode_announce(&elsewhere);
        a.handle_data(
            &wire::encode(&key(), Kind::Announce, &sender(2, 1, 1), &body),
            from,
            Duration::ZERO,
        );
        assert_eq!(a.drops().readdressed, 1);
        let body = wire::encode_announce(&ident(2));
        a.handle_data(
            &wire::encode(&key(), Kind::Announce, &sender(2, 1, 2), &body),
            from,
            Duration::ZERO,
        );
        assert_eq!(a.drops().total(), 1, "the honest announce is taken");
    }

    #[test]
    fn frames_count_up_from_one_and_carry_our_identity() {
        let mut a = lone(1, AgentConfig::default());
        a.announce_to(ident(2).addr);
        a.announce_to(ident(3).addr);
        let out = a.drain_outgoing();
        let seqs: Vec<u64> = out
            .iter()
            .map(|o| wire::decode(&[key()], &o.data).unwrap().from.seq)
            .collect();
        assert_eq!(seqs, [1, 2]);
        let f = wire::decode(&[key()], &out[0].data).unwrap();
        assert_eq!(f.from, sender(1, 1, 1));
    }

    #[test]
    fn another_wire_version_is_counted_and_an_accepted_key_works() {
        let old_key = ClusterKey::from_bytes(vec![4; 32]).unwrap();
        let cfg = AgentConfig {
            accept_key: Some(old_key.clone()),
            ..AgentConfig::default()
        };
        let mut a = lone(1, cfg);
        let from = ident(2).addr;
        let v1 = [
            b'O', b'M', b'D', 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        for _ in 0..3 {
            a.handle_data(&v1, from, Duration::ZERO);
        }
        assert_eq!(a.drops().version, 3);
        assert_eq!(
            a.version_drops, 2,
            "one warning for the first; the next names the two since"
        );
        a.handle_data(&v1, from, VERSION_WARN_EVERY);
        assert_eq!(a.version_drops, 0, "warned again after the interval");
        assert_eq!(a.version_warned, Some(VERSION_WARN_EVERY));
        let load = wire::encode_load(&[]);
        a.handle_data(
            &wire::encode(&old_key, Kind::Load, &sender(2, 1, 1), &load),
            from,
            Duration::ZERO,
        );
        a.handle_data(
            &wire::encode(&key(), Kind::Load, &sender(2, 1, 2), &load),
            from,
            Duration::ZERO,
        );
        assert_eq!(a.drops().total(), 4, "old and new key both accepted");
        // We send with the primary key only.
        a.announce_to(from);
        let out = a.drain_outgoing();
        assert_eq!(out[0].data[5], key().id());
        assert!(wire::decode(&[old_key], &out[0].data).is_err());
    }

    const fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Node `n`'s ANNOUNCE, its `seq`-th frame.
    fn announce_from(n: u8, seq: u64) -> Vec<u8> {
        let body = wire::encode_announce(&ident(n));
        wire::encode(&key(), Kind::Announce, &sender(n, 1, seq), &body)
    }

    /// The kind and destination of each frame `a` has to send.
    fn sent(a: &mut Agent) -> Vec<(Kind, SocketAddrV4)> {
        a.drain_outgoing()
            .iter()
            .map(|o| (wire::decode(&[key()], &o.data).unwrap().kind, o.to))
            .collect()
    }

    #[test]
    fn an_announce_is_learned_first_hand_and_answered_by_the_settled() {
        let mut a = lone(1, AgentConfig::default());
        let t0 = Duration::from_secs(1);
        // Alone: take the announcer as a member and answer so it learns us; no member lists.
        a.handle_data(&announce_from(2, 1), ident(2).addr, t0);
        assert_eq!(a.active_ids(), [ident(2).id]);
        assert_eq!(sent(&mut a), [(Kind::Announce, ident(2).addr)]);
        // Joining ourselves: take it, do not answer (a rack booting would trade n² answers).
        a.handle_data(&announce_from(3, 1), ident(3).addr, t0 + ms(100));
        assert_eq!(a.num_members(), 2);
        assert_eq!(sent(&mut a), []);
        // Settled: answer a newcomer.
        a.handle_data(&announce_from(4, 1), ident(4).addr, t0 + ANNOUNCE_ALONE);
        assert_eq!(sent(&mut a), [(Kind::Announce, ident(4).addr)]);
        // Known already: nothing.
        a.handle_data(&announce_from(4, 2), ident(4).addr, t0 + ANNOUNCE_ALONE);
        assert_eq!(sent(&mut a), []);
        assert_eq!(a.num_members(), 3);
        assert_eq!(a.drops().total(), 0);
    }

    #[test]
    fn a_seed_answers_every_newcomer() {
        let cfg = AgentConfig {
            seeds: vec![ident(1).addr],
            ..AgentConfig::default()
        };
        let mut s = lone(1, cfg);
        for n in 2..6 {
            s.handle_data(&announce_from(n, 1), ident(n).addr, Duration::ZERO);
            assert_eq!(sent(&mut s), [(Kind::Announce, ident(n).addr)]);
        }
        assert_eq!(s.num_members(), 4);
    }

    #[test]
    fn a_joiner_asks_for_the_member_list_then_announces_itself_to_a_few() {
        let mut a = lone(1, AgentConfig::default());
        let t0 = Duration::from_secs(1);
        for n in 2..=6 {
            a.handle_data(&announce_from(n, 1), ident(n).addr, t0);
        }
        a.drain_outgoing();
        assert_eq!(
            a.next_wakeup(),
            Duration::ZERO,
            "the join's first step is due"
        );
        a.poll(t0);
        // One foca announce to a member: it answers with its member list.
        assert!(matches!(sent(&mut a)[..], [(Kind::Swim, _)]));
        let fanout = AgentConfig::default().swim.join_fanout;
        a.poll(t0 + AgentConfig::default().swim.probe_rtt);
        let to: HashSet<SocketAddrV4> = sent(&mut a)
            .into_iter()
            .filter(|(k, _)| *k == Kind::Announce)
            .map(|(_, to)| to)
            .collect();
        assert_eq!(to.len(), fanout, "{to:?}");
        assert!(to.iter().all(|t| (2..=6).any(|n| ident(n).addr == *t)));
        a.poll(t0 + ms(400));
        assert!(
            sent(&mut a).iter().all(|(k, _)| *k != Kind::Announce),
            "only once"
        );
    }

    #[test]
    fn load_goes_to_one_peer_a_round() {
        let mut a = lone(1, AgentConfig::default());
        for n in 2..=6 {
            a.handle_data(&announce_from(n, 1), ident(n).addr, Duration::ZERO);
        }
        for round in 1..=5u64 {
            a.set_sample(Sample {
                cpus: 1,
                loadavg1: 0.0,
                runnable: 0.0,
                mem_total: 1,
                mem_free: 1,
            });
            a.poll(Duration::from_secs(round));
            let loads = sent(&mut a)
                .into_iter()
                .filter(|(k, _)| *k == Kind::Load)
                .count();
            assert_eq!(loads, 1, "round {round}");
        }
    }

    #[test]
    fn a_load_change_is_news_for_a_while() {
        let mut a = lone(1, AgentConfig::default());
        let load = |r: f64| Sample {
            cpus: 1,
            loadavg1: r,
            runnable: r,
            mem_total: 1,
            mem_free: 1,
        };
        let news = |a: &Agent| a.own_record().unwrap().flags & wire::FLAG_NEWS != 0;
        for i in 0..NEWS_ROUNDS {
            a.set_sample(load(0.0));
            assert!(news(&a), "a node's first load is news, sample {i}");
        }
        a.set_sample(load(0.0));
        assert!(!news(&a), "for NEWS_ROUNDS samples");
        a.set_sample(load(0.1));
        assert!(!news(&a), "a small move is not news");
        a.set_sample(load(4.0));
        assert!(news(&a), "a jump is");
        for _ in 0..NEWS_ROUNDS {
            a.set_sample(load(4.0));
        }
        a.set_sample(load(0.0));
        assert!(news(&a), "a node falling idle is news too");
        for _ in 0..NEWS_ROUNDS + 3 {
            a.set_sample(load(0.0));
        }
        assert!(!news(&a));
        a.set_flags(Flags {
            block: true,
            ..Flags::default()
        });
        assert!(news(&a), "so are other flags");
    }

    #[test]
    fn a_refuted_suspicion_does_not_make_the_member_rejoin() {
        let cfg = AgentConfig {
            seeds: vec![ident(1).addr],
            ..AgentConfig::default()
        };
        let mut a = vec![lone(1, cfg.clone()), lone(2, cfg)];
        let mut now = Duration::ZERO;
        let mut run = |a: &mut [Agent], secs: u64, deliver: bool| {
            for _ in 0..secs * 100 {
                for ag in a.iter_mut() {
                    ag.poll(now);
                }
                if deliver {
                    exchange(a, now);
                } else {
                    a.iter_mut().for_each(|ag| drop(ag.drain_outgoing()));
                }
                now += ms(10);
            }
        };
        run(&mut a, 2, true);
        assert_eq!((a[0].num_members(), a[1].num_members()), (1, 1));
        a.iter_mut().for_each(|ag| drop(ag.drain_events()));
        // Every packet lost for a second: each suspects the other, then both refute.
        run(&mut a, 1, false);
        run(&mut a, 5, true);
        for ag in a.iter_mut() {
            let events = ag.drain_events();
            assert_eq!(ag.identity().generation, 1, "{events:?}");
            assert_eq!(ag.num_members(), 1);
            assert!(
                !events
                    .iter()
                    .any(|e| matches!(e, Event::Rejoined(_) | Event::Down(_))),
                "{events:?}"
            );
        }
    }
}
