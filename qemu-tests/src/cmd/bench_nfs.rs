//! `omlab bench nfs`: ombootd's read-only NFSv3 export of the node root against nfs-ganesha (VFS
//! back end, unpacked from Debian) exporting the same directory, measured from one booted node
//! (BIOS, iPXE ROM, virtio-net, 512 MiB, TCG) by the guest's own clock: a sequential read of one
//! large file of the image and `ls -lR` of its /usr, each after dropping the guest's caches, on
//! a fresh mount of each export (read-only, NFSv3, TCP, nolock), the servers taking turns and
//! going first in turn; one warm-up round, then the median of the runs. Writes
//! build/bench/nfs.json.
//!
//! Both mounts add `noacl`: ganesha here answers no NFSACL and ombootd does, so with ACLs on
//! `ls -l` would cost one more call per file on ombootd's mount only. And `nosharecache`: the
//! ombootd mount would otherwise share the node root's superblock, with what it has cached.
//! Ganesha runs in the lab's namespace beside its own rpcbind ([`anchors::Ganesha::command`]).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use omlab::{Lab, RunningNode, anchors, cluster};
use serde::Serialize;

use super::prepare::{median, node_bench, step, workspace_root};

/// How long the node may take from power-on to up.
const ONE: Duration = Duration::from_secs(600);
/// Memory of the node, MiB (as in the boot suite and bench boot).
const NODE_MIB: u32 = 512;
/// ganesha's NFS and MOUNT ports (ombootd serves both on its NFS port).
const GANESHA_NFS_PORT: u16 = 12049;
const GANESHA_MOUNT_PORT: u16 = 12048;
/// Where the node mounts the export under test.
const MOUNT_POINT: &str = "/mnt/omlab-nfs";
/// How long one round (mount, read, walk, unmount) may take.
const ROUND: Duration = Duration::from_secs(900);
/// The marker line a round prints its figures on.
const MARK: &str = "OMLAB-NFS ";
/// The marker of each line of NFS call counts a round prints.
const CALLS: &str = "OMLAB-NFS-CALLS ";

/// One export as the node mounts it.
#[derive(Debug, Clone)]
struct Export {
    name: &'static str,
    /// The path the node mounts.
    path: String,
    port: u16,
    mount_port: u16,
}

/// One server's figures.
#[derive(Debug, Clone, Serialize)]
struct Side {
    server: &'static str,
    /// What the node mounted, and the options the kernel settled on (/proc/mounts).
    export: String,
    mount: String,
    /// Seconds of the sequential read, per run.
    read_secs: Vec<f64>,
    /// Seconds of `ls -lR /usr`, per run.
    ls_secs: Vec<f64>,
    /// The NFS calls of the last round's read and walk, as the node's client counted them.
    calls: Vec<Calls>,
}

/// One NFS procedure in the client's per-mount statistics (/proc/self/mountstats).
#[derive(Debug, Clone, Serialize)]
struct Calls {
    procedure: String,
    count: u64,
    /// Milliseconds per call: on the wire (send to reply), and in all (queued, sent, answered).
    rtt_ms: f64,
    execute_ms: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    /// The file read, a path inside the image root, and its size.
    file: String,
    file_bytes: u64,
    runs: usize,
    ombootd: Side,
    ganesha: Side,
    /// Median ombootd time / median ganesha time (below 1: ombootd faster).
    read_ratio: f64,
    ls_ratio: f64,
    /// The host's load average (1, 5, 15 min) before and after the measurements.
    host_loadavg_before: String,
    host_loadavg_after: String,
}

/// What one round measured.
#[derive(Debug, Clone)]
struct Round {
    read_secs: f64,
    ls_secs: f64,
    /// The mount's /proc/mounts line.
    mount: String,
    calls: Vec<Calls>,
}

