//! omimage's configuration: read `node-image.toml` ([`wire`]) and validate it into domain types.
//!
//! Every error names the file, and where it can the line and the field; `omimage check-config` runs exactly this.

pub mod wire;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use toml::Spanned;

pub use crate::config_error::{ConfigError, line_of};
use crate::recipe::Recipe;

/// How the initramfs archive is compressed (the Debian kernel inflates gzip and zstd).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// gzip, level 6: a third of the size over TFTP/HTTP; level 9 takes 8x longer for 1% less.
    Gzip,
    /// Plain newc cpio.
    None,
}

/// The `[initramfs]` section, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitramfsConfig {
    /// Module names to load, in the order given (dependencies are added in front of each).
    pub modules: Vec<String>,
    /// Module trees whose every module is included and loaded by device modalias (NIC drivers).
    pub nic_drivers: Vec<String>,
    /// Archive compression.
    pub compression: Compression,
}

/// A validated `node-image.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageConfig {
    /// What mmdebstrap installs (the cache key).
    pub recipe: Recipe,
    /// Our initramfs.
    pub initramfs: InitramfsConfig,
    /// Host files copied into `<out>/tftp`.
    pub tftp_files: Vec<PathBuf>,
    /// Our programs installed into the root.
    pub cluster: crate::cluster::ClusterSoftware,
}

/// Packages the rest of omimage relies on: the initramfs takes busybox from the root, the node's
/// customisation is systemd units, udev names the serial device the getty waits for, and the
/// ready script calls `ip`.
const REQUIRED_PACKAGES: &[&str] = &["busybox-static", "systemd-sysv", "udev", "iproute2"];

impl ImageConfig {
    /// Read and validate `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Validate `text`, the contents of `path` (named in errors only).
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let wire: wire::WireConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Validator { path, text }.validate(wire)
    }
}

