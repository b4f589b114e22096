//! The report of `omctl stress`, built from the passes: a row per job (its id, the nodes it ran
//! on, its migrations, wall times, result), the makespan line with the speedup over running at
//! home, and the same as JSON. Pure.

use migrator::migration::history::MoveEvent;
use serde::Serialize;

use super::check;
use super::mix::Job;
use super::run::{Outcome, Pass};
use super::track;
use crate::table::{self, Column};

/// One job's line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobReport {
    /// Name in the mix (`spin1`, `mem`, ...).
    pub name: String,
    /// Kind and size (`spin 20`).
    pub kind: String,
    /// Its cluster job id in the balanced pass, if known.
    pub id: Option<String>,
    /// The nodes it ran on in the balanced pass, in order.
    pub nodes: Vec<String>,
    /// Its successful migrations in the balanced pass.
    pub migrations: usize,
    /// Wall time in the balanced pass, seconds.
    pub wall_s: f64,
    /// Wall time at home, seconds (no baseline: `None`).
    pub home_wall_s: Option<f64>,
    /// Every result of this job was right.
    pub ok: bool,
    /// `ok`, or what was wrong (prefixed `at home:` for the baseline pass).
    pub result: String,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// One per job.
    pub jobs: Vec<JobReport>,
    /// Balanced pass, first start to last end, seconds.
    pub makespan_s: f64,
    /// The same at home.
    pub home_makespan_s: Option<f64>,
    /// At home / balanced.
    pub speedup: Option<f64>,
    /// Successful migrations of the mix's jobs during the balanced pass.
    pub migrations: usize,
    /// Every job of every pass was right.
    pub ok: bool,
}

/// Puts the passes together. `moves` is the cluster's history read after the balanced pass
/// (`None` when omd could not give it: the jobs table's counts stand in).
pub fn build(
    jobs: &[Job],
    balanced: &Pass,
    home: Option<&Pass>,
    moves: Option<&[MoveEvent]>,
) -> Report {
    let rows: Vec<JobReport> = jobs
        .iter()
        .zip(&balanced.outcomes)
        .enumerate()
        .map(|(i, (job, out))| {
            let home_out = home.and_then(|p| p.outcomes.get(i));
            row(job, out, home_out, balanced, moves)
        })
        .collect();
    let makespan_s = balanced.makespan.as_secs_f64();
    let home_makespan_s = home.map(|p| p.makespan.as_secs_f64());
    Report {
        migrations: rows.iter().map(|r| r.migrations).sum(),
        ok: rows.iter().all(|r| r.ok),
        speedup: home_makespan_s
            .filter(|_| makespan_s > 0.0)
            .map(|h| h / makespan_s),
        jobs: rows,
        makespan_s,
        home_makespan_s,
    }
}

fn row(
    job: &Job,
    out: &Outcome,
    home: Option<&Outcome>,
    pass: &Pass,
    moves: Option<&[MoveEvent]>,
) -> JobReport {
    let verbose = track::parse_verbose(&out.stderr);
    let id = verbose.id.or_else(|| out.id.clone());
    let mine = match (moves, &id) {
        (Some(m), Some(id)) => Some(track::moves_of(m, id, pass.started_ms, pass.ended_ms)),
        (Some(_), None) => Some(Vec::new()),
        (None, _) => None,
    };
    let nodes = track::path(&verbose.nodes, &out.polled, mine.as_deref().unwrap_or(&[]));
    let migrations = match &mine {
        Some(m) => m.len(),
        None => usize::try_from(out.polled_migrations)
            .unwrap_or(0)
            .max(nodes.len().saturating_sub(1)),
    };
    let here = check::check(&job.kind, &out.exit, &out.stdout, &out.stderr);
    let at_home = home.map(|h| check::check(&job.kind, &h.exit, &h.stdout, &h.stderr));
    let result = match (&here, &at_home) {
        (Err(e), _) => Err(e.clone()),
        (Ok(()), Some(Err(e))) => Err(format!("at home: {e}")),
        _ => Ok(()),
    };
    JobReport {
        name: job.name.clone(),
        kind: job.label(),
        id: id.map(|i| i.0),
        nodes,
        migrations,
        wall_s: out.wall.as_secs_f64(),
        home_wall_s: home.map(|h| h.wall.as_secs_f64()),
        ok: result.is_ok(),
        result: result.err().unwrap_or_else(|| "ok".to_owned()),
    }
}

const COLUMNS: [Column; 8] = [
    Column::left("JOB"),
    Column::left("KIND"),
    Column::left("ID"),
    Column::left("NODES"),
    Column::right("MIGR"),
    Column::right("WALL(s)"),
    Column::right("HOME(s)"),
    Column::left("RESULT"),
];

/// The table and the makespan line.
pub fn render(r: &Report) -> String {
    let dash = || "-".to_owned();
    let rows: Vec<Vec<String>> = r
        .jobs
        .iter()
        .map(|j| {
            vec![
                j.name.clone(),
                j.kind.clone(),
                j.id.clone().unwrap_or_else(dash),
                if j.nodes.is_empty() {
                    dash()
                } else {
                    j.nodes.join("→")
                },
                j.migrations.to_string(),
                format!("{:.1}", j.wall_s),
                j.home_wall_s.map_or_else(dash, |s| format!("{s:.1}")),
                j.result.clone(),
            ]
        })
        .collect();
    let mut out = table::render(&COLUMNS, &rows);
    out.push_str(&summary(r));
    out.push('\n');
    out
}

