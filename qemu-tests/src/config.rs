//! The ombootd configuration a lab runs with: ombootd's own file structs
//! ([`WireConfig`]) with the lab's defaults, rendered to the TOML ombootd reads. No copy of the
//! schema lives here: a field ombootd adds is a field the lab can set.

use std::fs;
use std::net::Ipv4Addr;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};

pub use bootserver::config::wire::{
    WireClusterDir as ClusterDir, WireConfig, WireNode as NodeEntry, WirePorts as Ports,
};
use toml::Spanned;

use crate::error::{Error, Result, io};
use crate::lab::Lab;
use crate::mac::MacAddr;

/// A value the lab sets (it has no position in a file).
pub fn set<T>(value: T) -> Spanned<T> {
    Spanned::new(0..0, value)
}

/// An ombootd config being made for a lab: a [`WireConfig`] (reached through `Deref`) with
/// builder methods.
#[derive(Debug, Clone)]
pub struct LabConfig(pub WireConfig);

impl Deref for LabConfig {
    type Target = WireConfig;
    fn deref(&self) -> &WireConfig {
        &self.0
    }
}

impl DerefMut for LabConfig {
    fn deref_mut(&mut self) -> &mut WireConfig {
        &mut self.0
    }
}

impl LabConfig {
    /// A config serving `bridge` from `master_ip` in `subnet`, with the lab's serial console
    /// on every node, the default ports and no nodes yet.
    pub fn new(
        bridge: &str,
        master_ip: Ipv4Addr,
        subnet: &str,
        image_dir: &Path,
        state_dir: &Path,
    ) -> Self {
        LabConfig(WireConfig {
            interface: set(bridge.to_owned()),
            master_ip: set(master_ip),
            subnet: set(subnet.to_owned()),
            image_dir: image_dir.to_owned(),
            state_dir: state_dir.to_owned(),
            tftp_root: None,
            kernel_args: set("console=ttyS0,115200".to_owned()),
            lease_secs: set(3600),
            router: None,
            ports: Ports::default(),
            cluster: Default::default(),
            nfs: Default::default(),
            cluster_dir: None,
            dhcp_mode: Default::default(),
            unknown_macs: Default::default(),
            pool: None,
            ipv6_ra: true,
            ipv6_boot: None,
            dhcp_source_rate: set(2000),
            relayed_subnets: Vec::new(),
            nodes: Vec::new(),
        })
    }

    /// Adds a node to the table.
    pub fn node(mut self, name: &str, mac: MacAddr, ip: Ipv4Addr) -> Self {
        self.0.nodes.push(NodeEntry {
            mac: set(mac.to_string()),
            name: set(name.to_owned()),
            ip: set(ip),
        });
        self
    }

    /// The TOML text.
    pub fn render(&self) -> Result<String> {
        toml::to_string(&self.0).map_err(|e| Error::Render(e.to_string()))
    }
}

impl Lab {
    /// A config for this lab: its bridge, master address and subnet, state in `<dir>/state`,
    /// the shared directory in `<dir>/cluster` on port 2050.
    pub fn ombootd_config(&self, image_dir: &Path) -> LabConfig {
        let mut c = LabConfig::new(
            self.bridge(),
            self.master_ip(),
            &self.subnet(),
            image_dir,
            &self.dir().join("state"),
        );
        c.cluster_dir = Some(ClusterDir {
            path: set(self.dir().join("cluster")),
            port: set(2050),
            insecure: false,
        });
        c
    }

    /// Writes `config` to `<dir>/ombootd.toml` (image and state paths made absolute, state
    /// directory created) and returns its path.
    pub fn write_ombootd_config(&self, config: &LabConfig) -> Result<PathBuf> {
        let absolute = |p: &Path| -> Result<PathBuf> {
            std::path::absolute(p).map_err(io(format!("make {} absolute", p.display())))
        };
        let mut config = config.clone();
        config.image_dir = absolute(&config.image_dir)?;
        config.state_dir = absolute(&config.state_dir)?;
        config.tftp_root = config.tftp_root.as_deref().map(absolute).transpose()?;
        if let Some(c) = config.cluster_dir.as_mut() {
            c.path = set(absolute(c.path.get_ref())?);
        }
        fs::create_dir_all(&config.state_dir)
            .map_err(io(format!("create {}", config.state_dir.display())))?;
        let path = self.dir().join("ombootd.toml");
        fs::write(&path, config.render()?).map_err(io(format!("write {}", path.display())))?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mac::LabMac;

    #[test]
    fn renders_ombootd_format() {
        let cfg = LabConfig::new(
            "ombr0",
            Ipv4Addr::new(10, 77, 0, 1),
            "10.77.0.0/24",
            Path::new("/abs/build/image"),
            Path::new("/tmp/lab/state"),
        )
        .node("node1", MacAddr::lab(1), Ipv4Addr::new(10, 77, 0, 11))
        .node("node2", MacAddr::lab(2), Ipv4Addr::new(10, 77, 0, 12));
        let text = cfg.render().expect("renders");
        let expected = r#"interface = "ombr0"
master_ip = "10.77.0.1"
subnet = "10.77.0.0/24"
image_dir = "/abs/build/image"
state_dir = "/tmp/lab/state"
kernel_args = "console=ttyS0,115200"
lease_secs = 3600
ipv6_ra = true
dhcp_source_rate = 2000
dhcp_mode = "server"
unknown_macs = "ignore"

[ports]
dhcp = 67
tftp = 69
http = 8080
nfs = 2049
pxe = 4011

[cluster]
observe = true
port = 7946
peer_port = 7947

[nfs]
insecure = false

[[node]]
mac = "52:54:00:77:00:01"
name = "node1"
ip = "10.77.0.11"

[[node]]
mac = "52:54:00:77:00:02"
name = "node2"
ip = "10.77.0.12"
"#;
        assert_eq!(text, expected);
        // ombootd itself takes it.
        let parsed = bootserver::config::Config::parse(&text, Path::new("/tmp/lab/ombootd.toml"))
            .expect("ombootd reads what the lab writes");
        assert_eq!(parsed.nodes.len(), 2);
    }

    #[test]
    fn quotes_awkward_strings_and_optional_root() {
        let mut cfg = LabConfig::new(
            "ombr0",
            Ipv4Addr::new(10, 77, 0, 1),
            "10.77.0.0/24",
            Path::new("/a"),
            Path::new("/s"),
        );
        cfg.kernel_args = set(r#"console=ttyS0 quiet "x\y""#.to_owned());
        cfg.tftp_root = Some(PathBuf::from("/t"));
        let value: toml::Value =
            toml::from_str(&cfg.render().expect("renders")).expect("valid TOML");
        assert_eq!(
            value["kernel_args"].as_str(),
            Some(cfg.kernel_args.get_ref().as_str())
        );
        assert_eq!(value["tftp_root"].as_str(), Some("/t"));
        // No nodes renders as an empty array, which ombootd reads as an empty table.
        assert!(
            value
                .get("node")
                .is_none_or(|n| n.as_array().is_some_and(Vec::is_empty))
        );
    }
}
