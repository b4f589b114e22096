//! The home side of a job: the deputy's connection (omrun, on this node) and the relay that the
//! job's current node attaches. Output goes to the deputy, stdin and signals to the job; when
//! the job moves, the new node attaches with a higher epoch and the deputy is told to resend
//! what was not acknowledged.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

use crate::frame;
use crate::job::record::{JobId, JobRecord, JobSpec};
use crate::job::stdio::Io;
use crate::jobs::local::{self, StartFile};
use crate::jobs::{HomeJob, Jobs};
use crate::migration::protocol::Msg;
use crate::migration::session::{Reader, Session, Writer};

/// omrun's request (the first JSON line on omd's socket).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRequest {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Environment.
    pub env: Vec<String>,
    /// Working directory.
    pub cwd: String,
    /// `-h`: never move.
    pub home_only: bool,
    /// `--node NAME`.
    pub node: Option<String>,
    /// `--best`.
    pub best: bool,
}

/// omd → deputy, after the JSON reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToDeputy {
    /// Output, stdin progress, exit.
    Io(Io),
    /// The job now runs on this node: resend what is unacknowledged.
    Where {
        /// Node name.
        node: String,
    },
}

/// The caller of omrun, from SO_PEERCRED and /proc.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    /// pid of omrun.
    pub pid: u32,
    /// uid.
    pub uid: u32,
    /// gid.
    pub gid: u32,
}

