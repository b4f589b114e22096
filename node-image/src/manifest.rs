//! `manifest.json`: what an image is (suite, kernel, every package and version) and the
//! checksums of what ombootd serves, so two images can be compared without unpacking them.
//!
//! Built from plain values (pure); the caller gathers sizes, digests and the dpkg status text.

use serde::Serialize;

use crate::dpkg::{self, Package, StatusError};

/// Format version of this file; bump on incompatible changes.
pub const MANIFEST_FORMAT: u32 = 1;

/// Size and digest of one served file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileInfo {
    /// Bytes.
    pub size: u64,
    /// Lower-case hex SHA-256.
    pub sha256: String,
}

/// Totals of the root tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct TreeInfo {
    /// Sum of regular file sizes (hard links counted once).
    pub bytes: u64,
    /// Regular files.
    pub files: u64,
    /// Directories.
    pub directories: u64,
    /// Symbolic links.
    pub symlinks: u64,
}

/// The initramfs contents worth recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InitramfsInfo {
    /// `gzip` or `none`.
    pub compression: crate::config::Compression,
    /// Module files in load order.
    pub modules: Vec<String>,
    /// Requested modules built into the kernel.
    pub builtin_modules: Vec<String>,
    /// Further module files `/init` loads when a device's modalias matches (the NIC drivers).
    pub modalias_modules: Vec<String>,
}

/// Everything the manifest says, except the package list, which comes from the dpkg status.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestInputs {
    /// RFC 3339 UTC build time.
    pub built_at: String,
    /// Wall time of the build.
    pub build_seconds: f64,
    /// Recipe hash (cache key).
    pub recipe_hash: String,
    /// Whether the root came from the cache.
    pub cache_hit: bool,
    /// Debian suite.
    pub suite: String,
    /// Mirror.
    pub mirror: String,
    /// Kernel version.
    pub kernel_version: String,
    /// `vmlinuz`.
    pub vmlinuz: FileInfo,
    /// `initrd.img`.
    pub initrd: FileInfo,
    /// `rootfs/`.
    pub rootfs: TreeInfo,
    /// Initramfs details.
    pub initramfs: InitramfsInfo,
}

/// The manifest as written.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: u32,
    /// omimage's version.
    pub omimage_version: String,
    /// RFC 3339 UTC build time.
    pub built_at: String,
    /// Wall time of the build in seconds.
    pub build_seconds: f64,
    /// Recipe hash (cache key).
    pub recipe_hash: String,
    /// Whether the root came from the cache.
    pub cache_hit: bool,
    /// Debian suite.
    pub suite: String,
    /// Mirror.
    pub mirror: String,
    /// Kernel version.
    pub kernel_version: String,
    /// `vmlinuz`.
    pub vmlinuz: FileInfo,
    /// `initrd.img`.
    #[serde(rename = "initrd.img")]
    pub initrd: FileInfo,
    /// `rootfs/` totals.
    pub rootfs: TreeInfo,
    /// Initramfs details.
    pub initramfs: InitramfsInfo,
    /// Number of installed packages.
    pub package_count: usize,
    /// Every installed package, sorted by name.
    pub packages: Vec<Package>,
}

impl Manifest {
    /// Combine the inputs with the packages of the root's `var/lib/dpkg/status` text.
    pub fn build(inputs: ManifestInputs, dpkg_status: &str) -> Result<Self, StatusError> {
        let packages = dpkg::installed_packages(dpkg_status)?;
        Ok(Self {
            format: MANIFEST_FORMAT,
            omimage_version: env!("CARGO_PKG_VERSION").to_owned(),
            built_at: inputs.built_at,
            build_seconds: (inputs.build_seconds * 10.0).round() / 10.0,
            recipe_hash: inputs.recipe_hash,
            cache_hit: inputs.cache_hit,
            suite: inputs.suite,
            mirror: inputs.mirror,
            kernel_version: inputs.kernel_version,
            vmlinuz: inputs.vmlinuz,
            initrd: inputs.initrd,
            rootfs: inputs.rootfs,
            initramfs: inputs.initramfs,
            package_count: packages.len(),
            packages,
        })
    }

    /// Pretty JSON with a final newline.
    pub fn to_json(&self) -> String {
        // Serialising plain structs of strings and numbers cannot fail.
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Compression;

    fn inputs() -> ManifestInputs {
        ManifestInputs {
            built_at: "2026-01-01T00:00:00Z".into(),
            build_seconds: 41.26,
            recipe_hash: "0123456789abcdef".into(),
            cache_hit: false,
            suite: "trixie".into(),
            mirror: "http://deb.debian.org/debian".into(),
            kernel_version: "6.12.118+deb13-amd64".into(),
            vmlinuz: FileInfo {
                size: 12,
                sha256: "aa".into(),
            },
            initrd: FileInfo {
                size: 34,
                sha256: "bb".into(),
            },
            rootfs: TreeInfo {
                bytes: 100,
                files: 3,
                directories: 2,
                symlinks: 1,
            },
            initramfs: InitramfsInfo {
                compression: Compression::Gzip,
                modules: vec!["kernel/fs/overlayfs/overlay.ko".into()],
                builtin_modules: vec![],
                modalias_modules: vec!["kernel/drivers/net/ethernet/intel/e1000/e1000.ko".into()],
            },
        }
    }

    #[test]
    fn manifest_lists_packages_and_checksums() {
        let status = "Package: criu\nStatus: install ok installed\nArchitecture: amd64\nVersion: 4.1.1-1\n\n\
                      Package: linux-image-amd64\nStatus: install ok installed\nArchitecture: amd64\nVersion: 6.12.118-1\n";
        let m = Manifest::build(inputs(), status).expect("manifest");
        assert_eq!(m.package_count, 2);
        let json: serde_json::Value = serde_json::from_str(&m.to_json()).expect("valid json");
        assert_eq!(json["suite"], "trixie");
        assert_eq!(json["kernel_version"], "6.12.118+deb13-amd64");
        assert_eq!(json["initrd.img"]["sha256"], "bb");
        assert_eq!(json["vmlinuz"]["size"], 12);
        assert_eq!(json["rootfs"]["bytes"], 100);
        assert_eq!(json["build_seconds"], 41.3);
        assert_eq!(json["initramfs"]["compression"], "gzip");
        assert_eq!(json["packages"][0]["name"], "criu");
        assert_eq!(json["packages"][1]["version"], "6.12.118-1");
    }
}
