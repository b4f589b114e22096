//! omctl's job commands on this omd: list the cluster's jobs and its nodes' moves, move a job,
//! expel guests, bring this node's jobs home. A request about a job elsewhere goes to its
//! home, which knows where it runs.

use std::time::Duration;

use crate::job::record::{JobId, JobView};
use crate::jobs::{Jobs, client};
use crate::migration::history::{self, MoveEvent, Why};
use crate::migration::protocol::{Msg, Target};
use crate::migration::source;

async fn ask(jobs: &Jobs, peer: std::net::SocketAddr, msg: &Msg, wait: Duration) -> Option<Msg> {
    client::ask(peer, &jobs.0.key, msg, wait).await
}

/// Asks every other live (non-observer) node `msg` at once; their answers, in no order. A node
/// that does not answer within 3 s is left out.
async fn ask_live(jobs: &Jobs, msg: Msg) -> Vec<Msg> {
    let peers = client::live_peers(&jobs.0.node.nodes(), jobs.0.cfg.peer_port);
    client::ask_all(peers, &jobs.0.key, &msg, Duration::from_secs(3)).await
}

/// Every job of the cluster: this node's view plus every live node's, asked at once (merged by
/// [`client::merge_jobs`]).
pub async fn list(jobs: &Jobs) -> Vec<JobView> {
    let theirs = client::job_lists(ask_live(jobs, Msg::ListJobs).await);
    client::merge_jobs(theirs.chain(std::iter::once(jobs.views())))
}

/// The migrations of the cluster: this node's history plus every live node's, asked at once,
/// oldest first (see [`history::merge`]). A dead node's moves are not listed.
pub async fn moves(jobs: &Jobs) -> Vec<MoveEvent> {
    let theirs = client::move_lists(ask_live(jobs, Msg::ListMoves).await);
    let mine = history::for_wire(jobs.0.history.all());
    history::merge(theirs.chain(std::iter::once(mine)))
}

/// Resolve a user's job reference: a full id, or a deputy pid on this node.
pub fn resolve(jobs: &Jobs, r: &str) -> JobId {
    if r.bytes().all(|b| b.is_ascii_digit()) && !r.is_empty() {
        JobId(format!("{}.{r}", jobs.0.cfg.name))
    } else {
        JobId(r.to_owned())
    }
}

/// Move `job` to `to` for `uid`. `forward`: may ask other nodes (false when we are already the
/// hop a request was forwarded to, which stops loops).
pub async fn migrate(
    jobs: &Jobs,
    job: &JobId,
    to: &Target,
    uid: u32,
    forward: bool,
) -> Result<String, String> {
    let (here, home_node) = {
        let s = jobs.state();
        let here = s
            .local
            .get(job)
            .is_some_and(|l| !matches!(l.phase, crate::job::keeper::Phase::Held { .. }));
        (here, s.home.get(job).map(|h| h.node.clone()))
    };
    if here {
        return source::migrate_out(jobs, job, to, uid, Why::Manual, None)
            .await
            .map_err(|e| e.to_string());
    }
    let known_at_home = home_node.is_some();
    let via = match home_node {
        Some(n) if n != jobs.0.cfg.name => n,
        Some(_) => return Err(format!("job {job} is between nodes; try again")),
        None if forward => match job.0.rsplit_once('.') {
            Some((home, _)) if home != jobs.0.cfg.name => home.to_owned(),
            _ => return Err(format!("there is no job {job}")),
        },
        None => return Err(format!("there is no job {job}")),
    };
    if !forward && !known_at_home {
        return Err(format!("there is no job {job}"));
    }
    let peer = jobs.peer_of(&via)?;
    let msg = Msg::Migrate {
        job: job.clone(),
        to: to.clone(),
        uid,
    };
    match ask(jobs, peer.peer, &msg, Duration::from_secs(600)).await {
        Some(Msg::Result { result }) => result,
        _ => Err(format!("{via} did not answer")),
    }
}

/// `expel`: send every guest home. Returns one sentence per job.
pub async fn expel(jobs: &Jobs) -> Vec<Result<String, String>> {
    let guests: Vec<JobId> = {
        let s = jobs.state();
        s.local
            .values()
            .filter(|l| l.record.home.name != jobs.0.cfg.name)
            .map(|l| l.record.id.clone())
            .collect()
    };
    let mut out = Vec::new();
    for g in guests {
        out.push(
            source::migrate_out(jobs, &g, &Target::Home, 0, Why::Expel, None)
                .await
                .map_err(|e| e.to_string()),
        );
    }
    out
}

/// `bring`: call home every job of this node that runs elsewhere.
pub async fn bring(jobs: &Jobs) -> Vec<Result<String, String>> {
    let away: Vec<JobId> = {
        let s = jobs.state();
        s.home
            .values()
            .filter(|h| h.node != jobs.0.cfg.name && !h.exited)
            .map(|h| h.record.id.clone())
            .collect()
    };
    let mut out = Vec::new();
    for j in away {
        out.push(migrate(jobs, &j, &Target::Home, 0, true).await);
    }
    out
}
