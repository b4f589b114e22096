//! Jobs on booted lab nodes, driven through their console as a user would: omrun in the
//! background with its output in /tmp, omctl's JSON tables, omd's log for failure messages.
//! Shared by the migration and balancing suites.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::time::{Duration, Instant};

use crate::RunningNode;

/// Time allowed for one console command.
pub const T: Duration = Duration::from_secs(120);

/// Runs `cmd` on `node`'s console: (status, output lines).
pub fn sh(node: &RunningNode<'_>, cmd: &str) -> (i32, Vec<String>) {
    let out = node.shell(cmd, T).unwrap();
    (out.status, out.lines)
}

/// The jobs table as `omctl jobs --json` gives it on `node`.
pub fn jobs(node: &RunningNode<'_>) -> Vec<serde_json::Value> {
    let out = node.shell("omctl jobs --json", T).unwrap();
    assert_eq!(out.status, 0, "omctl jobs: {:?}", out.lines);
    out.json()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_else(|| panic!("no JSON: {:?}", out.lines))
}

/// Starts `omrun ARGS` on `node` in the background, its output and status in /tmp/NAME.*.
pub fn start(node: &RunningNode<'_>, name: &str, args: &str) {
    start_line(node, name, &format!("omrun {args} < /dev/null"));
}

/// Starts the shell line `line` (which runs omrun) on `node` in the background, its output and
/// status in /tmp/NAME.*.
pub fn start_line(node: &RunningNode<'_>, name: &str, line: &str) {
    // `line` goes inside double quotes of the console's shell: keep its `$` for the job.
    let line = line.replace('$', "\\$");
    let cmd = format!(
        "( cd / && rm -f /tmp/{name}.status && setsid sh -c \"{line} > /tmp/{name}.out 2> /tmp/{name}.err; echo \\$? > /tmp/{name}.status\" > /dev/null 2>&1 < /dev/null & )"
    );
    let (status, lines) = sh(node, &cmd);
    assert_eq!(status, 0, "{lines:?}");
}

/// Waits for /tmp/NAME.status; returns (status, stdout lines).
pub fn finished(node: &RunningNode<'_>, name: &str, within: Duration) -> (i32, Vec<String>) {
    let t = Instant::now();
    loop {
        let (s, l) = sh(node, &format!("cat /tmp/{name}.status 2>/dev/null"));
        if s == 0 && !l.is_empty() {
            let status: i32 = l.last().unwrap().trim().parse().unwrap();
            let out = node
                .shell(&format!("cat /tmp/{name}.out"), T)
                .unwrap()
                .lines;
            return (status, out);
        }
        assert!(t.elapsed() < within, "{name} did not finish");
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// omd's recent log on each node, for a failure message.
pub fn diag(nodes: &[&RunningNode<'_>]) -> String {
    nodes
        .iter()
        .map(|n| {
            let (_, l) = sh(n, "journalctl -u omd --no-pager -n 40 -o cat; tail -n 20 /run/omd/jobs/*/keeper.log 2>/dev/null; tail -n 5 /tmp/*.err /tmp/*.out 2>/dev/null | cut -c1-200");
            format!("--- {}:\n{}", n.name(), l.join("\n"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Until omd on `n` answers and sees node1 and node2 alive and taking migrations (at the start,
/// after an omd restart, after a pulled link); the test fails after [`T`].
pub fn wait_peers(n: &RunningNode<'_>) {
    peers_ready(n, T).unwrap_or_else(|e| panic!("{e}"));
}

/// [`wait_peers`] for callers that go on after a failure (benchmarks): an error after `within`.
pub fn peers_ready(n: &RunningNode<'_>, within: Duration) -> crate::Result<()> {
    let t = Instant::now();
    loop {
        let out = n.shell("omctl nodes --json", T)?;
        let ok = out
            .json()
            .and_then(|v| v.as_array().cloned())
            .is_some_and(|rows| {
                rows.iter()
                    .filter(|r| r["name"].as_str().is_some_and(|s| s.starts_with("node")))
                    .filter(|r| r["state"] == "alive" && r["load"]["migration"] == true)
                    .count()
                    == 2
            });
        if ok {
            return Ok(());
        }
        if t.elapsed() >= within {
            return Err(crate::Error::Timeout {
                what: format!("{} to see both nodes alive and taking migrations", n.name()),
                secs: t.elapsed().as_secs_f64(),
                detail: format!("\n{}", out.lines.join("\n")),
            });
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// A suite's phases on one booted lab: each runs in order and prints when it ended, or only
/// those named in `OMLAB_PHASES=a,b` (a debugging aid; CI runs them all).
#[derive(Debug)]
pub struct Phases {
    only: Option<String>,
    t0: Instant,
}

impl Phases {
    /// Reads `OMLAB_PHASES`; the clock starts now.
    pub fn from_env() -> Self {
        Self {
            only: std::env::var("OMLAB_PHASES").ok(),
            t0: Instant::now(),
        }
    }

    /// Runs phase `name` unless `OMLAB_PHASES` leaves it out.
    pub fn run(&self, name: &str, f: impl FnOnce()) {
        if self
            .only
            .as_deref()
            .is_none_or(|o| o.split(',').any(|p| p == name))
        {
            f();
            println!("[{:.0} s] {name}: ok", self.t0.elapsed().as_secs_f64());
        }
    }
}
