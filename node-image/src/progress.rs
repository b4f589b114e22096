//! Step-by-step progress on stdout: each line carries the time since the build started.
//!
//! A build takes a minute when the cache is cold; the operator should see which step is running.

use std::time::{Duration, Instant};

/// Prints step names and their durations, prefixed with the elapsed build time.
#[derive(Debug)]
pub struct Progress {
    start: Instant,
}

/// One running step; [`Step::done`] prints how long it took.
#[derive(Debug)]
pub struct Step<'a> {
    progress: &'a Progress,
    name: String,
    start: Instant,
}

impl Progress {
    /// Start the clock.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
        }
    }

    /// Time since the build started.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Print a line with the elapsed time.
    pub fn say(&self, message: &str) {
        println!("[{:>6.1}s] {message}", self.elapsed().as_secs_f64());
    }

    /// Announce a step.
    pub fn step(&self, name: impl Into<String>) -> Step<'_> {
        let name = name.into();
        self.say(&format!("==> {name}"));
        Step {
            progress: self,
            name,
            start: Instant::now(),
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Step<'_> {
    /// Print a detail line inside this step.
    pub fn detail(&self, message: &str) {
        self.progress.say(&format!("    {message}"));
    }

    /// Finish the step, printing its duration and an optional summary.
    pub fn done(self, summary: &str) {
        let took = self.start.elapsed().as_secs_f64();
        let sep = if summary.is_empty() { "" } else { ": " };
        self.progress.say(&format!(
            "    {} done in {took:.1}s{sep}{summary}",
            self.name
        ));
    }
}
