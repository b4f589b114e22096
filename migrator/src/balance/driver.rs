//! The balancer's rounds in omd: every period, build the view (in a blocking task: /proc),
//! decide, and make the move through the same migration path as `omctl migrate`. One move at
//! a time; a refused or failed move cools that job off for a minute.

use std::time::{Duration, Instant};

use crate::jobs::Jobs;
use crate::migration::protocol::Target;
use crate::migration::source;

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
    loop {
        tick.tick().await;
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
            let r = source::migrate_out(&jobs, &m.job, &Target::Node(m.to.clone()), 0, m.why).await;
            match r {
                Ok(text) => {
                    // Stamped at the end: the target shows the job only from now, and this
                    // node's load falls only from now.
                    jobs.0.sent.push(&m.to, demand.max(1.0), Instant::now());
                    tracing::info!("balancer: {text}");
                    if let Some(e) = jobs.0.history.latest(&m.job) {
                        tracker.measured(
                            e.bytes,
                            Duration::from_millis(e.total_ms),
                            policy.move_overhead,
                        );
                    }
                }
                Err(e) => {
                    tracing::info!(job = %m.job, "balancer: the move did not happen: {e}");
                    tracker.cool(m.job.clone(), Instant::now() + COOL_OFF);
                }
            }
        }
    }
}
