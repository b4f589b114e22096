//! Watches several logs at once (serial consoles, daemon logs) and records when each awaited line
//! first appeared, so event times (a node joining, a failure detected) are measured from the lab's
//! clock while everything runs concurrently, not from when a test got round to looking.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::wait::LineScanner;

/// An awaited line: in `file`, a line containing every string of `all`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pattern {
    /// The log.
    pub file: PathBuf,
    /// Strings the line must all contain.
    pub all: Vec<String>,
}

impl Pattern {
    /// A line of `file` containing every one of `all`.
    pub fn new(file: impl Into<PathBuf>, all: &[&str]) -> Pattern {
        Pattern {
            file: file.into(),
            all: all.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

/// A background watcher; stops when dropped.
#[derive(Debug)]
pub struct LogWatch {
    seen: Arc<Mutex<HashMap<Pattern, Instant>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LogWatch {
    /// Starts watching for `patterns`, reading only what is written from now on (every 50 ms).
    pub fn start(patterns: Vec<Pattern>) -> LogWatch {
        let seen = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (s2, stop2) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut files: HashMap<PathBuf, LineScanner> = HashMap::new();
            for p in &patterns {
                let offset = std::fs::metadata(&p.file).map_or(0, |m| m.len());
                files
                    .entry(p.file.clone())
                    .or_insert_with(|| LineScanner::new(&p.file, offset));
            }
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                for (file, scanner) in &mut files {
                    // Collect every new line; match each against this file's patterns.
                    let mut lines = Vec::new();
                    let _ = scanner.find(|l| {
                        lines.push(l.to_owned());
                        false
                    });
                    if lines.is_empty() {
                        continue;
                    }
                    let now = Instant::now();
                    let mut seen = s2.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    for p in patterns.iter().filter(|p| &p.file == file) {
                        if !seen.contains_key(p)
                            && lines.iter().any(|l| p.all.iter().all(|s| l.contains(s)))
                        {
                            seen.insert(p.clone(), now);
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        LogWatch {
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// When `p` was first seen, if it was.
    pub fn seen(&self, p: &Pattern) -> Option<Instant> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(p)
            .copied()
    }

    /// Waits up to `timeout` until every one of `patterns` has been seen; returns their times in
    /// order, or the patterns still missing.
    pub fn wait_all(
        &self,
        patterns: &[Pattern],
        timeout: Duration,
    ) -> std::result::Result<Vec<Instant>, Vec<Pattern>> {
        let deadline = Instant::now() + timeout;
        loop {
            let times: Vec<Option<Instant>> = patterns.iter().map(|p| self.seen(p)).collect();
            if times.iter().all(Option::is_some) {
                return Ok(times.into_iter().flatten().collect());
            }
            if Instant::now() >= deadline || crate::cancel::is_aborted() {
                return Err(patterns
                    .iter()
                    .zip(times)
                    .filter(|(_, t)| t.is_none())
                    .map(|(p, _)| p.clone())
                    .collect());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for LogWatch {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn records_first_appearance_of_each_pattern() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.log");
        std::fs::write(&a, "old member up name=x\n").unwrap();
        let p_x = Pattern::new(&a, &["member up", "name=x"]);
        let p_y = Pattern::new(&a, &["member up", "name=y"]);
        let watch = LogWatch::start(vec![p_x.clone(), p_y.clone()]);
        std::thread::sleep(Duration::from_millis(120));
        let mut f = std::fs::OpenOptions::new().append(true).open(&a).unwrap();
        writeln!(f, "INFO member up id=1 name=y addr=z").unwrap();
        let times = watch
            .wait_all(std::slice::from_ref(&p_y), Duration::from_secs(5))
            .unwrap();
        assert_eq!(times.len(), 1);
        // Lines written before the watch started do not count.
        assert_eq!(
            watch
                .wait_all(std::slice::from_ref(&p_x), Duration::from_millis(200))
                .unwrap_err(),
            vec![p_x]
        );
    }
}
