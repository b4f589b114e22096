//! The balancer's rounds in omd: every period, build the view (in a blocking task: /proc),
//! decide, and make the move through the same migration path as `omctl migrate`. One move at
//! a time, the next decided as soon as one completes; a refused or failed move cools that job
//! off for a minute.

use std::time::{Duration, Instant};

use crate::jobs::Jobs;
use crate::migration::history::Why;
use crate::migration::protocol::Target;
use crate::migration::source::{self, NotMoved};

use super::gather::{self, Tracker};
use super::meter::ProcMeter;
use super::{Policy, decide};

/// A job whose move failed is not tried again for this long.
const COOL_OFF: Duration = Duration::from_secs(60);

/// A number that differs per node and round, to spread near-equal choices.
pub fn tiebreak() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (t.as_nanos() as u64) ^ u64::from(std::process::id()).rotate_left(32)
}

/// Run the balancer until the task is dropped. Returns at once when it is off.
pub async fn run(jobs: Jobs) {
    let policy: Policy = jobs.0.cfg.policy.clone();
    if !policy.enabled {
        tracing::info!("automatic balancing is off ([balance] enabled = false)");
        return;
    }
    let mut tick = tokio::time::interval(policy.period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut tracker = Tracker::default();
    let mut meter = ProcMeter;
    // After a move that went through, the next round starts at once: a node with several jobs
    // too many sheds them back to back (each decided on the load left), not one per period.
    let mut again = false;
    loop {
        if !std::mem::take(&mut again) {
            tick.tick().await;
        }
        let (j, p) = (jobs.clone(), policy.clone());
        // The tracker goes to the blocking task (/proc reads) and comes back with the view.
        let joined = tokio::task::spawn_blocking(move || {
            let v = gather::view(&j, &mut tracker, &mut meter, &p, Instant::now(), tiebreak());
            (tracker, v)
        })
        .await;
        let Ok((t, view)) = joined else {
            tracing::warn!("the balancer's view task failed; balancing stops");
            return;
        };
        tracker = t;
        let chosen = view
            .as_ref()
            .and_then(|v| decide(v, &policy).map(|m| (m, v)));
        if let Some((m, v)) = chosen {
            let demand = v
                .jobs
                .iter()
                .find(|c| c.id == m.job)
                .map_or(1.0, |c| c.demand);
            tracing::info!(job = %m.job, to = %m.to, why = %m.why, "balancer: moving job {} to {}: {}", m.job, m.to, m.detail);
            // Only a load move asks the target to compare loads; memory moves must go.
            let load = (m.why == Why::Load).then_some(m.load_here);
            let to = Target::Node(m.to.clone());
            let r = source::migrate_out(&jobs, &m.job, &to, 0, m.why, load).await;
            match r {
                Ok(text) => {
                    // Stamped at the end: the target shows the job only from now, and this
                    // node's load falls only from now.
                    jobs.0.sent.push(&m.to, demand.max(1.0), Instant::now());
                    tracing::info!("balancer: {text}");
                    again = true;
                    if let Some(e) = jobs.0.history.latest(&m.job) {
                        tracker.measured(
                            e.bytes,
                            Duration::from_millis(e.total_ms),
                            policy.move_overhead,
                        );
                    }
                }
                Err(NotMoved::Busy(e)) => {
                    // Others filled it first: its gossiped load lags. The job may go elsewhere.
                    tracing::info!(job = %m.job, "balancer: {e}; offering {} nothing for {} s", m.to, policy.settle.as_secs());
                    tracker.busy(m.to.clone(), Instant::now() + policy.settle);
                }
                Err(NotMoved::Failed(e)) => {
                    tracing::info!(job = %m.job, "balancer: the move did not happen: {e}");
                    tracker.cool(m.job.clone(), Instant::now() + COOL_OFF);
                }
            }
        }
    }
}
