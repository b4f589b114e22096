//! ombootd's configuration: read the TOML file ([`wire`]) and validate it into domain types.
//!
//! Every error names the file, and where it can, the line and the field, so an operator can fix it
//! without reading code. `ombootd check-config` runs exactly this.

pub mod wire;

use std::net::Ipv4Addr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::mac::MacAddr;
use crate::pool::Pool;
use crate::subnet::Subnet;

pub use node_image::config_error::ConfigError;

/// Listening ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// DHCP server port.
    pub dhcp: u16,
    /// TFTP port.
    pub tftp: u16,
    /// HTTP port.
    pub http: u16,
    /// NFS + MOUNT port.
    pub nfs: u16,
    /// PXE boot server port (proxyDHCP only).
    pub pxe: u16,
}

/// A subnet behind a DHCP relay agent (`[[relayed_subnet]]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relayed {
    /// The subnet.
    pub subnet: Subnet,
    /// The relay agent's address there: the giaddr of its requests and the nodes' gateway.
    pub router: Ipv4Addr,
}

/// The network a DHCP request came from: the served interface's, or a relayed subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    /// Its subnet.
    pub subnet: Subnet,
    /// The default gateway its nodes are given, if any.
    pub router: Option<Ipv4Addr>,
    /// Reached through a relay agent (the master cannot see the nodes' MACs there).
    pub relayed: bool,
}

/// One node of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Its boot NIC.
    pub mac: MacAddr,
    /// Host name.
    pub name: String,
    /// Reserved address.
    pub ip: Ipv4Addr,
}

/// The shared read-write directory (`[cluster_dir]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDir {
    /// The host directory (resolved from the config file's directory).
    pub path: PathBuf,
    /// Its NFS + MOUNT port.
    pub port: u16,
    /// Calls from unprivileged source ports are taken too.
    pub insecure: bool,
}

/// Observing the nodes' cluster (`[cluster]` with `observe = true`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observe {
    /// The cluster key (also what the master signs its requests to the nodes with).
    pub key_file: PathBuf,
    /// The nodes' gossip port.
    pub port: u16,
    /// The nodes' peer port, where the dashboard asks for jobs and sends controls.
    pub peer_port: u16,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The only interface served.
    pub interface: String,
    /// The master's address.
    pub master_ip: Ipv4Addr,
    /// The nodes' subnet.
    pub subnet: Subnet,
    /// Image directory (absolute or relative to the working directory, resolved from the file).
    pub image_dir: PathBuf,
    /// State directory.
    pub state_dir: PathBuf,
    /// TFTP root.
    pub tftp_root: PathBuf,
    /// Extra kernel arguments.
    pub kernel_args: String,
    /// Lease time in seconds.
    pub lease_secs: u32,
    /// Default gateway, if any.
    pub router: Option<Ipv4Addr>,
    /// Ports.
    pub ports: Ports,
    /// The node table.
    pub nodes: Vec<Node>,
    /// Observing the cluster, or `None` when disabled.
    pub cluster: Option<Observe>,
    /// The cluster key booting nodes are given (`[cluster] key_file`, else `<image_dir>/cluster.key`).
    pub key_file: PathBuf,
    /// The shared read-write directory the nodes mount at `/cluster`, if any.
    pub cluster_dir: Option<ClusterDir>,
    /// The node root's export takes calls from unprivileged source ports too.
    pub nfs_insecure: bool,
    /// DHCP server, or proxyDHCP beside the site's server.
    pub dhcp_mode: wire::DhcpMode,
    /// What to do with MACs outside the table.
    pub unknown_macs: wire::UnknownMacs,
    /// The dynamic pool, if any.
    pub pool: Option<Pool>,
    /// Send router advertisements that configure nothing, to end iPXE's IPv6 wait.
    pub ipv6_ra: bool,
    /// DHCP messages per second from one source address.
    pub dhcp_source_rate: u32,
    /// Subnets behind DHCP relay agents.
    pub relayed: Vec<Relayed>,
    /// IPv6 netboot (DHCPv6), if on.
    pub ipv6_boot: Option<crate::dhcp6::prefix::Ipv6Boot>,
}

