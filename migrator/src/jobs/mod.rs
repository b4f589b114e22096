//! omd's jobs: the ones whose deputy is on this node (home side) and the ones running here
//! (keeper side), the peer listener that other omd reach for migrations, relays and requests,
//! and the requests of omrun and omctl. The pieces: [`local`] (a job running here),
//! [`home`] (a deputy's link), [`peer`] (the listener), [`requests`] (omctl's job commands).

pub mod client;
pub mod home;
pub mod local;
pub mod peer;
pub mod requests;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;

use crate::job::keeper::Phase;
use crate::job::record::{JobId, JobRecord, JobState, JobView, NodeRef, command_line};
use crate::job::stdio::Io;
use crate::key::ClusterKey;
use crate::migration::criu::{Criu, NodeCheck};
use crate::migration::outcome::Outcomes;
use crate::node::NodeHandle;

/// Default TCP port of the peer protocol.
pub const DEFAULT_PEER_PORT: u16 = 7947;

/// Settings of the jobs subsystem.
#[derive(Debug, Clone)]
pub struct JobsConfig {
    /// One directory per job hosted here.
    pub jobs_dir: PathBuf,
    /// Migration outcomes.
    pub outcomes_dir: PathBuf,
    /// This node's name.
    pub name: String,
    /// This node's address (the gossip one).
    pub ip: Ipv4Addr,
    /// TCP port of the peer protocol (the same on every node).
    pub peer_port: u16,
    /// The omjob program (keeper and init).
    pub omjob: PathBuf,
    /// When to pre-dump a job that moves away.
    pub pre_dump: crate::migration::pre_dump::PreDumpPolicy,
    /// Balancing rules.
    pub policy: crate::balance::Policy,
}

/// What the home side holds for a job whose deputy is here.
#[derive(Debug)]
pub struct HomeJob {
    /// The job.
    pub record: JobRecord,
    /// Node it runs on.
    pub node: String,
    /// Its migration count as last attached.
    pub epoch: u32,
    /// Init's pid there.
    pub pid: i32,
    /// To the deputy.
    pub deputy: Option<mpsc::Sender<home::ToDeputy>>,
    /// To the job's node, over its attached relay.
    pub link: Option<mpsc::Sender<Io>>,
    /// Signals that arrived with no relay attached.
    pub pending: Vec<Io>,
    /// The job has exited (status delivered or being delivered).
    pub exited: bool,
}

/// What the node side holds for a job running here.
#[derive(Debug)]
pub struct LocalJob {
    /// The job.
    pub record: JobRecord,
    /// Commands to its task.
    pub cmd: mpsc::Sender<local::Cmd>,
    /// Keeper phase as last seen.
    pub phase: Phase,
    /// Init's host pid.
    pub pid: i32,
    /// A migration is under way.
    pub migrating: bool,
}

/// Both tables.
#[derive(Debug, Default)]
pub struct State {
    /// Jobs whose deputy is here.
    pub home: HashMap<JobId, HomeJob>,
    /// Jobs running here.
    pub local: HashMap<JobId, LocalJob>,
}

/// The subsystem; cheap to clone.
#[derive(Clone)]
pub struct Jobs(pub Arc<Inner>);

/// Shared parts.
pub struct Inner {
    /// Settings.
    pub cfg: JobsConfig,
    /// Cluster key (peer sessions).
    pub key: ClusterKey,
    /// Membership and load.
    pub node: NodeHandle,
    /// CRIU.
    pub criu: Arc<dyn Criu>,
    /// CRIU's checks at start.
    pub check: NodeCheck,
    /// Migration decisions.
    pub outcomes: Outcomes,
    /// Moves this node started.
    pub history: crate::migration::history::History,
    /// Jobs recently sent to each node (moves and placements), for the balancer.
    pub sent: crate::balance::recent::Recent,
    /// Jobs other nodes moved here lately (load moves), for [`crate::balance::admit`].
    pub received: crate::balance::recent::Recent,
    state: Mutex<State>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs")
            .field("cfg", &self.0.cfg)
            .finish_non_exhaustive()
    }
}

