//! Which MAC an IPv4 neighbor answers from, as the kernel learnt it (`/proc/net/arp`): an HTTP
//! request shows only an address, and a node's secrets go to its MAC as well as its IP.

use std::net::Ipv4Addr;

use crate::mac::MacAddr;

/// ATF_COM: the entry is resolved.
const COMPLETE: u32 = 0x2;

/// The MAC of `ip` on `iface` in a `/proc/net/arp` text, when its entry is complete.
pub fn mac_in(arp: &str, ip: Ipv4Addr, iface: &str) -> Option<MacAddr> {
    arp.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [addr, _hw_type, flags, mac, _mask, dev] = f.as_slice() else {
            return None;
        };
        let flags = u32::from_str_radix(flags.trim_start_matches("0x"), 16).ok()?;
        (addr.parse::<Ipv4Addr>().ok()? == ip && *dev == iface && flags & COMPLETE != 0)
            .then(|| mac.parse().ok())
            .flatten()
    })
}

/// The MAC the kernel has for `ip` on `iface` now (a client that just made a TCP connection
/// has an entry: the kernel had to answer it).
pub fn mac_of(ip: Ipv4Addr, iface: &str) -> Option<MacAddr> {
    mac_in(&std::fs::read_to_string("/proc/net/arp").ok()?, ip, iface)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARP: &str = "\
IP address       HW type     Flags       HW address            Mask     Device
10.77.0.11       0x1         0x2         52:54:00:77:00:01     *        ombr0
10.77.0.12       0x1         0x0         00:00:00:00:00:00     *        ombr0
10.77.0.13       0x1         0x2         52:54:00:77:00:03     *        eth9
";

    #[test]
    fn complete_entries_on_the_interface_only() {
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(
            mac_in(ARP, ip("10.77.0.11"), "ombr0"),
            Some("52:54:00:77:00:01".parse().unwrap())
        );
        assert_eq!(mac_in(ARP, ip("10.77.0.12"), "ombr0"), None);
        assert_eq!(mac_in(ARP, ip("10.77.0.13"), "ombr0"), None);
        assert_eq!(mac_in(ARP, ip("10.77.0.14"), "ombr0"), None);
        assert_eq!(mac_in("garbage\n1 2 3\n", ip("10.77.0.11"), "ombr0"), None);
    }
}
