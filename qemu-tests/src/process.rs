//! The lab's process registry: every long-running process it starts, each in its own process
//! group with output in a log file, so teardown can stop whole groups and prove none survived.

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::command;
use crate::error::{Error, Result, io};
use crate::signal::{Signal, group_alive, kill_group};
use crate::wait::{self, LineScanner};

/// How long a stopped process group gets between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long SIGKILLed groups get to disappear before they count as lingering.
const KILL_GRACE: Duration = Duration::from_secs(3);

/// A handle on a process the lab started. Cheap to clone; the process itself stays in the
/// registry until the lab is torn down.
#[derive(Debug, Clone)]
pub struct Proc {
    label: String,
    pid: u32,
    log: PathBuf,
    log_offset: u64,
}

impl Proc {
    /// The label it was spawned with (also its log's name).
    pub fn label(&self) -> &str {
        &self.label
    }
    /// Its PID, which is also its process group ID.
    pub fn pid(&self) -> u32 {
        self.pid
    }
    /// Its combined stdout and stderr.
    pub fn log(&self) -> &Path {
        &self.log
    }
}

#[derive(Debug)]
struct Entry {
    proc: Proc,
    child: Child,
    status: Option<ExitStatus>,
}

impl Entry {
    fn poll(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }
}

/// All processes of one lab.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    entries: Mutex<Vec<Entry>>,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, Vec<Entry>> {
        // A panic while holding the lock cannot leave the Vec half-updated; keep going so that
        // teardown still finds every process.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts `cmd` in its own process group with stdout and stderr appended to `log`.
    pub fn spawn(&self, label: &str, mut cmd: Command, log: PathBuf) -> Result<Proc> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(io(format!("open {}", log.display())))?;
        // A label may be reused (a restarted server): waits start at the end of earlier output.
        let log_offset = file
            .metadata()
            .map_err(io(format!("stat {}", log.display())))?
            .len();
        let err = file
            .try_clone()
            .map_err(io(format!("duplicate {}", log.display())))?;
        let shown = command::display(&cmd);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            // Its own group: teardown signals the whole group, and a Ctrl-C on the terminal
            // reaches only us, so Drop decides the order of shutdown.
            .process_group(0)
            .spawn()
            .map_err(|source| Error::Spawn {
                command: shown,
                source,
            })?;
        let proc = Proc {
            label: label.to_owned(),
            pid: child.id(),
            log,
            log_offset,
        };
        self.lock().push(Entry {
            proc: proc.clone(),
            child,
            status: None,
        });
        Ok(proc)
    }

    fn with<T>(&self, p: &Proc, f: impl FnOnce(&mut Entry) -> T) -> Option<T> {
        self.lock().iter_mut().find(|e| e.proc.pid == p.pid).map(f)
    }

    /// Its exit status once it has exited.
    pub fn status(&self, p: &Proc) -> Option<ExitStatus> {
        self.with(p, Entry::poll).flatten()
    }

    /// Waits up to `timeout` for it to exit by itself.
    pub fn wait_exit(&self, p: &Proc, timeout: Duration) -> Result<ExitStatus> {
        wait::until(
            &format!("{} to exit", p.label),
            timeout,
            || wait::tail_detail_since(&p.log, p.log_offset),
            || Ok(self.status(p)),
        )
    }

    /// Stops one process group: SIGTERM, [`STOP_GRACE`], SIGKILL.
    pub fn stop(&self, p: &Proc) -> Result<ExitStatus> {
        if let Some(status) = self.status(p) {
            return Ok(status);
        }
        kill_group(p.pid, Signal::Term);
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Some(status) = self.status(p) {
                return Ok(status);
            }
            std::thread::sleep(wait::POLL);
        }
        self.crash(p)
    }

    /// Kills one process group with SIGKILL at once, as a crash would, and waits for it to go.
    pub fn crash(&self, p: &Proc) -> Result<ExitStatus> {
        if let Some(status) = self.status(p) {
            return Ok(status);
        }
        kill_group(p.pid, Signal::Kill);
        // Deliberately ignores the abort flag: stopping must finish even after Ctrl-C.
        let deadline = Instant::now() + KILL_GRACE;
        while Instant::now() < deadline {
            if let Some(status) = self.status(p) {
                return Ok(status);
            }
            std::thread::sleep(wait::POLL);
        }
        Err(Error::Timeout {
            what: format!("{} to die after SIGKILL", p.label),
            secs: KILL_GRACE.as_secs_f64(),
            detail: String::new(),
        })
    }

    /// Waits for a line containing `needle` in the process's output since it was spawned;
    /// fails at once if the process exits first.
    pub fn wait_for_line(&self, p: &Proc, needle: &str, timeout: Duration) -> Result<String> {
        let what = format!("{needle:?} from {}", p.label);
        let mut scanner = LineScanner::new(&p.log, p.log_offset);
        wait::until(
            &what,
            timeout,
            || wait::tail_detail_since(&p.log, p.log_offset),
            || {
                if let Some(line) = scanner.find(|l| l.contains(needle))? {
                    return Ok(Some(line));
                }
                match self.status(p) {
                    // One last look: the line may have been written just before exiting.
                    Some(status) => match scanner.find(|l| l.contains(needle))? {
                        Some(line) => Ok(Some(line)),
                        None => Err(Error::Exited {
                            label: p.label.clone(),
                            status: status.to_string(),
                            what: what.clone(),
                            detail: wait::tail_detail_since(&p.log, p.log_offset),
                        }),
                    },
                    None => Ok(None),
                }
            },
        )
    }

    /// Stops every process group: SIGTERM to all at once, a shared grace period, SIGKILL to the
    /// rest. Returns a description of each group that still has a member afterwards.
    pub fn stop_all(&self) -> Vec<String> {
        let mut entries = self.lock();
        for e in entries.iter_mut() {
            if e.poll().is_none() || group_alive(e.proc.pid) {
                kill_group(e.proc.pid, Signal::Term);
            }
        }
        let settled = |entries: &mut Vec<Entry>| {
            entries
                .iter_mut()
                .all(|e| e.poll().is_some() && !group_alive(e.proc.pid))
        };
        let deadline = Instant::now() + STOP_GRACE;
        while !settled(&mut entries) && Instant::now() < deadline {
            std::thread::sleep(wait::POLL);
        }
        for e in entries.iter_mut() {
            if e.poll().is_none() || group_alive(e.proc.pid) {
                kill_group(e.proc.pid, Signal::Kill);
            }
        }
        let deadline = Instant::now() + KILL_GRACE;
        while !settled(&mut entries) && Instant::now() < deadline {
            std::thread::sleep(wait::POLL);
        }
        entries
            .iter_mut()
            .filter_map(|e| {
                let alive = e.poll().is_none() || group_alive(e.proc.pid);
                alive.then(|| format!("{} (process group {})", e.proc.label, e.proc.pid))
            })
            .collect()
    }
}
