//! Privileged: creating, listing, entering and deleting network namespaces with `ip netns`.
//! Every lab network object lives inside a namespace made here; nothing touches the host's own.

use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::Duration;

use crate::command;
use crate::error::{Error, Result};

/// Deadline for one `ip` invocation; they take milliseconds unless the kernel is stuck.
pub(crate) const IP_TIMEOUT: Duration = Duration::from_secs(10);

/// Every lab namespace name starts with this.
pub const PREFIX: &str = "omlab-";

fn ip(args: &[&str]) -> Result<String> {
    let mut cmd = Command::new("ip");
    cmd.args(args);
    command::run(cmd, IP_TIMEOUT)
}

/// Names of all network namespaces.
pub(crate) fn list() -> Result<Vec<String>> {
    // Lines look like "omlab-x (id: 3)" or just "omlab-x".
    Ok(ip(&["netns", "list"])?
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

/// Whether namespace `name` exists.
pub(crate) fn exists(name: &str) -> Result<bool> {
    Ok(list()?.iter().any(|n| n == name))
}

/// Creates namespace `name` with its loopback up.
pub(crate) fn add(name: &str) -> Result<()> {
    ip(&["netns", "add", name])?;
    ip(&["-n", name, "link", "set", "lo", "up"])?;
    Ok(())
}

/// Deletes namespace `name`; its virtual interfaces go with it once no process is left inside.
pub(crate) fn delete(name: &str) -> Result<()> {
    ip(&["netns", "delete", name]).map(drop)
}

/// PIDs of the processes inside namespace `name`.
pub(crate) fn pids(name: &str) -> Result<Vec<u32>> {
    Ok(ip(&["netns", "pids", name])?
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect())
}

/// Rewrites `cmd` into `ip netns exec NS cmd…`, keeping its environment and working directory.
/// `ip netns exec` execs in place, so the PID of the result is the PID of the real program.
pub(crate) fn exec(ns: &str, cmd: &Command) -> Command {
    let mut wrapped = Command::new("ip");
    wrapped
        .args(["netns", "exec", ns])
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(v) => wrapped.env(key, v),
            None => wrapped.env_remove(key),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        wrapped.current_dir(dir);
    }
    wrapped
}

/// Checks a namespace name: a lab prefix, then a short run of safe characters.
pub(crate) fn check_name(name: &str) -> Result<()> {
    let ok = name.starts_with(PREFIX)
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::BadName {
            name: name.to_owned(),
            reason: "a lab namespace is omlab-[a-z0-9-._]",
        })
    }
}

/// Enters `ns` on this thread (and only this thread).
pub(crate) fn enter(ns: &str) -> std::io::Result<()> {
    let f = std::fs::File::open(format!("/run/netns/{ns}"))?;
    // SAFETY: setns on a valid descriptor of a network namespace file; it changes the calling
    // thread's network namespace only.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Runs `make` on a thread of its own inside `ns` and returns what it made: a socket made there
/// stays in `ns`, whichever thread uses it afterwards.
pub(crate) fn make_in<T: Send + 'static>(
    ns: &str,
    make: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    let ns = ns.to_owned();
    std::thread::spawn(move || {
        enter(&ns)?;
        make()
    })
    .join()
    .map_err(|_| std::io::Error::other("the thread making a socket in the namespace panicked"))?
}