/// `makespan balanced X s, at home Y s, speedup Z×, migrations M`, and the failures' count.
pub fn summary(r: &Report) -> String {
    let mut s = format!("makespan balanced {:.1} s", r.makespan_s);
    match (r.home_makespan_s, r.speedup) {
        (Some(h), Some(x)) => s.push_str(&format!(", at home {h:.1} s, speedup {x:.2}×")),
        (Some(h), None) => s.push_str(&format!(", at home {h:.1} s")),
        _ => s.push_str(" (no baseline)"),
    }
    s.push_str(&format!(", migrations {}", r.migrations));
    let bad = r.jobs.iter().filter(|j| !j.ok).count();
    if bad > 0 {
        s.push_str(&format!("; {bad} of {} jobs FAILED", r.jobs.len()));
    }
    s
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::migrations::tests::event;
    use crate::stress::check::Exit;
    use crate::stress::mix::{self, tests::args};
    use migrator::job::record::JobId;
    use migrator::workload;

    fn spin_out(units: u64, pid: u32, stderr: &str, wall: u64) -> Outcome {
        Outcome {
            exit: Exit::Code(0),
            stdout: workload::spin_result(units, workload::spin_checksum(units)) + "\n",
            stderr: stderr.into(),
            wall: Duration::from_secs(wall),
            id: Some(JobId::new("node1", pid)),
            polled: vec!["node1".into()],
            polled_migrations: 0,
        }
    }

    fn pass(outcomes: Vec<Outcome>, secs: u64) -> Pass {
        let base = event(0, "a", "b", 0, true).at_ms;
        Pass {
            outcomes,
            makespan: Duration::from_secs(secs),
            started_ms: base,
            ended_ms: base + 600_000,
        }
    }

    fn two_spins() -> Vec<Job> {
        mix::mix(
            &args(&[
                "--cpu-jobs",
                "2",
                "--units",
                "1",
                "--mem-mib",
                "0",
                "--threads",
                "0",
            ]),
            None,
        )
    }

    #[test]
    fn balanced_with_a_move_against_home() {
        let jobs = two_spins();
        let balanced = pass(
            vec![
                spin_out(1, 5, "omrun: job node1.5 started on node1\n", 10),
                spin_out(2, 6, "", 12),
            ],
            12,
        );
        let home = pass(vec![spin_out(1, 7, "", 10), spin_out(2, 8, "", 20)], 20);
        let moves = [
            event(6, "node1", "node2", 3, true),
            event(6, "node2", "node1", 4, false),
        ];
        let r = build(&jobs, &balanced, Some(&home), Some(&moves));
        assert!(r.ok);
        assert_eq!(r.migrations, 1);
        assert_eq!(r.jobs[0].nodes, ["node1"]);
        assert_eq!(r.jobs[1].nodes, ["node1", "node2"]);
        assert_eq!(r.jobs[1].id.as_deref(), Some("node1.6"));
        assert!((r.speedup.unwrap() - 20.0 / 12.0).abs() < 1e-9);

        let text = render(&r);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            [
                "JOB", "KIND", "ID", "NODES", "MIGR", "WALL(s)", "HOME(s)", "RESULT"
            ]
        );
        assert_eq!(
            lines[2].split_whitespace().collect::<Vec<_>>(),
            [
                "spin2",
                "spin",
                "2",
                "node1.6",
                "node1→node2",
                "1",
                "12.0",
                "20.0",
                "ok"
            ]
        );
        assert_eq!(
            lines[3],
            "makespan balanced 12.0 s, at home 20.0 s, speedup 1.67×, migrations 1"
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["jobs"][1]["nodes"][1], "node2");
        assert_eq!(json["migrations"], 1);
    }

    #[test]
    fn wrong_results_fail_the_report() {
        let jobs = two_spins();
        let mut bad = spin_out(2, 6, "", 12);
        bad.stdout = workload::spin_result(2, 7);
        let balanced = pass(vec![spin_out(1, 5, "", 10), bad], 12);
        let mut home_bad = spin_out(1, 7, "", 10);
        home_bad.exit = Exit::TimedOut;
        let home = pass(vec![home_bad, spin_out(2, 8, "", 20)], 20);
        let r = build(&jobs, &balanced, Some(&home), None);
        assert!(!r.ok);
        assert_eq!(r.jobs[0].result, "at home: timed out (killed)");
        assert!(
            r.jobs[1].result.starts_with("wrong checksum"),
            "{:?}",
            r.jobs[1]
        );
        assert!(
            summary(&r).ends_with("; 2 of 2 jobs FAILED"),
            "{}",
            summary(&r)
        );
    }

    #[test]
    fn without_history_or_baseline() {
        let jobs = two_spins();
        let mut moved = spin_out(2, 6, "", 12);
        moved.polled = vec!["node1".into(), "node2".into()];
        let balanced = pass(vec![spin_out(1, 5, "", 10), moved], 12);
        let r = build(&jobs, &balanced, None, None);
        assert_eq!(r.jobs[1].migrations, 1);
        assert_eq!(r.speedup, None);
        assert!(
            render(&r).contains("\nspin1  spin 1  node1.5  node1"),
            "{}",
            render(&r)
        );
        assert_eq!(
            summary(&r),
            "makespan balanced 12.0 s (no baseline), migrations 1"
        );
    }
}
