//! `ombootd node add|remove|approve` and the dashboard's approve: edit the node table in the
//! config file itself, keeping its comments and layout (toml_edit), check the result with the
//! validation the server uses, and replace the file atomically. The running server takes the
//! change within a second ([`live`](crate::live)).

use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use toml_edit::{ArrayOfTables, DocumentMut, Item, Table, value};

use crate::config::{Config, ConfigError};
use crate::live::LiveConfig;
use crate::mac::MacAddr;
use crate::pending::Pending;

/// An edit that cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The file, before or after the edit, is not a valid configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The file is not TOML that can be edited.
    #[error("{path}: {reason}")]
    Edit {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// No node matches.
    #[error("no node {0:?} in the table (give its MAC or its name)")]
    NoSuchNode(String),
    /// The MAC did not ask (or is a node already).
    #[error("{0} is not waiting for approval (it has not asked for DHCP, or it is a node already)")]
    NotPending(String),
    /// Every address of the subnet is taken.
    #[error("no free address left in {0}; give one with --ip")]
    NoFreeAddress(String),
}

/// The first host address of the subnet no node, the master or the router has.
pub fn free_ip(c: &Config) -> Option<Ipv4Addr> {
    let mask = u32::from(c.subnet.mask());
    let broadcast = u32::from(c.subnet.broadcast());
    let network = broadcast & mask;
    ((network + 1)..broadcast).map(Ipv4Addr::from).find(|ip| {
        *ip != c.master_ip
            && Some(*ip) != c.router
            && !c.pool.is_some_and(|p| p.contains(*ip))
            && !c.nodes.iter().any(|n| n.ip == *ip)
    })
}

