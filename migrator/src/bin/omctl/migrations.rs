//! `omctl migrations`: the moves every live node remembers starting, oldest first, one row each
//! (when, which job, from where to where, why, how it went). The monitor's last-moves list is
//! built from the same cells.

use anyhow::{Context, Result};
use migrator::migration::history::{MoveEvent, now_ms};

use crate::client::Omd;
use crate::stime;
use crate::table::{self, Column};
use crate::units;

const COLUMNS: [Column; 11] = [
    Column::left("TIME"),
    Column::left("JOB"),
    Column::left("FROM"),
    Column::left("TO"),
    Column::left("WHY"),
    Column::left("RESULT"),
    Column::right("FROZEN(ms)"),
    Column::right("TOTAL(ms)"),
    Column::right("SIZE"),
    Column::left("COMMAND"),
    Column::left("ERROR"),
];

/// When a move ended, for humans: see [`stime::stime`].
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Now, ms since the epoch.
    pub now_ms: u64,
    /// The local zone's offset from UTC, seconds.
    pub offset_s: i64,
}

impl Clock {
    /// The real clock and zone.
    pub fn local() -> Self {
        Self {
            now_ms: now_ms(),
            offset_s: stime::local_offset_s(),
        }
    }

    /// `e`'s end time as a cell.
    pub fn time(&self, e: &MoveEvent) -> String {
        stime::stime(e.at_ms, self.now_ms, self.offset_s)
    }
}

/// `ok` or `failed`.
pub fn result(e: &MoveEvent) -> &'static str {
    if e.ok { "ok" } else { "failed" }
}

/// The table text, rows in the order given.
pub fn render(moves: &[MoveEvent], clock: Clock) -> String {
    let dash = || "-".to_owned();
    let rows: Vec<Vec<String>> = moves
        .iter()
        .map(|e| {
            vec![
                clock.time(e),
                e.job.to_string(),
                e.from.clone(),
                e.to.clone(),
                e.why.to_string(),
                result(e).to_owned(),
                if e.ok {
                    e.frozen_ms.to_string()
                } else {
                    dash()
                },
                e.total_ms.to_string(),
                if e.bytes > 0 {
                    units::bytes(e.bytes)
                } else {
                    dash()
                },
                e.command.clone(),
                e.error.clone().unwrap_or_else(dash),
            ]
        })
        .collect();
    table::render(&COLUMNS, &rows)
}

/// `omctl migrations [--json]`.
pub fn run(omd: &Omd, json: bool) -> Result<()> {
    let moves = omd.moves()?;
    if json {
        let text = serde_json::to_string_pretty(&moves).context("encoding the moves")?;
        println!("{text}");
    } else if moves.is_empty() {
        println!("no migrations in the nodes' kept history");
    } else {
        let text = render(&moves, Clock::local());
        match table::terminal_width() {
            Some(w) => print!("{}", table::fit_width(&text, w)),
            None => print!("{text}"),
        }
    }
    Ok(())
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use migrator::job::record::JobId;
    use migrator::migration::history::Why;

    /// A move of job `node1.<n>` at second `at` of 2024-03-05 14:00 UTC.
    pub fn event(n: u32, from: &str, to: &str, at: u64, ok: bool) -> MoveEvent {
        MoveEvent {
            job: JobId::new("node1", n),
            command: format!("omwork spin {n}"),
            from: from.into(),
            to: to.into(),
            at_ms: 1_709_647_200_000 + at * 1000,
            why: if ok { Why::Load } else { Why::Manual },
            ok,
            frozen_ms: if ok { 1351 } else { 0 },
            total_ms: 1880,
            bytes: if ok { 3 << 20 } else { 0 },
            error: (!ok).then(|| "node2 refuses guests (block)".to_owned()),
        }
    }

    pub const CLOCK: Clock = Clock {
        now_ms: 1_709_647_200_000 + 3_600_000,
        offset_s: 0,
    };

    #[test]
    fn a_row_per_move() {
        let moves = [
            event(834, "node1", "node2", 3, true),
            event(839, "node1", "node2", 71, false),
        ];
        let text = render(&moves, CLOCK);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            [
                "TIME",
                "JOB",
                "FROM",
                "TO",
                "WHY",
                "RESULT",
                "FROZEN(ms)",
                "TOTAL(ms)",
                "SIZE",
                "COMMAND",
                "ERROR"
            ]
        );
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            [
                "14:00:03",
                "node1.834",
                "node1",
                "node2",
                "load",
                "ok",
                "1351",
                "1880",
                "3.0M",
                "omwork",
                "spin",
                "834",
                "-"
            ]
        );
        assert!(lines[2].starts_with("14:01:11  node1.839"), "{text}");
        assert!(
            lines[2].contains("manual  failed")
                && lines[2].ends_with("node2 refuses guests (block)"),
            "{text}"
        );
    }
}
