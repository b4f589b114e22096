//! The boot window: serving a node's iPXE script opens it and numbers the boot; within it, the
//! node's initramfs may take the cluster key over HTTP once, from the node's reserved IP and MAC.
//! Pure state; the boot numbers persist through a [`BootCounts`] store.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use crate::mac::MacAddr;

/// How long after its script is served a node may take the key: a TCG boot to the initramfs
/// takes about a minute, a real one seconds.
pub const WINDOW_SECS: u64 = 300;

/// Why a key request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The address is no node's reservation.
    #[error("the address is not reserved for any node")]
    NotANode,
    /// The address answers from another MAC than the node table gives it.
    #[error("the address answers from another MAC than the node's")]
    WrongMac,
    /// No script was served to the node lately.
    #[error("the node is not booting (no boot script served in the last {WINDOW_SECS} s)")]
    NoWindow,
    /// The key was already taken in this boot.
    #[error("the key was already taken in this boot (a second request: someone else may hold it)")]
    Taken,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    opened: u64,
    taken: bool,
}

/// The nodes' boot numbers, and the image version each booted last, kept across restarts of
/// ombootd so a number never repeats and a version in use is never pruned.
pub trait BootCounts: Send {
    /// Number `mac`'s next boot (1 for its first), which boots image `version`.
    fn next(&mut self, mac: MacAddr, version: &str) -> std::io::Result<u64>;
    /// The image version each node booted last.
    fn versions(&self) -> Vec<(MacAddr, String)>;
}

/// Boot records in memory (tests).
#[derive(Debug, Default)]
pub struct MemoryCounts(HashMap<MacAddr, (u64, String)>);

impl BootCounts for MemoryCounts {
    fn next(&mut self, mac: MacAddr, version: &str) -> std::io::Result<u64> {
        let e = self.0.entry(mac).or_insert((0, String::new()));
        e.0 += 1;
        e.1 = version.to_owned();
        Ok(e.0)
    }

    fn versions(&self) -> Vec<(MacAddr, String)> {
        self.0.iter().map(|(m, (_, v))| (*m, v.clone())).collect()
    }
}

/// Boot records in `<state_dir>/boots`, one `mac number version` line per node, replaced
/// atomically.
#[derive(Debug)]
pub struct FileCounts {
    path: PathBuf,
    counts: HashMap<MacAddr, (u64, String)>,
}

impl FileCounts {
    /// Read `<state_dir>/boots` (none yet: every node at 0). A line that does not parse is an
    /// error, not a reset: a number that went backwards would make a rebooted node look old.
    pub fn open(state_dir: &std::path::Path) -> std::io::Result<Self> {
        let path = state_dir.join("boots");
        let mut counts = HashMap::new();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    let mut f = line.split_whitespace();
                    let parsed = (|| {
                        let mac = f.next()?.parse::<MacAddr>().ok()?;
                        let n = f.next()?.parse::<u64>().ok()?;
                        Some((mac, n, f.next().unwrap_or_default().to_owned()))
                    })();
                    let Some((mac, n, version)) = parsed else {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            format!("{}: cannot read the line {line:?}", path.display()),
                        ));
                    };
                    counts.insert(mac, (n, version));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(Self { path, counts })
    }
}

impl BootCounts for FileCounts {
    fn next(&mut self, mac: MacAddr, version: &str) -> std::io::Result<u64> {
        let n = self.counts.get(&mac).map_or(0, |c| c.0) + 1;
        let mut lines: Vec<String> = self
            .counts
            .iter()
            .filter(|(m, _)| **m != mac)
            .map(|(m, (c, v))| format!("{m} {c} {v}"))
            .collect();
        lines.push(format!("{mac} {n} {version}"));
        lines.sort();
        migrator::state_file::replace(&self.path, (lines.join("\n") + "\n").as_bytes())?;
        self.counts.insert(mac, (n, version.to_owned()));
        Ok(n)
    }

    fn versions(&self) -> Vec<(MacAddr, String)> {
        self.counts
            .iter()
            .map(|(m, (_, v))| (*m, v.clone()))
            .collect()
    }
}

/// The open windows, by node MAC.
#[derive(Debug, Default)]
pub struct BootWindows {
    open: HashMap<MacAddr, Window>,
}

impl BootWindows {
    /// `mac` is booting image `version` (its script was served at `now`, in seconds): a new
    /// window, a new number.
    pub fn open(
        &mut self,
        counts: &mut dyn BootCounts,
        mac: MacAddr,
        version: &str,
        now: u64,
    ) -> std::io::Result<u64> {
        let boot = counts.next(mac, version)?;
        self.open.insert(
            mac,
            Window {
                opened: now,
                taken: false,
            },
        );
        Ok(boot)
    }

    /// The nodes whose window is open at `now`: booting, perhaps with no lease yet.
    pub fn booting(&self, now: u64) -> Vec<MacAddr> {
        self.open
            .iter()
            .filter(|(_, w)| now.saturating_sub(w.opened) <= WINDOW_SECS)
            .map(|(m, _)| *m)
            .collect()
    }

