//! The initramfs tree: busybox and its applet links, `/sbin/modprobe`, the kernel modules with
//! their indexes, our `/init` and udhcpc script, and the directories `/init` mounts on.
//!
//! Pure: the caller reads busybox and the modules; this decides where everything goes.

use crate::archive::{Layout, LayoutError, Node};

/// Our `/init` (busybox ash).
pub const INIT: &str = include_str!("../../assets/initramfs/init.sh");
/// The udhcpc event script `/init` passes with `-s`.
pub const UDHCPC_SCRIPT: &str = include_str!("../../assets/initramfs/udhcpc.sh");
/// Where the udhcpc script lives in the initramfs (init.sh names it).
pub const UDHCPC_PATH: &str = "etc/omboot/udhcpc.script";
/// The module load order, one path relative to `/lib/modules/<version>` per line (init.sh reads it).
pub const MODULES_PATH: &str = "etc/omboot/modules";

/// Applets the two scripts call (`echo`, `printf`, `test` are ash built-ins).
pub const REQUIRED_APPLETS: &[&str] = &[
    "sh",
    "mount",
    "mkdir",
    "cat",
    "uname",
    "grep",
    "tr",
    "insmod",
    "modprobe",
    "ip",
    "sleep",
    "udhcpc",
    "md5sum", // the machine-id derived from the boot NIC
    "cut",
    "tail",
    "hostname",
    "dmesg",
    "rm",
    "cp",
    "switch_root",
    "setsid",
    "cttyhack",
    "wget", // the cluster key from ombootd
    "mv",
    "wc",       // counting /proc/modules between modalias passes
    "readlink", // the NIC's driver, printed
];

/// Applets not linked: `/init` is ours, and busybox's init/linuxrc would only confuse a rescue shell user.
const SKIPPED_APPLETS: &[&str] = &["busybox", "init", "linuxrc"];

/// The inputs read from the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parts {
    /// The static busybox binary.
    pub busybox: Vec<u8>,
    /// Its applet names (`busybox --list`).
    pub applets: Vec<String>,
    /// Kernel version (the modules directory name).
    pub kernel_version: String,
    /// Files of `/lib/modules/<version>`, relative to it: decompressed modules and depmod's indexes.
    pub module_files: Vec<(String, Vec<u8>)>,
    /// Modules to insmod, in order, relative to `/lib/modules/<version>`.
    pub load_order: Vec<String>,
}

/// The tree cannot be laid out.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InitramfsLayoutError {
    /// busybox lacks an applet our scripts use.
    #[error("busybox has no {0:?} applet, which the initramfs scripts need")]
    MissingApplet(String),
    /// A module in the load order is not among the module files.
    #[error("module {0} is in the load order but not in the initramfs")]
    MissingModule(String),
    /// Conflicting or invalid paths.
    #[error(transparent)]
    Layout(#[from] LayoutError),
}

