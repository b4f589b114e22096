//! An IPv4 subnet in CIDR form (`10.77.0.0/24`): membership, mask, and the addresses a node may not take.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 network: its address with host bits cleared, and its prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    network: Ipv4Addr,
    prefix: u8,
}

/// Why a subnet could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubnetParseError {
    /// Not `address/prefix`.
    #[error("`{0}` is not a subnet in CIDR form (such as 10.77.0.0/24)")]
    Syntax(String),
    /// Prefix out of range for a network nodes can live in.
    #[error("prefix /{0} is out of range (8 to 30)")]
    Prefix(u8),
    /// Host bits set: most likely a typo of the network or the prefix.
    #[error("`{0}` has host bits set; did you mean {1}?")]
    HostBits(String, String),
}

impl Subnet {
    /// The netmask (`255.255.255.0` for /24).
    pub fn mask(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::MAX << (32 - u32::from(self.prefix)))
    }

    /// The broadcast address of the subnet.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !u32::from(self.mask()))
    }

    /// Whether `ip` is a usable host address inside this subnet (not the network or broadcast address).
    pub fn contains_host(&self, ip: Ipv4Addr) -> bool {
        let inside = u32::from(ip) & u32::from(self.mask()) == u32::from(self.network);
        inside && ip != self.network && ip != self.broadcast()
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether the two share any address.
    pub fn overlaps(&self, other: &Subnet) -> bool {
        let wider = if self.prefix <= other.prefix {
            self
        } else {
            other
        };
        let narrower = if std::ptr::eq(wider, self) {
            other
        } else {
            self
        };
        u32::from(narrower.network) & u32::from(wider.mask()) == u32::from(wider.network)
    }
}

impl FromStr for Subnet {
    type Err = SubnetParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || SubnetParseError::Syntax(s.to_string());
        let (addr, prefix) = s.split_once('/').ok_or_else(syntax)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| syntax())?;
        let prefix: u8 = prefix.parse().map_err(|_| syntax())?;
        if !(8..=30).contains(&prefix) {
            return Err(SubnetParseError::Prefix(prefix));
        }
        let subnet = Subnet {
            network: addr,
            prefix,
        };
        let network = Ipv4Addr::from(u32::from(addr) & u32::from(subnet.mask()));
        if network != addr {
            return Err(SubnetParseError::HostBits(
                s.to_string(),
                format!("{network}/{prefix}"),
            ));
        }
        Ok(subnet)
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_excludes_network_and_broadcast() {
        let s: Subnet = "10.77.0.0/24".parse().unwrap();
        assert_eq!(s.mask(), Ipv4Addr::new(255, 255, 255, 0));
        assert!(s.contains_host(Ipv4Addr::new(10, 77, 0, 11)));
        assert!(!s.contains_host(Ipv4Addr::new(10, 77, 0, 0)));
        assert!(!s.contains_host(Ipv4Addr::new(10, 77, 0, 255)));
        assert!(!s.contains_host(Ipv4Addr::new(10, 78, 0, 1)));
    }

    #[test]
    fn rejects_bad_forms() {
        assert!(matches!(
            "10.77.0.0".parse::<Subnet>(),
            Err(SubnetParseError::Syntax(_))
        ));
        assert!(matches!(
            "10.77.0.0/31".parse::<Subnet>(),
            Err(SubnetParseError::Prefix(31))
        ));
        let e = "10.77.0.1/24".parse::<Subnet>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "`10.77.0.1/24` has host bits set; did you mean 10.77.0.0/24?"
        );
    }

    #[test]
    fn overlap() {
        let n = |t: &str| t.parse::<Subnet>().unwrap();
        assert!(n("10.77.0.0/16").overlaps(&n("10.77.3.0/24")));
        assert!(n("10.77.3.0/24").overlaps(&n("10.77.0.0/16")));
        assert!(!n("10.77.0.0/24").overlaps(&n("10.78.0.0/24")));
        assert!(n("10.77.0.0/24").overlaps(&n("10.77.0.0/24")));
    }
}
