//! Host tools for kernel modules: decompressing `.ko.xz`/`.ko.zst`/`.ko.gz` and running `depmod`.
//!
//! Modules go into the initramfs decompressed because busybox `insmod` hands the file to the kernel
//! as is, and plain ELF loads on any kernel configuration.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A module tool failed.
#[derive(Debug, thiserror::Error)]
pub enum KmodError {
    /// The tool could not be started.
    #[error("cannot run {tool} (is it installed?)")]
    Spawn {
        /// Program name.
        tool: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The tool ran and failed.
    #[error("{tool} failed on {path} ({status}): {stderr}")]
    Failed {
        /// Program name.
        tool: &'static str,
        /// The file or tree it worked on.
        path: PathBuf,
        /// Exit status.
        status: std::process::ExitStatus,
        /// What it said.
        stderr: String,
    },
    /// Writing the result failed.
    #[error("cannot write {path}")]
    Write {
        /// The output file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The decompressor for a module file name, or `None` for a plain `.ko`.
pub fn decompressor(path: &str) -> Option<&'static str> {
    if path.ends_with(".ko.xz") {
        Some("xz")
    } else if path.ends_with(".ko.zst") {
        Some("zstd")
    } else if path.ends_with(".ko.gz") {
        Some("gzip")
    } else {
        None
    }
}

/// The path a module has once decompressed (`x.ko.xz` → `x.ko`).
pub fn decompressed_name(path: &str) -> String {
    match path.rfind(".ko") {
        Some(i) => format!("{}.ko", &path[..i]),
        None => path.to_owned(),
    }
}

fn run(tool: &'static str, cmd: &mut Command, path: &Path) -> Result<Vec<u8>, KmodError> {
    let out = cmd
        .output()
        .map_err(|source| KmodError::Spawn { tool, source })?;
    if !out.status.success() {
        return Err(KmodError::Failed {
            tool,
            path: path.to_path_buf(),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(out.stdout)
}

/// Copy module `src` to `dest`, decompressing it if its name says it is compressed.
pub fn copy_decompressed(src: &Path, dest: &Path) -> Result<(), KmodError> {
    let write_err = |source| KmodError::Write {
        path: dest.to_path_buf(),
        source,
    };
    match decompressor(&src.to_string_lossy()) {
        None => std::fs::copy(src, dest).map(drop).map_err(write_err),
        Some(tool) => {
            let plain = run(tool, Command::new(tool).arg("-dc").arg(src), src)?;
            std::fs::write(dest, plain).map_err(write_err)
        }
    }
}

/// Regenerate `modules.dep` & co. for the tree `<base>/lib/modules/<version>`.
pub fn depmod(base: &Path, version: &str) -> Result<(), KmodError> {
    run(
        "depmod",
        Command::new("depmod").arg("-b").arg(base).arg(version),
        base,
    )
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_names_map_to_plain_ones() {
        assert_eq!(decompressor("kernel/fs/nfs/nfs.ko.xz"), Some("xz"));
        assert_eq!(decompressor("a.ko.zst"), Some("zstd"));
        assert_eq!(decompressor("a.ko"), None);
        assert_eq!(
            decompressed_name("kernel/fs/nfs/nfs.ko.xz"),
            "kernel/fs/nfs/nfs.ko"
        );
        assert_eq!(decompressed_name("a.ko"), "a.ko");
    }
}