/// Turns wire values into domain values, naming file, line and field on failure.
struct Validator<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Validator<'_> {
    fn invalid<T>(
        &self,
        span: std::ops::Range<usize>,
        field: &str,
        reason: impl Into<String>,
    ) -> Result<T, ConfigError> {
        Err(ConfigError::Invalid {
            path: self.path.to_path_buf(),
            line: line_of(self.text, span),
            field: field.to_owned(),
            reason: reason.into(),
        })
    }

    fn validate(&self, wire: wire::WireConfig) -> Result<ImageConfig, ConfigError> {
        let root = wire.root;

        let suite = self.word(&root.suite, "root.suite")?;
        let mirror = root.mirror.get_ref().trim_end_matches('/').to_owned();
        if !["http://", "https://", "file://"]
            .iter()
            .any(|s| mirror.starts_with(s))
            || mirror.contains(char::is_whitespace)
        {
            return self.invalid(
                root.mirror.span(),
                "root.mirror",
                format!("{mirror:?} is not an http://, https:// or file:// URL"),
            );
        }
        if root.components.is_empty() {
            return self.invalid(
                0..0,
                "root.components",
                "at least one component (such as \"main\") is needed",
            );
        }
        let mut components = Vec::new();
        for (i, c) in root.components.iter().enumerate() {
            components.push(self.word(c, &format!("root.components[{i}]"))?);
        }

        let mut packages = BTreeSet::new();
        for (i, p) in root.packages.iter().enumerate() {
            let name = p.get_ref();
            if !is_package_name(name) {
                return self.invalid(
                    p.span(),
                    &format!("root.packages[{i}]"),
                    format!("{name:?} is not a Debian package name"),
                );
            }
            packages.insert(name.clone());
        }
        for need in REQUIRED_PACKAGES {
            if !packages.contains(*need) {
                return self.invalid(
                    0..0,
                    "root.packages",
                    format!("{need:?} is required by omimage and missing"),
                );
            }
        }
        if !packages.iter().any(|p| p.starts_with("linux-image-")) {
            return self.invalid(
                0..0,
                "root.packages",
                "a kernel package (linux-image-amd64) is required",
            );
        }

        let path_excludes = self.globs(&root.path_excludes, "root.path_excludes")?;
        let path_includes = self.globs(&root.path_includes, "root.path_includes")?;

        let mut modules = Vec::new();
        for (i, m) in wire.initramfs.modules.iter().enumerate() {
            let name = m.get_ref();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return self.invalid(
                    m.span(),
                    &format!("initramfs.modules[{i}]"),
                    format!("{name:?} is not a kernel module name"),
                );
            }
            modules.push(name.clone());
        }
        let mut nic_drivers = Vec::new();
        for (i, t) in wire.initramfs.nic_drivers.iter().enumerate() {
            let tree = t.get_ref();
            let clean = !tree.is_empty()
                && !tree.starts_with('/')
                && tree
                    .split('/')
                    .all(|part| !part.is_empty() && part != "." && part != "..")
                && tree
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c));
            if !clean {
                return self.invalid(
                    t.span(),
                    &format!("initramfs.nic_drivers[{i}]"),
                    format!(
                        "{tree:?} is not a module path relative to /lib/modules/<version> \
                         (such as kernel/drivers/net/ethernet)"
                    ),
                );
            }
            nic_drivers.push(tree.clone());
        }
        let compression = match wire.initramfs.compression.get_ref().as_str() {
            "gzip" => Compression::Gzip,
            "none" => Compression::None,
            other => {
                return self.invalid(
                    wire.initramfs.compression.span(),
                    "initramfs.compression",
                    format!("{other:?}: expected \"gzip\" or \"none\""),
                );
            }
        };

        let mut tftp_files = Vec::new();
        let mut names = BTreeSet::new();
        for (i, f) in wire.tftp.files.iter().enumerate() {
            let field = format!("tftp.files[{i}]");
            let path = f.get_ref();
            let Some(name) = path.file_name().filter(|_| path.is_absolute()) else {
                return self.invalid(
                    f.span(),
                    &field,
                    format!("{} is not an absolute file path", path.display()),
                );
            };
            if !names.insert(name.to_owned()) {
                return self.invalid(
                    f.span(),
                    &field,
                    format!("a second file named {name:?} would overwrite the first"),
                );
            }
            tftp_files.push(path.clone());
        }

        Ok(ImageConfig {
            recipe: Recipe {
                suite,
                mirror,
                components,
                packages: packages.into_iter().collect(),
                path_excludes,
                path_includes,
            },
            initramfs: InitramfsConfig {
                modules,
                nic_drivers,
                compression,
            },
            tftp_files,
            cluster: crate::cluster::ClusterSoftware {
                omd: wire.cluster.omd,
                omctl: wire.cluster.omctl,
                omrun: wire.cluster.omrun,
                omjob: wire.cluster.omjob,
                omwork: wire.cluster.omwork,
                omd_config: wire.cluster.omd_config,
            },
        })
    }

    /// A suite or component: lower-case letters, digits and `-`, since both become path and URL parts.
    fn word(&self, value: &Spanned<String>, field: &str) -> Result<String, ConfigError> {
        let v = value.get_ref();
        if v.is_empty()
            || !v
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return self.invalid(
                value.span(),
                field,
                format!("{v:?}: expected lower-case letters, digits and '-'"),
            );
        }
        Ok(v.clone())
    }

    /// dpkg path globs are absolute, and a comma would split mmdebstrap's option.
    fn globs(&self, values: &[Spanned<String>], field: &str) -> Result<Vec<String>, ConfigError> {
        let mut out = Vec::new();
        for (i, g) in values.iter().enumerate() {
            let v = g.get_ref();
            if !v.starts_with('/') || v.contains(char::is_whitespace) {
                return self.invalid(
                    g.span(),
                    &format!("{field}[{i}]"),
                    format!("{v:?}: expected an absolute glob without spaces"),
                );
            }
            out.push(v.clone());
        }
        Ok(out)
    }
}

