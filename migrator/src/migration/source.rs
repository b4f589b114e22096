//! The source side of a migration (see `protocol` for the order): offer, dump leaving the job
//! stopped, drain its stdio, stream the images, wait for Ready, decide, kill, commit. Any failure
//! before the decision resumes the job here.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::job::record::{JobId, NodeRef, command_line};
use crate::job::tree;
use crate::jobs::Jobs;
use crate::jobs::local::{self, Cmd};
use crate::migration::criu::{Criu, CriuError};
use crate::migration::history::{self, MoveEvent, Why};
use crate::migration::migratable::{self, Storage};
use crate::migration::protocol::{Msg, Outcome, Target};
use crate::migration::session::Session;
use crate::migration::transfer;

/// Why a job was not moved.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NotMoved {
    /// The target answered a load move "busy" (a sentence): try it later, the job may go
    /// elsewhere meanwhile.
    #[error("{0}")]
    Busy(String),
    /// Anything else (a sentence); the job runs on here.
    #[error("{0}")]
    Failed(String),
}

impl From<String> for NotMoved {
    fn from(s: String) -> Self {
        Self::Failed(s)
    }
}

/// How a migration went, for the caller's sentence and the benchmark.
#[derive(Debug, Clone)]
pub struct Moved {
    /// Image bytes sent, in all.
    pub bytes: u64,
    /// Bytes of each pre-dump round, sent while the job ran.
    pub rounds: Vec<u64>,
    /// From the dump's start to Commit: the job's frozen time.
    pub frozen: Duration,
    /// From the offer to Done.
    pub total: Duration,
}

