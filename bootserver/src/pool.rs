//! The dynamic pool: a range of addresses inside the subnet, beside the node table's
//! reservations, for MACs outside the table when `unknown_macs = "boot"`. Which address a client
//! gets is decided here, from the leases, without I/O (RFC 2131 §4.3.1: the client's current or
//! previous address first, then any free one).

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

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

    /// The address for `mac`: `own` (its lease's, offered or bound, even expired) unless it is
    /// no longer free, else the first free address from a start derived from the MAC, so a
    /// client tends to get the same address again and allocation costs a few lookups, not a
    /// scan of every lease. `taken(ip)`: another client holds it, or it was declined. `None`:
    /// the pool is exhausted.
    pub fn pick(
        &self,
        mac: MacAddr,
        own: Option<Ipv4Addr>,
        taken: &dyn Fn(Ipv4Addr) -> bool,
    ) -> Option<Ipv4Addr> {
        if let Some(ip) = own.filter(|ip| self.contains(*ip) && !taken(*ip)) {
            return Some(ip);
        }
        let (first, size) = (u32::from(self.start), self.size());
        // FNV-1a of the MAC: stable across restarts and builds.
        let hash = mac.0.iter().fold(0x811c_9dc5_u32, |h, b| {
            (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
        });
        let from = hash % size;
        (0..size)
            .map(|i| Ipv4Addr::from(first + (from + i) % size))
            .find(|ip| !taken(*ip))
    }

    /// How many addresses it holds.
    pub fn size(&self) -> u32 {
        u32::from(self.end) - u32::from(self.start) + 1
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

    fn pool() -> Pool {
        "10.77.0.100-10.77.0.102".parse().unwrap()
    }

    fn mac(n: u8) -> MacAddr {
        MacAddr([2, 0, 0, 0, 0, n])
    }

    #[test]
    fn parses_and_refuses_bad_ranges() {
        assert_eq!(pool().to_string(), "10.77.0.100-10.77.0.102");
        assert_eq!(pool().size(), 3);
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
    fn a_client_keeps_its_address_others_get_free_ones_until_none_is_left() {
        let p = pool();
        let mut held: Vec<Ipv4Addr> = Vec::new();
        let first = p.pick(mac(1), None, &|ip| held.contains(&ip)).unwrap();
        assert!(p.contains(first));
        // The same MAC starts from the same place.
        assert_eq!(p.pick(mac(1), None, &|ip| held.contains(&ip)), Some(first));
        held.push(first);
        assert_eq!(
            p.pick(mac(1), Some(first), &|ip| held.contains(&ip) && ip != first),
            Some(first)
        );
        let second = p.pick(mac(2), None, &|ip| held.contains(&ip)).unwrap();
        assert_ne!(second, first);
        held.push(second);
        let third = p.pick(mac(3), None, &|ip| held.contains(&ip)).unwrap();
        held.push(third);
        assert_eq!(
            p.pick(mac(4), None, &|ip| held.contains(&ip)),
            None,
            "exhausted"
        );
        // An own address someone else took since is not given back.
        assert_ne!(p.pick(mac(4), Some(first), &|ip| ip == first), Some(first));
        // Outside the pool (a table change) is not kept either.
        let outside = Ipv4Addr::new(10, 77, 0, 5);
        assert!(p.contains(p.pick(mac(4), Some(outside), &|_| false).unwrap()));
    }
}