impl Config {
    /// Read and validate the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Validate `text`, read from `path` (used in messages and to resolve relative paths).
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let wire: wire::WireConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        Validator { text, path }.validate(wire)
    }

    /// The node with this MAC, if it is in the table.
    pub fn node_by_mac(&self, mac: MacAddr) -> Option<&Node> {
        self.nodes.iter().find(|n| n.mac == mac)
    }

    /// The network a DHCP request with this giaddr came from: the served interface's when it is
    /// 0.0.0.0 (or an address of that subnet), else the relayed subnet holding it; `None` for a
    /// relay agent on a subnet we do not serve.
    pub fn network_of(&self, giaddr: Ipv4Addr) -> Option<Network> {
        if giaddr.is_unspecified() || self.subnet.contains_host(giaddr) {
            return Some(Network {
                subnet: self.subnet,
                router: self.router,
                relayed: false,
            });
        }
        self.relayed
            .iter()
            .find(|r| r.subnet.contains_host(giaddr))
            .map(|r| Network {
                subnet: r.subnet,
                router: Some(r.router),
                relayed: true,
            })
    }

    /// Every subnet whose nodes ombootd serves: the interface's, then the relayed ones.
    pub fn subnets(&self) -> Vec<Subnet> {
        std::iter::once(self.subnet)
            .chain(self.relayed.iter().map(|r| r.subnet))
            .collect()
    }

    /// Whether `ip` lies in a relayed subnet (its MAC is out of the master's sight).
    pub fn is_relayed(&self, ip: Ipv4Addr) -> bool {
        self.network_of(ip).is_some_and(|n| n.relayed)
    }
}

struct Validator<'a> {
    text: &'a str,
    path: &'a Path,
}

