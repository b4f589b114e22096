//! The omd-to-omd protocol (version [`PROTOCOL_VERSION`], over [`session`](super::session)):
//! migrations, the stdio relay between a job's node and its home, and job requests.
//!
//! # A migration, A (source) to B (target)
//! ```text
//!  A (job runs here)                               B
//!  | check the job can move (migratable)           |
//!  | Offer{mid, record, rss, cpuinfo, load} -----> | block, memory, CRIU, CPU ok?
//!  |                                               | a load move: still below `load`?
//!  | <-------------------- Accept | Refuse{reason} | Busy{reason}
//!  | pre-dump rounds (job runs; see pre_dump), each:
//!  |   criu pre-dump --track-mem                   |
//!  |   Round{n} File{name} Chunk* ... -----------> | images/n/, parent -> ../n-1
//!  | criu dump --leave-stopped (job frozen on A)   |
//!  | keeper: Drain -> StdioState                   |
//!  | Round{last} File{name} Chunk* ... Images{stdio} -> | keeper restores images/last, stopped
//!  | <------------------------------ Ready | Failed{reason}
//!  | record "committed" (outcome file), kill original
//!  | Commit --------------------------------------> | job runs (SIGCONT); relay attaches home
//!  | <------------------------------------- Done    | images removed on both sides
//! ```
//! Before A records the commit, any failure (a refusal, a dead link, a dead B) makes A resume
//! the job and B discard its copy. After it, B holds the only copy. A B that lost the link
//! after Ready asks A (or A's restarted omd) `Outcome{mid}` until it gets an answer, and runs or
//! discards accordingly: a job is never lost and never runs twice.
//!
//! # A job's states (on the node that holds it)
//! ```text
//!   start ──> Running ──dump──> Frozen ──Commit sent──> (gone here; Running on B)
//!               ^                 │
//!               └──── resume ─────┘ (refused, failed, link lost before commit)
//!   restore ──> Held ──Commit──> Running ──exit──> Exited ──status delivered──> (gone)
//!                 └──── no commit ────> discarded
//! ```
//!
//! # Relay
//! The job's node opens `Attach{job, epoch}` to the job's home; then both sides exchange
//! [`Io`] messages. `epoch` is the job's migration count: the home follows the newest.

pub use super::session::PROTOCOL_VERSION;

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::job::record::{JobId, JobRecord, JobView};
use crate::job::stdio::{Io, StdioState};
use crate::migration::history::MoveEvent;

/// Where a job should go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    /// A node, by name.
    Node(String),
    /// Its home node.
    Home,
}

/// The outcome of a migration, as the source knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The source killed its copy: the target's copy is the job.
    Committed,
    /// The source resumed its copy (or never froze it, or was asked before it decided): the
    /// target must discard its copy.
    Aborted,
}

