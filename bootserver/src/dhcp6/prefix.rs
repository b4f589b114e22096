//! The IPv6 netboot prefix (`ipv6_boot = "fd77::1/64"`): the master's address on the served
//! interface and the prefix the nodes get their addresses from. A node's IPv6 address is the
//! prefix with its table IPv4 address as the last 32 bits, so the table stays the one record.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// The master's IPv6 address and the nodes' prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Boot {
    master: Ipv6Addr,
    prefix: u8,
}

/// Why `ipv6_boot` could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Ipv6BootError {
    /// Not `address/prefix`.
    #[error("`{0}` is not an IPv6 address with a prefix length (such as fd77::1/64)")]
    Syntax(String),
    /// The nodes' IPv4 address takes the last 32 bits.
    #[error(
        "prefix /{0} is out of range (16 to 96: the nodes' IPv4 address fills the last 32 bits)"
    )]
    Prefix(u8),
    /// Link-local, multicast, loopback or unspecified.
    #[error("{0} is not a global or unique-local unicast address")]
    NotUnicast(Ipv6Addr),
}

impl FromStr for Ipv6Boot {
    type Err = Ipv6BootError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || Ipv6BootError::Syntax(s.to_string());
        let (addr, len) = s.split_once('/').ok_or_else(syntax)?;
        let master: Ipv6Addr = addr.parse().map_err(|_| syntax())?;
        let prefix: u8 = len.parse().map_err(|_| syntax())?;
        if !(16..=96).contains(&prefix) {
            return Err(Ipv6BootError::Prefix(prefix));
        }
        let link_local = master.segments()[0] & 0xffc0 == 0xfe80;
        if master.is_multicast() || master.is_loopback() || master.is_unspecified() || link_local {
            return Err(Ipv6BootError::NotUnicast(master));
        }
        Ok(Self { master, prefix })
    }
}

impl fmt::Display for Ipv6Boot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.master, self.prefix)
    }
}

impl Ipv6Boot {
    /// The master's address.
    pub fn master(&self) -> Ipv6Addr {
        self.master
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.prefix
    }

    fn mask(&self) -> u128 {
        u128::MAX << (128 - u32::from(self.prefix))
    }

    /// The network address of the prefix.
    pub fn network(&self) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.master) & self.mask())
    }

    /// The IPv6 address of the node whose IPv4 address is `v4`.
    pub fn address_of(&self, v4: Ipv4Addr) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.network()) | u128::from(u32::from(v4)))
    }

    /// The IPv4 address behind a node's IPv6 address, if it is one of ours.
    pub fn ipv4_of(&self, v6: Ipv6Addr) -> Option<Ipv4Addr> {
        let bits = u128::from(v6);
        (bits & self.mask() == u128::from(self.network()))
            .then(|| Ipv4Addr::from(u32::try_from(bits & 0xffff_ffff).unwrap_or(0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_maps_both_ways() {
        let b: Ipv6Boot = "fd77::1/64".parse().unwrap();
        assert_eq!(b.network(), "fd77::".parse::<Ipv6Addr>().unwrap());
        let v6 = b.address_of(Ipv4Addr::new(10, 77, 0, 11));
        assert_eq!(v6, "fd77::a4d:b".parse::<Ipv6Addr>().unwrap());
        assert_eq!(b.ipv4_of(v6), Some(Ipv4Addr::new(10, 77, 0, 11)));
        assert_eq!(b.ipv4_of("fd78::a4d:b".parse().unwrap()), None);
        assert_eq!(b.to_string(), "fd77::1/64");
        for (bad, want) in [
            ("fd77::1", Ipv6BootError::Syntax("fd77::1".into())),
            ("fd77::1/120", Ipv6BootError::Prefix(120)),
            (
                "fe80::1/64",
                Ipv6BootError::NotUnicast("fe80::1".parse().unwrap()),
            ),
            (
                "ff02::1/64",
                Ipv6BootError::NotUnicast("ff02::1".parse().unwrap()),
            ),
            ("10.0.0.1/24", Ipv6BootError::Syntax("10.0.0.1/24".into())),
        ] {
            assert_eq!(bad.parse::<Ipv6Boot>(), Err(want), "{bad}");
        }
    }
}
