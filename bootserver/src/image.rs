//! The image directory `omimage build` writes, checked before serving so a missing piece is a
//! clear start-up error instead of a node that hangs at boot.

use std::path::{Path, PathBuf};

/// A piece of the image is missing.
#[derive(Debug, thiserror::Error)]
#[error("the node image is incomplete: {missing} not found in {dir} (run `omimage build`)")]
pub struct ImageMissing {
    /// The image directory.
    pub dir: PathBuf,
    /// What is missing.
    pub missing: String,
}

/// Check that `image_dir` holds what the nodes will ask for, and `tftp_root` the boot loaders.
pub fn check(image_dir: &Path, tftp_root: &Path) -> Result<(), ImageMissing> {
    let need = [
        (image_dir.join("vmlinuz"), false),
        (image_dir.join("initrd.img"), false),
        (image_dir.join("rootfs"), true),
        (image_dir.join("rootfs/sbin/init"), false),
        (tftp_root.join("undionly.kpxe"), false),
        (tftp_root.join("ipxe.efi"), false),
    ];
    for (path, dir) in need {
        let ok = if dir {
            path.is_dir()
        } else {
            path.exists() || path.is_symlink()
        };
        if !ok {
            return Err(ImageMissing {
                dir: image_dir.to_path_buf(),
                missing: path.display().to_string(),
            });
        }
    }
    Ok(())
}
