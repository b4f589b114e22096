//! The target side of a migration: accept or refuse an offer, receive the images, have a keeper
//! restore the job stopped, report Ready, and run it on Commit. A target that loses the source
//! before Commit asks the source for the outcome and never runs the job without "committed".

use std::net::SocketAddr;
use std::time::Duration;

use crate::balance;
use crate::job::record::JobRecord;
use crate::jobs::Jobs;
use crate::jobs::local::{self, Cmd, SOURCE_FILE, StartFile};
use crate::migration::protocol::{Msg, Outcome};
use crate::migration::session::Session;
use crate::migration::transfer::Receiver;

fn mem_available() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemAvailable:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}

/// Free bytes of the file system holding `dir` (the jobs directory: RAM on a diskless node,
/// with a size limit of its own).
fn space_for_images(dir: &std::path::Path) -> u64 {
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return 0;
    };
    // SAFETY: statvfs reads a NUL-terminated path and writes only into `st`, which it fully
    // initialises on success (checked before use).
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(path.as_ptr(), &mut st) != 0 {
            return 0;
        }
        (st.f_bavail as u64).saturating_mul(st.f_frsize as u64)
    }
}

/// What the images of a job of `rss` bytes may take here: the node's free memory less the
/// restored job and a margin, within the jobs directory's free space.
fn image_limit(jobs: &Jobs, rss: u64) -> u64 {
    mem_available()
        .saturating_sub(rss + (32 << 20))
        .min(space_for_images(&jobs.0.cfg.jobs_dir))
}

/// Why this node refuses a job of `rss` bytes, if it does.
fn refusal(jobs: &Jobs, record: &JobRecord, rss: u64) -> Option<String> {
    let me = &jobs.0.cfg.name;
    if jobs.0.node.flags().block {
        return Some(format!("{me} refuses guests (block)"));
    }
    if !jobs.0.check.ok {
        return Some(format!(
            "{me} cannot take migrations: {}",
            jobs.0.check.reason.clone().unwrap_or_default()
        ));
    }
    // Images (kept in RAM here) and the restored job, plus a margin for the node.
    let need = rss.saturating_mul(2) + (64 << 20);
    let have = mem_available();
    if have < need {
        return Some(format!(
            "{me} has {} MiB available, the job needs {} MiB",
            have >> 20,
            need >> 20
        ));
    }
    let room = space_for_images(&jobs.0.cfg.jobs_dir);
    if room < rss {
        return Some(format!(
            "{me} has room for {} MiB of images in {}, the job needs {} MiB",
            room >> 20,
            jobs.0.cfg.jobs_dir.display(),
            rss >> 20
        ));
    }
    if !record.id.is_valid() {
        return Some("bad job id".into());
    }
    if jobs.state().local.contains_key(&record.id) {
        return Some(format!("job {} is already on {me}", record.id));
    }
    None
}

/// A load move's admission here ([`balance::admit`]); on a yes the job counts as received.
fn admission(jobs: &Jobs, source_load: f64) -> Result<(), String> {
    let policy = &jobs.0.cfg.policy;
    let rows = jobs.0.node.nodes();
    // No record of our own yet: nothing to compare, let the source's view stand.
    let Some((me, _, _)) = balance::gather::cluster(&rows, policy) else {
        return Ok(());
    };
    let now = std::time::Instant::now();
    balance::admit(
        &me,
        &jobs.0.received.within(policy.settle, now),
        source_load,
        policy,
    )?;
    jobs.0.received.push(&me.name, 1.0, now);
    Ok(())
}

