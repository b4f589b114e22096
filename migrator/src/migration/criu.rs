//! The CRIU driver: dump a job's tree leaving it stopped, restore it stopped with its stdio
//! pipes replaced by new ones, and the node checks. Behind [`Criu`] so that omd's logic can be
//! tested without CRIU; [`CriuCli`] runs the `criu` program (CRIU 4.1 in the node image).
//!
//! Options and why: `--track-mem` with `--prev-images-dir` for pre-dump rounds (each round's
//! directory holds a `parent` link to the previous one, and restore follows the chain);
//! `--leave-stopped` on both sides (the job never runs in two places);
//! `--link-remap` (NFS silly-renamed files); `--file-validation filesize` (cheaper than build
//! ids, the files are the same on every node); `--inherit-fd fd[N]:pipe:[INODE]` maps the
//! dumped pipes to the target keeper's (CRIU restores no buffered data into inherited pipes:
//! the keepers carry it).

use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A CRIU operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CriuError {
    /// criu could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// criu ran and failed.
    #[error("criu {op} failed: {reason}")]
    Failed {
        /// dump, restore, check, cpuinfo dump or cpuinfo check.
        op: &'static str,
        /// The last error lines of its log.
        reason: String,
    },
}

/// What a node can do, from CRIU's own checks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeCheck {
    /// `criu check` passed: the node can dump and take migrations.
    pub ok: bool,
    /// Why not, when not.
    pub reason: Option<String>,
    /// CRIU's version line.
    pub version: String,
    /// Memory tracking works here (`criu check --feature mem_dirty_track`): jobs can be
    /// pre-dumped.
    pub track_mem: bool,
}

/// The CRIU operations omd needs.
pub trait Criu: Send + Sync {
    /// Copy the memory of the tree rooted at `pid` into `dir` while it runs, and track what it
    /// writes from now on; `parent` is the previous round's directory, relative to `dir`.
    fn pre_dump(&self, pid: i32, dir: &Path, parent: Option<&Path>) -> Result<(), CriuError>;
    /// Dump the tree rooted at `pid` into `dir`, leaving it stopped (rolled back on failure);
    /// with a `parent` (the last pre-dump, relative to `dir`), only the pages dirtied since.
    fn dump(&self, pid: i32, dir: &Path, parent: Option<&Path>) -> Result<(), CriuError>;
    /// Restore the tree in `dir`, left stopped, each dumped pipe inode of `inherit` replaced by
    /// the caller's fd beside it. Returns the restored root's host pid.
    fn restore(&self, dir: &Path, inherit: &[(RawFd, u64)]) -> Result<i32, CriuError>;
    /// Run CRIU's checks on this node.
    fn check(&self) -> NodeCheck;
    /// This node's CPU description (`criu cpuinfo dump`), to send with an offer.
    fn cpuinfo(&self, dir: &Path) -> Result<Vec<u8>, CriuError>;
    /// Can a job dumped on the CPU described by `image` run here (`criu cpuinfo check`)?
    fn cpuinfo_check(&self, dir: &Path, image: &[u8]) -> Result<(), CriuError>;
}

/// The `criu` command line.
#[derive(Debug, Clone)]
pub struct CriuCli {
    /// The program.
    pub program: PathBuf,
}

impl Default for CriuCli {
    fn default() -> Self {
        Self {
            program: PathBuf::from("criu"),
        }
    }
}

/// The last lines of a CRIU log that say what went wrong.
pub fn log_reason(log: &str) -> String {
    let errs: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Error") || l.contains("error") || l.contains("Can't"))
        .collect();
    let lines = if errs.is_empty() {
        log.lines()
            .rev()
            .take(3)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect()
    } else {
        errs.into_iter()
            .rev()
            .take(3)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
    };
    let s = lines.join(" | ");
    if s.is_empty() { "no log".into() } else { s }
}

