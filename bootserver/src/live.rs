//! The configuration as it is now. ombootd reads its file again on SIGHUP and when the file
//! changes (`ombootd node add` writes it), and takes the new node table, unknown-MAC policy,
//! kernel arguments and lease time at once, without dropping a lease or a transfer. A file that
//! does not validate is refused with its file:line and the last good table stays; a change to
//! what is bound at start (interface, addresses, ports, directories) waits for a restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::config::{Config, ConfigError};

/// The current configuration.
#[derive(Debug)]
pub struct LiveConfig {
    path: PathBuf,
    current: RwLock<Arc<Config>>,
}

/// What a reload changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// Names of the nodes added.
    pub added: Vec<String>,
    /// Names of the nodes removed.
    pub removed: Vec<String>,
    /// Fields that changed but need a restart (kept as they were).
    pub need_restart: Vec<&'static str>,
}

/// `new` as the running server takes it over `old`: the reloadable fields from `new`, the rest
/// from `old`; and what changed.
pub fn merge(old: &Config, new: Config) -> (Config, Reloaded) {
    let mut need_restart = Vec::new();
    let fixed: [(&'static str, bool); 14] = [
        ("interface", old.interface != new.interface),
        ("master_ip", old.master_ip != new.master_ip),
        ("subnet", old.subnet != new.subnet),
        ("image_dir", old.image_dir != new.image_dir),
        ("state_dir", old.state_dir != new.state_dir),
        ("tftp_root", old.tftp_root != new.tftp_root),
        ("ports", old.ports != new.ports),
        ("cluster", old.cluster != new.cluster),
        ("cluster_dir", old.cluster_dir != new.cluster_dir),
        ("nfs", old.nfs_insecure != new.nfs_insecure),
        ("dhcp_mode", old.dhcp_mode != new.dhcp_mode),
        // The NFS exports admit the subnets they were opened with.
        ("relayed_subnet", old.relayed != new.relayed),
        ("ipv6_boot", old.ipv6_boot != new.ipv6_boot),
        (
            "dhcp_source_rate",
            old.dhcp_source_rate != new.dhcp_source_rate,
        ),
    ];
    for (name, changed) in fixed {
        if changed {
            need_restart.push(name);
        }
    }
    let names = |c: &Config| -> Vec<String> { c.nodes.iter().map(|n| n.name.clone()).collect() };
    let (before, after) = (names(old), names(&new));
    let added = after
        .iter()
        .filter(|n| !before.contains(n))
        .cloned()
        .collect();
    let removed = before
        .iter()
        .filter(|n| !after.contains(n))
        .cloned()
        .collect();
    let mut merged = old.clone();
    merged.nodes = new.nodes;
    merged.unknown_macs = new.unknown_macs;
    merged.pool = new.pool;
    merged.kernel_args = new.kernel_args;
    merged.lease_secs = new.lease_secs;
    merged.router = new.router;
    (
        merged,
        Reloaded {
            added,
            removed,
            need_restart,
        },
    )
}

impl LiveConfig {
    /// `config`, read from `path`.
    pub fn new(path: &Path, config: Config) -> Self {
        Self {
            path: path.to_path_buf(),
            current: RwLock::new(Arc::new(config)),
        }
    }

    /// The configuration now.
    pub fn get(&self) -> Arc<Config> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The file it is read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Read the file again (blocking: call it off the runtime). On an error the configuration
    /// stays as it was.
    pub fn reload(&self) -> Result<Reloaded, ConfigError> {
        let new = Config::load(&self.path)?;
        let old = self.get();
        let (merged, what) = merge(&old, new);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(merged);
        Ok(what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "interface = \"ombr0\"\nmaster_ip = \"10.77.0.1\"\nsubnet = \"10.77.0.0/24\"\nimage_dir = \"/i\"\nstate_dir = \"/s\"\n";

    fn node(n: u8) -> String {
        format!(
            "\n[[node]]\nmac = \"52:54:00:77:00:0{n}\"\nname = \"node{n}\"\nip = \"10.77.0.1{n}\"\n"
        )
    }

    #[test]
    fn a_new_table_is_taken_a_bad_file_is_not_and_bound_fields_wait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ombootd.toml");
        std::fs::write(&path, format!("{BASE}{}", node(1))).unwrap();
        let live = LiveConfig::new(&path, Config::load(&path).unwrap());
        std::fs::write(&path, format!("{BASE}{}{}", node(1), node(2))).unwrap();
        let r = live.reload().unwrap();
        assert_eq!(r.added, ["node2"]);
        assert_eq!(live.get().nodes.len(), 2);
        // A duplicate is refused with its line; the table stays.
        std::fs::write(&path, format!("{BASE}{}{}{}", node(1), node(2), node(2))).unwrap();
        let e = live.reload().unwrap_err().to_string();
        assert!(
            e.contains(":18: node[2].mac") && e.contains("node[1] (node2) has it too"),
            "{e}"
        );
        assert_eq!(live.get().nodes.len(), 2);
        // A new interface waits for a restart; the node removal is taken.
        std::fs::write(
            &path,
            format!("{}{}", BASE.replace("ombr0", "ombr1"), node(2)),
        )
        .unwrap();
        let r = live.reload().unwrap();
        assert_eq!(
            (r.removed, r.need_restart),
            (vec!["node1".to_owned()], vec!["interface"])
        );
        assert_eq!(live.get().interface, "ombr0");
        assert_eq!(live.get().nodes.len(), 1);
    }
}
