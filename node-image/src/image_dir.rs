//! The image directory `omimage build` writes and ombootd serves: every build a version of its
//! own beside the others, `current` switched to it atomically, so nodes booted from an older
//! version keep it while new nodes get the new one. ombootd records the versions booted nodes
//! use (`in-use`); a version older than `current` that no node uses is pruned.
//!
//! ```text
//! <out>/versions/<v>/{vmlinuz, initrd.img, rootfs/, manifest.json}
//! <out>/current -> versions/<v>          <out>/in-use   (one version per line)
//! <out>/{vmlinuz, initrd.img, rootfs, manifest.json} -> current/…   (for people and tools)
//! <out>/tftp/    <out>/cluster.key       (not versioned; the key is never exported)
//! ```

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

/// The versions' directory, the node root export.
pub const VERSIONS: &str = "versions";
/// The link to the version new nodes boot.
pub const CURRENT: &str = "current";
/// Versions booted nodes use, written by ombootd.
pub const IN_USE: &str = "in-use";
/// A version's kernel.
pub const KERNEL: &str = "vmlinuz";
/// A version's initramfs.
pub const INITRD: &str = "initrd.img";
/// A version's root.
pub const ROOTFS: &str = "rootfs";
/// A version's manifest.
pub const MANIFEST: &str = "manifest.json";
/// The files of a version a node fetches over HTTP.
pub const BOOT_FILES: [&str; 2] = [KERNEL, INITRD];

/// Whether `name` can be a version: ASCII digits, letters and hyphens, 1 to 64 of them (so never
/// `..`, a path, or an unfinished `<v>.new`).
pub fn is_version_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// `<out>/versions/<v>`.
pub fn version_dir(out: &Path, v: &str) -> PathBuf {
    out.join(VERSIONS).join(v)
}

/// The version `current` names.
pub fn current(out: &Path) -> io::Result<String> {
    let target = std::fs::read_link(out.join(CURRENT))?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !is_version_name(&name) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} points to {}, which is no image version",
                out.join(CURRENT).display(),
                target.display()
            ),
        ));
    }
    Ok(name)
}

/// A name for a version built at `unix_secs`: the time, zero-padded so names sort as they were
/// built, with a suffix if a build of the same second exists.
pub fn new_version_name(out: &Path, unix_secs: u64) -> String {
    let base = format!("{unix_secs:010}");
    let mut name = base.clone();
    let mut n = 1;
    while version_dir(out, &name).exists()
        || out.join(VERSIONS).join(format!("{name}.new")).exists()
    {
        name = format!("{base}-{n}");
        n += 1;
    }
    name
}

/// Make `current` name version `v`: a new link renamed over the old one, so a reader sees the
/// old version or the new one, never none.
pub fn switch_current(out: &Path, v: &str) -> io::Result<()> {
    let tmp = out.join(format!("{CURRENT}.new"));
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::os::unix::fs::symlink(Path::new(VERSIONS).join(v), &tmp)?;
    std::fs::rename(&tmp, out.join(CURRENT))
}

/// The versions in `<out>/versions`, oldest first.
pub fn versions(out: &Path) -> io::Result<Vec<String>> {
    let mut v: Vec<String> = match std::fs::read_dir(out.join(VERSIONS)) {
        Ok(entries) => entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| is_version_name(n))
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    v.sort();
    Ok(v)
}

/// The versions ombootd last recorded as in use (none recorded: none).
pub fn read_in_use(out: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(out.join(IN_USE))
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| is_version_name(l))
        .map(str::to_owned)
        .collect()
}

/// Record `in_use`, replacing the file atomically.
pub fn write_in_use(out: &Path, in_use: &BTreeSet<String>) -> io::Result<()> {
    let tmp = out.join(format!("{IN_USE}.tmp"));
    let mut text: String = in_use.iter().map(|v| format!("{v}\n")).collect();
    if text.is_empty() {
        text.push('\n');
    }
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, out.join(IN_USE))
}

/// The versions to remove: older than `current` and not in `in_use`. A version newer than
/// `current` is a build about to be switched to; it is never pruned.
pub fn prunable(all: &[String], current: &str, in_use: &BTreeSet<String>) -> Vec<String> {
    all.iter()
        .filter(|v| v.as_str() < current && !in_use.contains(*v))
        .cloned()
        .collect()
}

/// Remove the [`prunable`] versions of `out`; returns their names.
pub fn prune(out: &Path, in_use: &BTreeSet<String>) -> io::Result<Vec<String>> {
    let current = current(out)?;
    let gone = prunable(&versions(out)?, &current, in_use);
    for v in &gone {
        std::fs::remove_dir_all(version_dir(out, v))?;
    }
    Ok(gone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_and_sort_by_build_time() {
        assert!(is_version_name("1764045000"));
        assert!(is_version_name("1764045000-1"));
        for bad in ["", "..", "a/b", "1764045000.new", &"9".repeat(65)] {
            assert!(!is_version_name(bad), "{bad}");
        }
        let d = tempfile::tempdir().unwrap();
        let a = new_version_name(d.path(), 1_764_045_000);
        std::fs::create_dir_all(version_dir(d.path(), &a)).unwrap();
        let b = new_version_name(d.path(), 1_764_045_000);
        assert_eq!((a.as_str(), b.as_str()), ("1764045000", "1764045000-1"));
        assert!(new_version_name(d.path(), 1_764_045_001) > b);
    }

    #[test]
    fn current_switches_and_only_old_unused_versions_are_pruned() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path();
        for v in ["0000000001", "0000000002", "0000000003", "0000000004"] {
            std::fs::create_dir_all(version_dir(out, v).join(ROOTFS)).unwrap();
        }
        std::fs::create_dir_all(out.join(VERSIONS).join("0000000009.new")).unwrap();
        assert!(current(out).is_err());
        switch_current(out, "0000000002").unwrap();
        switch_current(out, "0000000003").unwrap();
        assert_eq!(current(out).unwrap(), "0000000003");
        let in_use: BTreeSet<String> = ["0000000002".to_owned()].into();
        write_in_use(out, &in_use).unwrap();
        assert_eq!(read_in_use(out), in_use);
        // 1: old and unused, gone; 2: in use; 3: current; 4: newer (a build about to switch).
        assert_eq!(prune(out, &read_in_use(out)).unwrap(), ["0000000001"]);
        assert_eq!(
            versions(out).unwrap(),
            ["0000000002", "0000000003", "0000000004"]
        );
        assert!(out.join(VERSIONS).join("0000000009.new").exists());
    }
}
