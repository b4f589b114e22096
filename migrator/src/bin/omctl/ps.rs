//! `omctl ps`: local processes with the node they run on and their home (mps). A job's deputy
//! shows the node its job runs on; a guest job's processes show their home.

use anyhow::{Context, Result};
use serde::Serialize;

use crate::client::Omd;
use crate::places::Places;
use crate::procs::{self, Proc, Snapshot};
use crate::selfnode;
use crate::table::{self, Column};
use crate::users::Users;

/// One output row (also the `--json` shape).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// Process id.
    pub pid: i32,
    /// Owner's login name (or uid).
    pub user: String,
    /// Node the process runs on.
    pub node: String,
    /// Its home node.
    pub home: String,
    /// CPU use in percent of one CPU (ps: over the process's life; top: over the interval).
    pub cpu_percent: f64,
    /// Resident set, KiB.
    pub rss_kib: u64,
    /// ps STAT code.
    pub stat: String,
    /// Command line.
    pub command: String,
}

/// Runs the command.
pub fn run(omd: &Omd, json: bool) -> Result<()> {
    let (node, _) = selfnode::name(omd);
    let snap = procs::snapshot()?;
    let users = Users::load();
    let places = Places::load(omd, &node);
    let rows: Vec<Row> = snap
        .procs
        .iter()
        .map(|p| row(p, &users, &places.of(p.pid, &node), lifetime_cpu(p, &snap)))
        .collect();
    if json {
        let text = serde_json::to_string_pretty(&rows).context("encoding the process list")?;
        println!("{text}");
    } else {
        let text = render(&rows);
        match table::terminal_width() {
            Some(width) => print!("{}", table::fit_width(&text, width)),
            None => print!("{text}"),
        }
    }
    Ok(())
}

/// A row from a process, its (node, home) and its CPU figure.
pub fn row(p: &Proc, users: &Users, place: &(String, String), cpu_percent: f64) -> Row {
    Row {
        pid: p.pid,
        user: users.name(p.uid),
        node: place.0.clone(),
        home: place.1.clone(),
        cpu_percent,
        rss_kib: p.rss_kib,
        stat: p.stat.clone(),
        command: p.command.clone(),
    }
}

/// ps's %CPU: CPU time over time since the process started, in percent of one CPU.
pub fn lifetime_cpu(p: &Proc, snap: &Snapshot) -> f64 {
    let tps = snap.ticks_per_sec as f64;
    let age = snap.uptime - p.start_ticks as f64 / tps;
    if age <= 0.0 {
        return 0.0;
    }
    p.cpu_ticks as f64 / tps / age * 100.0
}

const COLUMNS: [Column; 8] = [
    Column::right("PID"),
    Column::left("USER"),
    Column::left("NODE"),
    Column::left("HOME"),
    Column::right("%CPU"),
    Column::right("RSS"),
    Column::left("STAT"),
    Column::left("COMMAND"),
];

/// The table text.
pub fn render(rows: &[Row]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.pid.to_string(),
                r.user.clone(),
                r.node.clone(),
                r.home.clone(),
                format!("{:.1}", r.cpu_percent),
                r.rss_kib.to_string(),
                r.stat.clone(),
                r.command.clone(),
            ]
        })
        .collect();
    table::render(&COLUMNS, &cells)
}

#[cfg(test)]
pub mod tests {
    use super::*;

    pub fn proc(pid: i32, cpu_ticks: u64, command: &str) -> Proc {
        Proc {
            pid,
            uid: 0,
            stat: "S".into(),
            cpu_ticks,
            start_ticks: 1000,
            rss_kib: 2048,
            command: command.into(),
        }
    }

    #[test]
    fn lifetime_percent() {
        // Started at 10 s, now 30 s: 5 s of CPU in 20 s is 25%.
        let snap = Snapshot {
            procs: vec![],
            uptime: 30.0,
            ticks_per_sec: 100,
        };
        assert!((lifetime_cpu(&proc(1, 500, "x"), &snap) - 25.0).abs() < 1e-9);
        let young = Snapshot {
            uptime: 10.0,
            ..snap
        };
        assert!(lifetime_cpu(&proc(1, 500, "x"), &young).abs() < 1e-9);
    }

    #[test]
    fn rows_and_table() {
        let place = ("node2".to_owned(), "node1".to_owned());
        let r = row(&proc(42, 0, "sleep 100"), &Users::default(), &place, 12.34);
        assert_eq!(r.user, "0");
        assert_eq!(
            render(&[r]),
            "PID  USER  NODE   HOME   %CPU   RSS  STAT  COMMAND\n \
             42  0     node2  node1  12.3  2048  S     sleep 100\n"
        );
    }
}