/// Handle an Offer on an accepted session.
pub async fn receive(
    jobs: Jobs,
    mut s: Session,
    mid: u64,
    record: JobRecord,
    rss: u64,
    cpuinfo: Vec<u8>,
    load: Option<f64>,
) {
    if let Some(reason) = refusal(&jobs, &record, rss) {
        let _ = s.send(&Msg::Refuse { reason }).await;
        return;
    }
    if let Some(source_load) = load
        && let Err(reason) = admission(&jobs, source_load)
    {
        tracing::info!(job = %record.id, "{reason}");
        let _ = s.send(&Msg::Busy { reason }).await;
        return;
    }
    let criu = jobs.0.criu.clone();
    let dir = jobs.0.cfg.jobs_dir.with_file_name(format!("cpu-{mid}"));
    let cpu = tokio::task::spawn_blocking(move || criu.cpuinfo_check(&dir, &cpuinfo)).await;
    if let Ok(Err(e)) | Err(e) = cpu.map_err(|e| crate::migration::criu::CriuError::Failed {
        op: "cpuinfo check",
        reason: e.to_string(),
    }) {
        let reason = format!("{}'s CPU cannot run this job: {e}", jobs.0.cfg.name);
        let _ = s.send(&Msg::Refuse { reason }).await;
        return;
    }
    if s.send(&Msg::Accept).await.is_err() {
        return;
    }
    let dir = record.id.dir(&jobs.0.cfg.jobs_dir);
    let images = dir.join(format!("images-{mid}"));
    let limit = image_limit(&jobs, rss);
    let received = receive_images(&mut s, &images, limit).await;
    let (last, stdio) = match received {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(job = %record.id, error = %e, "migration in aborted");
            let _ = s.send(&Msg::Refuse { reason: e }).await;
            let _ = tokio::fs::remove_dir_all(&dir).await;
            return;
        }
    };
    let source = SocketAddr::new(s.peer.ip(), jobs.0.cfg.peer_port);
    let _ = tokio::fs::write(dir.join(SOURCE_FILE), format!("{mid} {source}\n")).await;
    let pid = match local::start_keeper(
        &jobs,
        &record,
        StartFile::Restore {
            images: last,
            mid,
            state: stdio,
        },
    )
    .await
    {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(job = %record.id, error = %e, "restore failed");
            let _ = s.send(&Msg::Refuse { reason: e }).await;
            let _ = tokio::fs::remove_dir_all(&dir).await;
            return;
        }
    };
    local::spawn_task(&jobs, record.clone(), pid, true);
    let ready = s.send(&Msg::Ready).await.is_ok();
    // After Ready: the job is frozen on the source until Commit.
    let _ = tokio::fs::remove_dir_all(&images).await;
    if ready
        && let Ok(Ok(Some(Msg::Commit))) =
            tokio::time::timeout(Duration::from_secs(60), s.recv::<Msg>()).await
    {
        run(&jobs, &record).await;
        let _ = s.send(&Msg::Done).await;
        return;
    }
    // No Commit: only the source can say whether its copy is gone.
    settle_held(&jobs, &record, mid, source).await;
}

async fn run(jobs: &Jobs, record: &JobRecord) {
    let _ = tokio::fs::remove_file(record.id.dir(&jobs.0.cfg.jobs_dir).join(SOURCE_FILE)).await;
    local::send_cmd(jobs, record, Cmd::Run).await;
    tracing::info!(job = %record.id, "migrated job runs here");
}

/// Ask the source about `mid` until it answers; run on Committed, discard otherwise.
pub async fn settle_held(jobs: &Jobs, record: &JobRecord, mid: u64, source: SocketAddr) {
    for attempt in 0u32.. {
        let asked = async {
            let mut s = Session::connect(source, &jobs.0.key).await.ok()?;
            s.send(&Msg::Outcome {
                mid,
                job: record.id.clone(),
            })
            .await
            .ok()?;
            match s.recv::<Msg>().await {
                Ok(Some(Msg::OutcomeIs { outcome })) => Some(outcome),
                _ => None,
            }
        };
        match tokio::time::timeout(Duration::from_secs(10), asked).await {
            Ok(Some(Outcome::Committed)) => {
                run(jobs, record).await;
                return;
            }
            Ok(Some(_)) => {
                tracing::info!(job = %record.id, "source kept the job; discarding our copy");
                local::send_cmd(jobs, record, Cmd::Kill).await;
                return;
            }
            _ => {
                if attempt % 10 == 0 {
                    tracing::warn!(job = %record.id, %source, "cannot learn the migration's outcome yet");
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}

/// Receive every round; the directory to restore from, and the job's stdio at the freeze.
async fn receive_images(
    s: &mut Session,
    images: &std::path::Path,
    limit: u64,
) -> Result<(std::path::PathBuf, crate::job::stdio::StdioState), String> {
    tokio::fs::create_dir_all(images)
        .await
        .map_err(|e| e.to_string())?;
    let mut rx = Receiver::with_limit(limit);
    loop {
        // Pre-dump rounds and the dump itself run between messages: allow them time.
        let m = tokio::time::timeout(Duration::from_secs(300), s.recv::<Msg>())
            .await
            .map_err(|_| "the source stalled".to_owned())?
            .map_err(|e| e.to_string())?;
        match m {
            Some(Msg::Round { n }) => rx.round(images, n).await.map_err(|e| e.to_string())?,
            Some(Msg::File { name }) => rx.file(&name).await.map_err(|e| e.to_string())?,
            Some(Msg::Chunk { data }) => rx.chunk(&data).await.map_err(|e| e.to_string())?,
            Some(Msg::Images { stdio }) => {
                rx.finish().await.map_err(|e| e.to_string())?;
                let last = rx
                    .last_round()
                    .ok_or_else(|| "no images were sent".to_owned())?
                    .to_owned();
                return Ok((last, stdio));
            }
            Some(Msg::Refuse { reason }) => return Err(reason),
            Some(_) => return Err("unexpected message".into()),
            None => return Err("the source went away".into()),
        }
    }
}
