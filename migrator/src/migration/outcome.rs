//! The source's decision about each migration, made once: committed (it killed its copy) or
//! aborted (it resumed it). Asking for an undecided migration decides it aborted, so a target
//! that lost the link can never run a job the source is about to resume, and the source can no
//! longer commit once it said "aborted". Kept in files under /run so a restarted omd answers
//! the same.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use crate::migration::protocol::Outcome;

/// Decisions by migration id.
#[derive(Debug)]
pub struct Outcomes {
    dir: PathBuf,
    known: Mutex<HashMap<u64, Outcome>>,
}

fn parse(text: &str) -> Option<Outcome> {
    match text.trim() {
        "committed" => Some(Outcome::Committed),
        "aborted" => Some(Outcome::Aborted),
        _ => None,
    }
}

impl Outcomes {
    /// Load the decisions kept in `dir` (created if missing).
    pub fn open(dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let mut known = HashMap::new();
        for e in std::fs::read_dir(&dir)?.flatten() {
            let (Some(mid), Ok(text)) = (
                e.file_name().to_str().and_then(|n| n.parse::<u64>().ok()),
                std::fs::read_to_string(e.path()),
            ) else {
                continue;
            };
            if let Some(o) = parse(&text) {
                known.insert(mid, o);
            }
        }
        Ok(Self {
            dir,
            known: Mutex::new(known),
        })
    }

    /// Decide `mid` as `want` unless it is decided already; returns the decision in force.
    pub fn decide(&self, mid: u64, want: Outcome) -> Outcome {
        let mut k = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(o) = k.get(&mid) {
            return *o;
        }
        let word = match want {
            Outcome::Committed => "committed",
            Outcome::Aborted => "aborted",
        };
        let decided = want;
        // Written under the lock: the file and the map never disagree.
        if let Err(e) = std::fs::write(self.dir.join(mid.to_string()), word) {
            tracing::warn!(mid, error = %e, "cannot record a migration outcome");
        }
        k.insert(mid, decided);
        decided
    }

    /// The decision for `mid`, deciding it aborted if there is none yet.
    pub fn settle(&self, mid: u64) -> Outcome {
        self.decide(mid, Outcome::Aborted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_decision_wins_and_survives_a_restart() {
        let d = tempfile::tempdir().unwrap();
        let o = Outcomes::open(d.path().to_path_buf()).unwrap();
        assert_eq!(o.decide(1, Outcome::Committed), Outcome::Committed);
        assert_eq!(o.settle(1), Outcome::Committed);
        // A target asked first: the source can no longer commit.
        assert_eq!(o.settle(2), Outcome::Aborted);
        assert_eq!(o.decide(2, Outcome::Committed), Outcome::Aborted);
        let again = Outcomes::open(d.path().to_path_buf()).unwrap();
        assert_eq!(again.settle(1), Outcome::Committed);
        assert_eq!(again.decide(2, Outcome::Committed), Outcome::Aborted);
    }
}
