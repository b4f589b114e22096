//! The configuration file as written by the operator: plain serde structs, every field documented.
//!
//! The same structs render a file (the lab writes its configs with them).
//!
//! Values that need checks across fields (addresses inside the subnet, unique MACs) carry their
//! position in the file so `validate` can name the line; see `config::Config::from_wire`.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use toml::Spanned;

/// `ombootd.toml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WireConfig {
    /// The one network interface ombootd serves. DHCP is answered on this interface only.
    pub interface: Spanned<String>,
    /// The master's address on that interface; TFTP, HTTP and NFS listen on it.
    pub master_ip: Spanned<Ipv4Addr>,
    /// The nodes' subnet in CIDR form, such as `10.77.0.0/24`.
    pub subnet: Spanned<String>,
    /// Where `omimage build` wrote the image (`versions/`, `current`, `tftp/`, `cluster.key`; see
    /// `node_image::image_dir`).
    /// A relative path is taken from the directory of this file.
    pub image_dir: PathBuf,
    /// Where ombootd keeps its state (leases, the NFS file-handle generation).
    /// A relative path is taken from the directory of this file.
    pub state_dir: PathBuf,
    /// Directory served over TFTP; defaults to `<image_dir>/tftp` (ipxe.efi, undionly.kpxe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tftp_root: Option<PathBuf>,
    /// Extra kernel command-line arguments for every node, such as `console=ttyS0,115200`.
    #[serde(default = "default_kernel_args")]
    pub kernel_args: Spanned<String>,
    /// DHCP lease time in seconds (60 to 31536000).
    #[serde(default = "default_lease_secs")]
    pub lease_secs: Spanned<u32>,
    /// Default gateway handed to nodes; none when absent (the lab network has no way out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router: Option<Spanned<Ipv4Addr>>,
    /// Listening ports.
    #[serde(default)]
    pub ports: WirePorts,
    /// Joining the nodes' cluster as an observer (for the status API).
    #[serde(default)]
    pub cluster: WireCluster,
    /// The node root's NFS export.
    #[serde(default)]
    pub nfs: WireNfs,
    /// The shared read-write directory every node mounts at `/cluster` (absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_dir: Option<WireClusterDir>,
    /// Send IPv6 router advertisements on `interface` that configure nothing (no default
    /// router, no prefix, no DHCPv6): they end iPXE's wait for IPv6 configuration at boot.
    #[serde(default = "default_true")]
    pub ipv6_ra: bool,
    /// IPv6 netboot: the master's IPv6 address on `interface` with the prefix length, such as
    /// `fd77::1/64` (configure that address there). The router advertisements then send the
    /// nodes to DHCPv6 and mark the prefix on-link, and ombootd answers DHCPv6 (RFC 8415) on
    /// `interface`: each table node gets the prefix with its IPv4 address as the last 32 bits,
    /// and a UEFI HTTP boot client the loader's URL (RFC 5970). Needs `ipv6_ra`. Absent: no
    /// DHCPv6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_boot: Option<Spanned<String>>,
    /// DHCP messages per second taken from one source address (a relay, or renewing nodes
    /// behind one address), with a burst of twice as many; over it they are dropped undecoded and
    /// counted as `rate_limited`. Clients without an address are limited per MAC instead.
    #[serde(default = "default_dhcp_source_rate")]
    pub dhcp_source_rate: Spanned<u32>,
    /// `server` (the default): ombootd gives the nodes their addresses. `proxy`: the network
    /// already has a DHCP server that gives them (it must give each table node its table
    /// address); ombootd answers only network-boot clients of the table, with the boot file and
    /// no address (proxyDHCP, on the DHCP port and the PXE port 4011).
    #[serde(default)]
    pub dhcp_mode: DhcpMode,
    /// What to do with a MAC not in the table: `ignore` it (no answer), `register` it in the
    /// pending list, where `ombootd node approve MAC --name N` makes it a node, or `boot` it with
    /// an address from `pool` (without the cluster key).
    #[serde(default)]
    pub unknown_macs: UnknownMacs,
    /// The dynamic pool, `first-last` (such as `10.77.0.100-10.77.0.199`): addresses for MACs
    /// outside the table when `unknown_macs = "boot"`. Inside the subnet; no table node's address
    /// may fall in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<Spanned<String>>,
    /// Other subnets, whose nodes reach ombootd through a DHCP relay agent: a router that
    /// forwards their DHCP with its own address there as giaddr. A node's `ip` may lie in one.
    #[serde(
        default,
        rename = "relayed_subnet",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub relayed_subnets: Vec<WireRelayedSubnet>,
    /// The nodes ombootd boots; a MAC not listed here gets no answer.
    #[serde(default, rename = "node")]
    pub nodes: Vec<WireNode>,
}

/// `[[relayed_subnet]]`: a subnet behind a DHCP relay agent.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WireRelayedSubnet {
    /// The subnet, in CIDR form (such as `10.78.0.0/24`).
    pub subnet: Spanned<String>,
    /// The relay agent's address on it (the giaddr it sends), which is also the nodes' default
    /// gateway there: they reach the master through it.
    pub router: Spanned<Ipv4Addr>,
}

