//! Privileged: interfaces inside a lab namespace (bridge, taps, veth pairs, addresses), always
//! through `ip -n NS`, so no command here can reach an interface of the host.

use std::process::Command;

use crate::command;
use crate::error::{Error, Result};
use crate::netns::IP_TIMEOUT;

fn ip_in(ns: &str, args: &[&str]) -> Result<()> {
    let mut cmd = Command::new("ip");
    cmd.arg("-n").arg(ns).args(args);
    command::run(cmd, IP_TIMEOUT).map(drop)
}

/// Checks a Linux interface name (IFNAMSIZ is 16 with the NUL).
pub(crate) fn check_ifname(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::BadName {
            name: name.to_owned(),
            reason: "an interface name is 1 to 15 of [A-Za-z0-9-_.]",
        })
    }
}

/// Creates a bridge with forwarding from the first frame (no STP, no forward delay): PXE ROMs
/// give up long before a 15 s learning delay would end.
pub(crate) fn add_bridge(ns: &str, bridge: &str) -> Result<()> {
    ip_in(
        ns,
        &[
            "link",
            "add",
            bridge,
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
        ],
    )?;
    ip_in(ns, &["link", "set", bridge, "up"])
}

/// Adds an IPv4 address in CIDR form to an interface.
pub(crate) fn add_addr(ns: &str, ifname: &str, cidr: &str) -> Result<()> {
    ip_in(ns, &["addr", "add", cidr, "dev", ifname])
}

/// Gives an interface an IPv6 address in CIDR form, usable at once: no duplicate address
/// detection, since nothing else on a lab network holds the lab's addresses. Replacing makes a
/// second call with the same address a no-op.
pub(crate) fn replace_addr6(ns: &str, ifname: &str, cidr: &str) -> Result<()> {
    ip_in(ns, &["-6", "addr", "replace", cidr, "dev", ifname, "nodad"])
}

/// Creates a persistent tap, attaches it to `bridge` and brings it up.
pub(crate) fn add_tap(ns: &str, tap: &str, bridge: &str) -> Result<()> {
    ip_in(ns, &["tuntap", "add", "dev", tap, "mode", "tap"])?;
    ip_in(ns, &["link", "set", tap, "master", bridge, "up"])
}

/// Creates a veth pair: `local` stays in `ns`, its peer is born as `peer_name` inside `peer_ns`
/// (so no end ever exists in the host namespace). Both ends come up; `local` joins `bridge`
/// when one is given.
pub(crate) fn add_veth(
    ns: &str,
    local: &str,
    peer_ns: &str,
    peer_name: &str,
    bridge: Option<&str>,
) -> Result<()> {
    ip_in(
        ns,
        &[
            "link", "add", local, "type", "veth", "peer", "name", peer_name, "netns", peer_ns,
        ],
    )?;
    if let Some(bridge) = bridge {
        ip_in(ns, &["link", "set", local, "master", bridge])?;
    }
    ip_in(ns, &["link", "set", local, "up"])?;
    ip_in(peer_ns, &["link", "set", peer_name, "up"])
}
