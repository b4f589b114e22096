//! What the balancer sees: this node's and its peers' loads as the gossip gives them, this
//! node's jobs as /proc measures them, and the moves it made recently. Plain data, built by
//! `gather` in omd and by hand in tests and the simulation.

use std::time::Duration;

use crate::api::Flags;
use crate::job::record::JobId;

/// One node's load record.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeLoad {
    /// Host name.
    pub name: String,
    /// Normalised load: runnable tasks per CPU, per standard (1000) speed.
    pub load: f64,
    /// CPUs.
    pub cpus: u32,
    /// Speed figure (1000 = standard CPU).
    pub speed: u32,
    /// Memory, bytes.
    pub mem_total: u64,
    /// Available memory, bytes.
    pub mem_free: u64,
}

impl NodeLoad {
    /// What a job of `demand` runnable tasks adds to this node's normalised load.
    pub fn share(&self, demand: f64) -> f64 {
        crate::load::normalise(demand, self.cpus, self.speed)
    }

    /// Speed, in standard CPUs, of one task on this node at normalised load `load`: a full CPU
    /// while the node is not overloaded, a fair share of one after.
    pub fn rate(&self, load: f64) -> f64 {
        let per_cpu = load * f64::from(self.speed.max(1)) / 1000.0;
        f64::from(self.speed.max(1)) / 1000.0 / per_cpu.max(1.0)
    }

    /// Free memory below the low-water mark?
    pub fn short_of_memory(&self, mem_low: f64) -> bool {
        (self.mem_free as f64) < mem_low * self.mem_total as f64
    }
}

/// A peer that could take a job: alive, takes migrations, not blocked or quiet, fresh record.
#[derive(Debug, Clone, PartialEq)]
pub struct Peer {
    /// Its load.
    pub node: NodeLoad,
}

/// One of this node's jobs.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Job id.
    pub id: JobId,
    /// Since it started.
    pub age: Duration,
    /// Since it arrived here (its age if it never moved).
    pub resident: Duration,
    /// Resident memory of its processes, bytes.
    pub rss: u64,
    /// Runnable tasks it adds to a node, averaged over the last round.
    pub demand: f64,
    /// Its home is another node.
    pub guest: bool,
    /// It may move now (not `omrun -h`, not already moving, not cooling after a failure).
    pub movable: bool,
}

/// A move this node made recently.
#[derive(Debug, Clone, PartialEq)]
pub struct RecentMove {
    /// Target.
    pub to: String,
    /// The job's demand.
    pub demand: f64,
    /// How long ago it was made.
    pub ago: Duration,
}

/// Everything one decision reads.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    /// This node.
    pub me: NodeLoad,
    /// Its flags (stay, lstay; block and quiet matter to others).
    pub flags: Flags,
    /// Peers that could take a job.
    pub peers: Vec<Peer>,
    /// This node's jobs.
    pub jobs: Vec<Candidate>,
    /// Migration bandwidth measured by past moves, bytes/s, if any.
    pub bandwidth: Option<f64>,
    /// This node's moves within the policy's `settle` time.
    pub recent: Vec<RecentMove>,
    /// Peers that answered a load move of ours "busy" within `settle`: not offered another.
    pub busy: Vec<String>,
    /// Varies per node and round: spreads near-equal choices over targets.
    pub tiebreak: u64,
}
