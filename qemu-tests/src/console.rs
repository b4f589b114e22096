//! Commands typed on a node's serial console (the image logs root in on ttyS0): the command is
//! framed by numbered BEGIN/END marker lines, so its output and exit status can be picked out of
//! the console log among kernel and daemon messages.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Whether the console log ends with a root shell prompt (`…# `), i.e. bash is waiting for input.
pub fn ends_at_prompt(log: &Path) -> bool {
    let Ok(mut f) = File::open(log) else {
        return false;
    };
    let mut tail = [0u8; 2];
    f.seek(SeekFrom::End(-2))
        .and_then(|_| f.read_exact(&mut tail))
        .is_ok_and(|()| &tail == b"# ")
}

/// What a console command printed (stdout and stderr, in order) and its exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellOutput {
    /// Output lines, without line ends.
    pub lines: Vec<String>,
    /// The shell's `$?` after the command.
    pub status: i32,
}

impl ShellOutput {
    /// The first output line that parses as JSON (daemons may write to the console meanwhile).
    pub fn json(&self) -> Option<serde_json::Value> {
        self.lines
            .iter()
            .filter(|l| l.starts_with('{') || l.starts_with('['))
            .find_map(|l| serde_json::from_str(l).ok())
    }
}

/// The text to type for command number `n`. The markers are printed with `printf` so that the
/// echo of the typed line itself never contains a complete marker. Ctrl-U first clears any
/// half-typed input; a wide terminal keeps tools from truncating columns to the 80 of a serial line.
pub fn command_line(n: u64, command: &str) -> String {
    format!(
        "\x15stty cols 1000 2>/dev/null; printf 'OMLAB-%s-BEGIN\\n' {n}; {{ {command} ; }} 2>&1; printf 'OMLAB-%s-END %s\\n' {n} \"$?\"\n"
    )
}

/// Feeds console lines one by one; returns the output once the END marker of command `n` is seen.
#[derive(Debug)]
pub struct Collector {
    begin: String,
    end: String,
    started: bool,
    lines: Vec<String>,
}

impl Collector {
    /// A collector for command number `n`.
    pub fn new(n: u64) -> Self {
        Collector {
            begin: format!("OMLAB-{n}-BEGIN"),
            end: format!("OMLAB-{n}-END "),
            started: false,
            lines: Vec::new(),
        }
    }

    /// Takes one console line; `Some` when the command has finished.
    pub fn feed(&mut self, line: &str) -> Option<ShellOutput> {
        // Terminal control output (bash's bracketed-paste switch, `ESC[?2004l\r`) can precede
        // what the command printed on the same line: keep only what follows the last `\r`.
        let line = line.rsplit('\r').next().unwrap_or(line).trim_end();
        if !self.started {
            self.started = line.ends_with(&self.begin);
            return None;
        }
        if let Some(at) = line.find(&self.end) {
            return Some(ShellOutput {
                lines: std::mem::take(&mut self.lines),
                status: line[at + self.end.len()..].trim().parse().unwrap_or(-1),
            });
        }
        self.lines.push(line.to_owned());
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_between_markers_ignoring_the_echo() {
        let typed = command_line(7, "omctl nodes --json");
        let mut c = Collector::new(7);
        let console = [
            typed.trim_start_matches('\x15').trim_end(),
            "\x1b[?2004l\rOMLAB-7-BEGIN",
            "[{\"name\":\"node1\"}]",
            "omd: node2 is alive",
            "OMLAB-7-END 0",
        ];
        let mut out = None;
        for l in console {
            out = out.or(c.feed(l));
        }
        let out = out.expect("finished");
        assert_eq!(out.status, 0);
        assert_eq!(out.lines.len(), 2);
        assert_eq!(out.json().expect("json")[0]["name"], "node1");
    }

    #[test]
    fn exit_status_is_kept() {
        let mut c = Collector::new(1);
        assert!(c.feed("OMLAB-1-BEGIN").is_none());
        assert_eq!(c.feed("OMLAB-1-END 3").map(|o| o.status), Some(3));
    }
}
