//! The iPXE script a node runs: fetch kernel and initrd over HTTP and boot with the NFS root.
//!
//! The kernel command line is the contract with our initramfs (`omboot.*` parameters, BOOTIF);
//! under UEFI the kernel must be told the initrd's name (`initrd=initrd.img`) or it finds no root.

use crate::config::{Config, Node};

/// Render the script for `node`'s boot number `boot`, of image `version`: its kernel, initrd and
/// root all from that version, whatever is built meanwhile.
/// `member`: a table node, given the cluster key and the shared directory; a pool node
/// (`unknown_macs = "boot"`) boots the image without either.
pub fn render(cfg: &Config, node: &Node, member: bool, boot: u64, version: &str) -> String {
    let http = format!("http://{}:{}", cfg.master_ip, cfg.ports.http);
    let base = format!("{http}/image/{version}");
    let mut args = vec![
        "initrd=initrd.img".to_string(),
        format!("BOOTIF=01-{}", node.mac.hyphenated()),
        format!("omboot.name={}", node.name),
        format!("omboot.nfsroot={}:/{version}/rootfs", cfg.master_ip),
        format!("omboot.nfsport={}", cfg.ports.nfs),
    ];
    if member {
        // The initramfs takes the cluster key from here, once, and seeds omd's generation with
        // the boot number: the key is not in the exported tree, and the number never repeats.
        args.push(format!("omboot.key={http}/node/key"));
    }
    args.push(format!("omboot.boot={boot}"));
    if let Some(dir) = cfg.cluster_dir.as_ref().filter(|_| member) {
        args.push(format!("omboot.cluster={}:{}", cfg.master_ip, dir.port));
    }
    if !cfg.kernel_args.trim().is_empty() {
        args.push(cfg.kernel_args.trim().to_string());
    }
    format!(
        "#!ipxe\n\
         echo ombootd: booting {name} ({ip})\n\
         :retry\n\
         kernel {base}/vmlinuz {args} || goto failed\n\
         initrd {base}/initrd.img || goto failed\n\
         boot || goto failed\n\
         :failed\n\
         echo ombootd: boot of {name} failed, retrying in 5 seconds\n\
         sleep 5\n\
         goto retry\n",
        name = node.name,
        ip = node.ip,
        args = args.join(" "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn script_carries_the_initramfs_contract() {
        let cfg = Config::parse(
            "interface = \"ombr0\"\nmaster_ip = \"10.77.0.1\"\nsubnet = \"10.77.0.0/24\"\nimage_dir = \"/i\"\nstate_dir = \"/s\"\n\
             kernel_args = \"console=ttyS0,115200\"\n[ports]\nnfs = 12049\n\
             [[node]]\nmac = \"52:54:00:77:00:02\"\nname = \"node2\"\nip = \"10.77.0.12\"\n",
            Path::new("t.toml"),
        )
        .unwrap();
        let s = render(&cfg, &cfg.nodes[0], true, 7, "1764045000");
        assert!(s.starts_with("#!ipxe\n"));
        assert!(s.contains(
            "kernel http://10.77.0.1:8080/image/1764045000/vmlinuz initrd=initrd.img BOOTIF=01-52-54-00-77-00-02 omboot.name=node2 \
             omboot.nfsroot=10.77.0.1:/1764045000/rootfs omboot.nfsport=12049 omboot.key=http://10.77.0.1:8080/node/key omboot.boot=7 \
             console=ttyS0,115200 || goto failed\n"
        ), "{s}");
        assert!(
            s.contains("initrd http://10.77.0.1:8080/image/1764045000/initrd.img || goto failed\n")
        );
        assert!(!s.contains("omboot.cluster"), "{s}");
    }

    #[test]
    fn the_cluster_dir_is_passed_when_configured() {
        let cfg = Config::parse(
            "interface = \"ombr0\"\nmaster_ip = \"10.77.0.1\"\nsubnet = \"10.77.0.0/24\"\nimage_dir = \"/i\"\nstate_dir = \"/s\"\n\
             [cluster_dir]\npath = \"/c\"\nport = 2051\n\
             [[node]]\nmac = \"52:54:00:77:00:02\"\nname = \"node2\"\nip = \"10.77.0.12\"\n",
            Path::new("t.toml"),
        )
        .unwrap();
        let s = render(&cfg, &cfg.nodes[0], true, 1, "1");
        assert!(s.contains(" omboot.cluster=10.77.0.1:2051 "), "{s}");
        // A pool node boots the image, but is given neither the key nor the shared directory.
        let s = render(&cfg, &cfg.nodes[0], false, 1, "1");
        assert!(
            !s.contains("omboot.key") && !s.contains("omboot.cluster"),
            "{s}"
        );
        assert!(s.contains(" omboot.boot=1 "), "{s}");
    }
}
