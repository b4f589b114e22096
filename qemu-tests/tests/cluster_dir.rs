//! The read-write `/cluster` export against the real libnfs-utils clients (`nfs-cp`, `nfs-cat`,
//! `nfs-ls`) in a lab namespace, as root and as an unprivileged user (`setpriv`, AUTH_SYS uid
//! 65534). Rename, links and stale handles are covered by bootserver's unit tests: these tools
//! have no rename and open a new connection per command.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use omlab::{ClientNs, Lab, LabMac, MacAddr, Proc};

const T: Duration = Duration::from_secs(60);
const PORT: u16 = 2050;
const NOBODY: u32 = 65534;

fn ombootd() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/ombootd");
    assert!(
        p.is_file(),
        "{} missing: `cargo build -p bootserver` first (omlab test does)",
        p.display()
    );
    p
}

/// The lab's ombootd config (it serves `[cluster_dir]` at `<lab>/cluster`, `insecure`, so the
/// unprivileged libnfs clients, on ports above 1023, are served and their AUTH_SYS uid checked).
fn write_config(lab: &Lab) -> PathBuf {
    let img = omlab::fixture::fake_image(lab.dir(), 100_000).unwrap();
    let mut cfg = lab.ombootd_config(&img);
    if let Some(c) = cfg.cluster_dir.as_mut() {
        c.insecure = true;
    }
    let cfg = cfg
        .node("node1", MacAddr::lab(1), "10.77.0.11".parse().unwrap())
        .node("node2", MacAddr::lab(2), "10.77.0.12".parse().unwrap());
    assert_eq!(
        cfg.cluster_dir.as_ref().map(|c| *c.port.get_ref()),
        Some(PORT)
    );
    lab.write_ombootd_config(&cfg).unwrap()
}

fn cluster(lab: &Lab) -> PathBuf {
    lab.dir().join("cluster")
}

/// Where the tests' files live on the host (see [`url`]).
fn files(lab: &Lab) -> PathBuf {
    jobs(lab)
}

fn start(lab: &Lab, config: &Path) -> Proc {
    let p = lab.start_ombootd(&ombootd(), config).unwrap();
    lab.wait_for_output(
        &p,
        &format!("listening for NFS (cluster) on 10.77.0.1:{PORT}"),
        T,
    )
    .unwrap();
    p
}

/// A client namespace with `ip` on the lab bridge, as a node would have.
fn node(lab: &Lab, name: &str, n: u8, ip: &str) -> ClientNs {
    let c = lab.add_client_ns(name, true).unwrap();
    let mut cmd = Command::new("ip");
    cmd.args([
        "link",
        "set",
        "eth0",
        "address",
        &MacAddr::lab(n).to_string(),
    ]);
    assert!(lab.run(cmd, c.netns(), T).unwrap().status.success());
    lab.add_client_addr(&c, &format!("{ip}/24")).unwrap();
    c
}

/// The URL of `path` below `/jobs`: libnfs asks MOUNT for the empty path when a file sits at the
/// top of an export, which nfs3_server refuses (the kernel client mounts `/` and is not affected).
fn url(path: &str) -> String {
    format!("nfs://10.77.0.1/jobs{path}?version=3&nfsport={PORT}&mountport={PORT}")
}

/// `<cluster>/jobs`, made on the host like the top (root, 1777).
fn jobs(lab: &Lab) -> PathBuf {
    let d = cluster(lab).join("jobs");
    if !d.exists() {
        std::fs::create_dir(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o1777)).unwrap();
    }
    d
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `tool args…`, as root or (with `nobody`) as uid/gid 65534 with no supplementary groups.
fn nfs(lab: &Lab, c: &ClientNs, nobody: bool, tool: &str, args: &[&str]) -> Output {
    let mut cmd = if nobody {
        let mut cmd = Command::new("setpriv");
        cmd.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            tool,
        ]);
        cmd
    } else {
        Command::new(tool)
    };
    cmd.args(args);
    lab.run(cmd, c.netns(), T).unwrap()
}

/// Local files the unprivileged user can read: a world-readable directory under /tmp.
fn local_dir() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("omlab-cluster-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 11) as u8)
        .collect()
}

fn local_file(dir: &Path, name: &str, data: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    p.to_str().unwrap().to_owned()
}