    /// Whether the key may go to the client at `ip`, whose link-layer address is known as
    /// `link`, at `now`; the node table is `nodes` (MAC, reserved IP). Taking it closes the window.
    pub fn take_key(
        &mut self,
        nodes: &[(MacAddr, Ipv4Addr)],
        ip: Ipv4Addr,
        link: Link,
        now: u64,
    ) -> Result<MacAddr, Refusal> {
        let &(mac, _) = nodes
            .iter()
            .find(|(_, reserved)| *reserved == ip)
            .ok_or(Refusal::NotANode)?;
        match link {
            Link::Seen(seen) if seen != Some(mac) => return Err(Refusal::WrongMac),
            Link::Seen(_) | Link::Routed => {}
        }
        let w = self.open.get_mut(&mac).ok_or(Refusal::NoWindow)?;
        if now.saturating_sub(w.opened) > WINDOW_SECS {
            return Err(Refusal::NoWindow);
        }
        if w.taken {
            return Err(Refusal::Taken);
        }
        w.taken = true;
        Ok(mac)
    }
}

/// What the master knows of the link-layer address a key request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// The served interface's neighbour table has this MAC for the address (`None`: no entry).
    Seen(Option<MacAddr>),
    /// The node is on a relayed subnet, behind a router: its MAC is out of sight, so only its
    /// address and the boot window are checked.
    Routed,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Vec<(MacAddr, Ipv4Addr)> {
        vec![
            (MacAddr([2, 0, 0, 0, 0, 1]), Ipv4Addr::new(10, 77, 0, 11)),
            (MacAddr([2, 0, 0, 0, 0, 2]), Ipv4Addr::new(10, 77, 0, 12)),
        ]
    }

    #[test]
    fn the_key_goes_once_per_boot_to_the_reserved_ip_and_mac_within_the_window() {
        let nodes = table();
        let (m1, ip1) = nodes[0];
        let (m2, ip2) = nodes[1];
        let mut counts = MemoryCounts::default();
        let mut w = BootWindows::default();
        // Not booting yet.
        assert_eq!(
            w.take_key(&nodes, ip1, Link::Seen(Some(m1)), 100),
            Err(Refusal::NoWindow)
        );
        assert_eq!(w.open(&mut counts, m1, "v1", 100).unwrap(), 1);
        // Someone else's address, a spoofed IP from another MAC, an address no node has.
        assert_eq!(
            w.take_key(&nodes, ip2, Link::Seen(Some(m2)), 101),
            Err(Refusal::NoWindow)
        );
        assert_eq!(
            w.take_key(&nodes, ip1, Link::Seen(Some(m2)), 101),
            Err(Refusal::WrongMac)
        );
        assert_eq!(
            w.take_key(&nodes, ip1, Link::Seen(None), 101),
            Err(Refusal::WrongMac)
        );
        assert_eq!(
            w.take_key(
                &nodes,
                Ipv4Addr::new(10, 77, 0, 99),
                Link::Seen(Some(m1)),
                101
            ),
            Err(Refusal::NotANode)
        );
        // Behind a relay the MAC is out of sight: the address and the window still count.
        assert_eq!(
            w.take_key(&nodes, Ipv4Addr::new(10, 77, 0, 99), Link::Routed, 101),
            Err(Refusal::NotANode)
        );
        assert_eq!(w.take_key(&nodes, ip1, Link::Seen(Some(m1)), 102), Ok(m1));
        assert_eq!(
            w.take_key(&nodes, ip1, Link::Seen(Some(m1)), 103),
            Err(Refusal::Taken)
        );
        // The next boot opens a new window with the next number; a late request finds it shut.
        assert_eq!(w.open(&mut counts, m1, "v1", 1000).unwrap(), 2);
        assert_eq!(
            w.take_key(&nodes, ip1, Link::Seen(Some(m1)), 1000 + WINDOW_SECS + 1),
            Err(Refusal::NoWindow)
        );
    }

    #[test]
    fn a_routed_node_takes_its_key_once_within_its_window() {
        let nodes = table();
        let (m1, ip1) = nodes[0];
        let mut counts = MemoryCounts::default();
        let mut w = BootWindows::default();
        assert_eq!(
            w.take_key(&nodes, ip1, Link::Routed, 10),
            Err(Refusal::NoWindow)
        );
        w.open(&mut counts, m1, "v1", 10).unwrap();
        assert_eq!(w.take_key(&nodes, ip1, Link::Routed, 11), Ok(m1));
        assert_eq!(
            w.take_key(&nodes, ip1, Link::Routed, 12),
            Err(Refusal::Taken)
        );
    }

    #[test]
    fn boot_numbers_survive_a_restart_and_a_bad_file_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let m = MacAddr([2, 0, 0, 0, 0, 1]);
        let mut c = FileCounts::open(d.path()).unwrap();
        assert_eq!(c.next(m, "0000000001").unwrap(), 1);
        assert_eq!(c.next(m, "0000000002").unwrap(), 2);
        assert_eq!(
            c.next(MacAddr([2, 0, 0, 0, 0, 2]), "0000000001").unwrap(),
            1
        );
        let mut again = FileCounts::open(d.path()).unwrap();
        let mut v = again.versions();
        v.sort();
        assert_eq!(
            v,
            [
                (m, "0000000002".to_owned()),
                (MacAddr([2, 0, 0, 0, 0, 2]), "0000000001".to_owned())
            ]
        );
        assert_eq!(again.next(m, "0000000002").unwrap(), 3);
        std::fs::write(d.path().join("boots"), "garbage\n").unwrap();
        assert!(FileCounts::open(d.path()).is_err());
    }
}
