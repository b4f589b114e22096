//! The dynamic pool: a range of addresses inside the subnet, beside the node table's
//! reservations, for MACs outside the table when `unknown_macs = "boot"`. Which address a client
//! gets is decided here, from the leases, without I/O (RFC 2131 §4.3.1: the client's current or
//! previous address first, then any free one).

use std::collections::HashSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use crate::leases::Lease;
use crate::mac::MacAddr;

/// An inclusive range of addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    start: Ipv4Addr,
    end: Ipv4Addr,
}

/// Why a pool could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PoolParseError {
    /// Not `first-last`.
    #[error("`{0}` is not an address range (such as 10.77.0.100-10.77.0.199)")]
    Syntax(String),
    /// The range runs backwards.
    #[error("`{0}` ends before it starts")]
    Backwards(String),
}

impl Pool {
    /// A range from `start` to `end`, both included.
    pub fn new(start: Ipv4Addr, end: Ipv4Addr) -> Option<Pool> {
        (start <= end).then_some(Pool { start, end })
    }

    /// The first address.
    pub fn start(&self) -> Ipv4Addr {
        self.start
    }

    /// The last address.
    pub fn end(&self) -> Ipv4Addr {
        self.end
    }

    /// Whether `ip` is in the range.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        (self.start..=self.end).contains(&ip)
    }

    /// Every address, in order.
    pub fn addresses(&self) -> impl Iterator<Item = Ipv4Addr> {
        (u32::from(self.start)..=u32::from(self.end)).map(Ipv4Addr::from)
    }

    /// The address for `mac` at `now`: its own lease's (offered or bound, even expired, unless
    /// someone else holds it since or it was declined), else the first address nobody holds.
    /// `None`: the pool is exhausted.
    pub fn pick(
        &self,
        mac: MacAddr,
        leases: &[Lease],
        declined: &dyn Fn(Ipv4Addr) -> bool,
        now: u64,
    ) -> Option<Ipv4Addr> {
        let mac_text = mac.to_string();
        let held: HashSet<Ipv4Addr> = leases
            .iter()
            .filter(|l| l.mac != mac_text && l.expires > now)
            .map(|l| l.ip)
            .collect();
        let free = |ip: Ipv4Addr| self.contains(ip) && !held.contains(&ip) && !declined(ip);
        let own = leases
            .iter()
            .find(|l| l.mac == mac_text)
            .map(|l| l.ip)
            .filter(|ip| free(*ip));
        own.or_else(|| self.addresses().find(|ip| free(*ip)))
    }

    /// Whether `ip` may be bound to `mac` now: in the pool, held by no other client, not declined.
    pub fn may_bind(
        &self,
        mac: MacAddr,
        ip: Ipv4Addr,
        leases: &[Lease],
        declined: &dyn Fn(Ipv4Addr) -> bool,
        now: u64,
    ) -> bool {
        let mac_text = mac.to_string();
        self.contains(ip)
            && !declined(ip)
            && !leases
                .iter()
                .any(|l| l.ip == ip && l.mac != mac_text && l.expires > now)
    }
}

impl fmt::Display for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

impl FromStr for Pool {
    type Err = PoolParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || PoolParseError::Syntax(s.to_owned());
        let (a, b) = s.split_once('-').ok_or_else(syntax)?;
        let start: Ipv4Addr = a.trim().parse().map_err(|_| syntax())?;
        let end: Ipv4Addr = b.trim().parse().map_err(|_| syntax())?;
        Pool::new(start, end).ok_or_else(|| PoolParseError::Backwards(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leases::LeaseState;

    fn pool() -> Pool {
        "10.77.0.100-10.77.0.102".parse().unwrap()
    }

    fn mac(n: u8) -> MacAddr {
        MacAddr([2, 0, 0, 0, 0, n])
    }

    fn lease(n: u8, ip: &str, state: LeaseState, expires: u64) -> Lease {
        Lease {
            mac: mac(n).to_string(),
            ip: ip.parse().unwrap(),
            name: format!("node-{n}"),
            state,
            expires,
        }
    }

    const NONE: &dyn Fn(Ipv4Addr) -> bool = &|_| false;

    #[test]
    fn parses_and_refuses_bad_ranges() {
        assert_eq!(pool().to_string(), "10.77.0.100-10.77.0.102");
        assert_eq!(pool().addresses().count(), 3);
        assert!(matches!(
            "10.77.0.9-10.77.0.1".parse::<Pool>(),
            Err(PoolParseError::Backwards(_))
        ));
        assert!(matches!(
            "10.77.0.9".parse::<Pool>(),
            Err(PoolParseError::Syntax(_))
        ));
    }

    #[test]
    fn a_client_keeps_its_address_and_others_get_free_ones_until_none_is_left() {
        let p = pool();
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(p.pick(mac(1), &[], NONE, 10), Some(ip("10.77.0.100")));
        let mut leases = vec![lease(1, "10.77.0.100", LeaseState::Bound, 100)];
        assert_eq!(p.pick(mac(1), &leases, NONE, 10), Some(ip("10.77.0.100")));
        assert_eq!(p.pick(mac(2), &leases, NONE, 10), Some(ip("10.77.0.101")));
        leases.push(lease(2, "10.77.0.101", LeaseState::Offered, 100));
        leases.push(lease(3, "10.77.0.102", LeaseState::Bound, 100));
        assert_eq!(p.pick(mac(4), &leases, NONE, 10), None, "exhausted");
        // An expired lease frees its address for others; its owner would have got it back.
        assert_eq!(p.pick(mac(4), &leases, NONE, 100), Some(ip("10.77.0.100")));
        assert!(p.may_bind(mac(1), ip("10.77.0.100"), &leases, NONE, 10));
        assert!(!p.may_bind(mac(4), ip("10.77.0.100"), &leases, NONE, 10));
        assert!(!p.may_bind(mac(4), ip("10.77.0.200"), &leases, NONE, 10));
    }

    #[test]
    fn a_declined_address_is_skipped_even_for_its_old_client() {
        let p = pool();
        let leases = vec![lease(1, "10.77.0.100", LeaseState::Bound, 100)];
        let declined = |ip: Ipv4Addr| ip == Ipv4Addr::new(10, 77, 0, 100);
        assert_eq!(
            p.pick(mac(1), &leases, &declined, 10),
            Some(Ipv4Addr::new(10, 77, 0, 101))
        );
        assert!(!p.may_bind(
            mac(1),
            Ipv4Addr::new(10, 77, 0, 100),
            &leases,
            &declined,
            10
        ));
    }
}