impl Jobs {
    /// Set up (directories, outcome records); nothing runs yet.
    pub fn new(
        cfg: JobsConfig,
        key: ClusterKey,
        node: NodeHandle,
        criu: Arc<dyn Criu>,
        check: NodeCheck,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(&cfg.jobs_dir)?;
        std::fs::set_permissions(
            &cfg.jobs_dir,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )?;
        let outcomes = Outcomes::open(cfg.outcomes_dir.clone())?;
        node.with_agent(|a, _| a.set_job_caps(0, check.ok));
        Ok(Self(Arc::new(Inner {
            cfg,
            key,
            node,
            criu,
            check,
            outcomes,
            history: Default::default(),
            sent: Default::default(),
            received: Default::default(),
            state: Mutex::new(State::default()),
        })))
    }

    /// The tables, locked (never across an await).
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// This node as jobs refer to it.
    pub fn me(&self) -> NodeRef {
        NodeRef {
            name: self.0.cfg.name.clone(),
            peer: SocketAddr::new(self.0.cfg.ip.into(), self.0.cfg.peer_port),
        }
    }

    /// Re-advertise the guest count.
    pub fn update_caps(&self) {
        let guests = {
            let s = self.state();
            s.local
                .values()
                .filter(|j| j.record.home.name != self.0.cfg.name)
                .count() as u32
        };
        let ok = self.0.check.ok;
        self.0.node.with_agent(|a, _| a.set_job_caps(guests, ok));
    }

    /// A live, non-observer node by name, as a peer address.
    pub fn peer_of(&self, name: &str) -> Result<NodeRef, String> {
        if name == self.0.cfg.name {
            return Ok(self.me());
        }
        let peer = client::peer_of(&self.0.node.nodes(), name, self.0.cfg.peer_port)?;
        Ok(NodeRef {
            name: name.to_owned(),
            peer,
        })
    }

    /// Where a new job runs fastest now ([`crate::balance::place`], over the balancer's
    /// view): a peer, or this node. The choice counts on that node's load for a while.
    pub fn best_node(&self) -> NodeRef {
        let policy = &self.0.cfg.policy;
        let rows = self.0.node.nodes();
        let Some((me, flags, peers)) = crate::balance::gather::cluster(&rows, policy) else {
            return self.me();
        };
        let now = std::time::Instant::now();
        let view = crate::balance::View {
            me,
            flags,
            peers,
            jobs: Vec::new(),
            bandwidth: None,
            recent: self.0.sent.within(policy.settle, now),
            busy: Vec::new(),
            tiebreak: crate::balance::driver::tiebreak(),
        };
        let Some(name) = crate::balance::place(&view, policy) else {
            self.0.sent.push(&self.0.cfg.name, 1.0, now);
            return self.me();
        };
        match client::peer_of(&rows, &name, self.0.cfg.peer_port) {
            Ok(peer) => {
                self.0.sent.push(&name, 1.0, now);
                NodeRef { name, peer }
            }
            Err(_) => self.me(),
        }
    }

    /// Rows for the jobs this node runs or is home of (local rows win).
    pub fn views(&self) -> Vec<JobView> {
        let s = self.state();
        let mut rows: HashMap<JobId, JobView> = HashMap::new();
        for (id, h) in &s.home {
            rows.insert(
                id.clone(),
                JobView {
                    id: id.clone(),
                    uid: h.record.spec.uid,
                    command: command_line(&h.record.spec.argv),
                    home: h.record.home.name.clone(),
                    node: h.node.clone(),
                    state: if h.exited {
                        JobState::Exited
                    } else {
                        JobState::Running
                    },
                    migrations: h.epoch,
                    pid: if h.node == self.0.cfg.name { h.pid } else { 0 },
                    unmovable: h
                        .record
                        .home_only
                        .then(|| "it was started with omrun -h".into()),
                },
            );
        }
        for (id, l) in &s.local {
            let state = match l.phase {
                _ if l.migrating => JobState::Migrating,
                Phase::Running => JobState::Running,
                Phase::Frozen { .. } | Phase::Held { .. } => JobState::Frozen,
                Phase::Exited { .. } => JobState::Exited,
            };
            if matches!(l.phase, Phase::Held { .. }) {
                continue; // not the job yet: the source still holds it
            }
            rows.insert(
                id.clone(),
                JobView {
                    id: id.clone(),
                    uid: l.record.spec.uid,
                    command: command_line(&l.record.spec.argv),
                    home: l.record.home.name.clone(),
                    node: self.0.cfg.name.clone(),
                    state,
                    migrations: l.record.migrations,
                    pid: l.pid,
                    unmovable: l
                        .record
                        .home_only
                        .then(|| "it was started with omrun -h".into()),
                },
            );
        }
        let mut v: Vec<JobView> = rows.into_values().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }
}
