//! Iterative pre-dump: while the job runs, CRIU copies its memory and tracks what it writes
//! (`criu pre-dump --track-mem`); each round sends only the pages dirtied since the last, and
//! the final, frozen dump carries what is left. This module decides how many rounds to make.

/// When to pre-dump, from `[migration]` in omd.toml.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreDumpPolicy {
    /// At most this many rounds before the final dump (0: never pre-dump).
    pub max_rounds: u32,
    /// Only jobs with at least this much resident memory are pre-dumped, bytes: for a small
    /// job a round costs more than the frozen time it saves.
    pub min_rss: u64,
    /// Stop once a round moved less than this many bytes: what is left is cheap to move frozen.
    pub small_round: u64,
}

impl Default for PreDumpPolicy {
    fn default() -> Self {
        Self {
            max_rounds: 3,
            min_rss: 32 << 20,
            small_round: 8 << 20,
        }
    }
}

impl PreDumpPolicy {
    /// Should another round run, for a job of `rss` bytes whose rounds so far moved `done`
    /// bytes each (in order)?
    pub fn another_round(&self, rss: u64, done: &[u64]) -> bool {
        if done.len() >= self.max_rounds as usize || rss < self.min_rss {
            return false;
        }
        match done {
            [] => true,
            [.., last] if *last < self.small_round => false,
            // The job dirties memory as fast as we move it: another round gains nothing.
            [.., prev, last] if *last * 4 > *prev * 3 => false,
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn small_jobs_and_a_zero_limit_never_pre_dump() {
        let p = PreDumpPolicy::default();
        assert!(!p.another_round(16 * MIB, &[]));
        assert!(p.another_round(64 * MIB, &[]));
        let off = PreDumpPolicy { max_rounds: 0, ..p };
        assert!(!off.another_round(512 * MIB, &[]));
    }

    #[test]
    fn rounds_stop_when_little_is_left_or_nothing_converges_or_at_the_limit() {
        let p = PreDumpPolicy::default();
        let rss = 512 * MIB;
        // An idle job: the second round finds almost nothing dirty.
        assert!(p.another_round(rss, &[512 * MIB]));
        assert!(!p.another_round(rss, &[512 * MIB, MIB]));
        // 10%/s dirtied: rounds shrink, so they go on up to the limit.
        assert!(p.another_round(rss, &[512 * MIB, 200 * MIB]));
        assert!(!p.another_round(rss, &[512 * MIB, 200 * MIB, 100 * MIB]));
        // Dirtied as fast as sent: one more round would move as much again.
        assert!(!p.another_round(rss, &[512 * MIB, 500 * MIB]));
    }
}
