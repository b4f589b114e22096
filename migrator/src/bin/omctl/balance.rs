//! The cluster-wide "how well is load balanced" figure (openMosixview's balance bar), and the
//! node counts shown beside it. Pure arithmetic over omd's node table.

use migrator::api::{MemberState, NodeInfo};

/// Below this mean normalised load the cluster is idle: there is nothing to balance, and the
/// coefficient of variation of near-zero noise (0.01 vs 0.00 is "100% imbalance") would mislead.
pub const IDLE_MEAN: f64 = 0.05;

/// Balance of a set of normalised loads, in `0.0..=1.0`:
/// `1 − σ/μ` (one minus the coefficient of variation, population σ), floored at 0.
///
/// 1.0 means every node carries the same load per standard CPU; 0.0 means the spread is as large
/// as the mean or larger (e.g. one busy node beside idle ones). An idle cluster (μ < [`IDLE_MEAN`])
/// counts as balanced, and so does a single node. `None` when there are no loads at all.
pub fn balance(loads: &[f64]) -> Option<f64> {
    if loads.is_empty() {
        return None;
    }
    // Node counts are tiny; the usize→f64 conversion is exact.
    #[allow(clippy::cast_precision_loss)]
    let n = loads.len() as f64;
    let mean = loads.iter().sum::<f64>() / n;
    if mean < IDLE_MEAN {
        return Some(1.0);
    }
    let variance = loads.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / n;
    Some((1.0 - variance.sqrt() / mean).clamp(0.0, 1.0))
}

/// The nodes that take part in balancing: alive (not suspect, not dead), not observers, and with
/// a load record. Their normalised loads.
pub fn balancing_loads(nodes: &[NodeInfo]) -> Vec<f64> {
    nodes
        .iter()
        .filter(|n| n.state == MemberState::Alive && !n.observer)
        .filter_map(|n| n.load.map(|l| l.load))
        .filter(|l| l.is_finite() && *l >= 0.0)
        .collect()
}

/// The cluster's balance figure: [`balance`] over [`balancing_loads`].
pub fn cluster_balance(nodes: &[NodeInfo]) -> Option<f64> {
    balance(&balancing_loads(nodes))
}

/// `(alive, total)`: members answering now, and every member omd knows, observers included.
pub fn counts(nodes: &[NodeInfo]) -> (usize, usize) {
    let alive = nodes
        .iter()
        .filter(|n| n.state == MemberState::Alive)
        .count();
    (alive, nodes.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodes::tests::sample;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    #[test]
    fn equal_loads_are_perfectly_balanced() {
        assert!(close(balance(&[0.8, 0.8, 0.8]), 1.0));
    }

    #[test]
    fn one_busy_one_idle_is_unbalanced() {
        // μ = 0.5, σ = 0.5: CV 1 → 0%.
        assert!(close(balance(&[1.0, 0.0]), 0.0));
    }

    #[test]
    fn partial_spread() {
        // μ = 1.0, σ = 0.5 → 50%.
        assert!(close(balance(&[0.5, 1.5]), 0.5));
    }

    #[test]
    fn floors_at_zero() {
        // μ = 0.25, σ ≈ 0.433: CV > 1.
        assert!(close(balance(&[1.0, 0.0, 0.0, 0.0]), 0.0));
    }

    #[test]
    fn idle_single_and_empty() {
        assert!(close(balance(&[0.01, 0.0]), 1.0));
        assert!(close(balance(&[3.0]), 1.0));
        assert_eq!(balance(&[]), None);
    }

    #[test]
    fn only_alive_non_observers_count() {
        let nodes = sample();
        // node2 is dead (load 1.5), master observes: only node1's 0.25 is left.
        assert_eq!(balancing_loads(&nodes), vec![0.25]);
        assert!(close(cluster_balance(&nodes), 1.0));
        assert_eq!(counts(&nodes), (2, 3));
    }
}
