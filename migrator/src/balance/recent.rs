//! The jobs this node recently sent to each node, by migration or placement, with their demand:
//! the target's gossiped load shows them only after its smoothing and the gossip caught up.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::view::RecentMove;

/// Shared between the balancer and omrun's placement.
#[derive(Debug, Default)]
pub struct Recent(Mutex<Vec<(String, f64, Instant)>>);

impl Recent {
    /// A job of `demand` runnable tasks was sent to `to` at `at`.
    pub fn push(&self, to: &str, demand: f64, at: Instant) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((to.to_owned(), demand, at));
    }

    /// Those sent within `keep` before `now` (older ones are forgotten).
    pub fn within(&self, keep: Duration, now: Instant) -> Vec<RecentMove> {
        let mut v = self.0.lock().unwrap_or_else(|p| p.into_inner());
        v.retain(|(_, _, at)| now.saturating_duration_since(*at) < keep);
        v.iter()
            .map(|(to, demand, at)| RecentMove {
                to: to.clone(),
                demand: *demand,
                ago: now.saturating_duration_since(*at),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgets_after_keep() {
        let r = Recent::default();
        let t0 = Instant::now();
        r.push("a", 1.0, t0);
        r.push("b", 2.0, t0 + Duration::from_secs(5));
        let v = r.within(Duration::from_secs(10), t0 + Duration::from_secs(12));
        assert_eq!(v.len(), 1);
        assert_eq!((v[0].to.as_str(), v[0].ago), ("b", Duration::from_secs(7)));
    }
}
