//! A job running on this node: starting its keeper (a new job, or a restore), and the task that
//! joins the keeper's socket to the relay towards the job's home. Also what a restarted omd
//! does with the keepers it finds.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncBufReadExt;
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};

use crate::frame;
use crate::job::keeper::{self, FromKeeper, Phase, ToKeeper};
use crate::job::record::{JobRecord, JobSpec};
use crate::job::stdio::{Io, StdioState};
use crate::jobs::{Jobs, LocalJob};
use crate::migration::protocol::{Msg, Outcome};
use crate::migration::session::Session;

/// What `omjob keeper` reads from `start.json` in the job directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum StartFile {
    /// A new job.
    Spawn {
        /// What to run.
        spec: JobSpec,
    },
    /// A migrated job.
    Restore {
        /// Image directory.
        images: PathBuf,
        /// Migration id.
        mid: u64,
        /// Carried stdio.
        state: StdioState,
    },
}

/// Name of the start file.
pub const START_FILE: &str = "start.json";
/// Name of the record file.
pub const RECORD_FILE: &str = "record.json";
/// Where a held (restored) job's source is written: `mid source-addr`.
pub const SOURCE_FILE: &str = "source";

/// Commands to a local job's task.
#[derive(Debug)]
pub enum Cmd {
    /// The job was dumped: take its stdio state.
    Drain {
        /// Migration id.
        mid: u64,
        /// The state, or why not.
        reply: oneshot::Sender<StdioState>,
    },
    /// Run again here.
    Resume,
    /// It runs elsewhere now (or is discarded): kill this copy.
    Kill,
    /// A held job may run.
    Run,
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

/// Start a keeper for `record` (blocking work on a blocking thread); returns init's host pid.
pub async fn start_keeper(
    jobs: &Jobs,
    record: &JobRecord,
    start: StartFile,
) -> Result<i32, String> {
    let dir = record.id.dir(&jobs.0.cfg.jobs_dir);
    let omjob = jobs.0.cfg.omjob.clone();
    let rec = serde_json::to_vec(record).map_err(|e| e.to_string())?;
    let st = serde_json::to_vec(&start).map_err(|e| e.to_string())?;
    let d = dir.clone();
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        std::fs::create_dir_all(&d)?;
        std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        write_private(&d.join(RECORD_FILE), &rec)?;
        write_private(&d.join(START_FILE), &st)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("cannot prepare the job directory: {e}"))?;
    let mut child = tokio::process::Command::new(&omjob)
        .arg("keeper")
        .arg(&dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", omjob.display()))?;
    let out = child.stdout.take().ok_or("no keeper output")?;
    let mut lines = tokio::io::BufReader::new(out).lines();
    let line = tokio::time::timeout(Duration::from_secs(300), lines.next_line())
        .await
        .map_err(|_| "the keeper did not start in time".to_owned())?
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    let _ = child.wait().await;
    match line.strip_prefix("ready ") {
        Some(pid) => pid
            .trim()
            .parse()
            .map_err(|_| format!("keeper said {line:?}")),
        None => {
            let _ = tokio::fs::remove_dir_all(&dir).await;
            Err(line
                .strip_prefix("error: ")
                .unwrap_or("the keeper failed")
                .to_owned())
        }
    }
}

/// Register a job running here and start its task. `hold`: a restored job waiting for Commit.
pub fn spawn_task(jobs: &Jobs, record: JobRecord, pid: i32, hold: bool) {
    let (tx, rx) = mpsc::channel(16);
    {
        let mut s = jobs.state();
        s.local.insert(
            record.id.clone(),
            LocalJob {
                record: record.clone(),
                cmd: tx,
                phase: if hold {
                    Phase::Held { mid: 0 }
                } else {
                    Phase::Running
                },
                pid,
                migrating: false,
            },
        );
    }
    jobs.update_caps();
    tokio::spawn(task(jobs.clone(), record, rx, hold));
}

async fn connect_keeper(dir: &Path) -> std::io::Result<UnixStream> {
    let mut last = None;
    for _ in 0..20 {
        match UnixStream::connect(dir.join(keeper::SOCKET)).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no keeper")))
}

/// The relay towards home: a writer channel and the receiving half's messages.
struct Relay {
    tx: mpsc::Sender<Msg>,
    rx: mpsc::Receiver<Option<Msg>>,
}

/// The next message of the relay, if there is one; pending forever without a relay.
async fn relay_recv(relay: &mut Option<Relay>) -> Option<Msg> {
    match relay.as_mut() {
        Some(r) => r.rx.recv().await.flatten(),
        None => std::future::pending().await,
    }
}

async fn open_relay(jobs: &Jobs, record: &JobRecord, pid: i32) -> Result<Relay, String> {
    let mut s = tokio::time::timeout(
        Duration::from_secs(5),
        Session::connect(record.home.peer, &jobs.0.key),
    )
    .await
    .map_err(|_| "timed out".to_owned())?
    .map_err(|e| e.to_string())?;
    s.send(&Msg::Attach {
        job: record.id.clone(),
        epoch: record.migrations,
        node: jobs.0.cfg.name.clone(),
        pid,
    })
    .await
    .map_err(|e| e.to_string())?;
    let Session {
        reader, mut writer, ..
    } = s;
    let (tx, mut wrx) = mpsc::channel::<Msg>(64);
    tokio::spawn(async move {
        while let Some(m) = wrx.recv().await {
            if writer.send(&m).await.is_err() {
                break;
            }
        }
    });
    Ok(Relay {
        tx,
        rx: reader.spawn_into_channel(),
    })
}

async fn task(jobs: Jobs, mut record: JobRecord, mut cmd: mpsc::Receiver<Cmd>, hold: bool) {
    let id = record.id.clone();
    let dir = id.dir(&jobs.0.cfg.jobs_dir);
    let stream = match connect_keeper(&dir).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(job = %id, error = %e, "cannot reach the job's keeper");
            jobs.state().local.remove(&id);
            return;
        }
    };
    let (kr, mut kw) = stream.into_split();
    let mut kin = frame::io::spawn_reader::<FromKeeper, _>(kr);
    let (kout, mut kout_rx) = mpsc::channel::<ToKeeper>(64);
    tokio::spawn(async move {
        while let Some(m) = kout_rx.recv().await {
            if frame::io::write(&mut kw, &m).await.is_err() {
                break;
            }
        }
    });
    let mut relay: Option<Relay> = None;
    let mut attached = !hold;
    let mut pid = 0;
    let mut exit_final: Option<(u64, u64)> = None;
    let mut drain_reply: Option<oneshot::Sender<StdioState>> = None;
    let mut retry = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            m = kin.recv() => {
                let Some(Some(m)) = m else { break };
                match m {
                    FromKeeper::Hello { phase, pid: p } => {
                        pid = p;
                        if let Some(l) = jobs.state().local.get_mut(&id) {
                            l.phase = phase;
                            l.pid = p;
                        }
                    }
                    FromKeeper::Io(io) => {
                        if let Io::Exited { status, out, err } = io {
                            exit_final = Some((out, err));
                            if let Some(l) = jobs.state().local.get_mut(&id) {
                                l.phase = Phase::Exited { status };
                            }
                        }
                        if let Some(r) = &relay && r.tx.send(Msg::Io(io)).await.is_err() {
                            relay = None;
                        }
                    }
                    FromKeeper::Drained(state) => {
                        if let Some(r) = drain_reply.take() {
                            let _ = r.send(state);
                        }
                    }
                }
            }
            m = relay_recv(&mut relay) => {
                match m {
                    Some(Msg::Io(io)) => {
                        let done = matches!((&io, exit_final), (Io::Ack { out, err }, Some((o, e))) if *out >= o && *err >= e);
                        let _ = kout.send(ToKeeper::Io(io)).await;
                        if done {
                            let _ = kout.send(ToKeeper::Bye).await;
                        }
                    }
                    Some(Msg::Result { result: Err(e) }) => {
                        // The home does not know the job (its deputy is gone): no orphans.
                        tracing::warn!(job = %id, reason = %e, "home refused the relay; killing the job");
                        let _ = kout.send(ToKeeper::Kill).await;
                    }
                    Some(_) => {}
                    None => relay = None,
                }
            }
            c = cmd.recv() => {
                match c {
                    Some(Cmd::Drain { mid, reply }) => {
                        drain_reply = Some(reply);
                        let _ = kout.send(ToKeeper::Drain { mid }).await;
                    }
                    Some(Cmd::Resume) => { let _ = kout.send(ToKeeper::Resume).await; }
                    Some(Cmd::Kill) => {
                        let _ = kout.send(ToKeeper::Kill).await;
                        relay = None;
                        attached = false;
                    }
                    Some(Cmd::Run) => {
                        let _ = kout.send(ToKeeper::Run).await;
                        attached = true;
                        if let Some(l) = jobs.state().local.get_mut(&id) {
                            l.phase = Phase::Running;
                        }
                    }
                    None => {}
                }
            }
            _ = retry.tick(), if attached && relay.is_none() => {
                record.migrations = jobs.state().local.get(&id).map_or(record.migrations, |l| l.record.migrations);
                match open_relay(&jobs, &record, pid).await {
                    Ok(r) => {
                        relay = Some(r);
                        let _ = kout.send(ToKeeper::Rewind).await;
                    }
                    Err(e) => tracing::debug!(job = %id, error = %e, "relay to home"),
                }
            }
        }
    }
    jobs.state().local.remove(&id);
    jobs.update_caps();
}