impl Validator<'_> {
    fn err(
        &self,
        span: Range<usize>,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> ConfigError {
        let line = node_image::config_error::line_of(self.text, span);
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            line,
            field: field.into(),
            reason: reason.into(),
        }
    }

    fn resolve(&self, p: PathBuf) -> PathBuf {
        if p.is_absolute() {
            return p;
        }
        let base = self
            .path
            .parent()
            .filter(|b| !b.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        base.join(p)
    }

    fn validate(&self, w: wire::WireConfig) -> Result<Config, ConfigError> {
        let interface = w.interface.get_ref().clone();
        // IFNAMSIZ is 16 including the terminating NUL.
        if interface.is_empty() || interface.len() > 15 || interface.contains(['/', ' ', '\0']) {
            return Err(self.err(
                w.interface.span(),
                "interface",
                format!("`{interface}` is not an interface name"),
            ));
        }
        let subnet: Subnet =
            w.subnet
                .get_ref()
                .parse()
                .map_err(|e: crate::subnet::SubnetParseError| {
                    self.err(w.subnet.span(), "subnet", e.to_string())
                })?;
        let master_ip = *w.master_ip.get_ref();
        if !subnet.contains_host(master_ip) {
            return Err(self.err(
                w.master_ip.span(),
                "master_ip",
                format!("{master_ip} is not a host address in {subnet}"),
            ));
        }
        let router = match w.router {
            Some(r) if !subnet.contains_host(*r.get_ref()) => {
                return Err(self.err(
                    r.span(),
                    "router",
                    format!("{} is not a host address in {subnet}", r.get_ref()),
                ));
            }
            r => r.map(|r| *r.get_ref()),
        };
        let lease_secs = *w.lease_secs.get_ref();
        if !(60..=31_536_000).contains(&lease_secs) {
            return Err(self.err(
                w.lease_secs.span(),
                "lease_secs",
                format!("{lease_secs} is outside 60 to 31536000"),
            ));
        }
        let dhcp_source_rate = *w.dhcp_source_rate.get_ref();
        if dhcp_source_rate == 0 {
            return Err(self.err(
                w.dhcp_source_rate.span(),
                "dhcp_source_rate",
                "must be at least 1 (a relay would get no answer)",
            ));
        }
        let kernel_args = w.kernel_args.get_ref().clone();
        // The arguments go into an iPXE script line: a line break would inject script commands.
        if kernel_args.contains(['\n', '\r']) {
            return Err(self.err(w.kernel_args.span(), "kernel_args", "must be a single line"));
        }
        let ports = Ports {
            dhcp: w.ports.dhcp,
            tftp: w.ports.tftp,
            http: w.ports.http,
            nfs: w.ports.nfs,
            pxe: w.ports.pxe,
        };

        let pool = match &w.pool {
            None => None,
            Some(p) => {
                let pool: Pool =
                    p.get_ref()
                        .parse()
                        .map_err(|e: crate::pool::PoolParseError| {
                            self.err(p.span(), "pool", e.to_string())
                        })?;
                for end in [pool.start(), pool.end()] {
                    if !subnet.contains_host(end) {
                        return Err(self.err(
                            p.span(),
                            "pool",
                            format!("{end} is not a host address in {subnet}"),
                        ));
                    }
                }
                for (what, ip) in [("the master", Some(master_ip)), ("the router", router)] {
                    if let Some(ip) = ip.filter(|ip| pool.contains(*ip)) {
                        return Err(self.err(
                            p.span(),
                            "pool",
                            format!("{pool} holds {ip}, which is {what}'s address"),
                        ));
                    }
                }
                Some(pool)
            }
        };
        if w.dhcp_mode == wire::DhcpMode::Proxy {
            // In proxy mode the site's server gives every address: a pool here would be a
            // second, conflicting source of them.
            if let Some(p) = &w.pool {
                return Err(self.err(
                    p.span(),
                    "pool",
                    "with dhcp_mode = \"proxy\" the site's DHCP server gives the addresses: remove `pool`",
                ));
            }
            if w.unknown_macs == wire::UnknownMacs::Boot {
                return Err(self.err(
                    0..0,
                    "unknown_macs",
                    "\"boot\" needs addresses from ombootd's pool, which dhcp_mode = \"proxy\" does not give: use \"ignore\" or \"register\"",
                ));
            }
        }
        if w.unknown_macs == wire::UnknownMacs::Boot && pool.is_none() {
            return Err(self.err(
                0..0,
                "unknown_macs",
                "\"boot\" gives MACs outside the table addresses from the pool: set `pool` (such as \"10.77.0.100-10.77.0.199\")",
            ));
        }

        let ipv6_boot = match &w.ipv6_boot {
            None => None,
            Some(b) => {
                let boot: crate::dhcp6::prefix::Ipv6Boot =
                    b.get_ref()
                        .parse()
                        .map_err(|e: crate::dhcp6::prefix::Ipv6BootError| {
                            self.err(b.span(), "ipv6_boot", e.to_string())
                        })?;
                if !w.ipv6_ra {
                    return Err(self.err(
                        b.span(),
                        "ipv6_boot",
                        "needs ipv6_ra = true: the router advertisements send the nodes to DHCPv6",
                    ));
                }
                Some(boot)
            }
        };
        let mut relayed: Vec<Relayed> = Vec::with_capacity(w.relayed_subnets.len());
        for (i, r) in w.relayed_subnets.iter().enumerate() {
            let field = |f: &str| format!("relayed_subnet[{i}].{f}");
            let net: Subnet =
                r.subnet
                    .get_ref()
                    .parse()
                    .map_err(|e: crate::subnet::SubnetParseError| {
                        self.err(r.subnet.span(), field("subnet"), e.to_string())
                    })?;
            if net.overlaps(&subnet) {
                return Err(self.err(
                    r.subnet.span(),
                    field("subnet"),
                    format!("{net} overlaps the served subnet {subnet}"),
                ));
            }
            if let Some(j) = relayed.iter().position(|o| o.subnet.overlaps(&net)) {
                return Err(self.err(
                    r.subnet.span(),
                    field("subnet"),
                    format!("{net} overlaps relayed_subnet[{j}] ({})", relayed[j].subnet),
                ));
            }
            let router = *r.router.get_ref();
            if !net.contains_host(router) {
                return Err(self.err(
                    r.router.span(),
                    field("router"),
                    format!("{router} is not a host address in {net}"),
                ));
            }
            relayed.push(Relayed {
                subnet: net,
                router,
            });
        }

        let mut nodes = Vec::with_capacity(w.nodes.len());
        for (i, n) in w.nodes.into_iter().enumerate() {
            let field = |f: &str| format!("node[{i}].{f}");
            let mac: MacAddr =
                n.mac
                    .get_ref()
                    .parse()
                    .map_err(|e: crate::mac::MacParseError| {
                        self.err(n.mac.span(), field("mac"), e.to_string())
                    })?;
            if mac.0[0] & 1 == 1 {
                return Err(self.err(
                    n.mac.span(),
                    field("mac"),
                    format!("{mac} is a multicast address, not a NIC"),
                ));
            }
            if let Some(j) = nodes.iter().position(|o: &Node| o.mac == mac) {
                return Err(self.err(
                    n.mac.span(),
                    field("mac"),
                    format!(
                        "{mac} is listed twice: node[{j}] ({}) has it too",
                        nodes[j].name
                    ),
                ));
            }
            let name = n.name.get_ref().clone();
            if !is_hostname_label(&name) {
                return Err(self.err(
                    n.name.span(),
                    field("name"),
                    format!("`{name}` is not a host name (letters, digits and inner hyphens, at most 63)"),
                ));
            }
            if let Some(j) = nodes.iter().position(|o: &Node| o.name == name) {
                return Err(self.err(
                    n.name.span(),
                    field("name"),
                    format!(
                        "`{name}` is listed twice: node[{j}] ({}) has it too",
                        nodes[j].mac
                    ),
                ));
            }
            let ip = *n.ip.get_ref();
            let behind_relay = relayed.iter().find(|r| r.subnet.contains_host(ip));
            if let Some(r) = behind_relay {
                if ip == r.router {
                    return Err(self.err(
                        n.ip.span(),
                        field("ip"),
                        format!("{ip} is the relay's own address in {}", r.subnet),
                    ));
                }
            } else if !subnet.contains_host(ip) || ip == master_ip || Some(ip) == router {
                let others: String = relayed
                    .iter()
                    .map(|r| format!(" or {}", r.subnet))
                    .collect();
                return Err(self.err(
                    n.ip.span(),
                    field("ip"),
                    format!(
                        "{ip} is not a free host address in {subnet}{others} (the master is {master_ip})"
                    ),
                ));
            }
            if let Some(pool) = pool.filter(|p| p.contains(ip)) {
                let line = w
                    .pool
                    .as_ref()
                    .map(|p| node_image::config_error::line_of(self.text, p.span()))
                    .filter(|l| *l > 0)
                    .map_or_else(String::new, |l| format!(" (line {l})"));
                return Err(self.err(
                    n.ip.span(),
                    field("ip"),
                    format!("{ip} of {name} ({mac}) is inside the pool {pool}{line}: the pool hands it out to others"),
                ));
            }
            if let Some(j) = nodes.iter().position(|o: &Node| o.ip == ip) {
                return Err(self.err(
                    n.ip.span(),
                    field("ip"),
                    format!(
                        "{ip} is listed twice: node[{j}] ({}, {}) has it too",
                        nodes[j].name, nodes[j].mac
                    ),
                ));
            }
            nodes.push(Node { mac, name, ip });
        }

        let image_dir = self.resolve(w.image_dir);
        let tftp_root = w
            .tftp_root
            .map_or_else(|| image_dir.join("tftp"), |p| self.resolve(p));
        let key_file = w
            .cluster
            .key_file
            .map_or_else(|| image_dir.join("cluster.key"), |p| self.resolve(p));
        let cluster = w.cluster.observe.then(|| Observe {
            key_file: key_file.clone(),
            port: w.cluster.port,
            peer_port: w.cluster.peer_port,
        });
        let cluster_dir = match w.cluster_dir {
            None => None,
            Some(d) => {
                if d.path.get_ref().as_os_str().is_empty() {
                    return Err(self.err(d.path.span(), "cluster_dir.path", "must not be empty"));
                }
                let port = *d.port.get_ref();
                let taken = [
                    (ports.nfs, "ports.nfs"),
                    (ports.http, "ports.http"),
                    (ports.tftp, "ports.tftp"),
                    (ports.dhcp, "ports.dhcp"),
                ];
                if let Some((_, name)) = taken.iter().find(|(p, _)| *p == port) {
                    return Err(self.err(
                        d.port.span(),
                        "cluster_dir.port",
                        format!("{port} is already {name}"),
                    ));
                }
                if port == 0 {
                    return Err(self.err(d.port.span(), "cluster_dir.port", "must not be 0"));
                }
                Some(ClusterDir {
                    path: self.resolve(d.path.into_inner()),
                    port,
                    insecure: d.insecure,
                })
            }
        };
        Ok(Config {
            interface,
            master_ip,
            subnet,
            state_dir: self.resolve(w.state_dir),
            image_dir,
            tftp_root,
            kernel_args,
            lease_secs,
            router,
            ports,
            nodes,
            cluster,
            cluster_dir,
            nfs_insecure: w.nfs.insecure,
            dhcp_mode: w.dhcp_mode,
            unknown_macs: w.unknown_macs,
            pool,
            ipv6_ra: w.ipv6_ra,
            dhcp_source_rate,
            relayed,
            ipv6_boot,
            key_file,
        })
    }
}

