//! The local control API of `omd`: one JSON object per line over the unix socket
//! (`/run/omd/omd.sock` by default), one JSON reply per request line. `omctl` is its client;
//! ombootd serves the same [`NodeInfo`] rows in its HTTP status API.
//!
//! Requests that change the node (`Control`) need root: omd checks the caller with SO_PEERCRED.

use serde::{Deserialize, Serialize};

/// Default path of omd's control socket.
pub const DEFAULT_SOCKET: &str = "/run/omd/omd.sock";

/// A request line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// The whole membership and load table.
    Nodes,
    /// One node, by id (hex), name or address.
    Whois {
        /// Id, name or IP.
        who: String,
    },
    /// Change this node's behaviour (mosctl's node controls). Root only.
    Control {
        /// What to do.
        action: Control,
    },
    /// omrun: start a job; after the `Started` reply the connection carries its stdio frames.
    Run(crate::jobs::home::RunRequest),
    /// Every job of the cluster.
    Jobs,
    /// Move a job (`omctl migrate JOB NODE|home`).
    Migrate {
        /// Job id, or the deputy's pid on this node.
        job: String,
        /// Node name, or `home`.
        to: String,
    },
    /// The migrations every live node remembers starting (`omctl migrations`, `omctl mon`).
    Moves,
}

/// mosctl's node controls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Control {
    /// Forbid automatic migration of local processes away.
    Stay,
    /// Allow it again (undoes `stay` and `lstay`).
    Nostay,
    /// Only local processes stay; guests may leave.
    Lstay,
    /// Refuse arriving guest processes.
    Block,
    /// Accept guests again.
    Noblock,
    /// Stop sending load information (the node keeps its membership).
    Quiet,
    /// Send load information again.
    Noquiet,
    /// Send all guests away and block.
    Expel,
    /// Call all own migrated processes home.
    Bring,
}

/// A reply line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Reply {
    /// The table, this node first.
    Nodes {
        /// Rows.
        nodes: Vec<NodeInfo>,
    },
    /// One row.
    Node {
        /// The row.
        node: NodeInfo,
    },
    /// A control was applied; the flags as they now are.
    Done {
        /// Current flags.
        flags: Flags,
    },
    /// A job started (omrun).
    Started {
        /// Its id.
        job: crate::job::record::JobId,
        /// Where it runs.
        node: String,
    },
    /// The cluster's jobs.
    Jobs {
        /// Rows.
        jobs: Vec<crate::job::record::JobView>,
    },
    /// The cluster's kept migrations, oldest first, each once.
    Moves {
        /// Events.
        moves: Vec<crate::migration::history::MoveEvent>,
    },
    /// What a job command did, one sentence per line.
    Message {
        /// Text.
        text: String,
    },
    /// The request failed; `error` is a sentence for the user.
    Error {
        /// What went wrong.
        error: String,
    },
}

/// Membership state of a node as this node sees it (SWIM).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberState {
    /// Answering.
    Alive,
    /// Missed probes; may be dead.
    Suspect,
    /// Declared dead.
    Dead,
}

/// Node flags set with `omctl` controls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flags {
    /// `stay`.
    pub stay: bool,
    /// `lstay`.
    pub lstay: bool,
    /// `block`.
    pub block: bool,
    /// `quiet`.
    pub quiet: bool,
}

impl Flags {
    /// The names of the flags set, in mosctl's order.
    pub fn names(&self) -> Vec<&'static str> {
        [
            (self.stay, "stay"),
            (self.lstay, "lstay"),
            (self.block, "block"),
            (self.quiet, "quiet"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
    }
}

/// The latest load record of a node.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Load {
    /// Online CPUs.
    pub cpus: u32,
    /// Speed figure; 1000 = a standard CPU (openMosix `setspeed` scale).
    pub speed: u32,
    /// Load normalised per CPU and per speed: 1.0 = one standard CPU fully busy per CPU.
    pub load: f64,
    /// Raw 1-minute load average.
    pub loadavg1: f64,
    /// Total memory, bytes.
    pub mem_total: u64,
    /// Free (available) memory, bytes.
    pub mem_free: u64,
    /// Guest jobs running here (jobs whose home is another node).
    pub guests: u32,
    /// CRIU's checks passed at omd start: the node can dump jobs and take migrations.
    #[serde(default)]
    pub migration: bool,
}

/// One row of the cluster table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Stable id (16 hex digits, from machine-id or MAC, never from the IP).
    pub id: String,
    /// Host name.
    pub name: String,
    /// Gossip address, `ip:port`.
    pub addr: String,
    /// Membership state.
    pub state: MemberState,
    /// This row is the node answering.
    pub is_self: bool,
    /// An observer (the master's ombootd): member, no load, never a migration target.
    pub observer: bool,
    /// Latest load, if any has arrived.
    pub load: Option<Load>,
    /// Age of that load record in milliseconds.
    pub load_age_ms: Option<u64>,
    /// The node's flags.
    pub flags: Flags,
}

impl NodeInfo {
    /// Its address, from `addr`.
    pub fn ip(&self) -> Option<std::net::Ipv4Addr> {
        self.addr.split(':').next()?.parse().ok()
    }
}