/// After a restart: adopt the keepers left running, settle interrupted migrations.
pub async fn recover(jobs: &Jobs) {
    let Ok(mut rd) = tokio::fs::read_dir(&jobs.0.cfg.jobs_dir).await else {
        return;
    };
    while let Ok(Some(e)) = rd.next_entry().await {
        let dir = e.path();
        let Ok(bytes) = tokio::fs::read(dir.join(RECORD_FILE)).await else {
            continue;
        };
        let Ok(record) = serde_json::from_slice::<JobRecord>(&bytes) else {
            continue;
        };
        let Ok(stream) = UnixStream::connect(dir.join(keeper::SOCKET)).await else {
            tracing::info!(job = %record.id, "no keeper left; removing its directory");
            let _ = tokio::fs::remove_dir_all(&dir).await;
            continue;
        };
        let (mut r, _w) = stream.into_split();
        let hello = tokio::time::timeout(
            Duration::from_secs(5),
            frame::io::read::<FromKeeper, _>(&mut r),
        )
        .await;
        let Ok(Ok(Some(FromKeeper::Hello { phase, pid }))) = hello else {
            continue;
        };
        drop(r);
        tracing::info!(job = %record.id, ?phase, pid, "adopting a job left by an earlier omd");
        // Images of a migration that died with the earlier omd.
        if let Ok(mut d) = tokio::fs::read_dir(&dir).await {
            while let Ok(Some(e)) = d.next_entry().await {
                let n = e.file_name();
                let n = n.to_string_lossy();
                if n.starts_with("dump-") || n.starts_with("images-") {
                    let _ = tokio::fs::remove_dir_all(e.path()).await;
                }
            }
        }
        match phase {
            Phase::Running => {
                // An omd killed between CRIU's dump and the keeper's drain left it stopped.
                crate::job::tree::signal_tree(pid, libc::SIGCONT);
                spawn_task(jobs, record, pid, false);
            }
            Phase::Exited { .. } => spawn_task(jobs, record, pid, false),
            Phase::Frozen { mid } => {
                let decided = jobs.0.outcomes.settle(mid);
                spawn_task(jobs, record.clone(), pid, decided == Outcome::Committed);
                let cmd = if decided == Outcome::Committed {
                    Cmd::Kill
                } else {
                    Cmd::Resume
                };
                send_cmd(jobs, &record, cmd).await;
            }
            Phase::Held { mid } => {
                spawn_task(jobs, record.clone(), pid, true);
                let src = tokio::fs::read_to_string(dir.join(SOURCE_FILE))
                    .await
                    .unwrap_or_default();
                match src.split_whitespace().nth(1).and_then(|a| a.parse().ok()) {
                    Some(source) => {
                        let j = jobs.clone();
                        tokio::spawn(async move {
                            crate::migration::target::settle_held(&j, &record, mid, source).await;
                        });
                    }
                    None => send_cmd(jobs, &record, Cmd::Kill).await,
                }
            }
        }
    }
}

/// Send a command to a local job's task.
pub async fn send_cmd(jobs: &Jobs, record: &JobRecord, c: Cmd) {
    let tx = jobs.state().local.get(&record.id).map(|l| l.cmd.clone());
    if let Some(tx) = tx {
        let _ = tx.send(c).await;
    }
}