/// Whether ombootd is the network's DHCP server or a proxyDHCP server beside another one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DhcpMode {
    /// Addresses and boot information.
    #[default]
    Server,
    /// Boot information only; the site's DHCP server gives the addresses.
    Proxy,
}

/// What ombootd does with DHCP from a MAC that is not in the node table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownMacs {
    /// No answer (the default: nothing on the network is booted unasked).
    #[default]
    Ignore,
    /// No answer, but the MAC is kept in the pending list for an operator to approve.
    Register,
    /// An address from `pool` and the image, as a node without the cluster key (it boots, but
    /// joins the cluster only once approved into the table).
    Boot,
}

/// `[ports]`: where each service listens. Defaults are the well-known ports.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WirePorts {
    /// DHCP server port (67).
    #[serde(default = "default_dhcp")]
    pub dhcp: u16,
    /// TFTP server port (69).
    #[serde(default = "default_tftp")]
    pub tftp: u16,
    /// HTTP port for boot scripts, kernel and initrd (8080).
    #[serde(default = "default_http")]
    pub http: u16,
    /// NFSv3 and MOUNT port (2049; nodes mount with `port=` and `mountport=` set to it).
    #[serde(default = "default_nfs")]
    pub nfs: u16,
    /// The PXE boot server port (4011), where PXE firmware asks a proxyDHCP server for its boot
    /// file; served with `dhcp_mode = "proxy"` only.
    #[serde(default = "default_pxe")]
    pub pxe: u16,
}

impl Default for WirePorts {
    fn default() -> Self {
        Self {
            dhcp: default_dhcp(),
            tftp: default_tftp(),
            http: default_http(),
            nfs: default_nfs(),
            pxe: default_pxe(),
        }
    }
}

/// `[cluster]`: ombootd joins the nodes' membership as an observer: it sends no load and is never
/// a migration target, and it serves the cluster table at `/api/cluster`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WireCluster {
    /// Whether to join at all.
    #[serde(default = "default_true")]
    pub observe: bool,
    /// The cluster key; defaults to `<image_dir>/cluster.key`, which `omimage build` makes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// The gossip port the nodes' omd uses (7946).
    #[serde(default = "default_gossip")]
    pub port: u16,
    /// The nodes' peer port (7947, omd's `peer_port`): the dashboard asks there for jobs and
    /// migrations, and sends its controls there, signed with the cluster key.
    #[serde(default = "default_peer")]
    pub peer_port: u16,
}

impl Default for WireCluster {
    fn default() -> Self {
        Self {
            observe: true,
            key_file: None,
            port: default_gossip(),
            peer_port: default_peer(),
        }
    }
}

/// `[nfs]`: the node root's export.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WireNfs {
    /// Take calls from source ports 1024 and above (knfsd's `insecure`). Off by default, as
    /// knfsd's `secure`: only root on a client can then send calls, so a user on a node or on
    /// another machine cannot pose as another uid with a userspace NFS client.
    #[serde(default)]
    pub insecure: bool,
}

/// `[cluster_dir]`: a host directory exported read-write over NFSv3 on its own port; every node
/// mounts it at `/cluster`, where jobs keep the files that must follow them.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WireClusterDir {
    /// The directory; relative paths are taken from this file's directory. Created (mode 1777,
    /// like /tmp) if missing.
    pub path: Spanned<PathBuf>,
    /// NFSv3 and MOUNT port of this export (2050); nodes mount with `port=` and `mountport=`.
    #[serde(default = "default_cluster_nfs")]
    pub port: Spanned<u16>,
    /// Take calls from source ports 1024 and above (knfsd's `insecure`); off by default.
    #[serde(default)]
    pub insecure: bool,
}

/// `[[node]]`: one compute node.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WireNode {
    /// The node's boot NIC, such as `52:54:00:77:00:01`.
    pub mac: Spanned<String>,
    /// The node's host name (an RFC 1123 label: letters, digits, hyphens).
    pub name: Spanned<String>,
    /// The address reserved for it, inside `subnet`.
    pub ip: Spanned<Ipv4Addr>,
}

fn default_lease_secs() -> Spanned<u32> {
    Spanned::new(0..0, 3600)
}
fn default_kernel_args() -> Spanned<String> {
    Spanned::new(0..0, String::new())
}
fn default_dhcp_source_rate() -> Spanned<u32> {
    Spanned::new(0..0, crate::dhcp::rate_limit::PER_SOURCE.per_sec)
}

fn default_true() -> bool {
    true
}
fn default_gossip() -> u16 {
    7946
}
fn default_peer() -> u16 {
    migrator::jobs::DEFAULT_PEER_PORT
}

fn default_cluster_nfs() -> Spanned<u16> {
    Spanned::new(0..0, 2050)
}
fn default_dhcp() -> u16 {
    67
}
fn default_pxe() -> u16 {
    4011
}
fn default_tftp() -> u16 {
    69
}
fn default_http() -> u16 {
    8080
}
fn default_nfs() -> u16 {
    2049
}
