//! Asking omd over the peer protocol, for another omd or for the master's ombootd (which holds
//! the cluster key too): one question to one node, or the same question to many at once, and the
//! merge of the job lists they answer.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::net::SocketAddr;
use std::time::Duration;

use crate::api::{MemberState, NodeInfo};
use crate::job::record::{JobId, JobView};
use crate::key::ClusterKey;
use crate::migration::history::MoveEvent;
use crate::migration::protocol::Msg;
use crate::migration::session::Session;

/// Ask `peer` one question; `None` if it cannot be reached or does not answer within `wait`.
pub async fn ask(peer: SocketAddr, key: &ClusterKey, msg: &Msg, wait: Duration) -> Option<Msg> {
    let go = async {
        let mut s = Session::connect(peer, key).await.ok()?;
        s.send(msg).await.ok()?;
        s.recv::<Msg>().await.ok()?
    };
    tokio::time::timeout(wait, go).await.ok().flatten()
}

/// Ask every peer `msg` at once; their answers, in no order. A peer that does not answer within
/// `wait` is left out.
pub async fn ask_all(
    peers: impl IntoIterator<Item = SocketAddr>,
    key: &ClusterKey,
    msg: &Msg,
    wait: Duration,
) -> Vec<Msg> {
    let mut asks = tokio::task::JoinSet::new();
    for p in peers {
        let (k, m) = (key.clone(), msg.clone());
        asks.spawn(async move { ask(p, &k, &m, wait).await });
    }
    let mut answers = Vec::new();
    while let Some(answer) = asks.join_next().await {
        if let Ok(Some(m)) = answer {
            answers.push(m);
        }
    }
    answers
}

/// The peer address (`port`) of the live node called `name` in the cluster table `rows`.
pub fn peer_of(rows: &[NodeInfo], name: &str, port: u16) -> Result<SocketAddr, String> {
    let row = rows
        .iter()
        .find(|n| n.name == name && !n.observer)
        .ok_or_else(|| format!("there is no node called {name:?} in the cluster"))?;
    if row.state != MemberState::Alive {
        return Err(format!("node {name} is not alive"));
    }
    let ip = row
        .ip()
        .ok_or_else(|| format!("node {} has no usable address", row.name))?;
    Ok(SocketAddr::new(ip.into(), port))
}

/// The peer addresses (`port`) of every other live node of `rows`: not the row answering, not an
/// observer, only alive ones. Whom a cluster-wide question goes to.
pub fn live_peers(rows: &[NodeInfo], port: u16) -> Vec<SocketAddr> {
    rows.iter()
        .filter(|n| !n.is_self && !n.observer && n.state == MemberState::Alive)
        .filter_map(NodeInfo::ip)
        .map(|ip| SocketAddr::new(ip.into(), port))
        .collect()
}

/// One row per job from several nodes' lists. Where two nodes report the same job, the row of
/// the node it runs on (the one that knows its pid) wins.
pub fn merge_jobs(lists: impl IntoIterator<Item = Vec<JobView>>) -> Vec<JobView> {
    let mut rows: BTreeMap<JobId, JobView> = BTreeMap::new();
    for r in lists.into_iter().flatten() {
        match rows.entry(r.id.clone()) {
            Entry::Vacant(e) => {
                e.insert(r);
            }
            Entry::Occupied(mut e) if r.pid != 0 => {
                e.insert(r);
            }
            Entry::Occupied(_) => {}
        }
    }
    rows.into_values().collect()
}

/// The job lists in `answers` (replies to [`Msg::ListJobs`]).
pub fn job_lists(answers: Vec<Msg>) -> impl Iterator<Item = Vec<JobView>> {
    answers.into_iter().filter_map(|m| match m {
        Msg::Jobs { jobs } => Some(jobs),
        _ => None,
    })
}

/// The move lists in `answers` (replies to [`Msg::ListMoves`]).
pub fn move_lists(answers: Vec<Msg>) -> impl Iterator<Item = Vec<MoveEvent>> {
    answers.into_iter().filter_map(|m| match m {
        Msg::Moves { moves } => Some(moves),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::record::JobState;

    fn view(id: &str, node: &str, pid: i32) -> JobView {
        JobView {
            id: JobId(id.into()),
            uid: 1000,
            command: "sleep 9".into(),
            home: "node1".into(),
            node: node.into(),
            state: JobState::Running,
            migrations: 0,
            pid,
            unmovable: None,
        }
    }

    #[test]
    fn the_running_node_row_wins_whatever_the_order() {
        let home = vec![view("node1.7", "node2", 0), view("node1.8", "node1", 88)];
        let there = vec![view("node1.7", "node2", 77)];
        for lists in [
            vec![home.clone(), there.clone()],
            vec![there.clone(), home.clone()],
        ] {
            let merged = merge_jobs(lists);
            assert_eq!(merged.len(), 2);
            assert_eq!(merged[0].pid, 77);
            assert_eq!(merged[1].pid, 88);
        }
    }
}