/// criu's nice value while it dumps or restores. The job is frozen for as long as criu runs,
/// so criu's own work should not queue behind every runnable job of a busy node. (On the TCG
/// lab this did not shorten the freeze measurably: most of it is CRIU's parasite code, which
/// runs inside the frozen job at the job's own priority.)
const CRIU_NICE: libc::c_int = -15;

impl CriuCli {
    /// A criu command for a migration step, run at [`CRIU_NICE`].
    fn urgent(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        // SAFETY: the hook runs in the forked child before exec and makes one system call
        // (setpriority, async-signal-safe) on the child itself; it allocates nothing. A
        // failure (no CAP_SYS_NICE) leaves criu at the inherited priority, which still works.
        unsafe {
            cmd.pre_exec(|| {
                libc::setpriority(libc::PRIO_PROCESS, 0, CRIU_NICE);
                Ok(())
            });
        }
        cmd
    }

    fn run(&self, op: &'static str, mut cmd: Command, log: &Path) -> Result<(), CriuError> {
        let out = cmd.output().map_err(|source| CriuError::Spawn {
            program: self.program.display().to_string(),
            source,
        })?;
        if out.status.success() {
            return Ok(());
        }
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let mut reason = log_reason(&text);
        if reason == "no log" {
            reason = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        }
        Err(CriuError::Failed { op, reason })
    }
}

/// `--track-mem`, and the parent's directory when there is one.
fn tracking(cmd: &mut Command, parent: Option<&Path>) {
    cmd.arg("--track-mem");
    if let Some(p) = parent {
        cmd.arg("--prev-images-dir").arg(p);
    }
}

impl Criu for CriuCli {
    fn pre_dump(&self, pid: i32, dir: &Path, parent: Option<&Path>) -> Result<(), CriuError> {
        let mut cmd = self.urgent();
        cmd.arg("pre-dump")
            .arg("-t")
            .arg(pid.to_string())
            .arg("-D")
            .arg(dir);
        tracking(&mut cmd, parent);
        cmd.args(["-v2", "-o", "pre-dump.log"]);
        self.run("pre-dump", cmd, &dir.join("pre-dump.log"))
    }

    fn dump(&self, pid: i32, dir: &Path, parent: Option<&Path>) -> Result<(), CriuError> {
        let mut cmd = self.urgent();
        cmd.arg("dump")
            .arg("-t")
            .arg(pid.to_string())
            .arg("-D")
            .arg(dir)
            .args([
                "--leave-stopped",
                "--link-remap",
                "--file-validation",
                "filesize",
            ]);
        if parent.is_some() {
            tracking(&mut cmd, parent);
        }
        cmd.args(["-v2", "-o", "dump.log"]);
        self.run("dump", cmd, &dir.join("dump.log"))
    }

    fn restore(&self, dir: &Path, inherit: &[(RawFd, u64)]) -> Result<i32, CriuError> {
        let pidfile = dir.join("restored.pid");
        let mut cmd = self.urgent();
        cmd.arg("restore")
            .arg("-D")
            .arg(dir)
            .args([
                "--restore-detached",
                "--leave-stopped",
                "--file-validation",
                "filesize",
            ])
            .arg("--pidfile")
            .arg(&pidfile)
            .args(["-v2", "-o", "restore.log"]);
        // criu sees the inherited ends as fds 3, 4, ... .
        let fds: Vec<RawFd> = inherit.iter().map(|(fd, _)| *fd).collect();
        for (i, (_, ino)) in inherit.iter().enumerate() {
            cmd.arg("--inherit-fd")
                .arg(format!("fd[{}]:pipe:[{ino}]", 3 + i));
        }
        // SAFETY: the hook runs in the forked child before exec and only duplicates fds
        // (fcntl/dup2 are async-signal-safe); it allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                let mut high = [0; 8];
                for (i, fd) in fds.iter().enumerate().take(8) {
                    high[i] = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 100);
                }
                for (i, fd) in high.iter().enumerate().take(fds.len().min(8)) {
                    if libc::dup2(*fd, 3 + i as i32) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        self.run("restore", cmd, &dir.join("restore.log"))?;
        let text = std::fs::read_to_string(&pidfile).map_err(|e| CriuError::Failed {
            op: "restore",
            reason: format!("no pid file: {e}"),
        })?;
        text.trim().parse().map_err(|_| CriuError::Failed {
            op: "restore",
            reason: format!("bad pid file {text:?}"),
        })
    }

