//! Runs a short helper command (`ip`, a one-shot client) to completion under a deadline, capturing
//! its output. The child gets its own process group so a timeout can kill everything it started.

use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::signal::{Signal, kill_group};

/// Renders a command line for error messages.
pub(crate) fn display(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

/// Runs `cmd` and returns its output whatever its exit status; kills it after `timeout`.
pub(crate) fn output(mut cmd: Command, timeout: Duration) -> Result<Output> {
    let shown = display(&cmd);
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|source| Error::Spawn {
            command: shown.clone(),
            source,
        })?;
    let pgid = child.id();
    // wait_with_output drains both pipes, so a chatty child cannot block on a full pipe while we
    // wait; it runs on a thread so that this thread can keep the deadline.
    let (tx, rx) = mpsc::channel();
    let started = Instant::now();
    let waiter = std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(timeout) {
        Ok(out) => out,
        Err(_) => {
            kill_group(pgid, Signal::Kill);
            let _ = waiter.join();
            return Err(Error::Timeout {
                what: format!("`{shown}` to finish"),
                secs: started.elapsed().as_secs_f64(),
                detail: String::new(),
            });
        }
    };
    let _ = waiter.join();
    out.map_err(|source| Error::Spawn {
        command: shown,
        source,
    })
}

/// Runs `cmd`, fails unless it exits 0, returns its stdout.
pub(crate) fn run(cmd: Command, timeout: Duration) -> Result<String> {
    let shown = display(&cmd);
    let out = output(cmd, timeout)?;
    if !out.status.success() {
        return Err(Error::CommandFailed {
            command: shown,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