/// Lay out the initramfs.
pub fn layout(parts: &Parts) -> Result<Layout, InitramfsLayoutError> {
    for need in REQUIRED_APPLETS {
        if !parts.applets.iter().any(|a| a == need) {
            return Err(InitramfsLayoutError::MissingApplet((*need).to_owned()));
        }
    }
    let mut l = Layout::new();
    for dir in ["dev", "proc", "sys", "run", "newroot", "etc/omboot", "sbin"] {
        l.dir(dir, 0o755)?;
    }
    l.dir("tmp", 0o1777)?;
    l.dir("root", 0o700)?;
    // The kernel opens /dev/console for /init's stdio before anything is mounted.
    l.add("dev/console", 0o600, Node::CharDev { major: 5, minor: 1 })?;
    l.add("dev/null", 0o666, Node::CharDev { major: 1, minor: 3 })?;

    l.file("init", 0o755, INIT)?;
    l.file(UDHCPC_PATH, 0o755, UDHCPC_SCRIPT)?;
    l.file("bin/busybox", 0o755, parts.busybox.clone())?;
    for applet in &parts.applets {
        if !SKIPPED_APPLETS.contains(&applet.as_str()) && !applet.contains('/') {
            l.symlink(&format!("bin/{applet}"), "busybox")?;
        }
    }
    // The kernel runs /sbin/modprobe (CONFIG_MODPROBE_PATH) to load modules on demand.
    l.symlink("sbin/modprobe", "/bin/busybox")?;

    let kdir = format!("lib/modules/{}", parts.kernel_version);
    l.dir(&kdir, 0o755)?;
    for (rel, data) in &parts.module_files {
        l.file(&format!("{kdir}/{rel}"), 0o644, data.clone())?;
    }
    for m in &parts.load_order {
        if !parts.module_files.iter().any(|(rel, _)| rel == m) {
            return Err(InitramfsLayoutError::MissingModule(m.clone()));
        }
    }
    let mut order = parts.load_order.join("\n");
    order.push('\n');
    l.file(MODULES_PATH, 0o644, order)?;
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts() -> Parts {
        let mut applets: Vec<String> = REQUIRED_APPLETS.iter().map(|s| (*s).to_owned()).collect();
        applets.extend(["init".to_owned(), "ls".to_owned()]);
        Parts {
            busybox: b"\x7fELF-busybox".to_vec(),
            applets,
            kernel_version: "6.12.118+deb13-amd64".into(),
            module_files: vec![
                ("kernel/net/core/failover.ko".into(), b"f".to_vec()),
                ("kernel/drivers/net/virtio_net.ko".into(), b"v".to_vec()),
                (
                    "modules.dep".into(),
                    b"kernel/drivers/net/virtio_net.ko: kernel/net/core/failover.ko\n".to_vec(),
                ),
            ],
            load_order: vec![
                "kernel/net/core/failover.ko".into(),
                "kernel/drivers/net/virtio_net.ko".into(),
            ],
        }
    }

    #[test]
    fn everything_init_needs_is_in_place() {
        let l = layout(&parts()).expect("layout");
        let init = l.get("init").expect("init");
        assert_eq!(init.perm, 0o755);
        assert!(matches!(&init.node, Node::File(d) if d.starts_with(b"#!/bin/sh")));
        assert_eq!(
            l.get("bin/sh").map(|e| &e.node),
            Some(&Node::Symlink("busybox".into()))
        );
        assert_eq!(
            l.get("bin/ls").map(|e| &e.node),
            Some(&Node::Symlink("busybox".into()))
        );
        assert!(
            l.get("bin/init").is_none(),
            "busybox init must not shadow ours"
        );
        assert_eq!(
            l.get("sbin/modprobe").map(|e| &e.node),
            Some(&Node::Symlink("/bin/busybox".into()))
        );
        assert_eq!(
            l.get("dev/console").map(|e| &e.node),
            Some(&Node::CharDev { major: 5, minor: 1 })
        );
        assert_eq!(l.get(UDHCPC_PATH).map(|e| e.perm), Some(0o755));
        assert!(
            l.get("lib/modules/6.12.118+deb13-amd64/modules.dep")
                .is_some()
        );
        match l.get(MODULES_PATH).map(|e| &e.node) {
            Some(Node::File(d)) => assert_eq!(
                d,
                b"kernel/net/core/failover.ko\nkernel/drivers/net/virtio_net.ko\n"
            ),
            other => panic!("{other:?}"),
        }
        for dir in ["proc", "sys", "dev", "run", "newroot"] {
            assert_eq!(l.get(dir).map(|e| &e.node), Some(&Node::Dir), "{dir}");
        }
    }

    #[test]
    fn scripts_agree_with_the_layout() {
        assert!(
            INIT.contains(&format!("/{UDHCPC_PATH}")),
            "init.sh must pass the udhcpc script path"
        );
        assert!(
            INIT.contains(&format!("/{MODULES_PATH}")),
            "init.sh must read the module order"
        );
        assert!(INIT.contains("exec switch_root /newroot /sbin/init"));
        assert!(INIT.contains("FAILED at $STEP"));
        assert!(UDHCPC_SCRIPT.contains("/run/omboot/net.env"));
    }

    /// `sh -n`: the scripts at least parse (dash on the host is as strict as busybox ash here).
    fn assert_parses(name: &str, script: &str) {
        use std::io::Write;
        let Ok(mut child) = std::process::Command::new("sh")
            .arg("-n")
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
        else {
            return; // no shell on this host: nothing to check with
        };
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(script.as_bytes()).expect("feed sh");
        }
        let out = child.wait_with_output().expect("sh -n");
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn scripts_are_valid_shell() {
        assert_parses("init.sh", INIT);
        assert_parses("udhcpc.sh", UDHCPC_SCRIPT);
    }

    #[test]
    fn missing_pieces_are_errors() {
        let mut p = parts();
        p.applets.retain(|a| a != "switch_root");
        assert_eq!(
            layout(&p),
            Err(InitramfsLayoutError::MissingApplet("switch_root".into()))
        );
        let mut p = parts();
        p.load_order.push("kernel/fs/nfs/nfs.ko".into());
        assert_eq!(
            layout(&p),
            Err(InitramfsLayoutError::MissingModule(
                "kernel/fs/nfs/nfs.ko".into()
            ))
        );
    }
}