/// Runs `omlab bench nfs`.
pub fn run(runs: usize, file: Option<&str>) -> anyhow::Result<()> {
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    node_bench()?;
    let root = workspace_root();
    let ganesha = step("nfs-ganesha and rpcbind (unpacked, not installed)", || {
        Ok(anchors::ganesha(&root.join("build/anchors"))?)
    })?;
    let image = cluster::built_image("rootfs/sbin/init")?;
    let version = node_image::image_dir::current(&image)?;
    let rootfs = node_image::image_dir::version_dir(&image, &version)
        .join(node_image::image_dir::ROOTFS)
        .canonicalize()
        .context("the image's root")?;
    let (file, file_bytes) = match file {
        Some(f) => {
            let inside = rootfs.join(f.trim_start_matches('/'));
            let meta = std::fs::symlink_metadata(&inside)
                .with_context(|| format!("{} in the image root", inside.display()))?;
            if !meta.is_file() {
                bail!("{} is no regular file", inside.display());
            }
            (format!("/{}", f.trim_start_matches('/')), meta.len())
        }
        None => {
            let (path, len) = largest_file(&rootfs.join("usr/lib"))?
                .context("no file under the image's /usr/lib")?;
            let inside = path.strip_prefix(&rootfs)?.display().to_string();
            (format!("/{inside}"), len)
        }
    };
    let shell_safe = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._+-".contains(&b))
    };
    if !shell_safe(&file) || !shell_safe(&rootfs.display().to_string()) {
        bail!(
            "{file} or {} has characters the node's shell would read",
            rootfs.display()
        );
    }
    let want_md5 = md5_of(&rootfs.join(file.trim_start_matches('/')))?;
    println!(
        "reading {file} ({:.1} MB) and walking /usr of image version {version}",
        file_bytes as f64 / 1e6
    );

    let lab = Lab::new("bench-nfs").context("cannot create the lab")?;
    let loadavg_before = loadavg();
    let result = (|| -> anyhow::Result<(Side, Side)> {
        let plan = cluster::bios_nodes(1, NODE_MIB, false);
        let cfg = cluster::config_for(&lab, &image, &plan);
        let ours = Export {
            name: "ombootd",
            path: format!("/{version}/rootfs"),
            port: cfg.ports.nfs,
            mount_port: cfg.ports.nfs,
        };
        let theirs = Export {
            name: "nfs-ganesha",
            path: rootfs.display().to_string(),
            port: GANESHA_NFS_PORT,
            mount_port: GANESHA_MOUNT_PORT,
        };
        let path = lab.write_ombootd_config(&cfg)?;
        lab.start_ombootd(&root.join("target/release/ombootd"), &path)?;
        let export = anchors::GaneshaExport {
            path: rootfs.clone(),
            bind: lab.master_ip(),
            nfs_port: GANESHA_NFS_PORT,
            mount_port: GANESHA_MOUNT_PORT,
        };
        let cmd = ganesha.command(lab.dir(), &export)?;
        let server = lab.spawn("ganesha", cmd, lab.netns())?;
        lab.wait_for_output(&server, anchors::GANESHA_READY, Duration::from_secs(60))?;

        let node = plan[0].node.boot(&lab)?;
        let up = node.wait_up(ONE)?;
        println!(
            "{} up in {:.1} s ({}){}",
            up.name,
            up.up_secs,
            up.state,
            if up.failed_units.is_empty() {
                String::new()
            } else {
                format!(", failed units: {}", up.failed_units.join(" "))
            }
        );
        let made = node.shell(&format!("mkdir -p {MOUNT_POINT}"), Duration::from_secs(60))?;
        if made.status != 0 {
            bail!("cannot make {MOUNT_POINT} on the node: {:?}", made.lines);
        }
        let master = lab.master_ip();
        let mut sides = [&ours, &theirs].map(|e| Side {
            server: e.name,
            export: format!("{master}:{}", e.path),
            mount: String::new(),
            read_secs: Vec::new(),
            ls_secs: Vec::new(),
            calls: Vec::new(),
        });
        for (k, (label, measured)) in std::iter::once(("warm-up", false))
            .chain((1..=runs).map(|_| ("run", true)))
            .enumerate()
        {
            // Who goes first alternates, so neither server always meets what the other left
            // in the caches of the host and the node, or the host's slow spells.
            let order: [usize; 2] = if k % 2 == 0 { [0, 1] } else { [1, 0] };
            for i in order {
                let (e, side) = ([&ours, &theirs][i], &mut sides[i]);
                let r = round(&node, master, e, &file, &want_md5)?;
                let n = side.read_secs.len() + 1;
                println!(
                    "{} {:<11} read {:6.2} s ({:6.1} MB/s), ls -lR /usr {:6.1} s",
                    if measured {
                        format!("{label} {n}:")
                    } else {
                        format!("{label}:")
                    },
                    e.name,
                    r.read_secs,
                    file_bytes as f64 / 1e6 / r.read_secs,
                    r.ls_secs
                );
                side.mount = r.mount;
                side.calls = r.calls;
                if measured {
                    side.read_secs.push(r.read_secs);
                    side.ls_secs.push(r.ls_secs);
                }
            }
        }
        node.power_off()?;
        let [a, b] = sides;
        Ok((a, b))
    })();
    let (ours, theirs) = lab.close(result)?;
    let loadavg_after = loadavg();

    let report = Report {
        read_ratio: median(&ours.read_secs) / median(&theirs.read_secs),
        ls_ratio: median(&ours.ls_secs) / median(&theirs.ls_secs),
        file: file.clone(),
        file_bytes,
        runs,
        ombootd: ours,
        ganesha: theirs,
        host_loadavg_before: loadavg_before,
        host_loadavg_after: loadavg_after,
    };
    let mb = file_bytes as f64 / 1e6;
    println!(
        "\nNFS from one booted node (BIOS, virtio-net, {NODE_MIB} MiB, TCG), guest clock, caches \
         dropped before each step, median of {runs}:\n"
    );
    println!(
        "| server | read {file} ({mb:.1} MB) | MB/s | ombootd's time / its | `ls -lR /usr` | ombootd's time / its |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for (side, read_ratio, ls_ratio) in [
        (&report.ombootd, 1.0, 1.0),
        (&report.ganesha, report.read_ratio, report.ls_ratio),
    ] {
        let read = median(&side.read_secs);
        let ls = median(&side.ls_secs);
        println!(
            "| {} | {read:.2} s | {:.1} | {read_ratio:.2}x | {ls:.1} s | {ls_ratio:.2}x |",
            side.server,
            mb / read
        );
    }
    for side in [&report.ombootd, &report.ganesha] {
        println!("\n{} mounted as: {}", side.server, side.mount);
        let calls: Vec<String> = side
            .calls
            .iter()
            .map(|c| {
                format!(
                    "{} {} ({:.2} ms on the wire, {:.2} ms in all)",
                    c.procedure, c.count, c.rtt_ms, c.execute_ms
                )
            })
            .collect();
        println!("  calls of its last read and walk: {}", calls.join(", "));
    }
    println!(
        "host load average before {}, after {}",
        report.host_loadavg_before, report.host_loadavg_after
    );
    let out = root.join("build/bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("nfs.json"), serde_json::to_vec_pretty(&report)?)?;
    println!("\nwrote {}", out.join("nfs.json").display());
    Ok(())
}

