//! `omctl jobs` and `omctl migrate`: the cluster's jobs with their home and current node, and
//! moving one (openMosix's `migrate PID NODE|home`). omd checks who may move what.

use anyhow::Result;
use migrator::api::Request;
use migrator::job::record::JobView;

use crate::client::Omd;
use crate::table::{self, Column};
use crate::users::Users;

const COLUMNS: [Column; 9] = [
    Column::left("JOB"),
    Column::left("USER"),
    Column::left("HOME"),
    Column::left("NODE"),
    Column::left("STATE"),
    Column::right("MIGR"),
    Column::right("PID"),
    Column::left("COMMAND"),
    Column::left("CANNOT MOVE"),
];

/// The table text.
pub fn render(jobs: &[JobView], users: &Users) -> String {
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            vec![
                j.id.to_string(),
                users.name(j.uid),
                j.home.clone(),
                j.node.clone(),
                j.state.to_string(),
                j.migrations.to_string(),
                if j.pid > 0 {
                    j.pid.to_string()
                } else {
                    "-".into()
                },
                j.command.clone(),
                j.unmovable.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table::render(&COLUMNS, &rows)
}

/// `omctl jobs [--json]`.
pub fn run(omd: &Omd, json: bool) -> Result<()> {
    let jobs = omd.jobs()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&jobs)?);
    } else if jobs.is_empty() {
        println!("no jobs (start one with omrun)");
    } else {
        print!("{}", render(&jobs, &Users::load()));
    }
    Ok(())
}

/// `omctl migrate JOB NODE|home`.
pub fn migrate(omd: &Omd, job: &str, to: &str) -> Result<()> {
    let text = omd.message(&Request::Migrate {
        job: job.to_owned(),
        to: to.to_owned(),
    })?;
    println!("{text}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use migrator::job::record::{JobId, JobState};

    #[test]
    fn a_row_per_job_with_its_nodes() {
        let j = JobView {
            id: JobId::new("node1", 42),
            uid: 0,
            command: "sleep 100".into(),
            home: "node1".into(),
            node: "node2".into(),
            state: JobState::Running,
            migrations: 1,
            pid: 0,
            unmovable: None,
        };
        let text = render(&[j], &Users::default());
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("JOB"), "{text}");
        assert!(
            lines[1].contains("node1.42")
                && lines[1].contains("node2")
                && lines[1].contains("sleep 100"),
            "{text}"
        );
    }
}
