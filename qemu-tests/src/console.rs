//! Commands typed on a node's serial console (the image logs root in on ttyS0): the command is
//! framed by numbered BEGIN/END marker lines, so its output and exit status can be picked out of
//! the console log among kernel and daemon messages.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// One connection to a node's console socket, read all the time by a thread (QEMU holds the
/// guest's UART back while the socket is full, and a client that comes and goes can leave it
/// stuck), so commands can be typed and their output taken from memory.
#[derive(Debug)]
pub struct Console {
    writer: UnixStream,
    state: Arc<(Mutex<Received>, Condvar)>,
    reader: Option<std::thread::JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct Received {
    lines: Vec<String>,
    partial: Vec<u8>,
    closed: bool,
}

/// How long to wait for a prompt before pressing Enter again.
const REPROMPT: Duration = Duration::from_secs(3);

impl Console {
    /// Connects to the console socket at `path`.
    pub fn connect(path: &Path) -> std::io::Result<Console> {
        let writer = UnixStream::connect(path)?;
        let mut reader = writer.try_clone()?;
        let state = Arc::new((Mutex::new(Received::default()), Condvar::new()));
        let shared = state.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 16 * 1024];
            loop {
                let got = reader.read(&mut buf).unwrap_or(0);
                let (lock, cv) = &*shared;
                let mut r = lock.lock().unwrap_or_else(PoisonError::into_inner);
                if got == 0 {
                    r.closed = true;
                    cv.notify_all();
                    return;
                }
                r.partial.extend_from_slice(&buf[..got]);
                while let Some(nl) = r.partial.iter().position(|&b| b == b'\n') {
                    let raw: Vec<u8> = r.partial.drain(..=nl).collect();
                    let line = String::from_utf8_lossy(&raw)
                        .trim_end_matches(['\n', '\r'])
                        .to_owned();
                    r.lines.push(line);
                }
                cv.notify_all();
            }
        });
        Ok(Console {
            writer,
            state,
            reader: Some(thread),
        })
    }

    /// Types command number `n` once bash shows its prompt, and collects its output. `Err` says
    /// what was being waited for when `timeout` ran out or the console closed.
    pub fn run(&mut self, n: u64, command: &str, timeout: Duration) -> Result<ShellOutput, String> {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.state;
        let mut r = lock.lock().unwrap_or_else(PoisonError::into_inner);
        // Type only at an idle prompt: input typed ahead while bash is between commands is
        // partly lost when readline takes the terminal over. A fresh line asks for a prompt.
        let _ = self.writer.write_all(b"\n");
        let mut asked = Instant::now();
        loop {
            if r.partial.ends_with(b"# ") {
                break;
            }
            if r.closed || Instant::now() >= deadline {
                return Err("a root shell prompt".into());
            }
            // Kernel or journal lines printed after the prompt hide it; ask for another.
            if asked.elapsed() >= REPROMPT {
                let _ = self.writer.write_all(b"\n");
                asked = Instant::now();
            }
            r = cv
                .wait_timeout(r, Duration::from_millis(200))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        let from = r.lines.len();
        self.writer
            .write_all(command_line(n, command).as_bytes())
            .map_err(|e| format!("typing the command ({e})"))?;
        let mut collector = Collector::new(n);
        let mut next = from;
        loop {
            while next < r.lines.len() {
                let out = collector.feed(&r.lines[next]);
                next += 1;
                if let Some(out) = out {
                    return Ok(out);
                }
            }
            if r.closed || Instant::now() >= deadline {
                return Err("the command's END marker".into());
            }
            r = cv
                .wait_timeout(r, Duration::from_millis(200))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.writer.shutdown(std::net::Shutdown::Both);
        if let Some(t) = self.reader.take() {
            let _ = t.join();
        }
    }
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
    /// The output parsed as one JSON document, leaving out the lines the kernel and systemd may
    /// print on the console meanwhile (`[   41.24] omd[307]: …`, `[  OK  ] …`).
    pub fn json(&self) -> Option<serde_json::Value> {
        let text: Vec<&str> = self
            .lines
            .iter()
            .map(String::as_str)
            .filter(|l| !is_console_noise(l))
            .collect();
        let start = text
            .iter()
            .position(|l| l.starts_with('{') || l.starts_with('['))?;
        // The first complete value; whatever follows it (a prompt, a late message) is not ours.
        serde_json::Deserializer::from_str(&text[start..].join("\n"))
            .into_iter()
            .next()?
            .ok()
    }
}

/// A kernel message (`[   12.345678] …`) or a systemd status line (`[  OK  ] …`, `[ ***  ] …`).
fn is_console_noise(line: &str) -> bool {
    let Some(rest) = line.strip_prefix('[') else {
        return false;
    };
    let Some((inside, _)) = rest.split_once(']') else {
        return false;
    };
    let inside = inside.trim();
    let kernel_time = !inside.is_empty()
        && inside.chars().all(|c| c.is_ascii_digit() || c == '.')
        && inside.contains('.');
    let status = !inside.is_empty()
        && (inside == "OK" || inside == "FAILED" || inside.chars().all(|c| c == '*'));
    kernel_time || status
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
    fn pretty_json_is_parsed_around_console_noise() {
        let out = ShellOutput {
            lines: [
                "[",
                "  {",
                "   \"name\": \"node1\",",
                "[   41.248943] omd[307]: member up",
                "[  OK  ] Started x.",
                "   \"ok\": [1]",
                "  }",
                "]",
            ]
            .map(String::from)
            .to_vec(),
            status: 0,
        };
        let v = out.json().expect("json");
        assert_eq!(v[0]["name"], "node1");
        assert_eq!(v[0]["ok"][0], 1);
    }

    #[test]
    fn exit_status_is_kept() {
        let mut c = Collector::new(1);
        assert!(c.feed("OMLAB-1-BEGIN").is_none());
        assert_eq!(c.feed("OMLAB-1-END 3").map(|o| o.status), Some(3));
    }
}