/// RFC 1123 host name label.
fn is_hostname_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
interface = "ombr0"
master_ip = "10.77.0.1"
subnet = "10.77.0.0/24"
image_dir = "../build/image"
state_dir = "/var/lib/ombootd"

[[node]]
mac = "52:54:00:77:00:01"
name = "node1"
ip = "10.77.0.11"
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("configs/test.toml"))
    }

    #[test]
    fn good_config_validates_and_resolves_paths() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.image_dir, PathBuf::from("configs/../build/image"));
        assert_eq!(c.tftp_root, PathBuf::from("configs/../build/image/tftp"));
        assert_eq!(c.state_dir, PathBuf::from("/var/lib/ombootd"));
        assert_eq!(
            c.ports,
            Ports {
                dhcp: 67,
                tftp: 69,
                http: 8080,
                nfs: 2049,
                pxe: 4011
            }
        );
        assert_eq!(c.lease_secs, 3600);
        assert_eq!(
            c.node_by_mac("52:54:00:77:00:01".parse().unwrap())
                .unwrap()
                .name,
            "node1"
        );
    }

    #[test]
    fn unknown_field_names_field_and_line() {
        let e = parse(&GOOD.replace("name = \"node1\"", "name = \"node1\"\nmacc = \"x\""))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("configs/test.toml: "), "{e}");
        assert!(e.contains("unknown field `macc`"), "{e}");
        assert!(e.contains("line 11"), "{e}");
    }

    #[test]
    fn bad_values_name_line_and_field() {
        let cases = [
            (
                "ip = \"10.77.0.11\"",
                "ip = \"10.99.0.11\"",
                "configs/test.toml:11: node[0].ip: 10.99.0.11 is not a free host address",
            ),
            (
                "ip = \"10.77.0.11\"",
                "ip = \"10.77.0.1\"",
                "configs/test.toml:11: node[0].ip: 10.77.0.1 is not a free",
            ),
            (
                "mac = \"52:54:00:77:00:01\"",
                "mac = \"52:54:00:77:00\"",
                "configs/test.toml:9: node[0].mac: `52:54:00:77:00` is not a MAC",
            ),
            (
                "name = \"node1\"",
                "name = \"node_1\"",
                "configs/test.toml:10: node[0].name: `node_1` is not a host name",
            ),
            (
                "subnet = \"10.77.0.0/24\"",
                "subnet = \"10.77.0.1/24\"",
                "configs/test.toml:4: subnet: `10.77.0.1/24` has host bits",
            ),
            (
                "master_ip = \"10.77.0.1\"",
                "master_ip = \"10.78.0.1\"",
                "configs/test.toml:3: master_ip: 10.78.0.1 is not",
            ),
        ];
        for (from, to, want) in cases {
            let e = parse(&GOOD.replace(from, to)).unwrap_err().to_string();
            assert!(e.starts_with(want), "got {e:?}, want {want:?}");
        }
    }

    #[test]
    fn wrong_type_is_a_parse_error_with_line() {
        let e = parse(&GOOD.replace("ip = \"10.77.0.11\"", "ip = \"eleven\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 11"), "{e}");
    }

    #[test]
    fn duplicates_are_refused() {
        let twice = format!(
            "{GOOD}\n[[node]]\nmac = \"52:54:00:77:00:01\"\nname = \"node2\"\nip = \"10.77.0.12\"\n"
        );
        let e = parse(&twice).unwrap_err().to_string();
        assert!(
            e.contains("node[1].mac: 52:54:00:77:00:01 is listed twice"),
            "{e}"
        );
        let twice = format!(
            "{GOOD}\n[[node]]\nmac = \"52:54:00:77:00:02\"\nname = \"node1\"\nip = \"10.77.0.12\"\n"
        );
        assert!(
            parse(&twice)
                .unwrap_err()
                .to_string()
                .contains("`node1` is listed twice")
        );
    }

    #[test]
    fn relayed_subnets_are_checked_and_hold_nodes() {
        let with = |relayed: &str, ip: &str| {
            GOOD.replace("10.77.0.11", ip)
                .replace("[[node]]", &format!("{relayed}\n[[node]]"))
        };
        let r = "[[relayed_subnet]]\nsubnet = \"10.78.0.0/24\"\nrouter = \"10.78.0.1\"\n";
        let c = parse(&with(r, "10.78.0.11")).unwrap();
        assert_eq!(c.relayed.len(), 1);
        assert!(c.is_relayed("10.78.0.11".parse().unwrap()));
        assert_eq!(c.subnets().len(), 2);
        let net = c.network_of("10.78.0.1".parse().unwrap()).unwrap();
        assert!(net.relayed && net.router == Some("10.78.0.1".parse().unwrap()));
        assert!(c.network_of("10.79.0.1".parse().unwrap()).is_none());
        for (relayed, ip, want) in [
            (r, "10.78.0.1", "the relay's own address"),
            (
                r,
                "10.79.0.11",
                "10.79.0.11 is not a free host address in 10.77.0.0/24 or 10.78.0.0/24",
            ),
            (
                "[[relayed_subnet]]\nsubnet = \"10.77.0.0/16\"\nrouter = \"10.77.9.1\"\n",
                "10.77.0.11",
                "overlaps the served subnet",
            ),
            (
                "[[relayed_subnet]]\nsubnet = \"10.78.0.0/24\"\nrouter = \"10.79.0.1\"\n",
                "10.77.0.11",
                "10.79.0.1 is not a host address in 10.78.0.0/24",
            ),
            (
                &format!(
                    "{r}[[relayed_subnet]]\nsubnet = \"10.78.0.128/25\"\nrouter = \"10.78.0.129\"\n"
                ),
                "10.77.0.11",
                "overlaps relayed_subnet[0]",
            ),
        ] {
            let e = parse(&with(relayed, ip)).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn proxy_mode_refuses_a_pool_and_booting_unknown_macs() {
        let proxy = |extra: &str| {
            GOOD.replace(
                "state_dir",
                &format!("dhcp_mode = \"proxy\"\n{extra}state_dir"),
            )
        };
        let c = parse(&proxy("")).unwrap();
        assert_eq!(c.dhcp_mode, wire::DhcpMode::Proxy);
        let e = parse(&proxy("pool = \"10.77.0.100-10.77.0.110\"\n"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("pool") && e.contains("site's DHCP server"),
            "{e}"
        );
        let e = parse(&proxy("unknown_macs = \"boot\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown_macs") && e.contains("proxy"), "{e}");
        let e = parse(&GOOD.replace("state_dir", "dhcp_mode = \"relay\"\nstate_dir"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("dhcp_mode"), "{e}");
    }

    #[test]
    fn the_pool_is_checked_against_the_subnet_the_master_and_the_table() {
        let with = |pool: &str| GOOD.replace("state_dir", &format!("pool = \"{pool}\"\nstate_dir"));
        let c = parse(&with("10.77.0.100-10.77.0.199")).unwrap();
        assert_eq!(
            c.pool.map(|p| p.to_string()).as_deref(),
            Some("10.77.0.100-10.77.0.199")
        );
        for (pool, says) in [
            (
                "10.77.0.100-10.77.1.5",
                "10.77.1.5 is not a host address in 10.77.0.0/24",
            ),
            (
                "10.77.0.1-10.77.0.9",
                "holds 10.77.0.1, which is the master's address",
            ),
            ("10.77.0.9-10.77.0.1", "ends before it starts"),
            ("10.77.0.9", "is not an address range"),
        ] {
            let e = parse(&with(pool)).unwrap_err().to_string();
            assert!(e.contains("pool: ") && e.contains(says), "{pool}: {e}");
        }
        // A table node inside the pool: both named, with the pool's line.
        let e = parse(&with("10.77.0.10-10.77.0.20"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("node[0].ip: 10.77.0.11 of node1 (52:54:00:77:00:01) is inside the pool 10.77.0.10-10.77.0.20 (line 6)"),
            "{e}"
        );
        // `boot` needs a pool to boot from.
        let e = parse(&GOOD.replace("state_dir", "unknown_macs = \"boot\"\nstate_dir"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown_macs: \"boot\"") && e.contains("set `pool`"),
            "{e}"
        );
    }

    #[test]
    fn kernel_args_must_be_one_line() {
        let text = GOOD.replace("state_dir", "kernel_args = \"a\\nchain evil\"\nstate_dir");
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains("kernel_args: must be a single line"), "{e}");
    }

    #[test]
    fn cluster_dir_is_optional_resolved_and_checked() {
        assert_eq!(parse(GOOD).unwrap().cluster_dir, None);
        let c = parse(&format!(
            "{GOOD}\n[cluster_dir]\npath = \"../build/cluster\"\n"
        ))
        .unwrap();
        assert_eq!(
            c.cluster_dir,
            Some(ClusterDir {
                path: PathBuf::from("configs/../build/cluster"),
                port: 2050,
                insecure: false,
            })
        );
        let e = parse(&format!(
            "{GOOD}\n[cluster_dir]\npath = \"/srv/c\"\nport = 2049\n"
        ))
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "configs/test.toml:15: cluster_dir.port: 2049 is already ports.nfs"
        );
        let e = parse(&format!("{GOOD}\n[cluster_dir]\npath = \"/c\"\nmode = 1\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `mode`"), "{e}");
    }

    #[test]
    fn missing_file_is_a_clear_error() {
        let e = Config::load(Path::new("/nonexistent/ombootd.toml")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot read config file /nonexistent/ombootd.toml"
        );
        // The reason is the cause, which main prints under it.
        let cause = std::error::Error::source(&e).map(ToString::to_string);
        assert!(cause.is_some_and(|c| c.contains("No such file")), "{e:?}");
    }
}
