//! Finding the gossip interface with no per-node configuration: the interface carrying the
//! default route, else the first non-loopback interface with an IPv4 address.

use std::ffi::CStr;
use std::net::Ipv4Addr;

/// A usable interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Name, e.g. `ens3`.
    pub name: String,
    /// Its (first) IPv4 address.
    pub addr: Ipv4Addr,
}

/// Why no interface could be chosen.
#[derive(Debug, thiserror::Error)]
pub enum NetifError {
    /// getifaddrs failed.
    #[error("listing interfaces")]
    List(#[source] std::io::Error),
    /// The named interface has no IPv4 address.
    #[error("interface {0} has no IPv4 address (is it up and configured?)")]
    NoAddress(String),
    /// Nothing suitable.
    #[error("no non-loopback interface with an IPv4 address; set `interface` in the config")]
    NoneFound,
}

/// All (interface, IPv4) pairs, in kernel order.
pub fn ipv4_interfaces() -> Result<Vec<Interface>, NetifError> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head into the valid pointer we pass; freed below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(NetifError::List(std::io::Error::last_os_error()));
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a non-null node of the list getifaddrs returned, alive until freeifaddrs.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_addr is non-null and points to a sockaddr owned by the list.
        let family = unsafe { (*ifa.ifa_addr).sa_family };
        if i32::from(family) != libc::AF_INET {
            continue;
        }
        // SAFETY: the family is AF_INET, so the sockaddr is a sockaddr_in.
        let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
        // SAFETY: ifa_name is a non-null NUL-terminated string owned by the list.
        let name = unsafe { CStr::from_ptr(ifa.ifa_name) }
            .to_string_lossy()
            .into_owned();
        out.push(Interface {
            name,
            addr: Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
        });
    }
    // SAFETY: `head` came from a successful getifaddrs and is freed exactly once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// The interface of the default route in /proc/net/route contents.
pub fn default_route_iface(route_table: &str) -> Option<String> {
    route_table.lines().skip(1).find_map(|l| {
        let mut f = l.split_whitespace();
        let iface = f.next()?;
        let dest = f.next()?;
        (dest == "00000000").then(|| iface.to_owned())
    })
}

/// Pick the gossip interface: `wanted` by name, else the default-route one, else the first
/// non-loopback interface with IPv4.
pub fn choose(
    wanted: Option<&str>,
    all: &[Interface],
    route_table: &str,
) -> Result<Interface, NetifError> {
    if let Some(w) = wanted {
        return all
            .iter()
            .find(|i| i.name == w)
            .cloned()
            .ok_or_else(|| NetifError::NoAddress(w.to_owned()));
    }
    if let Some(d) = default_route_iface(route_table)
        && let Some(i) = all.iter().find(|i| i.name == d)
    {
        return Ok(i.clone());
    }
    all.iter()
        .find(|i| !i.addr.is_loopback())
        .cloned()
        .ok_or(NetifError::NoneFound)
}

/// Resolve on this machine.
pub fn resolve(wanted: Option<&str>) -> Result<Interface, NetifError> {
    let routes = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    choose(wanted, &ipv4_interfaces()?, &routes)
}

/// The MAC of an interface (for the id fallback).
pub fn mac_of(name: &str) -> Option<String> {
    std::fs::read_to_string(format!("/sys/class/net/{name}/address")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTES: &str = "Iface\tDestination\tGateway\tFlags\n\
        ens4\t0000A8C0\t00000000\t0001\n\
        ens3\t00000000\t0100A8C0\t0003\n";

    fn ifs() -> Vec<Interface> {
        vec![
            Interface {
                name: "lo".into(),
                addr: Ipv4Addr::LOCALHOST,
            },
            Interface {
                name: "ens4".into(),
                addr: [192, 168, 1, 5].into(),
            },
            Interface {
                name: "ens3".into(),
                addr: [10, 0, 0, 5].into(),
            },
        ]
    }

    #[test]
    fn default_route_first_then_first_non_lo() {
        assert_eq!(choose(None, &ifs(), ROUTES).unwrap().name, "ens3");
        assert_eq!(choose(None, &ifs(), "").unwrap().name, "ens4");
        assert_eq!(
            choose(Some("lo"), &ifs(), ROUTES).unwrap().addr,
            Ipv4Addr::LOCALHOST
        );
        assert!(choose(Some("eth9"), &ifs(), ROUTES).is_err());
        assert!(choose(None, &ifs()[..1], "").is_err());
        assert!(
            ipv4_interfaces()
                .unwrap()
                .iter()
                .any(|i| i.addr.is_loopback())
        );
    }
}
