//! Finding the one kernel of the root: its version names `/boot/vmlinuz-<version>` and
//! `/lib/modules/<version>`, and the initramfs modules must match it exactly.

/// The root does not hold exactly one kernel.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KernelError {
    /// No `vmlinuz-*` in `/boot`.
    #[error("no /boot/vmlinuz-* in the root (is a linux-image package in root.packages?)")]
    None,
    /// Several kernels: which one the nodes boot would be a guess.
    #[error("several kernels in /boot ({0}); install exactly one linux-image package")]
    Several(String),
}

/// The kernel version from the file names in `/boot`.
pub fn version_from_boot(boot_files: &[String]) -> Result<String, KernelError> {
    let mut versions: Vec<&str> = boot_files
        .iter()
        .filter_map(|f| f.strip_prefix("vmlinuz-"))
        .collect();
    versions.sort_unstable();
    match versions.as_slice() {
        [] => Err(KernelError::None),
        [one] => Ok((*one).to_owned()),
        many => Err(KernelError::Several(many.join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn exactly_one_kernel_is_found() {
        let boot = names(&[
            "System.map-6.12.118+deb13-amd64",
            "config-6.12.118+deb13-amd64",
            "vmlinuz-6.12.118+deb13-amd64",
        ]);
        assert_eq!(
            version_from_boot(&boot),
            Ok("6.12.118+deb13-amd64".to_owned())
        );
        assert_eq!(
            version_from_boot(&names(&["config-x"])),
            Err(KernelError::None)
        );
        assert!(matches!(
            version_from_boot(&names(&["vmlinuz-a", "vmlinuz-b"])),
            Err(KernelError::Several(_))
        ));
    }
}
