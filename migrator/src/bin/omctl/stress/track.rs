//! Where a stress job ran, from three witnesses: `omrun -v`'s lines (the job's id, the node it
//! started on, each node it was moved to), the nodes the jobs table showed it on at each poll,
//! and the moves the cluster's history recorded for it. Pure.

use migrator::job::record::JobId;
use migrator::migration::history::MoveEvent;

const STARTED: &str = "omrun: job ";
const STARTED_ON: &str = " started on ";
const RUNS_ON: &str = "omrun: job runs on ";

/// What `omrun -v` said about its job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verbose {
    /// The job's id.
    pub id: Option<JobId>,
    /// The nodes it ran on, in order, no node twice in a row.
    pub nodes: Vec<String>,
}

/// One of `omrun -v`'s progress lines (not the job's own output).
pub fn is_progress(line: &str) -> bool {
    line.starts_with(RUNS_ON) || (line.starts_with(STARTED) && line.contains(STARTED_ON))
}

/// Reads `omrun -v`'s progress lines out of its stderr.
pub fn parse_verbose(stderr: &str) -> Verbose {
    let mut v = Verbose::default();
    for line in stderr.lines().map(str::trim_end) {
        if let Some(node) = line.strip_prefix(RUNS_ON) {
            push_new(&mut v.nodes, node);
        } else if let Some((id, node)) = line
            .strip_prefix(STARTED)
            .and_then(|rest| rest.split_once(STARTED_ON))
        {
            v.id.get_or_insert_with(|| JobId(id.to_owned()));
            push_new(&mut v.nodes, node);
        }
    }
    v
}

/// Appends `node` unless it is already the last one.
pub fn push_new(path: &mut Vec<String>, node: &str) {
    if path.last().is_none_or(|l| l != node) {
        path.push(node.to_owned());
    }
}

/// The successful moves of `job` that ended between `from_ms` and `to_ms`, oldest first.
pub fn moves_of<'a>(
    moves: &'a [MoveEvent],
    job: &JobId,
    from_ms: u64,
    to_ms: u64,
) -> Vec<&'a MoveEvent> {
    moves
        .iter()
        .filter(|e| e.ok && &e.job == job && (from_ms..=to_ms).contains(&e.at_ms))
        .collect()
}

/// The nodes a job ran on, in order: omrun's account when it gave one, else the move history's
/// chain, else the polls'; then any node another witness saw that this one missed.
pub fn path(verbose: &[String], polled: &[String], moves: &[&MoveEvent]) -> Vec<String> {
    let mut chain = Vec::new();
    if let Some(first) = moves.first() {
        chain.push(first.from.clone());
        chain.extend(moves.iter().map(|e| e.to.clone()));
    }
    let witnesses = [verbose, &chain, polled];
    let mut path: Vec<String> = Vec::new();
    if let Some(best) = witnesses.iter().find(|w| !w.is_empty()) {
        for n in best.iter() {
            push_new(&mut path, n);
        }
    }
    for n in witnesses.iter().flat_map(|w| w.iter()) {
        if !path.contains(n) {
            path.push(n.clone());
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrations::tests::event;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn omrun_verbose_lines() {
        let err = "omrun: job node1.77 started on node1\nomrun: job runs on node1\n\
                   some output of the job\nomrun: job runs on node2\n";
        let v = parse_verbose(err);
        assert_eq!(v.id, Some(JobId("node1.77".into())));
        assert_eq!(v.nodes, names(&["node1", "node2"]));
        assert!(is_progress("omrun: job runs on node2"));
        assert!(!is_progress("omrun: cannot reach omd"));
        assert_eq!(
            parse_verbose("omrun: cannot reach omd\n"),
            Verbose::default()
        );
    }

    #[test]
    fn moves_in_the_window_only() {
        let moves = [
            event(5, "node1", "node2", 10, true),
            event(5, "node2", "node1", 20, false),
            event(6, "node1", "node2", 30, true),
            event(5, "node2", "node1", 900, true),
        ];
        let base = moves[0].at_ms;
        let mine = moves_of(&moves, &JobId::new("node1", 5), base, base + 60_000);
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].to, "node2");
    }

    #[test]
    fn path_prefers_omrun_then_history_then_polls() {
        let e1 = event(5, "node1", "node2", 1, true);
        let e2 = event(5, "node2", "node3", 2, true);
        let chain = [&e1, &e2];
        assert_eq!(
            path(
                &names(&["node1", "node2"]),
                &names(&["node2", "node4"]),
                &chain
            ),
            names(&["node1", "node2", "node3", "node4"])
        );
        assert_eq!(
            path(&[], &names(&["node2"]), &chain),
            names(&["node1", "node2", "node3"])
        );
        assert_eq!(
            path(&[], &names(&["node1", "node2"]), &[]),
            names(&["node1", "node2"])
        );
        assert!(path(&[], &[], &[]).is_empty());
    }
}