    fn cpuinfo(&self, dir: &Path) -> Result<Vec<u8>, CriuError> {
        std::fs::create_dir_all(dir).map_err(|source| CriuError::Spawn {
            program: dir.display().to_string(),
            source,
        })?;
        let mut cmd = self.urgent();
        cmd.args(["cpuinfo", "dump", "-D"])
            .arg(dir)
            .args(["-o", "cpuinfo.log"]);
        self.run("cpuinfo dump", cmd, &dir.join("cpuinfo.log"))?;
        std::fs::read(dir.join("cpuinfo.img")).map_err(|e| CriuError::Failed {
            op: "cpuinfo dump",
            reason: e.to_string(),
        })
    }

    fn cpuinfo_check(&self, dir: &Path, image: &[u8]) -> Result<(), CriuError> {
        let fail = |e: std::io::Error| CriuError::Failed {
            op: "cpuinfo check",
            reason: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(fail)?;
        std::fs::write(dir.join("cpuinfo.img"), image).map_err(fail)?;
        let mut cmd = self.urgent();
        cmd.args(["cpuinfo", "check", "-D"])
            .arg(dir)
            .args(["-o", "cpuinfo.log"]);
        let r = self.run("cpuinfo check", cmd, &dir.join("cpuinfo.log"));
        let _ = std::fs::remove_dir_all(dir);
        r
    }

    fn check(&self) -> NodeCheck {
        let version = Command::new(&self.program)
            .arg("--version")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_owned()
            });
        let Some(version) = version else {
            return NodeCheck {
                ok: false,
                reason: Some("criu is not installed".into()),
                version: String::new(),
                track_mem: false,
            };
        };
        let mut problems = Vec::new();
        match Command::new(&self.program).arg("check").output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => problems.push(format!(
                "criu check: {}",
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .unwrap_or("failed")
            )),
            Err(e) => problems.push(format!("criu check: {e}")),
        }
        // Features this protocol relies on: a job in its own time namespace.
        for feature in ["timens"] {
            match Command::new(&self.program)
                .args(["check", "--feature", feature])
                .output()
            {
                Ok(o) if o.status.success() => {}
                _ => problems.push(format!("criu check: no {feature} support")),
            }
        }
        // Optional: without it, jobs move in one frozen dump.
        let track_mem = Command::new(&self.program)
            .args(["check", "--feature", "mem_dirty_track"])
            .output()
            .is_ok_and(|o| o.status.success());
        NodeCheck {
            ok: problems.is_empty(),
            reason: (!problems.is_empty()).then(|| problems.join("; ")),
            version,
            track_mem,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_is_the_last_error_lines() {
        let log = "(00.1) info\n(00.2) Error (criu/files.c:1): Can't open foo\n(00.3) more\n";
        assert_eq!(
            log_reason(log),
            "(00.2) Error (criu/files.c:1): Can't open foo"
        );
        assert_eq!(log_reason(""), "no log");
    }

    #[test]
    fn a_missing_criu_is_reported_not_panicked() {
        let c = CriuCli {
            program: "/nonexistent/criu".into(),
        };
        let r = c.check();
        assert!(!r.ok && r.reason.unwrap().contains("not installed"));
        let e = c.dump(1, Path::new("/tmp"), None).unwrap_err();
        assert!(e.to_string().contains("cannot run"), "{e}");
    }
}