/// Every message between two omd.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Msg {
    /// Source → target: may this job come?
    Offer {
        /// Migration id, unique per source.
        mid: u64,
        /// The job.
        record: JobRecord,
        /// Its resident memory, bytes.
        rss: u64,
        /// The source's CPU (`criu cpuinfo dump`): the target checks it can run the job.
        cpuinfo: ByteBuf,
        /// For a move the balancer made for load, the source's load as it counted it: the
        /// target answers `Busy` when it would not stay below that with the job.
        load: Option<f64>,
    },
    /// Target → source: send it.
    Accept,
    /// Target → source: not this load move, the target is (about to be) as loaded as the
    /// source (a sentence). The source offers it nothing for a while; the job stays eligible.
    Busy {
        /// Why.
        reason: String,
    },
    /// Either way: no (a sentence).
    Refuse {
        /// Why.
        reason: String,
    },
    /// Source → target: the image files that follow belong to round `n` (0, 1, ... in order):
    /// the pre-dumps, then the final dump, whose round is the last before `Images`.
    Round {
        /// Round number.
        n: u32,
    },
    /// Source → target: an image file follows.
    File {
        /// File name (one path component).
        name: String,
    },
    /// Source → target: a piece of the current file.
    Chunk {
        /// Bytes.
        data: ByteBuf,
    },
    /// Source → target: all images sent; the job's stdio at the freeze.
    Images {
        /// Stdio state.
        stdio: StdioState,
    },
    /// Target → source: restored, stopped, waiting for Commit.
    Ready,
    /// Source → target: the original is gone; run yours.
    Commit,
    /// Target → source: running.
    Done,
    /// Target → source (or a peer asked): what happened to migration `mid`?
    Outcome {
        /// Migration id.
        mid: u64,
        /// The job.
        job: JobId,
    },
    /// Reply to Outcome.
    OutcomeIs {
        /// The answer.
        outcome: Outcome,
    },
    /// Job node → home: this connection carries the job's stdio from now on.
    Attach {
        /// The job.
        job: JobId,
        /// Its migration count.
        epoch: u32,
        /// The node it runs on.
        node: String,
        /// Host pid of its init there.
        pid: i32,
    },
    /// Stdio, signals, exit (relay).
    Io(Io),
    /// Home → node: start this job there (`omrun --node`, `--best`).
    Start {
        /// The job.
        record: JobRecord,
    },
    /// Reply to Start: the job runs.
    Started,
    /// Any node → the job's node: move the job (from `omctl migrate`, `expel`, `bring`).
    Migrate {
        /// The job.
        job: JobId,
        /// Where to.
        to: Target,
        /// Who asks (uid; 0 = root).
        uid: u32,
    },
    /// Reply to Migrate and other requests: a sentence, or an error sentence.
    Result {
        /// Ok(what happened) or Err(why not).
        result: Result<String, String>,
    },
    /// List the jobs this node runs.
    ListJobs,
    /// Reply to ListJobs.
    Jobs {
        /// Rows.
        jobs: Vec<JobView>,
    },
    /// List the migrations this node started (its kept history).
    ListMoves,
    /// Reply to ListMoves, oldest first.
    Moves {
        /// Events.
        moves: Vec<MoveEvent>,
    },
    /// The master (or any holder of the cluster key, which is root's) → a node: apply a node
    /// control as `omctl` would for root there. Reply: `Result`.
    Control {
        /// What to do.
        action: crate::api::Control,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::record::{JobSpec, NodeRef};

    #[test]
    fn every_message_round_trips() {
        let record = JobRecord {
            id: JobId::new("node1", 7),
            spec: JobSpec {
                argv: vec!["sleep".into(), "1".into()],
                env: vec!["A=b".into()],
                cwd: "/".into(),
                uid: 1000,
                gid: 1000,
                groups: vec![1000, 27],
            },
            home: NodeRef {
                name: "node1".into(),
                peer: "10.0.0.1:7947".parse().unwrap(),
            },
            home_only: false,
            migrations: 2,
            started_ms: 5,
        };
        let msgs = vec![
            Msg::Offer {
                mid: 1,
                record: record.clone(),
                rss: 4096,
                cpuinfo: ByteBuf::from(vec![9; 4]),
                load: Some(3.5),
            },
            Msg::Accept,
            Msg::Busy {
                reason: "busy".into(),
            },
            Msg::Refuse {
                reason: "no".into(),
            },
            Msg::Round { n: 3 },
            Msg::File {
                name: "pages-1.img".into(),
            },
            Msg::Chunk {
                data: ByteBuf::from(vec![1, 2, 3]),
            },
            Msg::Images {
                stdio: StdioState::default(),
            },
            Msg::Ready,
            Msg::Commit,
            Msg::Done,
            Msg::Outcome {
                mid: 1,
                job: record.id.clone(),
            },
            Msg::OutcomeIs {
                outcome: Outcome::Committed,
            },
            Msg::Attach {
                job: record.id.clone(),
                epoch: 2,
                node: "node2".into(),
                pid: 77,
            },
            Msg::Io(Io::Signal { sig: 15 }),
            Msg::Start { record },
            Msg::Migrate {
                job: JobId::new("node1", 7),
                to: Target::Home,
                uid: 0,
            },
            Msg::Result {
                result: Err("no such job".into()),
            },
            Msg::ListMoves,
            Msg::Moves {
                moves: vec![MoveEvent {
                    job: JobId::new("node1", 7),
                    command: "sleep 1".into(),
                    from: "node1".into(),
                    to: "node2".into(),
                    at_ms: 9,
                    why: crate::migration::history::Why::Memory,
                    ok: false,
                    frozen_ms: 0,
                    total_ms: 40,
                    bytes: 0,
                    error: Some("refused".into()),
                }],
            },
            Msg::Control {
                action: crate::api::Control::Block,
            },
        ];
        for m in msgs {
            let p = crate::frame::to_payload(&m).unwrap();
            assert_eq!(crate::frame::from_payload::<Msg>(&p).unwrap(), m);
        }
    }
}
