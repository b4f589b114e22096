//! Building our initramfs from the unpacked root: static busybox, the configured kernel modules and
//! every NIC driver (decompressed, re-indexed with depmod, so `modules.alias` maps a device's
//! modalias to its driver) and our scripts, written as one cpio archive.
//!
//! This module does the reading and the host tools; [`layout`] decides the tree.

pub mod layout;

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::archive::Layout;
use crate::config::InitramfsConfig;
use crate::modules::{ModuleIndex, ModulesError, Resolution};
use crate::{elf, kmod};

/// The initramfs could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum InitramfsError {
    /// A file of the root could not be read or a staging file written.
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// busybox is not usable as the initramfs's only program.
    #[error("{path} is not a static executable ({reason}); install busybox-static, not busybox")]
    BusyboxNotStatic {
        /// The binary.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// `busybox --list` failed.
    #[error("cannot list busybox applets with {path}: {reason}")]
    Applets {
        /// The binary.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Module resolution failed.
    #[error(transparent)]
    Modules(#[from] ModulesError),
    /// Decompressing or depmod failed.
    #[error(transparent)]
    Kmod(#[from] kmod::KmodError),
    /// The tree could not be laid out.
    #[error(transparent)]
    Layout(#[from] layout::InitramfsLayoutError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> InitramfsError + '_ {
    move |source| InitramfsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The laid-out tree and what went into it.
#[derive(Debug, Clone)]
pub struct Initramfs {
    /// The tree to archive.
    pub layout: Layout,
    /// Modules loaded by `/init` (decompressed paths) and requested built-ins.
    pub resolution: Resolution,
}

/// A path inside the root, preferring the merged-/usr location (`/bin` is a symlink to `usr/bin`
/// in Debian, and we must not follow the root's links on the host).
fn in_root(root: &Path, candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().map(|c| root.join(c)).find(|p| {
        p.symlink_metadata()
            .is_ok_and(|m| !m.file_type().is_symlink())
    })
}

/// Assemble the initramfs for kernel `version` from `root`, using `staging` (an empty directory)
/// for the depmod run.
pub fn assemble(
    root: &Path,
    version: &str,
    config: &InitramfsConfig,
    staging: &Path,
) -> Result<Initramfs, InitramfsError> {
    let busybox_path = in_root(root, &["usr/bin/busybox", "bin/busybox"])
        .ok_or_else(|| io(&root.join("usr/bin/busybox"))(std::io::ErrorKind::NotFound.into()))?;
    let busybox = std::fs::read(&busybox_path).map_err(io(&busybox_path))?;
    match elf::is_static(&busybox) {
        Ok(true) => {}
        Ok(false) => {
            return Err(InitramfsError::BusyboxNotStatic {
                path: busybox_path,
                reason: "it needs a dynamic loader".into(),
            });
        }
        Err(e) => {
            return Err(InitramfsError::BusyboxNotStatic {
                path: busybox_path,
                reason: e.to_string(),
            });
        }
    }
    let applets = list_applets(&busybox_path)?;

    let moddir = in_root(
        root,
        &[
            &format!("usr/lib/modules/{version}"),
            &format!("lib/modules/{version}"),
        ],
    )
    .ok_or_else(|| {
        io(&root.join("usr/lib/modules").join(version))(std::io::ErrorKind::NotFound.into())
    })?;
    let read = |name: &str| {
        let p = moddir.join(name);
        std::fs::read_to_string(&p).map_err(io(&p))
    };
    let index = ModuleIndex::parse(&read("modules.dep")?, &read("modules.builtin")?)?;
    let resolution = index.resolve_with_trees(&config.modules, &config.nic_drivers)?;

    // Stage lib/modules/<version> with plain .ko files, then let depmod index exactly those.
    let staged = staging.join("lib/modules").join(version);
    let stage = |rels: &[String]| -> Result<Vec<String>, InitramfsError> {
        let mut plain_paths = Vec::new();
        for rel in rels {
            let plain = kmod::decompressed_name(rel);
            let dest = staged.join(&plain);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            kmod::copy_decompressed(&moddir.join(rel), &dest)?;
            plain_paths.push(plain);
        }
        Ok(plain_paths)
    };
    let load_order = stage(&resolution.load_order)?;
    // depmod indexes these too: their aliases in modules.alias are what /init matches devices with.
    let by_modalias = stage(&resolution.by_modalias)?;
    // depmod reads these to tell built-ins apart and to keep the kernel's module order.
    for name in [
        "modules.builtin",
        "modules.builtin.modinfo",
        "modules.order",
    ] {
        let src = moddir.join(name);
        if src.exists() {
            std::fs::copy(&src, staged.join(name)).map_err(io(&src))?;
        }
    }
    kmod::depmod(staging, version)?;
    let module_files = read_tree(&staged)?;

    let layout = layout::layout(&layout::Parts {
        busybox,
        applets,
        kernel_version: version.to_owned(),
        module_files,
        load_order: load_order.clone(),
    })?;
    Ok(Initramfs {
        layout,
        resolution: Resolution {
            load_order,
            builtin: resolution.builtin,
            by_modalias,
        },
    })
}

/// Run the (static, same-architecture) busybox of the root for its applet names.
fn list_applets(busybox: &Path) -> Result<Vec<String>, InitramfsError> {
    let err = |reason: String| InitramfsError::Applets {
        path: busybox.to_path_buf(),
        reason,
    };
    let out = Command::new(busybox)
        .arg("--list")
        .output()
        .map_err(|e| err(e.to_string()))?;
    if !out.status.success() {
        return Err(err(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}

/// All regular files under `dir`, as (relative path, contents), sorted.
fn read_tree(dir: &Path) -> Result<Vec<(String, Vec<u8>)>, InitramfsError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(io(&d))? {
            let path = entry.map_err(io(&d))?.path();
            let meta = path.symlink_metadata().map_err(io(&path))?;
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                let rel = path
                    .strip_prefix(dir)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .into_owned();
                out.push((rel, std::fs::read(&path).map_err(io(&path))?));
            }
        }
    }
    out.sort();
    Ok(out)
}