/// Debian policy 5.6.1: lower-case letters, digits, `+`, `-`, `.`; at least two characters, starting alphanumeric.
fn is_package_name(name: &str) -> bool {
    name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[root]
suite = "trixie"
packages = ["linux-image-amd64", "systemd-sysv", "udev", "iproute2", "busybox-static"]
"#;

    fn parse(text: &str) -> Result<ImageConfig, ConfigError> {
        ImageConfig::parse(Path::new("test.toml"), text)
    }

    #[test]
    fn the_shipped_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/node-image.toml");
        let cfg = ImageConfig::load(&path).expect("configs/node-image.toml must be valid");
        assert_eq!(cfg.recipe.suite, "trixie");
        assert_eq!(cfg.recipe.mirror, "http://deb.debian.org/debian");
        for p in [
            "linux-image-amd64",
            "systemd-sysv",
            "criu",
            "kmod",
            "iproute2",
            "busybox-static",
        ] {
            assert!(cfg.recipe.packages.iter().any(|q| q == p), "{p} missing");
        }
        for m in ["nfs", "nfsv3", "overlay"] {
            assert!(cfg.initramfs.modules.iter().any(|q| q == m), "{m} missing");
        }
        assert!(
            cfg.initramfs
                .nic_drivers
                .iter()
                .any(|t| t == "kernel/drivers/net/ethernet")
        );
        assert_eq!(cfg.tftp_files.len(), 2);
    }

    #[test]
    fn defaults_fill_the_optional_fields() {
        let cfg = parse(MINIMAL).expect("minimal config");
        assert_eq!(cfg.recipe.mirror, "http://deb.debian.org/debian");
        assert_eq!(cfg.recipe.components, ["main"]);
        assert_eq!(cfg.initramfs.compression, Compression::Gzip);
        assert_eq!(cfg.initramfs.modules, ["nfs", "nfsv3", "overlay"]);
        assert_eq!(cfg.initramfs.nic_drivers.len(), 5);
        assert!(
            cfg.tftp_files
                .contains(&PathBuf::from("/usr/lib/ipxe/undionly.kpxe"))
        );
    }

    #[test]
    fn an_unknown_field_is_an_error_naming_it_and_the_file() {
        let text = MINIMAL.replace(
            "suite = \"trixie\"",
            "suite = \"trixie\"\nflavour = \"vanilla\"",
        );
        let err = parse(&text)
            .expect_err("unknown field must be rejected")
            .to_string();
        assert!(err.contains("test.toml"), "{err}");
        assert!(err.contains("flavour"), "{err}");
        assert!(err.contains("line 4"), "{err}");
    }

    #[test]
    fn an_unknown_field_in_a_subtable_is_an_error() {
        let text = format!("{MINIMAL}\n[initramfs]\nmodulez = []\n");
        let err = parse(&text)
            .expect_err("unknown field must be rejected")
            .to_string();
        assert!(err.contains("modulez"), "{err}");
    }

    #[test]
    fn a_nic_driver_tree_outside_the_module_directory_is_refused() {
        for bad in [
            "/kernel/drivers",
            "kernel/../../etc",
            "",
            "kernel//net",
            "kernel/net x",
        ] {
            let text = format!("{MINIMAL}\n[initramfs]\nnic_drivers = [{bad:?}]\n");
            let err = parse(&text).expect_err(bad).to_string();
            assert!(err.contains("initramfs.nic_drivers[0]"), "{bad}: {err}");
        }
        let text = format!(
            "{MINIMAL}\n[initramfs]\nnic_drivers = [\"kernel/drivers/net/ethernet/intel\"]\n"
        );
        let cfg = parse(&text).expect("a narrower tree");
        assert_eq!(
            cfg.initramfs.nic_drivers,
            ["kernel/drivers/net/ethernet/intel"]
        );
    }

    #[test]
    fn a_bad_package_name_names_field_and_line() {
        let text = MINIMAL.replace("\"udev\"", "\"Bad Name\"");
        match parse(&text) {
            Err(ConfigError::Invalid { line, field, .. }) => {
                assert_eq!(line, 4);
                assert_eq!(field, "root.packages[2]");
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn a_required_package_cannot_be_dropped() {
        let text = MINIMAL.replace(", \"busybox-static\"", "");
        let err = parse(&text)
            .expect_err("busybox-static is required")
            .to_string();
        assert!(err.contains("busybox-static"), "{err}");
    }

    #[test]
    fn bad_compression_and_mirror_are_rejected() {
        let text = format!("{MINIMAL}\n[initramfs]\ncompression = \"lz4\"\n");
        assert!(
            matches!(parse(&text), Err(ConfigError::Invalid { field, .. }) if field == "initramfs.compression")
        );
        let text = MINIMAL.replace("[root]\n", "[root]\nmirror = \"deb.debian.org\"\n");
        assert!(
            matches!(parse(&text), Err(ConfigError::Invalid { field, .. }) if field == "root.mirror")
        );
    }

    #[test]
    fn duplicate_tftp_names_are_rejected() {
        let text = format!("{MINIMAL}\n[tftp]\nfiles = [\"/a/ipxe.efi\", \"/b/ipxe.efi\"]\n");
        assert!(
            matches!(parse(&text), Err(ConfigError::Invalid { field, .. }) if field == "tftp.files[1]")
        );
    }
}
