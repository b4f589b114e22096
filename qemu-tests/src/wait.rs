//! Bounded waits: polling a condition or a growing log file for a line, with a deadline, the
//! abort flag checked on every round, and the log's tail in the error when time runs out.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cancel;
use crate::error::{Error, Result};

/// How often waits look again.
pub(crate) const POLL: Duration = Duration::from_millis(100);

/// How many log lines an error shows.
pub const TAIL_LINES: usize = 40;

/// Polls `check` until it yields a value, fails, the deadline passes or an abort is requested.
/// `what` completes "waiting for …" in errors; `detail` is called only on timeout.
pub(crate) fn until<T>(
    what: &str,
    timeout: Duration,
    detail: impl FnOnce() -> String,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = check()? {
            return Ok(v);
        }
        if cancel::is_aborted() {
            return Err(Error::Aborted {
                what: what.to_owned(),
            });
        }
        if start.elapsed() >= timeout {
            return Err(Error::Timeout {
                what: what.to_owned(),
                secs: start.elapsed().as_secs_f64(),
                detail: detail(),
            });
        }
        std::thread::sleep(POLL);
    }
}

/// Reads complete lines appended to a file since a given offset; a file that does not exist yet
/// reads as empty (QEMU creates its serial file a moment after it starts).
#[derive(Debug)]
pub(crate) struct LineScanner {
    path: PathBuf,
    pos: u64,
    partial: Vec<u8>,
}

impl LineScanner {
    pub fn new(path: &Path, offset: u64) -> Self {
        LineScanner {
            path: path.to_owned(),
            pos: offset,
            partial: Vec::new(),
        }
    }

    /// Returns the first new complete line (without `\r`/`\n`) for which `pred` is true.
    pub fn find(&mut self, mut pred: impl FnMut(&str) -> bool) -> Result<Option<String>> {
        let mut file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(Error::Io {
                    what: format!("open {}", self.path.display()),
                    source,
                });
            }
        };
        let mut fresh = Vec::new();
        file.seek(SeekFrom::Start(self.pos))
            .and_then(|_| file.read_to_end(&mut fresh))
            .map_err(|source| Error::Io {
                what: format!("read {}", self.path.display()),
                source,
            })?;
        self.pos += fresh.len() as u64;
        self.partial.extend_from_slice(&fresh);
        // Only complete lines count: a half-written marker line must not parse as a short one.
        while let Some(nl) = self.partial.iter().position(|&b| b == b'\n') {
            let raw: Vec<u8> = self.partial.drain(..=nl).collect();
            let line = String::from_utf8_lossy(&raw);
            let line = line.trim_end_matches(['\n', '\r']).trim_start_matches('\r');
            if pred(line) {
                return Ok(Some(line.to_owned()));
            }
        }
        Ok(None)
    }
}

/// Waits until a line containing `needle` appears in `log`, and returns that line.
/// On timeout the error carries the last [`TAIL_LINES`] lines of the log.
pub fn wait_for_line(log: &Path, needle: &str, timeout: Duration) -> Result<String> {
    let mut scanner = LineScanner::new(log, 0);
    until(
        &format!("{needle:?} in {}", log.display()),
        timeout,
        || tail_detail(log),
        || scanner.find(|l| l.contains(needle)),
    )
}

/// "\nlast N lines of PATH:\n…" for error messages, or a note that the log is empty.
pub(crate) fn tail_detail(log: &Path) -> String {
    tail_detail_since(log, 0)
}

/// Like [`tail_detail`], looking only past byte `offset` (the output of the latest run of a
/// process whose log is appended to).
pub(crate) fn tail_detail_since(log: &Path, offset: u64) -> String {
    let tail = tail_since(log, offset, TAIL_LINES);
    if tail.is_empty() {
        format!("\n({} is empty or missing)", log.display())
    } else {
        format!("\nlast {TAIL_LINES} lines of {}:\n{tail}", log.display())
    }
}

/// The last `n` lines of a file, with terminal escapes and carriage returns removed so serial
/// consoles read cleanly in an error message.
pub fn tail(path: &Path, n: usize) -> String {
    tail_since(path, 0, n)
}

fn tail_since(path: &Path, offset: u64, n: usize) -> String {
    let Ok(bytes) = std::fs::read(path) else {
        return String::new();
    };
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    let text = strip_escapes(&String::from_utf8_lossy(&bytes[start..]));
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Removes ANSI CSI sequences (`ESC [ … letter`), other escapes and carriage returns.
pub(crate) fn strip_escapes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    // Parameters and intermediates, up to the final byte in '@'..='~'.
                    for f in chars.by_ref() {
                        if ('@'..='~').contains(&f) {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            '\r' => {}
            c if c.is_control() && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn strips_terminal_noise() {
        assert_eq!(
            strip_escapes("\u{1b}[0;32m  OK  \u{1b}[0m done\r\n"),
            "  OK   done\n"
        );
        assert_eq!(strip_escapes("a\u{1b}cb\u{0}"), "ab");
    }

    #[test]
    fn scanner_sees_only_complete_new_lines() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("x.log");
        let mut scanner = LineScanner::new(&path, 0);
        assert_eq!(scanner.find(|_| true).expect("missing file"), None);
        let mut f = File::create(&path).expect("create");
        write!(f, "first\r\nOMBOOT-READY name=n").expect("write");
        assert_eq!(scanner.find(|l| l.contains("OMBOOT")).expect("scan"), None);
        write!(f, "1 ip=10.0.0.1 state=running\r\n").expect("write");
        assert_eq!(
            scanner
                .find(|l| l.contains("OMBOOT"))
                .expect("scan")
                .as_deref(),
            Some("OMBOOT-READY name=n1 ip=10.0.0.1 state=running")
        );
    }

    #[test]
    fn timeout_error_carries_tail() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("y.log");
        let lines: String = (0..50).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, lines).expect("write");
        let err =
            wait_for_line(&path, "never", Duration::from_millis(150)).expect_err("must time out");
        let msg = err.to_string();
        assert!(
            msg.contains("line 49") && msg.contains("line 10") && !msg.contains("line 9\n"),
            "{msg}"
        );
    }
}
