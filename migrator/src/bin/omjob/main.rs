//! omjob: the per-job programs omd starts. `omjob keeper DIR` holds a job's stdio and is its
//! init's parent (see `job::keeper`); `omjob init` is the job's PID 1 (see `job::init`).
//! Not meant to be run by hand.

use std::io::{BufRead, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use migrator::job::keeper::{self, Start};
use migrator::job::{init, spawn};
use migrator::jobs::local::{START_FILE, StartFile};

fn pipe() -> Result<(std::fs::File, std::fs::File)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two new fds into the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        bail!("pipe: {}", std::io::Error::last_os_error());
    }
    // SAFETY: both fds are new and owned here.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((r.into(), w.into()))
}

/// Detach from omd (which only waits for our first line), then run the keeper.
fn keeper_main(dir: &Path) -> Result<()> {
    let start_path = dir.join(START_FILE);
    let start: StartFile = serde_json::from_slice(
        &std::fs::read(&start_path).with_context(|| format!("reading {}", start_path.display()))?,
    )
    .context("parsing the start file")?;
    let _ = std::fs::remove_file(&start_path);
    // omd runs at a raised priority (its unit's Nice=) so that a loaded node still answers
    // the gossip in time; the keeper and the job it starts run at the normal one.
    // SAFETY: setpriority only changes this process's nice value; lowering priority needs no
    // privilege.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 0);
    }
    let start = match start {
        StartFile::Spawn { spec } => Start::Spawn {
            omjob: std::env::current_exe().context("locating omjob")?,
            spec,
        },
        StartFile::Restore { images, mid, state } => Start::Restore { images, mid, state },
    };
    let (r, mut w) = pipe()?;
    // SAFETY: omjob is single-threaded here; the child continues as the keeper.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        bail!("fork: {}", std::io::Error::last_os_error());
    }
    if pid > 0 {
        // The parent relays the keeper's first line to omd and leaves.
        drop(w);
        let mut line = String::new();
        std::io::BufReader::new(r).read_line(&mut line)?;
        if line.is_empty() {
            line = "error: the keeper died while starting\n".into();
        }
        print!("{line}");
        std::io::stdout().flush()?;
        return Ok(());
    }
    drop(r);
    // SAFETY: setsid on this process only: no terminal, its own session.
    unsafe { libc::setsid() };
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("keeper.log"))
        .context("opening keeper.log")?;
    redirect(&log)?;
    let mut status = w.try_clone()?;
    let r = keeper::run(dir, start, move |pid| {
        let _ = writeln!(status, "ready {pid}");
    });
    if let Err(e) = &r {
        let _ = writeln!(w, "error: {e}");
        eprintln!("keeper: {e}");
        let _ = std::fs::remove_dir_all(dir);
    }
    drop(w);
    r.map_err(Into::into)
}

/// stdin/stdout to /dev/null, stderr to the log: the keeper outlives omd's pipes.
fn redirect(log: &std::fs::File) -> Result<()> {
    use std::os::fd::AsRawFd;
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    // SAFETY: dup2 over our own standard fds.
    unsafe {
        libc::dup2(null.as_raw_fd(), 0);
        libc::dup2(null.as_raw_fd(), 1);
        libc::dup2(log.as_raw_fd(), 2);
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("init") => match spawn::read_spec_fd3() {
            Ok(spec) => init::run(&spec),
            Err(e) => {
                eprintln!("omjob init: cannot read the job: {e}");
                std::process::ExitCode::from(127)
            }
        },
        Some("keeper") if args.len() == 3 => match keeper_main(&PathBuf::from(&args[2])) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                println!("error: {e:#}");
                std::process::ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!("usage: omjob keeper DIR | omjob init   (started by omd, not by hand)");
            std::process::ExitCode::from(2)
        }
    }
}
