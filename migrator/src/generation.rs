//! The SWIM generation of this process from a counter file, not the wall clock (a diskless node
//! may not have set it): each start takes N + 1 from the number N in the file and writes N +
//! [`STEP`] back, so later starts are newer whatever renewals this life makes in memory.

use std::path::{Path, PathBuf};

/// Generations reserved per start: foca's `renew` adds 1 in memory each time this node is
/// declared down while alive, and a later start must not reuse those.
pub const STEP: u64 = 1024;

/// Why the generation file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum GenerationError {
    /// It exists but cannot be read.
    #[error("cannot read the generation file {path}")]
    Read {
        /// File path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// It does not hold a decimal number.
    #[error(
        "the generation file {path} holds {text:?}, not a number; remove it to start from 0 (the cluster then refuses this node until it forgets its last life)"
    )]
    NotANumber {
        /// File path.
        path: PathBuf,
        /// What it holds (cut to 40 bytes).
        text: String,
    },
    /// So close to `u64::MAX` that no block of [`STEP`] is left.
    #[error("the generation file {path} holds {value}: no generations left above it")]
    Exhausted {
        /// File path.
        path: PathBuf,
        /// The number in it.
        value: u64,
    },
    /// The new number could not be written (or the directory made).
    #[error("cannot write the generation file {path}")]
    Write {
        /// File path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

/// The number in `path`, 0 if it does not exist. Reads only (`omd check-config`).
pub fn peek(path: &Path) -> Result<u64, GenerationError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(source) => {
            return Err(GenerationError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    text.trim()
        .parse()
        .map_err(|_| GenerationError::NotANumber {
            path: path.to_owned(),
            text: text.chars().take(40).collect(),
        })
}

/// Take this process's generation: N + 1 for the number N in `path` (0 if missing), after
/// writing N + [`STEP`] back (a temporary file renamed over it, so a crash leaves the old or
/// the new number, never half of one). The directory is made if missing.
pub fn take(path: &Path) -> Result<u64, GenerationError> {
    let n = peek(path)?;
    let next = n.checked_add(STEP).ok_or(GenerationError::Exhausted {
        path: path.to_owned(),
        value: n,
    })?;
    let write = |source| GenerationError::Write {
        path: path.to_owned(),
        source,
    };
    crate::state_file::replace(path, format!("{next}\n").as_bytes()).map_err(write)?;
    Ok(n + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_start_is_newer_than_every_renewal_of_the_last() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("run/omd/generation");
        assert_eq!(peek(&p).unwrap(), 0);
        let first = take(&p).unwrap();
        assert_eq!(first, 1, "a missing file starts at 0");
        assert_eq!(peek(&p).unwrap(), STEP);
        let second = take(&p).unwrap();
        assert_eq!(second, STEP + 1);
        assert!(second > first + (STEP - 1), "room for STEP - 1 renewals");
        assert_eq!(
            std::fs::read_dir(p.parent().unwrap()).unwrap().count(),
            1,
            "no temporary file left"
        );
    }

    #[test]
    fn a_seeded_boot_count_is_used_as_it_is() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("generation");
        // What the node's boot unit writes: (boot number from the master) << 32.
        std::fs::write(&p, format!("{}\n", 7u64 << 32)).unwrap();
        assert_eq!(take(&p).unwrap(), (7 << 32) + 1);
        assert_eq!(take(&p).unwrap(), (7 << 32) + STEP + 1);
    }

    #[test]
    fn garbage_and_the_end_of_the_range_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("generation");
        std::fs::write(&p, "soon").unwrap();
        let e = take(&p).unwrap_err();
        assert!(e.to_string().contains("not a number"), "{e}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "soon", "left alone");
        std::fs::write(&p, format!("{}", u64::MAX - 1)).unwrap();
        assert!(matches!(take(&p), Err(GenerationError::Exhausted { .. })));
    }
}
