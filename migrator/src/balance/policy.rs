//! The balancing rules' numbers, validated from omd's `[balance]` section; the defaults are
//! MOSIX's where MOSIX had one (130% damping) and sized for a TCG lab elsewhere.

use std::time::Duration;

/// Where `omrun` without `-h`, `--node` or `--best` starts a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Placement {
    /// On the node where omrun runs; the balancer moves it later if that pays.
    #[default]
    Home,
    /// Where it would run fastest now ([`super::place`]), as `omrun --best`.
    Best,
}

/// Validated balancing settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Run the balancer at all.
    pub enabled: bool,
    /// One decision per period.
    pub period: Duration,
    /// Move only when target load + `damping` × the job's load there is below ours (MOSIX: 1.3).
    pub damping: f64,
    /// Jobs using less than this many CPUs' worth are not moved for load (sleepers gain nothing).
    pub min_demand: f64,
    /// A job that arrived by migration stays at least this long (a job that never moved is
    /// held only by the cost rule).
    pub residency: Duration,
    /// Our own moves count on their target's load for this long (its gossiped load lags).
    pub settle: Duration,
    /// A job sent away counts off this node's own load for this long, while the smoothed
    /// load falls (it does in about 2 s): the next move is decided on the load left.
    pub pause: Duration,
    /// Fixed cost of a move beyond the bytes (dump, restore, freeze).
    pub move_overhead: Duration,
    /// Bandwidth assumed until a move has measured one, bytes/s.
    pub bandwidth_guess: f64,
    /// A move must save this many times its cost.
    pub gain_factor: f64,
    /// Memory ushering: below this fraction of memory free, jobs leave; no move may push a
    /// target below it.
    pub mem_low: f64,
    /// Load records older than this are not trusted (quiet or silent nodes).
    pub stale: Duration,
    /// Default placement of new jobs.
    pub placement: Placement,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            enabled: true,
            period: Duration::from_secs(2),
            damping: 1.3,
            min_demand: 0.3,
            residency: Duration::from_secs(40),
            settle: Duration::from_secs(10),
            pause: Duration::from_secs(4),
            move_overhead: Duration::from_millis(1500),
            bandwidth_guess: 50.0 * 1048576.0,
            gain_factor: 1.0,
            mem_low: 0.15,
            stale: Duration::from_secs(10),
            placement: Placement::Home,
        }
    }
}
