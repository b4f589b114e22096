//! Which drops deserve an INFO line: the first from each MAC per interval, and only a bounded
//! number per interval in all. The rest go to DEBUG, so a flood of packets cannot flood the log
//! (the counters at /api/status still count every one).

use std::collections::HashMap;

use crate::mac::MacAddr;

/// Seconds between two INFO lines about the same MAC.
pub const PER_MAC_SECS: u64 = 60;
/// INFO lines per interval in all; also the most MACs remembered.
pub const BUDGET: usize = 16;

/// The gate; time is whole seconds (the server's clock, [`migrator::clock::Clock`], in seconds).
#[derive(Debug, Default)]
pub struct LogGate {
    /// MAC -> when it was last logged, within the current interval.
    last: HashMap<MacAddr, u64>,
    /// Start of the current interval, and the INFO lines spent in it.
    interval: (u64, usize),
}

impl LogGate {
    /// Should a drop from `mac` at `now` be logged at INFO?
    pub fn allow(&mut self, mac: MacAddr, now: u64) -> bool {
        if now.saturating_sub(self.interval.0) >= PER_MAC_SECS {
            self.interval = (now, 0);
            self.last
                .retain(|_, t| now.saturating_sub(*t) < PER_MAC_SECS);
        }
        if self
            .last
            .get(&mac)
            .is_some_and(|t| now.saturating_sub(*t) < PER_MAC_SECS)
        {
            return false;
        }
        if self.interval.1 >= BUDGET || self.last.len() >= BUDGET {
            return false;
        }
        self.interval.1 += 1;
        self.last.insert(mac, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(n: u8) -> MacAddr {
        MacAddr([0x52, 0x54, 0, 0x99, 0, n])
    }

    #[test]
    fn one_line_per_mac_per_interval() {
        let mut g = LogGate::default();
        assert!(g.allow(mac(1), 1000));
        assert!(!g.allow(mac(1), 1001));
        assert!(g.allow(mac(2), 1001));
        assert!(!g.allow(mac(1), 1000 + PER_MAC_SECS - 1));
        assert!(g.allow(mac(1), 1000 + PER_MAC_SECS));
    }

    #[test]
    fn a_flood_of_macs_spends_the_budget_then_stays_quiet() {
        let mut g = LogGate::default();
        let logged = (0..=255u8).filter(|n| g.allow(mac(*n), 5000)).count();
        assert_eq!(logged, BUDGET);
        assert!(g.last.len() <= BUDGET, "memory stays bounded");
        // The next interval logs again.
        assert!(g.allow(mac(200), 5000 + PER_MAC_SECS));
    }
}
