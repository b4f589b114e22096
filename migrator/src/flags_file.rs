//! This node's flags (stay, lstay, block, quiet) in a file, so that a restarted omd keeps what
//! the operator set with `omctl` instead of silently taking jobs again. The file lives under
//! /run: a reboot clears it, as it cleared openMosix's /proc/hpc/admin.

use std::path::{Path, PathBuf};

use crate::api::Flags;

/// Why the flags file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FlagsFileError {
    /// It exists but cannot be read.
    #[error("cannot read the flags file {path}")]
    Read {
        /// File path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// It holds something else than omd's flags.
    #[error("the flags file {path} is not omd's: {reason}")]
    Bad {
        /// File path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// It cannot be written.
    #[error("cannot write the flags file {path}")]
    Write {
        /// File path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

/// The flags kept in `path`; none set when it does not exist.
pub fn load(path: &Path) -> Result<Flags, FlagsFileError> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Flags::default()),
        Err(source) => {
            return Err(FlagsFileError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    serde_json::from_slice(&text).map_err(|e| FlagsFileError::Bad {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// Keep `flags` in `path`, replacing it whole (blocking).
pub fn store(path: &Path, flags: Flags) -> Result<(), FlagsFileError> {
    let write = |source| FlagsFileError::Write {
        path: path.to_owned(),
        source,
    };
    let mut text = serde_json::to_vec(&flags).map_err(|e| write(std::io::Error::other(e)))?;
    text.push(b'\n');
    crate::state_file::replace(path, &text).map_err(write)
}

/// The names of the flags set, for the log ("block, quiet"), or "none".
pub fn describe(f: Flags) -> String {
    let set = f.names();
    if set.is_empty() {
        "none".into()
    } else {
        set.join(", ")
    }
}

/// Restore the flags kept in `path` onto `node` and return them. A file that cannot be used
/// is logged and left to be replaced at the next change.
pub async fn restore(node: &crate::node::NodeHandle, path: &Path) -> Flags {
    let p = path.to_owned();
    let flags = match tokio::task::spawn_blocking(move || load(&p)).await {
        Ok(Ok(f)) => f,
        Ok(Err(e)) => {
            tracing::warn!("{e}: {}; starting with no flags set", chain(&e));
            Flags::default()
        }
        Err(_) => Flags::default(),
    };
    if flags != Flags::default() {
        node.with_agent(|a, _| a.set_flags(flags));
        tracing::info!(
            "node flags restored from {}: {}",
            path.display(),
            describe(flags)
        );
    }
    flags
}

/// Keep `node`'s flags in `path`: checked five times a second, rewritten when a control or
/// `expel` changed them from `last`. Runs until the task is dropped.
pub async fn keep(node: crate::node::NodeHandle, path: PathBuf, mut last: Flags) {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(200));
    loop {
        tick.tick().await;
        let now = node.flags();
        if now == last {
            continue;
        }
        let p = path.clone();
        match tokio::task::spawn_blocking(move || store(&p, now)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("{e}: {}", chain(&e)),
            Err(_) => return,
        }
        last = now;
    }
}

fn chain(e: &FlagsFileError) -> String {
    std::error::Error::source(e).map_or_else(String::new, |s| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_across_a_restart_and_bad_files_are_errors() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("run/omd/flags");
        assert_eq!(load(&p).unwrap(), Flags::default(), "no file: no flags");
        let f = Flags {
            block: true,
            quiet: true,
            ..Flags::default()
        };
        store(&p, f).unwrap();
        assert_eq!(load(&p).unwrap(), f);
        assert_eq!(describe(f), "block, quiet");
        assert_eq!(describe(Flags::default()), "none");
        std::fs::write(&p, b"block\n").unwrap();
        let e = load(&p).unwrap_err().to_string();
        assert!(e.starts_with("the flags file"), "{e}");
    }
}