#[test]
fn files_round_trip_with_owners_and_modes_and_refused_users_get_access_errors() {
    let lab = Lab::new("cdir").unwrap();
    let config = write_config(&lab);
    let mut ombootd = start(&lab, &config);
    let top = std::fs::metadata(cluster(&lab)).unwrap();
    assert_eq!(
        (top.mode() & 0o7777, top.uid()),
        (0o1777, 0),
        "made like /tmp"
    );
    let c = node(&lab, "c1", 1, "10.77.0.11");
    let local = local_dir();
    let dir = files(&lab);

    // Written by root and by nobody, read back identical; each file belongs to its writer.
    let data = pattern(700_000, 1);
    let src = local_file(local.path(), "root.bin", &data);
    let out = nfs(&lab, &c, false, "nfs-cp", &[&src, &url("/root.bin")]);
    assert!(out.status.success(), "{}", text(&out));
    let small = pattern(5_000, 2);
    let src = local_file(local.path(), "nobody.bin", &small);
    let out = nfs(&lab, &c, true, "nfs-cp", &[&src, &url("/nobody.bin")]);
    assert!(out.status.success(), "{}", text(&out));
    let out = nfs(&lab, &c, false, "nfs-cat", &[&url("/root.bin")]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(out.stdout == data, "root.bin came back different");
    let out = nfs(&lab, &c, true, "nfs-cat", &[&url("/nobody.bin")]);
    assert!(out.stdout == small, "nobody.bin came back different");
    let host = |name: &str| std::fs::metadata(dir.join(name)).unwrap();
    assert_eq!((host("root.bin").uid(), host("root.bin").gid()), (0, 0));
    assert_eq!(
        (host("nobody.bin").uid(), host("nobody.bin").gid()),
        (NOBODY, NOBODY)
    );
    assert_eq!(std::fs::read(dir.join("root.bin")).unwrap(), data);

    // Modes as set on the host show through; the mode bits refuse nobody a 0600 root file.
    std::fs::set_permissions(dir.join("root.bin"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::create_dir(dir.join("closed")).unwrap();
    std::fs::set_permissions(dir.join("closed"), std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = nfs(&lab, &c, true, "nfs-ls", &[&url("")]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let line = |name: &str| {
        t.lines()
            .find(|l| l.ends_with(&format!(" {name}")))
            .unwrap_or_else(|| panic!("{name} not listed: {t}"))
            .to_string()
    };
    assert!(line("root.bin").starts_with("-rw-------"), "{t}");
    assert!(line("closed").starts_with("drwx------"), "{t}");
    // nfs-cp asks CREATE for mode 0660: that is what the file has, on the host and over NFS.
    assert_eq!(host("nobody.bin").mode() & 0o7777, 0o660);
    assert!(line("nobody.bin").starts_with("-rw-rw----"), "{t}");
    assert!(
        line("nobody.bin").contains(&format!(" {NOBODY} ")),
        "owner not shown: {t}"
    );

    let out = nfs(&lab, &c, true, "nfs-cat", &[&url("/root.bin")]);
    let t = text(&out);
    assert!(
        !out.status.success() || out.stdout.is_empty(),
        "nobody read a 0600 root file: {}",
        out.stdout.len()
    );
    // The server's ACCESS answer grants nobody nothing on it, so libnfs does not even send READ
    // (READ itself is refused too: see bootserver's unit tests).
    assert!(
        t.contains("Allowed access ---"),
        "ACCESS granted nobody something on a 0600 root file: {t}"
    );
    // For LOOKUP, the server's log names the NFS status it answered.
    let refusals = || {
        std::fs::read_to_string(ombootd.log())
            .unwrap()
            .lines()
            .filter(|l| l.contains("--> NFS3ERR_ACCES"))
            .count()
    };
    let src = local_file(local.path(), "x", b"x");
    let out = nfs(&lab, &c, true, "nfs-cp", &[&src, &url("/closed/x")]);
    assert!(!out.status.success(), "created in a 0700 root directory");
    assert!(!dir.join("closed/x").exists());
    assert_eq!(
        refusals(),
        1,
        "LOOKUP in a 0700 directory was not refused with NFS3ERR_ACCES"
    );
    // (nfs-cp creates GUARDED, so it cannot try to overwrite an existing file: the refusal of
    // WRITE and SETATTR to other users is covered by bootserver's unit tests.)
    assert_eq!(std::fs::read(dir.join("root.bin")).unwrap(), data);

    // After a restart the same files are served (the nodes' handles stay valid: see bootserver).
    lab.stop(&ombootd).unwrap();
    ombootd = start(&lab, &config);
    let out = nfs(&lab, &c, false, "nfs-cat", &[&url("/root.bin")]);
    assert!(out.stdout == data, "root.bin differs after a restart");
    drop(ombootd);
    lab.teardown().unwrap();
}

#[test]
fn two_nodes_writing_different_files_at_once_lose_nothing() {
    let lab = Lab::new("cpar").unwrap();
    let config = write_config(&lab);
    let _ombootd = start(&lab, &config);
    let nodes = [
        node(&lab, "c1", 1, "10.77.0.11"),
        node(&lab, "c2", 2, "10.77.0.12"),
    ];
    let local = local_dir();
    let dir = files(&lab);
    let mut files = Vec::new();
    let mut procs = Vec::new();
    for (n, c) in nodes.iter().enumerate() {
        // Each node writes its files one after the other, both nodes at the same time.
        let mut script = String::from("set -e\n");
        for i in 0..4 {
            let name = format!("n{n}-{i}.bin");
            let data = pattern(1_500_000 + i * 7919, (n * 10 + i) as u8);
            let src = local_file(local.path(), &name, &data);
            script.push_str(&format!("nfs-cp {src} '{}'\n", url(&format!("/{name}"))));
            files.push((name, data));
        }
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &script]);
        procs.push(lab.spawn(&format!("writer{n}"), cmd, c.netns()).unwrap());
    }
    for p in &procs {
        let status = lab.wait_exit(p, Duration::from_secs(120)).unwrap();
        assert!(
            status.success(),
            "{}: {}",
            p.label(),
            std::fs::read_to_string(p.log()).unwrap_or_default()
        );
    }
    for (name, data) in &files {
        let got = std::fs::read(dir.join(name)).unwrap();
        assert!(
            got == *data,
            "{name}: {} bytes, want {}",
            got.len(),
            data.len()
        );
    }
    lab.teardown().unwrap();
}