/// Supplementary groups of `pid`.
pub fn groups_of(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Groups:").map(str::to_owned))
        })
        .map(|g| {
            g.split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Start the job of `req` for `caller`; returns the record and where it runs.
pub async fn start(
    jobs: &Jobs,
    req: &RunRequest,
    caller: Caller,
) -> Result<(JobRecord, String), String> {
    if req.argv.is_empty() {
        return Err("no command given".into());
    }
    let record = JobRecord {
        id: JobId::new(&jobs.0.cfg.name, caller.pid),
        spec: JobSpec {
            argv: req.argv.clone(),
            env: req.env.clone(),
            cwd: req.cwd.clone(),
            uid: caller.uid,
            gid: caller.gid,
            groups: groups_of(caller.pid),
        },
        home: jobs.me(),
        home_only: req.home_only,
        migrations: 0,
        started_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    };
    let target = if req.home_only {
        jobs.me()
    } else if let Some(n) = &req.node {
        jobs.peer_of(n)?
    } else if req.best || jobs.0.cfg.policy.placement == crate::balance::policy::Placement::Best {
        jobs.best_node()
    } else {
        jobs.me()
    };
    jobs.state().home.insert(
        record.id.clone(),
        HomeJob {
            record: record.clone(),
            node: target.name.clone(),
            epoch: 0,
            pid: 0,
            deputy: None,
            link: None,
            pending: Vec::new(),
            exited: false,
        },
    );
    let started = if target.name == jobs.0.cfg.name {
        start_here(jobs, &record).await
    } else {
        start_there(jobs, &record, &target).await
    };
    if let Err(e) = started {
        jobs.state().home.remove(&record.id);
        return Err(e);
    }
    Ok((record, target.name))
}

/// Start a job on this node.
pub async fn start_here(jobs: &Jobs, record: &JobRecord) -> Result<(), String> {
    let pid = local::start_keeper(
        jobs,
        record,
        StartFile::Spawn {
            spec: record.spec.clone(),
        },
    )
    .await?;
    local::spawn_task(jobs, record.clone(), pid, false);
    Ok(())
}

async fn start_there(
    jobs: &Jobs,
    record: &JobRecord,
    to: &crate::job::record::NodeRef,
) -> Result<(), String> {
    let mut s = Session::connect(to.peer, &jobs.0.key)
        .await
        .map_err(|e| format!("cannot reach {}: {e}", to.name))?;
    s.send(&Msg::Start {
        record: record.clone(),
    })
    .await
    .map_err(|e| e.to_string())?;
    match tokio::time::timeout(Duration::from_secs(60), s.recv::<Msg>()).await {
        Ok(Ok(Some(Msg::Started))) => Ok(()),
        Ok(Ok(Some(Msg::Refuse { reason }))) => {
            Err(format!("{} refused the job: {reason}", to.name))
        }
        _ => Err(format!("{} did not start the job", to.name)),
    }
}

/// Serve a deputy connection until the job has ended and its status was delivered, or the
/// deputy went away (then the job is killed: no orphans).
pub async fn serve_deputy<R, W>(jobs: Jobs, id: JobId, r: R, mut w: W)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel::<ToDeputy>(64);
    if let Some(h) = jobs.state().home.get_mut(&id) {
        h.deputy = Some(tx);
    }
    let mut din = frame::io::spawn_reader::<Io, _>(r);
    loop {
        tokio::select! {
            m = rx.recv() => {
                let Some(m) = m else { break };
                if let ToDeputy::Io(Io::Exited { .. }) = &m
                    && let Some(h) = jobs.state().home.get_mut(&id)
                {
                    h.exited = true;
                }
                if frame::io::write(&mut w, &m).await.is_err() {
                    break;
                }
            }
            m = din.recv() => {
                let Some(Some(io)) = m else { break };
                to_job(&jobs, &id, io).await;
            }
        }
    }
    // The deputy is gone.
    let exited = {
        let mut s = jobs.state();
        let exited = s.home.get(&id).is_none_or(|h| h.exited);
        if exited {
            s.home.remove(&id);
        } else if let Some(h) = s.home.get_mut(&id) {
            h.deputy = None;
        }
        exited
    };
    if !exited {
        tracing::info!(job = %id, "deputy gone: killing the job");
        to_job(&jobs, &id, Io::Signal { sig: libc::SIGKILL }).await;
    }
}

/// Send `io` towards the job (or keep it until a relay attaches).
async fn to_job(jobs: &Jobs, id: &JobId, io: Io) {
    let link = {
        let mut s = jobs.state();
        let Some(h) = s.home.get_mut(id) else { return };
        match &h.link {
            Some(l) => Some(l.clone()),
            None => {
                if matches!(io, Io::Signal { .. }) {
                    h.pending.push(io.clone());
                }
                None
            }
        }
    };
    if let Some(l) = link {
        let _ = l.send(io).await;
    }
}

/// A node attached the relay of a job homed here.
pub async fn attach(
    jobs: Jobs,
    reader: Reader,
    mut writer: Writer,
    job: JobId,
    epoch: u32,
    node: String,
    pid: i32,
) {
    let (tx, mut rx) = mpsc::channel::<Io>(64);
    let taken = {
        let mut s = jobs.state();
        match s.home.get_mut(&job) {
            Some(h) if epoch >= h.epoch => {
                h.link = Some(tx.clone());
                h.epoch = epoch;
                h.node = node.clone();
                h.pid = pid;
                Some((std::mem::take(&mut h.pending), h.deputy.clone()))
            }
            _ => None,
        }
    };
    let Some((pending, deputy)) = taken else {
        let _ = writer
            .send(&Msg::Result {
                result: Err(format!(
                    "job {job} is not known at its home (its omrun is gone)"
                )),
            })
            .await;
        return;
    };
    tracing::info!(job = %job, node = %node, epoch, "job relay attached");
    if let Some(d) = &deputy {
        let _ = d.send(ToDeputy::Where { node: node.clone() }).await;
    }
    for io in pending {
        let _ = writer.send(&Msg::Io(io)).await;
    }
    let mut nin = reader.spawn_into_channel::<Msg>();
    loop {
        tokio::select! {
            io = rx.recv() => {
                let Some(io) = io else { break };
                if writer.send(&Msg::Io(io)).await.is_err() {
                    break;
                }
            }
            m = nin.recv() => {
                let Some(Some(Msg::Io(io))) = m else { break };
                let deputy = jobs.state().home.get(&job).and_then(|h| h.deputy.clone());
                match (deputy, &io) {
                    (Some(d), _) => { let _ = d.send(ToDeputy::Io(io)).await; }
                    (None, Io::Exited { out, err, .. }) => {
                        // Nobody to deliver to (the deputy was killed): let the keeper go.
                        let _ = writer.send(&Msg::Io(Io::Ack { out: *out, err: *err })).await;
                        jobs.state().home.remove(&job);
                    }
                    (None, _) => {}
                }
            }
        }
    }
    let mut s = jobs.state();
    if let Some(h) = s.home.get_mut(&job)
        && h.epoch == epoch
        && h.link.as_ref().is_some_and(|l| l.same_channel(&tx))
    {
        h.link = None;
    }
}
