//! The dashboard's load history: one sample of every node's load every [`STEP_MS`], the last
//! hour of them in a bounded ring, so the page can plot it and a restart costs only the plot.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

/// Time between samples.
pub const STEP_MS: u64 = 5_000;
/// How far back the ring reaches.
pub const KEEP_MS: u64 = 3_600_000;

/// One sample: every node's load (`None`: no record, the node is not up).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// When, ms since the epoch.
    pub t_ms: u64,
    /// Load by node name.
    pub loads: BTreeMap<String, Option<f64>>,
}

/// The ring, oldest first.
#[derive(Debug, Default, Serialize)]
pub struct History {
    step_ms: u64,
    keep_ms: u64,
    samples: VecDeque<Sample>,
}

impl History {
    /// An empty ring of [`KEEP_MS`].
    pub fn new() -> Self {
        Self {
            step_ms: STEP_MS,
            keep_ms: KEEP_MS,
            samples: VecDeque::new(),
        }
    }

    /// Add `s`, forgetting the samples older than the window before it. A sample older than
    /// the newest (the clock stepped back) replaces nothing and is dropped.
    pub fn push(&mut self, s: Sample) {
        if self.samples.back().is_some_and(|b| b.t_ms > s.t_ms) {
            return;
        }
        let horizon = s.t_ms.saturating_sub(self.keep_ms);
        while self.samples.front().is_some_and(|f| f.t_ms < horizon) {
            self.samples.pop_front();
        }
        self.samples.push_back(s);
    }

    /// How many samples it holds.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t_ms: u64) -> Sample {
        Sample {
            t_ms,
            loads: BTreeMap::from([("node1".to_owned(), Some(0.5)), ("node2".to_owned(), None)]),
        }
    }

    #[test]
    fn the_ring_keeps_one_hour() {
        let mut h = History::new();
        for i in 0..2000 {
            h.push(at(i * STEP_MS));
        }
        // 3600 s / 5 s, plus the sample exactly at the horizon.
        assert_eq!(h.len(), 721);
        h.push(at(0));
        assert_eq!(h.len(), 721, "a sample from the past is dropped");
        let json = serde_json::to_value(&h).unwrap();
        assert_eq!(json["step_ms"], 5000);
        assert_eq!(json["samples"][0]["loads"]["node1"], 0.5);
        assert!(json["samples"][0]["loads"]["node2"].is_null());
    }
}
