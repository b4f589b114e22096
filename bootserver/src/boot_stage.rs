//! Where each MAC's boot has got to: the last stage the master saw (DHCP, the loader over TFTP or
//! HTTP, the HTTP script, kernel, initrd, cluster key, NFS mount, omd joined) and when, so an
//! operator sees where a node is stuck. The services record what they serve; the rule for what replaces what is [`next`].

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::mac::MacAddr;
use migrator::clock::Clock;

/// A boot stage, in boot order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// A DHCP offer or ack was sent.
    Dhcp,
    /// A TFTP read was served (the boot loader).
    Tftp,
    /// The boot loader was served over HTTP (UEFI HTTP boot, instead of TFTP).
    Loader,
    /// The iPXE script was served.
    Script,
    /// The kernel was served.
    Kernel,
    /// The initrd was served.
    Initrd,
    /// The initramfs took the cluster key.
    Key,
    /// The initramfs connected to the NFS root.
    Nfs,
    /// The node's omd joined the cluster (the master's observer sees it alive).
    Omd,
}

impl Stage {
    /// What the dashboard and `ombootd status` call it.
    pub fn label(self) -> &'static str {
        match self {
            Stage::Dhcp => "DHCP",
            Stage::Tftp => "TFTP",
            Stage::Loader => "HTTP loader",
            Stage::Script => "HTTP script",
            Stage::Kernel => "kernel",
            Stage::Initrd => "initrd",
            Stage::Key => "cluster key",
            Stage::Nfs => "NFS mount",
            Stage::Omd => "omd joined",
        }
    }
}

/// What a service saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A DHCP offer to a network-boot client (the firmware's PXE or iPXE): every boot starts
    /// with one. An offer to an OS's own DHCP client (the initramfs, a running node renewing its
    /// lease) is `At(Stage::Dhcp)`.
    Offer,
    /// Any other step.
    At(Stage),
}

/// The last stage seen of one MAC, and when (seconds since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    /// The stage.
    pub stage: Stage,
    /// When.
    pub at: u64,
}

/// The stage after `event`, given the last one seen; `None`: keep `last`. Once omd has joined,
/// only a new boot (a DHCP offer) moves the node back: a lease renewal or an NFS reconnect of a
/// running node is not a boot. Before that, the last stage seen is the one shown (the
/// initramfs's own DHCP comes after the initrd, and the operator sees it as it happens).
pub fn next(last: Option<Stage>, event: Event) -> Option<Stage> {
    match (last, event) {
        (_, Event::Offer) => Some(Stage::Dhcp),
        (Some(Stage::Omd), Event::At(_)) => None,
        (_, Event::At(s)) => Some(s),
    }
}

impl std::fmt::Debug for BootStages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootStages")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

/// Most MACs remembered: a flood of made-up MACs evicts unknown ones, never table nodes.
pub const MAX_SEEN: usize = 4096;

/// The stages of every MAC seen, shared by the services.
pub struct BootStages {
    clock: Arc<dyn Clock>,
    table: std::sync::RwLock<Table>,
    seen: Mutex<Seens>,
}

/// The node table: address to MAC, and the MACs alone.
#[derive(Debug, Default)]
struct Table {
    by_ip: HashMap<Ipv4Addr, MacAddr>,
    macs: HashSet<MacAddr>,
}

impl Table {
    fn new(table: impl IntoIterator<Item = (MacAddr, Ipv4Addr)>) -> Self {
        let by_ip: HashMap<Ipv4Addr, MacAddr> = table.into_iter().map(|(m, i)| (i, m)).collect();
        let macs = by_ip.values().copied().collect();
        Self { by_ip, macs }
    }
}

/// The MACs seen, and the order to forget those outside the table in: by when last seen,
/// oldest first. A new MAC past [`MAX_SEEN`] then costs a lookup, not a scan of every MAC (a
/// relay or a flood brings a new one with every exchange).
#[derive(Debug, Default)]
struct Seens {
    by_mac: HashMap<MacAddr, Seen>,
    order: BTreeSet<(u64, MacAddr)>,
}

