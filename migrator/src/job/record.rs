//! What a job is: its id, what to run and as whom, where its home is, and how it shows in
//! `omctl jobs`. Serialisable: these travel in migrations and sit in each job's state directory.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where omd keeps one directory per job it hosts (keeper socket, record).
pub const JOBS_DIR: &str = "/run/omd/jobs";

/// A job's id: `<home node name>.<deputy pid>`, unique while its deputy lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct JobId(pub String);

impl JobId {
    /// The id of the job whose deputy is `pid` on `home`.
    pub fn new(home: &str, pid: u32) -> Self {
        Self(format!("{home}.{pid}"))
    }

    /// A safe single path component (ids come from the network).
    pub fn is_valid(&self) -> bool {
        !self.0.is_empty()
            && self.0.len() <= 80
            && self
                .0
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
            && !self.0.starts_with('.')
    }

    /// The job's state directory under `jobs_dir`.
    pub fn dir(&self, jobs_dir: &Path) -> PathBuf {
        jobs_dir.join(&self.0)
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What to run, and as whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Environment, as `KEY=VALUE`.
    pub env: Vec<String>,
    /// Working directory.
    pub cwd: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

/// A node as jobs refer to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRef {
    /// Host name.
    pub name: String,
    /// Its omd peer address (`ip:port`).
    pub peer: std::net::SocketAddr,
}

/// Everything that travels with a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Id.
    pub id: JobId,
    /// What runs.
    pub spec: JobSpec,
    /// Its home node, where the deputy is.
    pub home: NodeRef,
    /// Started with `omrun -h`: never moves.
    pub home_only: bool,
    /// Completed migrations so far; the newest location has the highest count.
    pub migrations: u32,
    /// Start time, ms since the epoch.
    pub started_ms: u64,
}

/// A job's state as `omctl jobs` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Running.
    Running,
    /// Being moved.
    Migrating,
    /// Stopped by a migration and waiting for its outcome.
    Frozen,
    /// Finished; its status is being delivered.
    Exited,
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JobState::Running => "running",
            JobState::Migrating => "migrating",
            JobState::Frozen => "frozen",
            JobState::Exited => "exited",
        })
    }
}

/// One row of `omctl jobs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobView {
    /// Id.
    pub id: JobId,
    /// Owner uid.
    pub uid: u32,
    /// Command line.
    pub command: String,
    /// Home node name.
    pub home: String,
    /// Node it runs on now.
    pub node: String,
    /// State there.
    pub state: JobState,
    /// Completed migrations.
    pub migrations: u32,
    /// Host pid of the job's init on `node` (0 when unknown).
    pub pid: i32,
    /// Why it cannot move now, if it cannot.
    pub unmovable: Option<String>,
}

/// Shell-style one-line rendering of an argv.
pub fn command_line(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Exit status as a shell reports it: the code, or 128 + the signal.
pub fn shell_status(wait_status: i32) -> i32 {
    if libc::WIFEXITED(wait_status) {
        libc::WEXITSTATUS(wait_status)
    } else if libc::WIFSIGNALED(wait_status) {
        128 + libc::WTERMSIG(wait_status)
    } else {
        255
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_from_the_network_must_be_one_safe_path_component() {
        assert!(JobId::new("node1", 42).is_valid());
        for bad in ["", "..", "../x", "a/b", ".hidden", "a b"] {
            assert!(!JobId(bad.into()).is_valid(), "{bad}");
        }
    }

    #[test]
    fn command_lines_quote_what_a_shell_would_split() {
        let argv = ["sh", "-c", "echo 'hi' x"].map(String::from);
        assert_eq!(command_line(&argv), r"sh -c 'echo '\''hi'\'' x'");
    }
}
