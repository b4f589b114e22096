//! The ombootd configuration a lab runs with: a plain struct with lab defaults, rendered to the
//! TOML format ombootd reads (`interface`, `master_ip`, …, `[ports]`, `[[node]]`).

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result, io};
use crate::lab::Lab;
use crate::mac::MacAddr;

/// `[ports]`: where ombootd listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Ports {
    /// DHCP server port.
    pub dhcp: u16,
    /// TFTP port.
    pub tftp: u16,
    /// HTTP port.
    pub http: u16,
    /// NFSv3 and MOUNT port.
    pub nfs: u16,
}

impl Default for Ports {
    fn default() -> Self {
        Ports {
            dhcp: 67,
            tftp: 69,
            http: 8080,
            nfs: 2049,
        }
    }
}

/// `[cluster_dir]`: the read-write directory every node mounts at /cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterDir {
    /// Host directory (ombootd creates it). Written absolute.
    pub path: PathBuf,
    /// Its NFS port.
    pub port: u16,
    /// Take calls from unprivileged source ports (the tests' unprivileged libnfs clients).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
}

/// `[[node]]`: one node ombootd boots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeEntry {
    /// Its boot NIC.
    pub mac: String,
    /// Its host name.
    pub name: String,
    /// Its reserved address.
    pub ip: Ipv4Addr,
}

/// A whole ombootd config. Build it with [`Lab::ombootd_config`], adjust fields, then
/// [`Lab::write_ombootd_config`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabConfig {
    /// The only interface DHCP answers on (the lab bridge).
    pub interface: String,
    /// The master's address.
    pub master_ip: Ipv4Addr,
    /// The nodes' subnet, CIDR.
    pub subnet: String,
    /// The image (vmlinuz, initrd.img, rootfs/, tftp/). Written absolute.
    pub image_dir: PathBuf,
    /// ombootd's state (leases, NFS generation).
    pub state_dir: PathBuf,
    /// TFTP root when not `<image_dir>/tftp`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tftp_root: Option<PathBuf>,
    /// Extra kernel arguments for every node.
    pub kernel_args: String,
    /// DHCP lease time.
    pub lease_secs: u32,
    /// Listening ports.
    pub ports: Ports,
    /// The shared /cluster directory, if served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_dir: Option<ClusterDir>,
    /// The nodes.
    #[serde(rename = "node")]
    pub nodes: Vec<NodeEntry>,
}

impl LabConfig {
    /// A config for master `master_ip` on `bridge` with subnet `subnet`, serving `image_dir`,
    /// keeping state in `state_dir`, no nodes yet.
    pub fn new(
        bridge: &str,
        master_ip: Ipv4Addr,
        subnet: &str,
        image_dir: &Path,
        state_dir: &Path,
    ) -> Self {
        LabConfig {
            interface: bridge.to_owned(),
            master_ip,
            subnet: subnet.to_owned(),
            image_dir: image_dir.to_owned(),
            state_dir: state_dir.to_owned(),
            tftp_root: None,
            kernel_args: "console=ttyS0,115200".to_owned(),
            lease_secs: 3600,
            ports: Ports::default(),
            cluster_dir: None,
            nodes: Vec::new(),
        }
    }

    /// Adds a node.
    pub fn node(mut self, name: &str, mac: MacAddr, ip: Ipv4Addr) -> Self {
        self.nodes.push(NodeEntry {
            mac: mac.to_string(),
            name: name.to_owned(),
            ip,
        });
        self
    }

    /// The TOML text.
    pub fn render(&self) -> Result<String> {
        toml::to_string(self).map_err(|e| Error::Render(e.to_string()))
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
            path: self.dir().join("cluster"),
            port: 2050,
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
            c.path = absolute(&c.path)?;
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

[ports]
dhcp = 67
tftp = 69
http = 8080
nfs = 2049

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
        cfg.kernel_args = r#"console=ttyS0 quiet "x\y""#.to_owned();
        cfg.tftp_root = Some(PathBuf::from("/t"));
        let value: toml::Value =
            toml::from_str(&cfg.render().expect("renders")).expect("valid TOML");
        assert_eq!(
            value["kernel_args"].as_str(),
            Some(cfg.kernel_args.as_str())
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