impl BootStages {
    /// Stages of the nodes in `table` (MAC, reserved IP), which maps the addresses TFTP, HTTP
    /// and NFS see to MACs, timed by `clock`.
    pub fn new(
        table: impl IntoIterator<Item = (MacAddr, Ipv4Addr)>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            clock,
            table: std::sync::RwLock::new(Table::new(table)),
            seen: Mutex::new(Seens::default()),
        }
    }

    /// The MAC of a table node's address.
    pub fn mac_of(&self, ip: Ipv4Addr) -> Option<MacAddr> {
        self.table
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .by_ip
            .get(&ip)
            .copied()
    }

    /// A new node table (reloaded while serving).
    pub fn set_table(&self, table: impl IntoIterator<Item = (MacAddr, Ipv4Addr)>) {
        *self.table.write().unwrap_or_else(|p| p.into_inner()) = Table::new(table);
    }

    fn known(&self, mac: &MacAddr) -> bool {
        self.table
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .macs
            .contains(mac)
    }

    /// The time stages are stamped with, seconds since the epoch.
    pub fn now(&self) -> u64 {
        self.clock.now().as_secs()
    }

    /// Record `event` of `mac`, now.
    pub fn record(&self, mac: MacAddr, event: Event) {
        let now = self.clock.now().as_secs();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let last = seen.by_mac.get(&mac).copied();
        let Some(stage) = next(last.map(|s| s.stage), event) else {
            return;
        };
        let known = self.known(&mac);
        if last.is_none() && seen.by_mac.len() >= MAX_SEEN && !known {
            // The oldest MAC outside the table goes (one approved into the table since it was
            // seen leaves the order and stays).
            loop {
                let Some((_, m)) = seen.order.pop_first() else {
                    return;
                };
                if !self.known(&m) {
                    seen.by_mac.remove(&m);
                    break;
                }
            }
        }
        if let Some(old) = last {
            seen.order.remove(&(old.at, mac));
        }
        if !known {
            seen.order.insert((now, mac));
        }
        seen.by_mac.insert(mac, Seen { stage, at: now });
    }

    /// Record `stage` for the table node at `ip` (an address no table node has is ignored).
    pub fn record_ip(&self, ip: Ipv4Addr, stage: Stage) {
        if let Some(mac) = self.mac_of(ip) {
            self.record(mac, Event::At(stage));
        }
    }

    /// Every MAC seen, with its last stage.
    pub fn all(&self) -> Vec<(MacAddr, Seen)> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.by_mac.iter().map(|(m, s)| (*m, *s)).collect()
    }

    /// The last stage of `mac`.
    pub fn get(&self, mac: MacAddr) -> Option<Seen> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.by_mac.get(&mac).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use migrator::clock::ManualClock;
    use std::time::Duration;

    /// Stages timed by a clock the test sets before each record.
    fn stages() -> (BootStages, ManualClock) {
        let clock = ManualClock::default();
        (BootStages::new([(M, IP)], Arc::new(clock.clone())), clock)
    }

    const M: MacAddr = MacAddr([0x52, 0x54, 0, 0x77, 0, 1]);
    const IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 11);

    #[test]
    fn a_boot_goes_forward_and_a_running_node_stays_joined() {
        let (b, c) = stages();
        c.set(Duration::from_secs(1));
        b.record(M, Event::Offer);
        c.set(Duration::from_secs(2));
        b.record_ip(IP, Stage::Tftp);
        c.set(Duration::from_secs(3));
        b.record_ip(IP, Stage::Kernel);
        assert_eq!(b.get(M).map(|s| (s.stage, s.at)), Some((Stage::Kernel, 3)));
        // The initramfs's DHCP is shown as it happens, then the boot goes on.
        c.set(Duration::from_secs(4));
        b.record(M, Event::Offer);
        c.set(Duration::from_secs(5));
        b.record_ip(IP, Stage::Nfs);
        c.set(Duration::from_secs(6));
        b.record_ip(IP, Stage::Omd);
        // A renewal's ack, a running node's new DISCOVER (its renewal service starting) or an
        // NFS reconnect later is not a boot.
        c.set(Duration::from_secs(100));
        b.record(M, Event::At(Stage::Dhcp));
        c.set(Duration::from_secs(101));
        b.record_ip(IP, Stage::Nfs);
        assert_eq!(b.get(M).map(|s| (s.stage, s.at)), Some((Stage::Omd, 6)));
        // A power cycle starts over.
        c.set(Duration::from_secs(200));
        b.record(M, Event::Offer);
        assert_eq!(b.get(M).map(|s| s.stage), Some(Stage::Dhcp));
        // Addresses outside the table are not anyone's boot.
        c.set(Duration::from_secs(201));
        b.record_ip(Ipv4Addr::new(10, 77, 0, 99), Stage::Tftp);
        assert_eq!(b.all().len(), 1);
    }

    #[test]
    fn a_flood_of_unknown_macs_never_evicts_a_table_node() {
        let (b, c) = stages();
        c.set(Duration::from_secs(0));
        b.record(M, Event::Offer);
        for i in 0..(MAX_SEEN as u32 + 50) {
            let [_, x, y, z] = i.to_be_bytes();
            c.set(Duration::from_secs(u64::from(i) + 1));
            b.record(MacAddr([2, 0, 0, x, y, z]), Event::Offer);
        }
        let all = b.all();
        assert_eq!(all.len(), MAX_SEEN);
        assert!(b.get(M).is_some());
        // The newest unknown one is kept; the oldest went.
        assert!(b.get(MacAddr([2, 0, 0, 0, 0x10, 0x31])).is_some());
        assert!(b.get(MacAddr([2, 0, 0, 0, 0, 0])).is_none());
    }
}