/// One round on `node` against export `e`: mount it, drop the caches, read `file` through it;
/// drop the caches, `ls -lR` its /usr; take the mount's call counts, check the file's MD5 and
/// unmount. The tools the timed commands run (`cat`, `ls` and what `ls -l` reads) are loaded
/// again from the node's root between the drop and the clock.
fn round(
    node: &RunningNode<'_>,
    master: Ipv4Addr,
    e: &Export,
    file: &str,
    want_md5: &str,
) -> anyhow::Result<Round> {
    let m = MOUNT_POINT;
    let opts = format!(
        "ro,vers=3,tcp,nolock,noacl,nosharecache,port={},mountport={},mountproto=tcp,addr={master}",
        e.port, e.mount_port
    );
    let command = format!(
        "mount -t nfs -o {opts} {master}:{path} {m} && {{ \
         sync; echo 3 > /proc/sys/vm/drop_caches; ls -l / > /dev/null; cat /dev/null; \
         t0=$EPOCHREALTIME; cat {m}{file} > /dev/null; r=$?; t1=$EPOCHREALTIME; \
         echo 3 > /proc/sys/vm/drop_caches; ls -l / > /dev/null; \
         t2=$EPOCHREALTIME; ls -lR {m}/usr > /dev/null 2> /tmp/omlab-ls.err; l=$?; t3=$EPOCHREALTIME; \
         awk -v m=' mounted on {m} ' 'index($0, m) {{ f = 1; next }} /^device / {{ f = 0 }} \
         f && $1 ~ /^[A-Z_]+:$/ && $2 > 0 {{ print \"{CALLS}\" $1, $2, $8, $9 }}' /proc/self/mountstats; \
         sum=$(md5sum < {m}{file}); grep ' {m} ' /proc/mounts; \
         echo \"{MARK}$t0 $t1 $r $t2 $t3 $l $(wc -l < /tmp/omlab-ls.err) ${{sum%% *}}\"; \
         head -n 3 /tmp/omlab-ls.err; umount {m}; }}",
        path = e.path
    );
    let out = node.shell(&command, ROUND)?;
    let shown = || out.lines.join("\n");
    let Some(figures) = out.lines.iter().find_map(|l| {
        l.find(MARK)
            .map(|at| l[at + MARK.len()..].split_whitespace().collect::<Vec<_>>())
    }) else {
        bail!("{}: the round printed no figures:\n{}", e.name, shown());
    };
    if out.status != 0 {
        bail!("{}: cannot unmount {m}:\n{}", e.name, shown());
    }
    let [t0, t1, read_status, t2, t3, ls_status, ls_errors, md5] = figures[..] else {
        bail!("{}: unexpected figures {figures:?}", e.name);
    };
    let secs = |a: &str, b: &str| -> anyhow::Result<f64> {
        let t = |s: &str| {
            s.parse::<f64>()
                .with_context(|| format!("{}: {s:?} is no time", e.name))
        };
        Ok(t(b)? - t(a)?)
    };
    if read_status != "0" {
        bail!("{}: reading {file} failed:\n{}", e.name, shown());
    }
    if ls_status != "0" || ls_errors != "0" {
        bail!(
            "{}: ls -lR {m}/usr failed ({ls_errors} error lines):\n{}",
            e.name,
            shown()
        );
    }
    if md5 != want_md5 {
        bail!(
            "{}: {file} read with MD5 {md5}, the image's is {want_md5}",
            e.name
        );
    }
    let mount = out
        .lines
        .iter()
        .find(|l| l.contains(&format!(" {m} nfs ")))
        .cloned()
        .unwrap_or_default();
    Ok(Round {
        read_secs: secs(t0, t1)?,
        ls_secs: secs(t2, t3)?,
        mount,
        calls: out.lines.iter().filter_map(|l| parse_calls(l)).collect(),
    })
}

