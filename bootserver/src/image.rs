//! The image directory `omimage build` writes ([`image_dir`] defines it), checked before serving
//! so a missing piece is a clear start-up error instead of a node that hangs at boot.

use std::path::{Path, PathBuf};

use node_image::image_dir;

/// A piece of the image is missing.
#[derive(Debug, thiserror::Error)]
#[error("the node image is incomplete: {missing} not found in {dir} (run `omimage build`)")]
pub struct ImageMissing {
    /// The image directory.
    pub dir: PathBuf,
    /// What is missing.
    pub missing: String,
}

/// Check that `image_dir`'s current version holds what the nodes will ask for, and `tftp_root`
/// the boot loaders.
pub fn check(image_dir: &Path, tftp_root: &Path) -> Result<(), ImageMissing> {
    let current = image_dir::current(image_dir).map_err(|e| ImageMissing {
        dir: image_dir.to_path_buf(),
        missing: format!("a current version ({}: {e})", image_dir::CURRENT),
    })?;
    let v = image_dir::version_dir(image_dir, &current);
    let need = [
        (v.join(image_dir::KERNEL), false),
        (v.join(image_dir::INITRD), false),
        (v.join(image_dir::ROOTFS), true),
        (v.join(image_dir::ROOTFS).join("sbin/init"), false),
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
