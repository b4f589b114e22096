//! `omctl top`: processes by CPU use over each interval, with their node (mtop). Batch style:
//! appended iterations when piped; on a terminal the screen is redrawn and cut to fit.

use std::collections::HashMap;
use std::io::{IsTerminal, Write, stdout};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use procfs::Current;

use crate::client::Omd;
use crate::places::Places;
use crate::procs::{self, Snapshot};
use crate::ps::{self, Row};
use crate::selfnode;
use crate::table;
use crate::users::Users;

/// Runs `iterations` rounds (forever if `None`), `delay` seconds apart.
pub fn run(omd: &Omd, iterations: Option<u64>, delay: f64) -> Result<()> {
    let (node, from_omd) = selfnode::name(omd);
    let users = Users::load();
    let tty = stdout().is_terminal();
    let mut prev = procs::snapshot()?;
    let mut prev_at = Instant::now();
    let mut done = 0;
    while iterations.is_none_or(|n| done < n) {
        std::thread::sleep(Duration::from_secs_f64(delay));
        let now = procs::snapshot()?;
        let secs = prev_at.elapsed().as_secs_f64();
        prev_at = Instant::now();
        let places = Places::load(omd, &node);
        let rows = rows(&prev, &now, secs, &users, &node, &places);
        let load = procfs::LoadAverage::current()
            .map(|l| format!("{:.2} {:.2} {:.2}", l.one, l.five, l.fifteen))
            .unwrap_or_else(|_| "?".to_owned());
        let head = header(&node, from_omd, rows.len(), &load, secs);
        let mut out = stdout().lock();
        let text = if tty {
            // Leave room for the header, the column titles and the cursor line.
            let (width, height) = crossterm::terminal::size().unwrap_or((80, 24));
            let shown = &rows[..rows.len().min(usize::from(height).saturating_sub(3))];
            let screen = format!("{head}\n{}", ps::render(shown));
            format!(
                "\x1b[H\x1b[2J{}",
                table::fit_width(&screen, usize::from(width))
            )
        } else {
            format!("{head}\n{}\n", ps::render(&rows))
        };
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .context("writing to stdout")?;
        prev = now;
        done += 1;
    }
    Ok(())
}

/// The header line of one iteration. When omd did not name the node it says so here too: on a
/// terminal the screen is cleared, so the note on stderr is gone by the first frame.
pub fn header(node: &str, from_omd: bool, tasks: usize, load: &str, secs: f64) -> String {
    let source = if from_omd {
        ""
    } else {
        " (host name: omd not answering)"
    };
    format!(
        "omctl top - node {node}{source} - {tasks} processes - load average {load} - over {secs:.1}s"
    )
}

/// Rows for `now`, %CPU over the interval since `prev`, busiest first (then by pid).
pub fn rows(
    prev: &Snapshot,
    now: &Snapshot,
    secs: f64,
    users: &Users,
    node: &str,
    places: &Places,
) -> Vec<Row> {
    let before: HashMap<(i32, u64), u64> = prev
        .procs
        .iter()
        .map(|p| ((p.pid, p.start_ticks), p.cpu_ticks))
        .collect();
    let mut rows: Vec<Row> = now
        .procs
        .iter()
        .map(|p| {
            // Keyed by start time too, so a reused pid is not charged its predecessor's time;
            // a process new in this interval spent all its CPU time within it.
            let was = before.get(&(p.pid, p.start_ticks)).copied().unwrap_or(0);
            let cpu = interval_cpu(was, p.cpu_ticks, now.ticks_per_sec, secs);
            ps::row(p, users, &places.of(p.pid, node), cpu)
        })
        .collect();
    rows.sort_by(|a, b| {
        b.cpu_percent
            .total_cmp(&a.cpu_percent)
            .then(a.pid.cmp(&b.pid))
    });
    rows
}

/// Percent of one CPU used between two CPU-tick readings `secs` apart.
pub fn interval_cpu(before: u64, after: u64, ticks_per_sec: u64, secs: f64) -> f64 {
    if secs <= 0.0 || ticks_per_sec == 0 {
        return 0.0;
    }
    after.saturating_sub(before) as f64 / ticks_per_sec as f64 / secs * 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ps::tests::proc;

    #[test]
    fn interval_percent() {
        assert!((interval_cpu(100, 250, 100, 3.0) - 50.0).abs() < 1e-9);
        assert!(interval_cpu(250, 100, 100, 3.0).abs() < 1e-9);
        assert!(interval_cpu(0, 100, 100, 0.0).abs() < 1e-9);
    }

    #[test]
    fn busiest_first_and_new_processes_count() {
        let snap = |procs| Snapshot {
            procs,
            uptime: 100.0,
            ticks_per_sec: 100,
        };
        let prev = snap(vec![proc(1, 100, "idle"), proc(2, 100, "busy")]);
        let now = snap(vec![
            proc(1, 101, "idle"),
            proc(2, 200, "busy"),
            proc(3, 50, "new"),
        ]);
        let rows = rows(
            &prev,
            &now,
            1.0,
            &Users::default(),
            "node1",
            &Places::default(),
        );
        let order: Vec<(&str, f64)> = rows
            .iter()
            .map(|r| (r.command.as_str(), r.cpu_percent))
            .collect();
        assert_eq!(order, [("busy", 100.0), ("new", 50.0), ("idle", 1.0)]);
        assert!(rows.iter().all(|r| r.node == "node1"));
    }

    #[test]
    fn header_text() {
        assert_eq!(
            header("node1", true, 3, "0.10 0.20 0.30", 3.0),
            "omctl top - node node1 - 3 processes - load average 0.10 0.20 0.30 - over 3.0s"
        );
        assert!(
            header("vm", false, 3, "0", 3.0).contains("node vm (host name: omd not answering)")
        );
    }
}