/// A `CALLS` line of a round: procedure, calls, and the milliseconds they took on the wire and
/// in all (mountstats' RTT and execute columns).
fn parse_calls(line: &str) -> Option<Calls> {
    let rest = &line[line.find(CALLS)? + CALLS.len()..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let [name, count, rtt, execute] = f[..] else {
        return None;
    };
    let count: u64 = count.parse().ok()?;
    let per = |ms: &str| Some(ms.parse::<f64>().ok()? / count.max(1) as f64);
    Some(Calls {
        procedure: name.trim_end_matches(':').to_owned(),
        count,
        rtt_ms: per(rtt)?,
        execute_ms: per(execute)?,
    })
}

/// The largest regular file under `dir` (symbolic links not followed), with its size.
fn largest_file(dir: &Path) -> anyhow::Result<Option<(PathBuf, u64)>> {
    let mut best: Option<(PathBuf, u64)> = None;
    let mut dirs = vec![dir.to_owned()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("list {}", d.display()))? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                dirs.push(entry.path());
            } else if kind.is_file() {
                let len = entry.metadata()?.len();
                if best.as_ref().is_none_or(|(_, b)| len > *b) {
                    best = Some((entry.path(), len));
                }
            }
        }
    }
    Ok(best)
}

/// The MD5 of `path`, as `md5sum` prints it (the node checks what it read with the same tool).
fn md5_of(path: &Path) -> anyhow::Result<String> {
    let out = Command::new("md5sum")
        .arg(path)
        .output()
        .context("cannot run md5sum")?;
    if !out.status.success() {
        bail!("md5sum {} failed", path.display());
    }
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .map(str::to_owned)
        .context("md5sum printed nothing")
}

/// The host's load averages, as /proc/loadavg gives them.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