/// Move job `id`, running here, to `to`, on behalf of `uid` (0 = root), for reason `why`
/// (kept in the node's move history once an attempt was made). A load move carries this
/// node's `load` as the balancer counted it, for the target's admission.
pub async fn migrate_out(
    jobs: &Jobs,
    id: &JobId,
    to: &Target,
    uid: u32,
    why: Why,
    load: Option<f64>,
) -> Result<String, NotMoved> {
    let (record, pid) = {
        let s = jobs.state();
        let l = s
            .local
            .get(id)
            .ok_or_else(|| format!("job {id} does not run on {}", jobs.0.cfg.name))?;
        if l.migrating {
            return Err(format!("job {id} is already being moved").into());
        }
        (l.record.clone(), l.pid)
    };
    if uid != 0 && uid != record.spec.uid {
        return Err(format!(
            "permission denied: job {id} belongs to uid {}",
            record.spec.uid
        )
        .into());
    }
    if record.home_only {
        return Err(format!("job {id} cannot move: it was started with omrun -h").into());
    }
    let target = match to {
        Target::Node(n) => jobs.peer_of(n)?,
        Target::Home => record.home.clone(),
    };
    if target.name == jobs.0.cfg.name {
        return Err(format!("job {id} already runs on {}", target.name).into());
    }
    let reasons = tokio::task::spawn_blocking(move || migratable::check(&Storage::default(), pid))
        .await
        .map_err(|e| e.to_string())?;
    if !reasons.is_empty() {
        return Err(format!("job {id} cannot move: {}", reasons.join("; ")).into());
    }
    set_migrating(jobs, id, true);
    let r = run(jobs, &record, pid, &target, load).await;
    set_migrating(jobs, id, false);
    jobs.0.history.push(MoveEvent {
        job: id.clone(),
        command: command_line(&record.spec.argv),
        from: jobs.0.cfg.name.clone(),
        to: target.name.clone(),
        at_ms: history::now_ms(),
        why,
        ok: r.is_ok(),
        frozen_ms: r.as_ref().map_or(0, |m| m.frozen.as_millis() as u64),
        total_ms: r.as_ref().map_or(0, |m| m.total.as_millis() as u64),
        bytes: r.as_ref().map_or(0, |m| m.bytes),
        error: r.as_ref().err().map(|e| e.to_string()),
    });
    let m = r?;
    Ok(format!(
        "job {id} moved from {} to {} ({:.1} MiB of images, frozen {:.0} ms, total {:.0} ms{})",
        jobs.0.cfg.name,
        target.name,
        mib(m.bytes),
        m.frozen.as_secs_f64() * 1000.0,
        m.total.as_secs_f64() * 1000.0,
        pre_dumped(&m.rounds)
    ))
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// ", 2 pre-dump rounds of 64.0 + 1.2 MiB while it ran", or nothing.
fn pre_dumped(rounds: &[u64]) -> String {
    if rounds.is_empty() {
        return String::new();
    }
    let sizes: Vec<String> = rounds.iter().map(|b| format!("{:.1}", mib(*b))).collect();
    format!(
        ", {} pre-dump round{} of {} MiB while it ran",
        rounds.len(),
        if rounds.len() == 1 { "" } else { "s" },
        sizes.join(" + ")
    )
}

fn set_migrating(jobs: &Jobs, id: &JobId, on: bool) {
    if let Some(l) = jobs.state().local.get_mut(id) {
        l.migrating = on;
    }
}

async fn run(
    jobs: &Jobs,
    record: &crate::job::record::JobRecord,
    pid: i32,
    target: &NodeRef,
    load: Option<f64>,
) -> Result<Moved, NotMoved> {
    let t0 = Instant::now();
    let mid: u64 = rand::random();
    let id = &record.id;
    let mut s = tokio::time::timeout(
        Duration::from_secs(10),
        Session::connect(target.peer, &jobs.0.key),
    )
    .await
    .map_err(|_| format!("cannot reach {}: timed out", target.name))?
    .map_err(|e| format!("cannot reach {}: {e}", target.name))?;
    let mut moved = record.clone();
    moved.migrations += 1;
    let criu = jobs.0.criu.clone();
    let dir = jobs.0.cfg.jobs_dir.with_file_name(format!("cpu-{mid}"));
    let cpuinfo = tokio::task::spawn_blocking(move || {
        let r = criu.cpuinfo(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        r
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    let rss = crate::balance::meter::tree_rss(pid);
    s.send(&Msg::Offer {
        mid,
        record: moved,
        rss,
        cpuinfo: serde_bytes::ByteBuf::from(cpuinfo),
        load,
    })
    .await
    .map_err(|e| e.to_string())?;
    match tokio::time::timeout(Duration::from_secs(30), s.recv::<Msg>()).await {
        Ok(Ok(Some(Msg::Accept))) => {}
        Ok(Ok(Some(Msg::Refuse { reason }))) => {
            return Err(format!("{} refused job {id}: {reason}", target.name).into());
        }
        Ok(Ok(Some(Msg::Busy { reason }))) => return Err(NotMoved::Busy(reason)),
        _ => return Err(format!("{} did not answer the offer", target.name).into()),
    }
    let base = id.dir(&jobs.0.cfg.jobs_dir).join(format!("dump-{mid}"));
    let (rounds, frozen_at) = match dump_rounds(jobs, &mut s, pid, &base, rss).await {
        Ok(r) => r,
        Err(e) => {
            // Never frozen, or CRIU rolled back: the job runs on.
            let _ = s.send(&Msg::Refuse { reason: e.clone() }).await;
            let _ = tokio::fs::remove_dir_all(&base).await;
            jobs.0.outcomes.decide(mid, Outcome::Aborted);
            return Err(format!("job {id} was not moved: {e}").into());
        }
    };
    let n = rounds.len() as u32;
    let dump = transfer::round_dir(&base, n);
    tracing::debug!(job = %id, dump_ms = frozen_at.elapsed().as_millis() as u64, "dumped");
    let result = transfer_and_commit(jobs, record, &mut s, mid, &dump, n).await;
    let _ = tokio::fs::remove_dir_all(&base).await;
    match result {
        Ok(bytes) => {
            let frozen = frozen_at.elapsed();
            let _ = tokio::time::timeout(Duration::from_secs(10), s.recv::<Msg>()).await;
            Ok(Moved {
                bytes: bytes + rounds.iter().sum::<u64>(),
                rounds,
                frozen,
                total: t0.elapsed(),
            })
        }
        Err(e) => {
            jobs.0.outcomes.decide(mid, Outcome::Aborted);
            let _ = s.send(&Msg::Refuse { reason: e.clone() }).await;
            local::send_cmd(jobs, record, Cmd::Resume).await;
            tree::signal_tree(pid, libc::SIGCONT);
            Err(format!("job {id} was not moved (it runs on here): {e}").into())
        }
    }
}

/// What the pre-dump rounds left for the final dump.
struct PreDumped {
    /// Bytes of each round sent.
    rounds: Vec<u64>,
    /// The last round can be the final dump's parent. Not after a failed round: CRIU had
    /// already reset the dirty-page tracking, so pages written since the last good round would
    /// look clean; the final dump must then copy everything.
    parent: bool,
}

/// Run `op` (a CRIU pre-dump or dump into `dir`, given its parent round) off the runtime.
async fn criu_round<F>(
    jobs: &Jobs,
    dir: &Path,
    parent: Option<PathBuf>,
    op: F,
) -> Result<(), String>
where
    F: FnOnce(&dyn Criu, &Path, Option<&Path>) -> Result<(), CriuError> + Send + 'static,
{
    let criu = jobs.0.criu.clone();
    let d = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&d).map_err(|e| e.to_string())?;
        op(criu.as_ref(), &d, parent.as_deref()).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r)
}

/// The pre-dump rounds, then the final dump that leaves the job frozen: the bytes of each
/// pre-dump round, and when the freeze began. An `Err` leaves the job running.
async fn dump_rounds(
    jobs: &Jobs,
    s: &mut Session,
    pid: i32,
    base: &Path,
    rss: u64,
) -> Result<(Vec<u64>, Instant), String> {
    let PreDumped { rounds, parent } = pre_dump_rounds(jobs, s, pid, base, rss).await?;
    let n = rounds.len() as u32;
    let frozen_at = Instant::now();
    let parent = transfer::round_parent(n).filter(|_| parent);
    criu_round(
        jobs,
        &transfer::round_dir(base, n),
        parent,
        move |c, d, p| c.dump(pid, d, p),
    )
    .await?;
    Ok((rounds, frozen_at))
}

/// Pre-dump rounds while the job runs, as the policy and this node allow, each sent as it is
/// made. A failed pre-dump ends the rounds; a failed send fails the migration, with the job
/// still running.
async fn pre_dump_rounds(
    jobs: &Jobs,
    s: &mut Session,
    pid: i32,
    base: &Path,
    rss: u64,
) -> Result<PreDumped, String> {
    let policy = jobs.0.cfg.pre_dump;
    let mut done = PreDumped {
        rounds: Vec::new(),
        parent: true,
    };
    if !jobs.0.check.track_mem {
        return Ok(done);
    }
    while policy.another_round(rss, &done.rounds) {
        let n = done.rounds.len() as u32;
        let dir = transfer::round_dir(base, n);
        let t = Instant::now();
        let made = criu_round(jobs, &dir, transfer::round_parent(n), move |c, d, p| {
            c.pre_dump(pid, d, p)
        })
        .await;
        if let Err(e) = made {
            tracing::warn!(pid, round = n, error = %e, "pre-dump failed; the final dump copies everything");
            let _ = tokio::fs::remove_dir_all(&dir).await;
            done.parent = false;
            break;
        }
        let dump_ms = t.elapsed().as_millis() as u64;
        let t = Instant::now();
        s.send(&Msg::Round { n })
            .await
            .map_err(|e| format!("sending the images: {e}"))?;
        let bytes = transfer::send_dir(&mut s.writer, &dir)
            .await
            .map_err(|e| format!("sending the images: {e}"))?;
        let send_ms = t.elapsed().as_millis() as u64;
        tracing::info!(
            pid,
            round = n,
            bytes,
            dump_ms,
            send_ms,
            "pre-dump round sent"
        );
        // The pages are on the target now; the next dump only reads this round's page map.
        let d = dir.clone();
        let _ = tokio::task::spawn_blocking(move || transfer::drop_pages(&d)).await;
        done.rounds.push(bytes);
    }
    Ok(done)
}

/// From a dumped job to Commit; an `Err` means "resume it here".
async fn transfer_and_commit(
    jobs: &Jobs,
    record: &crate::job::record::JobRecord,
    s: &mut Session,
    mid: u64,
    dump: &std::path::Path,
    round: u32,
) -> Result<u64, String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    local::send_cmd(jobs, record, Cmd::Drain { mid, reply: tx }).await;
    let stdio = tokio::time::timeout(Duration::from_secs(10), rx)
        .await
        .map_err(|_| "the keeper did not hand over the job's stdio".to_owned())?
        .map_err(|_| "the keeper is gone".to_owned())?;
    s.send(&Msg::Round { n: round })
        .await
        .map_err(|e| format!("sending the images: {e}"))?;
    let t = Instant::now();
    let bytes = transfer::send_dir(&mut s.writer, dump)
        .await
        .map_err(|e| format!("sending the images: {e}"))?;
    tracing::debug!(job = %record.id, bytes, send_ms = t.elapsed().as_millis() as u64, "images sent");
    let t = Instant::now();
    s.send(&Msg::Images { stdio })
        .await
        .map_err(|e| format!("sending the images: {e}"))?;
    match tokio::time::timeout(Duration::from_secs(300), s.recv::<Msg>()).await {
        Ok(Ok(Some(Msg::Ready))) => {
            tracing::debug!(job = %record.id, restore_ms = t.elapsed().as_millis() as u64, "target ready")
        }
        Ok(Ok(Some(Msg::Refuse { reason }))) => return Err(format!("the target failed: {reason}")),
        Ok(Ok(_)) | Ok(Err(_)) => return Err("the target went away".into()),
        Err(_) => return Err("the target did not restore in time".into()),
    }
    if jobs.0.outcomes.decide(mid, Outcome::Committed) != Outcome::Committed {
        return Err("the target gave up waiting".into());
    }
    // Decided: from here on the target's copy is the job.
    local::send_cmd(jobs, record, Cmd::Kill).await;
    let _ = s.send(&Msg::Commit).await;
    Ok(bytes)
}
