//! What we change in the Debian root so it boots diskless: `/` is a read-only NFS lower under a
//! tmpfs overlay, the NIC is already configured by our initramfs and must stay as it is.
//!
//! [`plan`] is pure: it turns facts read from the root into a list of [`Action`]s that
//! `rootfs_edit` applies, so the whole customisation is visible (and tested) as data.

use crate::accounts;

/// One change to the root, paths relative to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Replace (or create) a regular file.
    Write {
        /// Relative path.
        path: String,
        /// Permission bits.
        mode: u32,
        /// Contents.
        contents: Vec<u8>,
    },
    /// Replace (or create) a symlink.
    Symlink {
        /// Relative path.
        path: String,
        /// Link target, as stored.
        target: String,
    },
    /// Remove a file or symlink if present.
    Remove {
        /// Relative path.
        path: String,
    },
}

/// Facts read from the unpacked root before planning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootFacts {
    /// `/etc/passwd`.
    pub passwd: String,
    /// `/etc/shadow` (empty when absent).
    pub shadow: String,
    /// Modification time of `/usr` in nanoseconds since the epoch.
    pub usr_mtime_nsec: u128,
    /// File names in `/boot`.
    pub boot_files: Vec<String>,
    /// Names of the symlinks at the top of the root (Debian's `/initrd.img`, `/vmlinuz`...).
    pub top_level_symlinks: Vec<String>,
}

/// Why a unit is masked: each is either useless or harmful when `/` is an NFS+tmpfs overlay
/// and the network belongs to the initramfs.
pub const MASKED_UNITS: &[(&str, &str)] = &[
    (
        "systemd-remount-fs.service",
        "no fstab root: / is the overlay the initramfs mounted",
    ),
    ("systemd-firstboot.service", "would prompt on the console"),
    (
        "systemd-networkd.service",
        "must not reconfigure the boot NIC",
    ),
    (
        "systemd-networkd.socket",
        "must not reconfigure the boot NIC",
    ),
    (
        "systemd-networkd-wait-online.service",
        "networkd is not used",
    ),
    (
        "systemd-networkd-persistent-storage.service",
        "networkd is not used",
    ),
    (
        "systemd-network-generator.service",
        "would turn ip= arguments into networkd configs",
    ),
    (
        "apt-daily.timer",
        "no package updates on a read-only shared image",
    ),
    (
        "apt-daily-upgrade.timer",
        "no package updates on a read-only shared image",
    ),
    ("dpkg-db-backup.timer", "writes would vanish with the tmpfs"),
    ("fstrim.timer", "no disk"),
    (
        "systemd-random-seed.service",
        "the seed file is the shared image's: every node would load the same one",
    ),
    (
        "getty-static.service",
        "gettys on tty2 to tty6, started only when logind is missing (no D-Bus here): the \
         serial console and tty1 stay",
    ),
    (
        "modprobe@drm.service",
        "early graphics for a screen a compute node does not watch; GPU drivers still load \
         by modalias",
    ),
    (
        "modprobe@efi_pstore.service",
        "would keep crash logs in the firmware's flash",
    ),
];

const READY_SCRIPT: &str = include_str!("../assets/rootfs/omboot-ready.sh");
const READY_UNIT: &str = include_str!("../assets/rootfs/omboot-ready.service");
const LEASE_SCRIPT: &str = include_str!("../assets/rootfs/omboot-lease-event.sh");
const LEASE_UNIT: &str = include_str!("../assets/rootfs/omboot-lease.service");
const AUTOLOGIN: &str = include_str!("../assets/rootfs/serial-getty-autologin.conf");

const FSTAB: &str = "# omboot diskless node: / is overlay(NFS read-only + tmpfs) mounted by the initramfs.\n\
# Nothing to mount or remount here.\n";
const JOURNALD: &str = "# omboot: no disk; keep the journal in RAM and bounded.\n[Journal]\nStorage=volatile\nRuntimeMaxUse=32M\n";
/// Kernel messages of level error and worse only on the console once the node is up: the serial
/// line carries the OMBOOT-READY line and the debugging shell, which printk noise would split.
const CONSOLE_SYSCTL: &str =
    "# omboot: keep the serial console readable after boot.\nkernel.printk = 3 4 1 3\n";
/// Placeholder: the initramfs writes the node's name over it in the writable layer.
const HOSTNAME: &str = "omboot-node\n";

fn write(path: &str, mode: u32, contents: impl Into<Vec<u8>>) -> Action {
    Action::Write {
        path: path.to_owned(),
        mode,
        contents: contents.into(),
    }
}

fn symlink(path: &str, target: &str) -> Action {
    Action::Symlink {
        path: path.to_owned(),
        target: target.to_owned(),
    }
}

