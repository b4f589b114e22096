//! First contact by multicast alone: two omd processes in two network namespaces on the lab
//! bridge, with no seeds and no master, find each other. Each gets its own machine-id (a private
//! mount namespace), as two real nodes would have. Then a flag set with `omctl` survives an omd
//! restart.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use omlab::{Lab, LabMac, MacAddr, Proc};

/// omd started by `run` (a shell line) in its own mount namespace inside `ns`, once ready.
fn start_omd(lab: &Lab, label: &str, run: &str, ns: &str) -> Proc {
    let mut cmd = Command::new("unshare");
    cmd.arg("-m").arg("sh").arg("-c").arg(run);
    let p = lab.spawn(label, cmd, ns).unwrap();
    lab.wait_for_output(&p, "omd listening on", Duration::from_secs(20))
        .unwrap();
    p
}

#[test]
fn two_omd_find_each_other_by_multicast_with_no_seeds() {
    let omd = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/omd");
    let omctl = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/omctl");
    assert!(
        omd.is_file() && omctl.is_file(),
        "build the workspace first (omlab test does)"
    );
    let lab = Lab::new("mcast").unwrap();
    let key = lab.dir().join("cluster.key");
    std::fs::write(&key, omlab::fixture::pattern(32)).unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let mut clients = Vec::new();
    let mut restart = None;
    for i in 1..=2u8 {
        let c = lab.add_client_ns(&format!("n{i}"), true).unwrap();
        lab.add_client_addr(&c, &format!("10.77.0.{}/24", 20 + i))
            .unwrap();
        let mut mac = Command::new("ip");
        mac.args([
            "link",
            "set",
            "eth0",
            "address",
            &MacAddr::lab(20 + i).to_string(),
        ]);
        assert!(
            lab.run(mac, c.netns(), Duration::from_secs(10))
                .unwrap()
                .status
                .success()
        );
        let machine_id = lab.dir().join(format!("machine-id{i}"));
        std::fs::write(&machine_id, format!("{i:032x}\n")).unwrap();
        let socket = lab.dir().join(format!("omd{i}.sock"));
        let flags = lab.dir().join(format!("omd{i}.flags"));
        let config = lab.dir().join(format!("omd{i}.toml"));
        let shipped = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/omd.toml"),
        )
        .unwrap();
        let text: String = shipped
            .lines()
            .map(|l| {
                if l.starts_with("key_file") {
                    format!("key_file = \"{}\"", key.display())
                } else if l.starts_with("socket") {
                    format!("socket = \"{}\"", socket.display())
                } else if l.starts_with("flags_file") {
                    format!("flags_file = \"{}\"", flags.display())
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            text.contains("seeds = []"),
            "the shipped omd.toml must have no seeds"
        );
        std::fs::write(&config, text).unwrap();
        let run = format!(
            "mount --bind {} /etc/machine-id && exec {} --config {}",
            machine_id.display(),
            omd.display(),
            config.display()
        );
        let p = start_omd(&lab, &format!("omd{i}"), &run, c.netns());
        if i == 1 {
            restart = Some((run, c.netns().to_owned()));
        }
        clients.push((p, socket));
    }
    let t = Instant::now();
    for (_, socket) in &clients {
        loop {
            let out = Command::new(&omctl)
                .arg("--socket")
                .arg(socket)
                .args(["nodes", "--json"])
                .output()
                .unwrap();
            let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            let alive = rows
                .as_array()
                .map_or(0, |r| r.iter().filter(|n| n["state"] == "alive").count());
            if alive == 2 {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "no multicast discovery: {rows}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    println!(
        "multicast discovery: both omd saw each other {:.2} s after the second started",
        t.elapsed().as_secs_f64()
    );
    // `block` on the first node, its omd restarted: still blocked, and it says so in its log.
    let (first, socket) = &clients[0];
    let omctl_on = |args: &[&str]| {
        Command::new(&omctl)
            .arg("--socket")
            .arg(socket)
            .args(args)
            .output()
            .unwrap()
    };
    assert!(omctl_on(&["block"]).status.success());
    std::thread::sleep(Duration::from_millis(600));
    lab.stop(first).unwrap();
    let (run, ns) = restart.unwrap();
    let again = start_omd(&lab, "omd1-again", &run, &ns);
    let rows: serde_json::Value =
        serde_json::from_slice(&omctl_on(&["nodes", "--json"]).stdout).unwrap();
    let me = rows
        .as_array()
        .and_then(|r| r.iter().find(|n| n["is_self"] == true))
        .unwrap_or_else(|| panic!("no row for the node itself: {rows}"));
    assert_eq!(
        me["flags"]["block"], true,
        "block lost in the restart: {me}"
    );
    lab.wait_for_output(&again, "node flags restored", Duration::from_secs(5))
        .unwrap();
    lab.teardown().unwrap();
}