fn doc(text: &str, path: &Path) -> Result<DocumentMut, AdminError> {
    text.parse::<DocumentMut>().map_err(|e| AdminError::Edit {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// `text` with node `name` (`mac`, `ip` or the first free address) added, and the address it
/// got. Refused, naming both entries, when the MAC, name or address is taken.
pub fn add(
    text: &str,
    path: &Path,
    mac: MacAddr,
    name: &str,
    ip: Option<Ipv4Addr>,
) -> Result<(String, Ipv4Addr), AdminError> {
    let current = Config::parse(text, path)?;
    let ip = match ip {
        Some(ip) => ip,
        None => free_ip(&current)
            .ok_or_else(|| AdminError::NoFreeAddress(current.subnet.to_string()))?,
    };
    let mut d = doc(text, path)?;
    let mut entry = Table::new();
    entry.insert("mac", value(mac.to_string()));
    entry.insert("name", value(name));
    entry.insert("ip", value(ip.to_string()));
    match d.get_mut("node") {
        Some(Item::ArrayOfTables(a)) => a.push(entry),
        Some(_) => {
            return Err(AdminError::Edit {
                path: path.display().to_string(),
                reason: "`node` is not a [[node]] table array".into(),
            });
        }
        None => {
            let mut a = ArrayOfTables::new();
            a.push(entry);
            d.insert("node", Item::ArrayOfTables(a));
        }
    }
    let new = d.to_string();
    Config::parse(&new, path)?;
    Ok((new, ip))
}

/// `text` without the node whose MAC or name is `who`, and that node's name.
pub fn remove(text: &str, path: &Path, who: &str) -> Result<(String, String), AdminError> {
    let current = Config::parse(text, path)?;
    let mac = who.parse::<MacAddr>().ok();
    let Some(index) = current
        .nodes
        .iter()
        .position(|n| n.name == who || Some(n.mac) == mac)
    else {
        return Err(AdminError::NoSuchNode(who.to_owned()));
    };
    let mut d = doc(text, path)?;
    if let Some(Item::ArrayOfTables(a)) = d.get_mut("node") {
        a.remove(index);
    }
    let new = d.to_string();
    Config::parse(&new, path)?;
    Ok((new, current.nodes[index].name.clone()))
}

fn read(path: &Path) -> Result<String, AdminError> {
    std::fs::read_to_string(path).map_err(|source| {
        AdminError::Config(ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })
    })
}

fn replace(path: &Path, text: &str) -> Result<(), AdminError> {
    write(path, text).map_err(|e| AdminError::Edit {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// [`add`] on the file at `path`, replaced atomically; the address the node got.
pub fn add_to_file(
    path: &Path,
    mac: MacAddr,
    name: &str,
    ip: Option<Ipv4Addr>,
) -> Result<Ipv4Addr, AdminError> {
    let (new, ip) = add(&read(path)?, path, mac, name, ip)?;
    replace(path, &new)?;
    Ok(ip)
}

/// [`remove`] on the file at `path`, replaced atomically; the name of the node removed.
pub fn remove_from_file(path: &Path, who: &str) -> Result<String, AdminError> {
    let (new, name) = remove(&read(path)?, path, who)?;
    replace(path, &new)?;
    Ok(name)
}

/// [`add_to_file`] for a MAC that asked and waits (`waiting`, as the pending list says): the
/// one approval of `ombootd node approve` and of the dashboard.
pub fn approve_to_file(
    path: &Path,
    waiting: bool,
    mac: MacAddr,
    name: &str,
    ip: Option<Ipv4Addr>,
) -> Result<Ipv4Addr, AdminError> {
    if !waiting {
        return Err(AdminError::NotPending(mac.to_string()));
    }
    add_to_file(path, mac, name, ip)
}

/// The running server's approval (the dashboard's): [`approve_to_file`] on its config file, then
/// the file taken again at once (blocking). What happened, as a sentence.
pub fn approve(
    live: &LiveConfig,
    pending: &Pending,
    mac: MacAddr,
    name: &str,
    ip: Option<Ipv4Addr>,
) -> Result<String, AdminError> {
    let waiting = pending.list().iter().any(|(m, _)| *m == mac);
    let path = live.path();
    let ip = approve_to_file(path, waiting, mac, name, ip)?;
    live.reload()?;
    pending.retain(|m| m != mac);
    Ok(format!(
        "{name} ({mac}) is node {ip} in {}; it boots at its next DHCP request",
        path.display()
    ))
}

/// Replace the file at `path` with `text`, atomically, keeping its mode.
pub fn write(path: &Path, text: &str) -> std::io::Result<()> {
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .ok();
    migrator::state_file::replace(path, text.as_bytes())?;
    if let Some(mode) = mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# the lab\ninterface = \"ombr0\"\nmaster_ip = \"10.77.0.1\"\nsubnet = \"10.77.0.0/24\"\nimage_dir = \"/i\"\nstate_dir = \"/s\"\n\n# rack 1\n[[node]]\nmac = \"52:54:00:77:00:01\"\nname = \"node1\" # the first\nip = \"10.77.0.2\"\n";

    #[test]
    fn a_free_address_is_never_taken_from_the_pool() {
        let p = Path::new("/etc/ombootd.toml");
        let text = TEXT.replace("state_dir", "pool = \"10.77.0.3-10.77.0.9\"\nstate_dir");
        let (_, ip) = add(&text, p, MacAddr([2, 0, 0, 0, 0, 2]), "node2", None).unwrap();
        assert_eq!(ip, Ipv4Addr::new(10, 77, 0, 10));
        let e = add(
            &text,
            p,
            MacAddr([2, 0, 0, 0, 0, 2]),
            "node2",
            Some(Ipv4Addr::new(10, 77, 0, 5)),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("is inside the pool 10.77.0.3-10.77.0.9"), "{e}");
    }

    #[test]
    fn add_keeps_comments_picks_a_free_address_and_refuses_duplicates() {
        let p = Path::new("/etc/ombootd.toml");
        let (text, ip) = add(TEXT, p, MacAddr([0x52, 0x54, 0, 0x77, 0, 2]), "node2", None).unwrap();
        assert_eq!(
            ip,
            Ipv4Addr::new(10, 77, 0, 3),
            "after the master and node1"
        );
        assert!(
            text.starts_with("# the lab\n")
                && text.contains("# rack 1\n")
                && text.contains("# the first"),
            "{text}"
        );
        assert_eq!(Config::parse(&text, p).unwrap().nodes.len(), 2);
        let e = add(&text, p, MacAddr([2, 0, 0, 0, 0, 9]), "node1", None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`node1` is listed twice: node[0] (52:54:00:77:00:01) has it too"),
            "{e}"
        );
        let e = add(
            &text,
            p,
            MacAddr([2, 0, 0, 0, 0, 9]),
            "node9",
            Some(Ipv4Addr::new(10, 77, 0, 3)),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("10.77.0.3 is listed twice: node[1] (node2, 52:54:00:77:00:02)"),
            "{e}"
        );
        let e = add(
            &text,
            p,
            MacAddr([2, 0, 0, 0, 0, 9]),
            "node9",
            Some(Ipv4Addr::new(10, 78, 0, 3)),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("not a free host address in 10.77.0.0/24"), "{e}");
        let (text, gone) = remove(&text, p, "52:54:00:77:00:01").unwrap();
        assert_eq!(gone, "node1");
        assert!(text.starts_with("# the lab\n"));
        assert_eq!(Config::parse(&text, p).unwrap().nodes[0].name, "node2");
        assert!(matches!(
            remove(&text, p, "node7"),
            Err(AdminError::NoSuchNode(_))
        ));
    }
}
