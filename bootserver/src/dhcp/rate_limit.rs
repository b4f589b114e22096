//! Per-MAC and per-source token buckets for DHCP, checked on the raw datagram before it is
//! decoded, so one sender flooding (malformed or not) spends only its own budget and the other
//! nodes are still answered. Clients without an address all send from 0.0.0.0: only the MAC
//! tells them apart, so the per-source bucket applies to addressed senders (relays, renewals).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::Ipv4Addr;

use crate::mac::MacAddr;

/// A bucket: `burst` tokens, refilled at `per_sec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Tokens per second.
    pub per_sec: u32,
    /// Most tokens saved up.
    pub burst: u32,
}

/// A PXE boot sends a handful of messages (ROM, then iPXE); this leaves room for retries.
pub const PER_MAC: Rate = Rate {
    per_sec: 10,
    burst: 20,
};
/// A relay carries many clients: a boot storm of a thousand nodes behind one relay is about
/// 8000 messages in half a minute (the default of `dhcp_source_rate`).
pub const PER_SOURCE: Rate = Rate::per_source(2000);
impl Rate {
    /// The budget of one source address taking `per_sec` messages a second (`dhcp_source_rate`):
    /// bursts of twice that.
    pub const fn per_source(per_sec: u32) -> Rate {
        Rate {
            per_sec,
            burst: per_sec.saturating_mul(2),
        }
    }
}

/// Senders remembered per table; past that the table starts over (a flood of made-up MACs must
/// not grow memory), which at worst gives each a fresh burst.
pub const MAX_TRACKED: usize = 4096;

/// Why a datagram was dropped before decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    /// Its MAC spent its budget.
    Mac,
    /// Its source address spent its budget.
    Source,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Tokens, in thousandths.
    milli: u64,
    at_ms: u64,
}

#[derive(Debug)]
struct Table<K> {
    rate: Rate,
    buckets: HashMap<K, Bucket>,
}

impl<K: Hash + Eq> Table<K> {
    fn new(rate: Rate) -> Self {
        Self {
            rate,
            buckets: HashMap::new(),
        }
    }

    fn take(&mut self, key: K, now_ms: u64) -> bool {
        if self.buckets.len() >= MAX_TRACKED && !self.buckets.contains_key(&key) {
            self.buckets.clear();
        }
        let full = u64::from(self.rate.burst) * 1000;
        let b = self.buckets.entry(key).or_insert(Bucket {
            milli: full,
            at_ms: now_ms,
        });
        let elapsed = now_ms.saturating_sub(b.at_ms);
        b.milli = (b.milli + elapsed * u64::from(self.rate.per_sec)).min(full);
        b.at_ms = now_ms;
        if b.milli >= 1000 {
            b.milli -= 1000;
            true
        } else {
            false
        }
    }
}

/// The two tables.
#[derive(Debug)]
pub struct RateLimits {
    mac: Table<MacAddr>,
    source: Table<Ipv4Addr>,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self::new(PER_MAC, PER_SOURCE)
    }
}

impl RateLimits {
    /// Tables with these rates.
    pub fn new(per_mac: Rate, per_source: Rate) -> Self {
        Self {
            mac: Table::new(per_mac),
            source: Table::new(per_source),
        }
    }

    /// Whether `datagram` from `source` may be handled at `now_ms`; the MAC is BOOTP's `chaddr`
    /// (bytes 28..34), read without decoding. A datagram too short to have one passes (the
    /// decoder counts it as malformed).
    pub fn check(&mut self, datagram: &[u8], source: Ipv4Addr, now_ms: u64) -> Result<(), Limited> {
        if !source.is_unspecified() && !self.source.take(source, now_ms) {
            return Err(Limited::Source);
        }
        match datagram.get(28..34).and_then(MacAddr::from_chaddr) {
            Some(mac) if !self.mac.take(mac, now_ms) => Err(Limited::Mac),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(mac: u8) -> Vec<u8> {
        let mut p = vec![0u8; 300];
        p[28..34].copy_from_slice(&[0x52, 0x54, 0, 0x77, 0, mac]);
        p
    }

    #[test]
    fn a_flooding_mac_spends_only_its_own_budget_and_refills() {
        let mut r = RateLimits::default();
        let any = Ipv4Addr::UNSPECIFIED;
        let passed = (0..1000)
            .filter(|_| r.check(&packet(9), any, 0).is_ok())
            .count();
        assert_eq!(passed, PER_MAC.burst as usize);
        assert_eq!(r.check(&packet(9), any, 0), Err(Limited::Mac));
        // Another node at the same moment is untouched.
        assert_eq!(r.check(&packet(1), any, 0), Ok(()));
        // A second later the flooder has per_sec tokens again.
        let later = (0..100)
            .filter(|_| r.check(&packet(9), any, 1000).is_ok())
            .count();
        assert_eq!(later, PER_MAC.per_sec as usize);
        // Too short for a chaddr: left to the decoder.
        assert_eq!(r.check(&[1, 2, 3], any, 0), Ok(()));
    }

    #[test]
    fn addressed_sources_have_their_own_budget_and_memory_is_bounded() {
        let mut r = RateLimits::new(
            PER_MAC,
            Rate {
                per_sec: 1,
                burst: 2,
            },
        );
        let relay = Ipv4Addr::new(10, 77, 0, 254);
        assert_eq!(r.check(&packet(1), relay, 0), Ok(()));
        assert_eq!(r.check(&packet(2), relay, 0), Ok(()));
        assert_eq!(r.check(&packet(3), relay, 0), Err(Limited::Source));
        for i in 0..(MAX_TRACKED as u32 + 10) {
            let mut p = packet(0);
            p[30..34].copy_from_slice(&i.to_be_bytes());
            let _ = r.check(&p, Ipv4Addr::UNSPECIFIED, 5000);
        }
        assert!(r.mac.buckets.len() <= MAX_TRACKED);
    }
}
