//! A small synthetic node image for tests and benchmarks that do not need `omimage build`: stand-in
//! kernel and initrd, a root with modes, symlinks and nested directories, the host's iPXE loaders,
//! and symlinks in the TFTP root that point outside it (which ombootd must refuse).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use node_image::image_dir;

use crate::error::{Result, io};

/// Deterministic pseudo-random bytes (so a transfer can be checked byte for byte).
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// The version of the fake image.
pub const FAKE_VERSION: &str = "0000000001";

/// Writes the image into `<dir>/image` (kernel stand-in of `kernel_bytes`) and returns its path:
/// one version, current, laid out as `omimage build` lays it out (with `<image>/rootfs`,
/// `vmlinuz`, `initrd.img` links into it). Also writes `<dir>/outside-secret`, the target of the
/// escaping symlinks.
pub fn fake_image(dir: &Path, kernel_bytes: usize) -> Result<PathBuf> {
    let img = dir.join("image");
    let version = image_dir::version_dir(&img, FAKE_VERSION);
    let root = version.join(image_dir::ROOTFS);
    let tftp = img.join("tftp");
    let mkdir =
        |d: PathBuf| std::fs::create_dir_all(&d).map_err(io(format!("create {}", d.display())));
    let write = |p: PathBuf, data: &[u8]| {
        std::fs::write(&p, data).map_err(io(format!("write {}", p.display())))
    };
    let chmod = |p: PathBuf, mode: u32| {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
            .map_err(io(format!("chmod {}", p.display())))
    };
    let link = |target: &Path, at: PathBuf| {
        std::os::unix::fs::symlink(target, &at).map_err(io(format!("symlink {}", at.display())))
    };
    for d in [root.join("sbin"), root.join("etc/deep/er"), tftp.clone()] {
        mkdir(d)?;
    }
    let kernel = pattern(kernel_bytes);
    write(version.join(image_dir::KERNEL), &kernel)?;
    write(tftp.join("big.bin"), &kernel)?;
    write(version.join(image_dir::INITRD), b"initrd")?;
    image_dir::switch_current(&img, FAKE_VERSION).map_err(io("switch current".to_owned()))?;
    for name in [image_dir::KERNEL, image_dir::INITRD, image_dir::ROOTFS] {
        link(&Path::new(image_dir::CURRENT).join(name), img.join(name))?;
    }
    write(root.join("sbin/init"), b"#!/bin/sh\n")?;
    chmod(root.join("sbin/init"), 0o755)?;
    write(root.join("etc/shadowish"), b"root:!:\n")?;
    chmod(root.join("etc/shadowish"), 0o640)?;
    write(root.join("etc/secret"), b"only-root-reads-this\n")?;
    chmod(root.join("etc/secret"), 0o600)?;
    write(
        root.join("etc/deep/er/file"),
        &kernel[..kernel.len().min(200_000)],
    )?;
    link(Path::new("../sbin/init"), root.join("etc/init-link"))?;
    link(Path::new("/etc/passwd"), root.join("etc/host-passwd"))?;
    for f in ["undionly.kpxe", "ipxe.efi"] {
        let from = Path::new("/usr/lib/ipxe").join(f);
        std::fs::copy(&from, tftp.join(f)).map_err(io(format!("copy {}", from.display())))?;
    }
    // The cluster key ombootd needs to observe the nodes' membership (root-only, as omimage makes it).
    write(img.join("cluster.key"), &pattern(32))?;
    chmod(img.join("cluster.key"), 0o600)?;
    write(dir.join("outside-secret"), b"secret")?;
    link(&dir.join("outside-secret"), tftp.join("leak"))?;
    link(dir, tftp.join("leakdir"))?;
    Ok(img)
}
