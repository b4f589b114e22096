//! One pass of `omctl stress`, the only part that starts processes: every job of the mix through
//! `omrun -v` at once (in the shared working directory, stdin from /dev/null), omd's jobs table
//! polled every second meanwhile, each job's exit, output and sightings collected.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use migrator::job::record::{JobId, JobView};
use migrator::migration::history::now_ms;

use super::check::Exit;
use super::mix::Job;
use super::track::push_new;
use crate::client::Omd;
use crate::poll;

/// How often omd's jobs table is read.
const POLL: Duration = Duration::from_secs(1);
/// How often the children are checked for their end (the wall times' resolution).
const TICK: Duration = Duration::from_millis(100);

/// How to start the jobs.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The omrun program.
    pub omrun: PathBuf,
    /// omd's control socket (passed on to omrun).
    pub socket: PathBuf,
    /// omwork as the jobs find it.
    pub omwork: String,
    /// The jobs' working directory.
    pub workdir: PathBuf,
    /// Kill what still runs after this long.
    pub timeout: Duration,
    /// `omrun -h`: every job stays home.
    pub home_only: bool,
    /// This node's name, to know the jobs' ids in the jobs table (`<node>.<omrun pid>`).
    pub here: String,
}

/// One job's run.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// How omrun ended.
    pub exit: Exit,
    /// What the job printed (relayed by omrun).
    pub stdout: String,
    /// Its stderr, with omrun's progress lines.
    pub stderr: String,
    /// From omrun's start to its end.
    pub wall: Duration,
    /// The id the job should have, from omrun's pid.
    pub id: Option<JobId>,
    /// The nodes the jobs table showed it on, in order.
    pub polled: Vec<String>,
    /// The highest migration count the jobs table showed.
    pub polled_migrations: u32,
}

/// A whole pass.
#[derive(Debug, Clone)]
pub struct Pass {
    /// One per job of the mix, in its order.
    pub outcomes: Vec<Outcome>,
    /// First start to last end.
    pub makespan: Duration,
    /// When it started, ms since the epoch.
    pub started_ms: u64,
    /// When it ended, ms since the epoch.
    pub ended_ms: u64,
}

/// A job under way.
struct Running {
    child: Option<Child>,
    out: Option<JoinHandle<Vec<u8>>>,
    err: Option<JoinHandle<Vec<u8>>>,
    started: Instant,
    ended: Option<(Exit, Instant)>,
    id: Option<JobId>,
    polled: Vec<String>,
    polled_migrations: u32,
}

/// Runs every job of `jobs` at once and waits for them all (or the deadline).
pub fn pass(omd: &Omd, setup: &Setup, jobs: &[Job]) -> Pass {
    let started_ms = now_ms();
    let start = Instant::now();
    let mut running: Vec<Running> = jobs.iter().map(|j| spawn(setup, j)).collect();
    let polls = poll::every(omd.clone(), POLL, Omd::jobs);
    let deadline = start + setup.timeout;
    while running.iter().any(|r| r.ended.is_none()) {
        for r in running.iter_mut().filter(|r| r.ended.is_none()) {
            reap(r, Instant::now() >= deadline);
        }
        for table in polls.try_iter().filter_map(Result::ok) {
            for r in running.iter_mut().filter(|r| r.ended.is_none()) {
                seen(r, &table);
            }
        }
        thread::sleep(TICK);
    }
    let outcomes: Vec<Outcome> = running.into_iter().map(finish).collect();
    Pass {
        makespan: start.elapsed(),
        started_ms,
        ended_ms: now_ms(),
        outcomes,
    }
}

fn spawn(setup: &Setup, job: &Job) -> Running {
    let mut cmd = Command::new(&setup.omrun);
    cmd.arg("--socket").arg(&setup.socket).arg("-v");
    if setup.home_only {
        cmd.arg("-h");
    }
    cmd.arg("--")
        .args(job.argv(&setup.omwork))
        .current_dir(&setup.workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut r = Running {
        child: None,
        out: None,
        err: None,
        started,
        ended: None,
        id: None,
        polled: Vec::new(),
        polled_migrations: 0,
    };
    match cmd.spawn() {
        Ok(mut child) => {
            r.id = Some(JobId::new(&setup.here, child.id()));
            r.out = child.stdout.take().map(drain);
            r.err = child.stderr.take().map(drain);
            r.child = Some(child);
        }
        Err(e) => {
            let why = format!("cannot run {}: {e}", setup.omrun.display());
            r.ended = Some((Exit::NotStarted(why), started));
        }
    }
    r
}

/// Reads a pipe to its end on a thread of its own (a full pipe would stall the job).
fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut v = Vec::new();
        let _ = pipe.read_to_end(&mut v);
        v
    })
}

/// Notes the end of `r`'s omrun if it came; past the deadline, kills it first.
fn reap(r: &mut Running, late: bool) {
    let Some(child) = r.child.as_mut() else {
        return;
    };
    if late {
        let _ = child.kill();
        let _ = child.wait();
        r.ended = Some((Exit::TimedOut, Instant::now()));
        return;
    }
    match child.try_wait() {
        Ok(Some(status)) => r.ended = Some((exit_of(status), Instant::now())),
        Ok(None) => {}
        Err(e) => {
            r.ended = Some((
                Exit::NotStarted(format!("waiting for omrun: {e}")),
                Instant::now(),
            ))
        }
    }
}

fn exit_of(status: ExitStatus) -> Exit {
    match (status.code(), status.signal()) {
        (Some(c), _) => Exit::Code(c),
        (None, Some(s)) => Exit::Signal(s),
        (None, None) => Exit::Code(255),
    }
}

/// Records where one poll of the jobs table saw `r`'s job.
fn seen(r: &mut Running, table: &[JobView]) {
    let Some(row) = table.iter().find(|j| Some(&j.id) == r.id.as_ref()) else {
        return;
    };
    push_new(&mut r.polled, &row.node);
    r.polled_migrations = r.polled_migrations.max(row.migrations);
}

fn finish(r: Running) -> Outcome {
    let text = |h: Option<JoinHandle<Vec<u8>>>| {
        h.and_then(|h| h.join().ok())
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default()
    };
    let (exit, ended) = r.ended.unwrap_or_else(|| (Exit::TimedOut, Instant::now()));
    Outcome {
        exit,
        stdout: text(r.out),
        stderr: text(r.err),
        wall: ended.saturating_duration_since(r.started),
        id: r.id,
        polled: r.polled,
        polled_migrations: r.polled_migrations,
    }
}
