//! Who may talk to an NFS port, decided when the connection is accepted, as knfsd decides per
//! export: a client inside the nodes' subnet, from a privileged source port unless the export is
//! `insecure`. AUTH_SYS carries whatever uid the sender writes; the port is what says root sent it.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::subnet::Subnet;

/// Source ports below this one only root can bind (`IPPORT_RESERVED`).
pub const RESERVED_PORTS: u16 = 1024;

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The client is not in the nodes' subnet.
    #[error("its address is outside the nodes' subnet")]
    Outside,
    /// An unprivileged source port on a `secure` export.
    #[error("its source port is 1024 or above (set `insecure = true` for this export to allow it)")]
    Unprivileged,
}

/// An export's admission rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gate {
    /// The nodes' subnets (the served one and the relayed ones); `None` admits every address
    /// (tests on loopback).
    pub subnets: Option<Vec<Subnet>>,
    /// Admit unprivileged source ports.
    pub insecure: bool,
}

impl Gate {
    /// Admit anyone: for tests of the file system behind the port.
    pub const OPEN: Gate = Gate {
        subnets: None,
        insecure: true,
    };

    /// Whether a connection from `peer` may be served.
    pub fn admits(&self, peer: SocketAddr) -> Result<(), Refusal> {
        if let Some(nets) = &self.subnets {
            let v4 = match peer.ip() {
                IpAddr::V4(ip) => Some(ip),
                IpAddr::V6(ip) => ip.to_ipv4_mapped(),
            };
            let inside = v4.is_some_and(|ip| nets.iter().any(|n| n.contains_host(ip)));
            if !inside {
                return Err(Refusal::Outside);
            }
        }
        if !self.insecure && peer.port() >= RESERVED_PORTS {
            return Err(Refusal::Unprivileged);
        }
        Ok(())
    }
}

/// A snapshot of [`Refused`], for the status API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RefusedCounts {
    /// From outside the subnet.
    pub outside: u64,
    /// From an unprivileged port.
    pub unprivileged: u64,
}

/// Connections refused, by reason.
#[derive(Debug, Default)]
pub struct Refused {
    /// From outside the subnet.
    pub outside: AtomicU64,
    /// From an unprivileged port.
    pub unprivileged: AtomicU64,
}

impl Refused {
    /// Read the counters.
    pub fn snapshot(&self) -> RefusedCounts {
        RefusedCounts {
            outside: self.outside.load(Ordering::Relaxed),
            unprivileged: self.unprivileged.load(Ordering::Relaxed),
        }
    }

    /// Count one refusal; true for the first of its kind, which is worth a line at INFO.
    pub fn count(&self, why: Refusal) -> bool {
        let c = match why {
            Refusal::Outside => &self.outside,
            Refusal::Unprivileged => &self.unprivileged,
        };
        c.fetch_add(1, Ordering::Relaxed) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(insecure: bool) -> Gate {
        Gate {
            subnets: Some(vec![
                "10.77.0.0/24".parse().unwrap(),
                "10.78.0.0/24".parse().unwrap(),
            ]),
            insecure,
        }
    }

    #[test]
    fn only_privileged_ports_inside_the_subnet_unless_insecure() {
        let at = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(gate(false).admits(at("10.77.0.11:1023")), Ok(()));
        assert_eq!(gate(false).admits(at("10.77.0.11:700")), Ok(()));
        assert_eq!(
            gate(false).admits(at("10.77.0.11:1024")),
            Err(Refusal::Unprivileged)
        );
        assert_eq!(gate(true).admits(at("10.77.0.11:40000")), Ok(()));
        assert_eq!(
            gate(true).admits(at("10.77.1.11:700")),
            Err(Refusal::Outside)
        );
        assert_eq!(
            gate(false).admits(at("127.0.0.1:700")),
            Err(Refusal::Outside)
        );
        assert_eq!(gate(false).admits(at("[::ffff:10.77.0.12]:700")), Ok(()));
        assert_eq!(gate(false).admits(at("[::1]:700")), Err(Refusal::Outside));
        assert_eq!(Gate::OPEN.admits(at("127.0.0.1:50000")), Ok(()));
        let r = Refused::default();
        assert!(r.count(Refusal::Outside));
        assert!(!r.count(Refusal::Outside));
        assert!(r.count(Refusal::Unprivileged));
    }
}