/// The stamp `systemd-update-done` writes: with it, `ConditionNeedsUpdate=` units (ldconfig,
/// hwdb, journal catalog) do not redo on every boot work that the tmpfs then forgets.
pub fn update_stamp(usr_mtime_nsec: u128) -> String {
    format!(
        "# This file was created by omimage in place of systemd-update-done.\n\
         # The timestamp is the modification time of /usr the image's /etc and /var match.\n\
         TIMESTAMP_NSEC={usr_mtime_nsec}\n"
    )
}

/// The full customisation for a root with these facts; `console_autologin` logs root in on the
/// serial console (labs and tests).
pub fn plan(
    facts: &RootFacts,
    console_autologin: bool,
) -> Result<Vec<Action>, accounts::NoRootEntry> {
    let mut actions = vec![
        write("etc/fstab", 0o644, FSTAB),
        write("etc/hostname", 0o644, HOSTNAME),
        write(
            "etc/hosts",
            0o644,
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
        ),
        // Empty: systemd generates a transient id per boot (every node differs) and, unlike
        // "uninitialized", does not treat the boot as a first boot.
        write("etc/machine-id", 0o444, ""),
        // Written by the initramfs from the DHCP lease; mmdebstrap may leave the host's copy.
        Action::Remove {
            path: "etc/resolv.conf".into(),
        },
        // Keep kernel interface names: udev must not rename the NIC the initramfs brought up.
        symlink("etc/systemd/network/99-default.link", "/dev/null"),
        write("etc/systemd/journald.conf.d/omboot.conf", 0o644, JOURNALD),
        write("etc/sysctl.d/10-omboot-console.conf", 0o644, CONSOLE_SYSCTL),
        // pam_env reads /etc/default/locale at every login (a warning each time when missing);
        // Debian's tmpfiles.d/debian.conf makes it a link to ../locale.conf at boot, so ship
        // exactly that and nothing is rewritten on the node.
        write("etc/locale.conf", 0o644, "LANG=C.UTF-8\n"),
        symlink("etc/default/locale", "../locale.conf"),
        write("usr/local/sbin/omboot-ready", 0o755, READY_SCRIPT),
        write("etc/systemd/system/omboot-ready.service", 0o644, READY_UNIT),
        symlink(
            "etc/systemd/system/multi-user.target.wants/omboot-ready.service",
            "/etc/systemd/system/omboot-ready.service",
        ),
        write("usr/local/sbin/omboot-lease-event", 0o755, LEASE_SCRIPT),
        write("etc/systemd/system/omboot-lease.service", 0o644, LEASE_UNIT),
        symlink(
            "etc/systemd/system/multi-user.target.wants/omboot-lease.service",
            "/etc/systemd/system/omboot-lease.service",
        ),
        // A text console machine: graphical.target only adds a wait for a display manager
        // the image does not carry.
        symlink(
            "etc/systemd/system/default.target",
            "/usr/lib/systemd/system/multi-user.target",
        ),
        // Enabled explicitly as well as through console=ttyS0, so a node booted with another
        // console= still has the debugging shell.
        symlink(
            "etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service",
            "/usr/lib/systemd/system/serial-getty@.service",
        ),
    ];
    if console_autologin {
        actions.push(write(
            "etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf",
            0o644,
            AUTOLOGIN,
        ));
    }
    for (unit, _why) in MASKED_UNITS {
        actions.push(symlink(&format!("etc/systemd/system/{unit}"), "/dev/null"));
        // A mask wins over enablement, but stale wants-links would still show in listings.
        for target in [
            "multi-user.target.wants",
            "timers.target.wants",
            "sockets.target.wants",
            "sysinit.target.wants",
        ] {
            actions.push(Action::Remove {
                path: format!("etc/systemd/system/{target}/{unit}"),
            });
        }
    }
    // Debian's initramfs (when generated anyway) is never used: we ship ours.
    for name in &facts.boot_files {
        if name.starts_with("initrd.img") {
            actions.push(Action::Remove {
                path: format!("boot/{name}"),
            });
        }
    }
    for name in &facts.top_level_symlinks {
        if name.starts_with("initrd.img") {
            actions.push(Action::Remove { path: name.clone() });
        }
    }
    let (passwd, shadow) = accounts::lock_root(&facts.passwd, &facts.shadow)?;
    actions.push(write("etc/passwd", 0o644, passwd));
    actions.push(write("etc/shadow", 0o640, shadow));
    // Last: nothing after this may touch /usr itself, or the stamp would be stale.
    let stamp = update_stamp(facts.usr_mtime_nsec);
    actions.push(write("etc/.updated", 0o644, stamp.clone()));
    actions.push(write("var/.updated", 0o644, stamp));
    Ok(actions)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> RootFacts {
        RootFacts {
            passwd: "root:*:0:0:root:/root:/bin/bash\n".into(),
            shadow: String::new(),
            usr_mtime_nsec: 1_700_000_000_123_456_789,
            boot_files: vec![
                "vmlinuz-6.12.118+deb13-amd64".into(),
                "initrd.img-6.12.118+deb13-amd64".into(),
            ],
            top_level_symlinks: vec!["vmlinuz".into(), "initrd.img".into(), "bin".into()],
        }
    }

    fn find<'a>(actions: &'a [Action], path: &str) -> Option<&'a Action> {
        actions.iter().find(|a| match a {
            Action::Write { path: p, .. }
            | Action::Symlink { path: p, .. }
            | Action::Remove { path: p } => p == path,
        })
    }

    #[test]
    fn console_autologin_only_when_asked() {
        let path = "etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf";
        assert!(find(&plan(&facts(), true).expect("plan"), path).is_some());
        assert!(find(&plan(&facts(), false).expect("plan"), path).is_none());
    }

    #[test]
    fn the_ready_unit_is_installed_and_enabled() {
        let actions = plan(&facts(), true).expect("plan");
        match find(&actions, "etc/systemd/system/omboot-ready.service") {
            Some(Action::Write { contents, .. }) => {
                let unit = String::from_utf8_lossy(contents);
                assert!(unit.contains("WantedBy=multi-user.target"));
                assert!(unit.contains("After=multi-user.target"));
                assert!(
                    !unit.contains("Type=oneshot"),
                    "a oneshot job would delay the state it waits for"
                );
            }
            other => panic!("unit missing: {other:?}"),
        }
        assert!(matches!(
            find(&actions, "usr/local/sbin/omboot-ready"),
            Some(Action::Write { mode: 0o755, .. })
        ));
        assert_eq!(
            find(
                &actions,
                "etc/systemd/system/multi-user.target.wants/omboot-ready.service"
            ),
            Some(&symlink(
                "etc/systemd/system/multi-user.target.wants/omboot-ready.service",
                "/etc/systemd/system/omboot-ready.service"
            ))
        );
    }

    #[test]
    fn the_ready_script_prints_the_contract_line() {
        assert!(READY_SCRIPT.contains("OMBOOT-READY name=$name ip=$ip state=$state"));
        assert!(
            READY_SCRIPT.contains("printf '<2>%s\\n' \"$report\" >/dev/kmsg"),
            "one line through the kernel log, at a level the console shows"
        );
        assert!(READY_SCRIPT.contains("OMBOOT-FAILED-UNITS"));
        assert!(READY_SCRIPT.contains("timeout 120 systemctl is-system-running --wait"));
    }

    #[test]
    fn the_ready_script_is_valid_shell() {
        let out = std::process::Command::new("sh")
            .arg("-n")
            .arg("-c")
            .arg(READY_SCRIPT)
            .output();
        if let Ok(out) = out {
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    #[test]
    fn network_managers_and_remount_are_masked() {
        let actions = plan(&facts(), true).expect("plan");
        for unit in [
            "systemd-remount-fs.service",
            "systemd-networkd.service",
            "systemd-firstboot.service",
            "systemd-random-seed.service",
            "getty-static.service",
        ] {
            let path = format!("etc/systemd/system/{unit}");
            assert_eq!(
                find(&actions, &path),
                Some(&symlink(&path, "/dev/null")),
                "{unit}"
            );
        }
    }

    #[test]
    fn root_is_locked_and_debian_initrd_removed() {
        let actions = plan(&facts(), true).expect("plan");
        match find(&actions, "etc/shadow") {
            Some(Action::Write { contents, mode, .. }) => {
                assert!(String::from_utf8_lossy(contents).starts_with("root:!*:"));
                assert_eq!(*mode, 0o640);
            }
            other => panic!("shadow missing: {other:?}"),
        }
        assert!(find(&actions, "boot/initrd.img-6.12.118+deb13-amd64").is_some());
        assert!(find(&actions, "initrd.img").is_some());
        assert!(find(&actions, "bin").is_none());
        assert!(find(&actions, "boot/vmlinuz-6.12.118+deb13-amd64").is_none());
    }

    #[test]
    fn update_stamps_come_last_with_the_usr_time() {
        let actions = plan(&facts(), true).expect("plan");
        let n = actions.len();
        assert!(matches!(&actions[n - 2], Action::Write { path, .. } if path == "etc/.updated"));
        match &actions[n - 1] {
            Action::Write { path, contents, .. } => {
                assert_eq!(path, "var/.updated");
                assert!(
                    String::from_utf8_lossy(contents)
                        .contains("TIMESTAMP_NSEC=1700000000123456789\n")
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
