//! `node-image.toml` as written by the operator: plain serde structs, every field documented.
//!
//! Values that `config::ImageConfig::from_wire` checks carry their position so an error can name the line.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

/// `node-image.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireConfig {
    /// The Debian root filesystem every node mounts read-only over NFS.
    pub root: WireRoot,
    /// Our initramfs.
    #[serde(default)]
    pub initramfs: WireInitramfs,
    /// Boot loaders copied into `<out>/tftp` for ombootd's TFTP server.
    #[serde(default)]
    pub tftp: WireTftp,
    /// Our own programs installed into the root: the node daemon and its client.
    #[serde(default)]
    pub cluster: WireCluster,
}

/// `[root]`: what mmdebstrap installs. Every field here is part of the recipe hash that keys the cache.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireRoot {
    /// Debian suite (codename), such as `trixie`.
    pub suite: Spanned<String>,
    /// Debian mirror URL (`http://`, `https://` or `file://`).
    #[serde(default = "default_mirror")]
    pub mirror: Spanned<String>,
    /// Archive components, such as `main`.
    #[serde(default = "default_components")]
    pub components: Vec<Spanned<String>>,
    /// Packages installed on top of the `apt` variant (Essential + apt), without their Recommends.
    pub packages: Vec<Spanned<String>>,
    /// dpkg `path-exclude` globs: files never unpacked (docs, man pages, locales).
    #[serde(default)]
    pub path_excludes: Vec<Spanned<String>>,
    /// dpkg `path-include` globs, applied after the excludes (for example copyright files).
    #[serde(default)]
    pub path_includes: Vec<Spanned<String>>,
}

/// `[initramfs]`: the small early userspace that mounts the NFS root.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireInitramfs {
    /// Kernel modules loaded by `/init` before the network comes up; dependencies are added and
    /// modules built into the kernel are skipped.
    #[serde(default = "default_modules")]
    pub modules: Vec<Spanned<String>>,
    /// Module trees (paths relative to `/lib/modules/<version>`, a directory or a module file
    /// without its suffix) whose every module goes in the initramfs. `/init` loads the ones whose
    /// alias matches a device the kernel found (its modalias), so any NIC among them boots.
    #[serde(default = "default_nic_drivers")]
    pub nic_drivers: Vec<Spanned<String>>,
    /// `gzip` or `none`.
    #[serde(default = "default_compression")]
    pub compression: Spanned<String>,
}

/// `[tftp]`: files the nodes' firmware fetches over TFTP.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireTftp {
    /// Absolute host paths copied (symlinks followed) into `<out>/tftp` under their file names.
    #[serde(default = "default_tftp_files")]
    pub files: Vec<Spanned<PathBuf>>,
}

impl Default for WireInitramfs {
    fn default() -> Self {
        Self {
            modules: default_modules(),
            nic_drivers: default_nic_drivers(),
            compression: default_compression(),
        }
    }
}

impl Default for WireTftp {
    fn default() -> Self {
        Self {
            files: default_tftp_files(),
        }
    }
}

/// Defaults carry an empty span: there is no line to point at.
fn unspanned<T>(value: T) -> Spanned<T> {
    Spanned::new(0..0, value)
}

fn default_mirror() -> Spanned<String> {
    unspanned("http://deb.debian.org/debian".to_owned())
}

fn default_components() -> Vec<Spanned<String>> {
    vec![unspanned("main".to_owned())]
}

fn default_modules() -> Vec<Spanned<String>> {
    ["nfs", "nfsv3", "overlay"]
        .into_iter()
        .map(|m| unspanned(m.to_owned()))
        .collect()
}

/// The kernel's Ethernet drivers: the `ethernet/` tree and the virtual NICs outside it.
fn default_nic_drivers() -> Vec<Spanned<String>> {
    [
        "kernel/drivers/net/ethernet",
        "kernel/drivers/net/virtio_net",
        "kernel/drivers/net/vmxnet3",
        "kernel/drivers/net/hyperv",
        "kernel/drivers/net/xen-netfront",
    ]
    .into_iter()
    .map(|m| unspanned(m.to_owned()))
    .collect()
}

fn default_compression() -> Spanned<String> {
    unspanned("gzip".to_owned())
}

fn default_tftp_files() -> Vec<Spanned<PathBuf>> {
    ["/usr/lib/ipxe/ipxe.efi", "/usr/lib/ipxe/undionly.kpxe"]
        .into_iter()
        .map(|p| unspanned(PathBuf::from(p)))
        .collect()
}

/// `[cluster]`: the cluster software every node runs (built by `cargo build --release -p migrator`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireCluster {
    /// The `omd` binary, installed as `/usr/local/sbin/omd` (relative to the working directory).
    #[serde(default = "default_omd")]
    pub omd: PathBuf,
    /// The `omctl` binary, installed as `/usr/local/bin/omctl`.
    #[serde(default = "default_omctl")]
    pub omctl: PathBuf,
    /// The `omrun` binary (a job's deputy), installed as `/usr/local/bin/omrun`.
    #[serde(default = "default_omrun")]
    pub omrun: PathBuf,
    /// The `omjob` binary (a job's keeper and init), installed as `/usr/local/sbin/omjob`.
    #[serde(default = "default_omjob")]
    pub omjob: PathBuf,
    /// The `omwork` test workloads, installed as `/usr/local/bin/omwork`.
    #[serde(default = "default_omwork")]
    pub omwork: PathBuf,
    /// omd's configuration, installed as `/etc/omd/omd.toml`.
    #[serde(default = "default_omd_config")]
    pub omd_config: PathBuf,
}

impl Default for WireCluster {
    fn default() -> Self {
        Self {
            omd: default_omd(),
            omctl: default_omctl(),
            omrun: default_omrun(),
            omjob: default_omjob(),
            omwork: default_omwork(),
            omd_config: default_omd_config(),
        }
    }
}

fn default_omd() -> PathBuf {
    PathBuf::from("target/release/omd")
}
fn default_omctl() -> PathBuf {
    PathBuf::from("target/release/omctl")
}
fn default_omrun() -> PathBuf {
    PathBuf::from("target/release/omrun")
}
fn default_omjob() -> PathBuf {
    PathBuf::from("target/release/omjob")
}
fn default_omwork() -> PathBuf {
    PathBuf::from("target/release/omwork")
}
fn default_omd_config() -> PathBuf {
    PathBuf::from("configs/omd.toml")
}
