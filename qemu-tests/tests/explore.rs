//! A debugging aid, not run by default: boots the two-node lab and runs the shell lines of
//! `OMLAB_EXPLORE` (separated by `;;`) on node1, printing their output.
//! `OMLAB_EXPLORE='omctl nodes;;1@@ls -l /cluster' cargo test -p qemu-tests --test explore -- --ignored --nocapture`

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use omlab::{Lab, cluster};

#[test]
#[ignore = "a debugging aid: boots a lab and runs OMLAB_EXPLORE's lines"]
fn explore() {
    let lines = std::env::var("OMLAB_EXPLORE").unwrap_or_else(|_| "omctl nodes".into());
    let image = cluster::built_image("rootfs/usr/local/sbin/omd").unwrap();
    let lab = Lab::new("explore").unwrap();
    // OMLAB_NODE_MIB: the nodes' RAM (default 512).
    let mib = std::env::var("OMLAB_NODE_MIB")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(512);
    let plan = cluster::bios_nodes(2, mib, false);
    let _ombootd = cluster::start_master(&lab, &image, &plan).unwrap();
    let nodes: Vec<_> = cluster::boot_all(&lab, &plan, Duration::from_secs(300))
        .into_iter()
        .map(|r| r.unwrap().0)
        .collect();
    for line in lines.split(";;") {
        let (node, cmd) = match line.split_once("@@") {
            Some((n, c)) => (&nodes[n.trim().parse::<usize>().unwrap()], c),
            None => (&nodes[0], line),
        };
        let out = node.shell(cmd, Duration::from_secs(300)).unwrap();
        println!(
            "$ {cmd}   [{}, status {}]\n{}",
            node.name(),
            out.status,
            out.lines.join("\n")
        );
    }
    drop(nodes);
    if std::env::var_os("OMLAB_KEEP").is_some() {
        lab.keep_dir();
    }
    lab.teardown().unwrap();
}
