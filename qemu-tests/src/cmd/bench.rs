//! `omlab bench`: ombootd against the anchor servers in the same run, same lab, same client;
//! prints medians and ratios. Timings live here, never in tests.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use omlab::{Lab, LabMac, MacAddr, anchors, fixture};

use super::prepare::{cargo, debian_packages, step, workspace_root};

/// Options of `omlab bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to measure.
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// TFTP: one file fetched with atftp (blksize 1468) from ombootd, tftpd-hpa and atftpd, in
    /// lock-step and with windowsize 16 (RFC 7440), then by many clients at once.
    Tftp {
        /// File size in MiB.
        #[arg(long, default_value_t = 50)]
        size_mib: usize,
        /// Transfers per server and window (the median is reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Clients fetching the file at once in the last round.
        #[arg(long, default_value_t = 64)]
        clients: usize,
    },
    /// Migration: jobs of each resident size moved node1 -> node2 by omd, against plain CRIU
    /// through /cluster and against RSS / iperf3 bandwidth; then the largest size rewriting
    /// pages, with pre-dump and in one dump.
    Migrate {
        /// Resident sizes in MiB.
        #[arg(long, value_delimiter = ',', default_values_t = [64, 256, 512])]
        sizes: Vec<usize>,
        /// Memory of each node, MiB (room for the job and its images: pre-dump rounds of a job
        /// that keeps writing can add up to three times its size).
        #[arg(long, default_value_t = 4096)]
        node_mib: u32,
        /// Percents of its pages the writing job rewrites per second, one comparison each.
        #[arg(long, value_delimiter = ',', default_values_t = [10.0])]
        dirty_pct: Vec<f64>,
    },
    /// Balancing: the makespan of CPU-bound jobs of unequal length started on node1 of a
    /// two-node lab, balancer held (`omctl stay`) against free, in one run.
    Balance {
        /// Job counts to compare, one row each.
        #[arg(long, value_delimiter = ',', default_values_t = [4, 8])]
        counts: Vec<usize>,
        /// `omwork spin` units of the shortest job (the others run 2, 3 and 4 times as long).
        #[arg(long, default_value_t = 20)]
        base_units: u32,
    },
    /// Dashboard: ombootd's CPU use with 0, 1 and 10 live dashboard streams open, on a
    /// two-node lab.
    Dashboard {
        /// Seconds measured per viewer count.
        #[arg(long, default_value_t = 60)]
        window_s: u64,
        /// Rounds of (0, 1, 10 viewers).
        #[arg(long, default_value_t = 2)]
        rounds: usize,
    },
    /// DHCP: perfdhcp's DORA rate ramp against ombootd, kea-dhcp4 (memfile) and dnsmasq, all
    /// persisting leases; writes build/bench/dhcp.json.
    Dhcp {
        /// Exchanges per second asked at each step, one fresh server each.
        #[arg(long, value_delimiter = ',', default_values_t = [250, 500, 1000, 2000, 3000, 4000, 4500, 5000, 5500, 6000, 6500, 7000, 7500, 8000, 8500, 9000, 9500, 10000, 11000, 12000])]
        rates: Vec<u32>,
        /// Seconds per step.
        #[arg(long, default_value_t = 10)]
        secs: u64,
        /// The ramp stops after the first step with more requests unanswered, percent.
        #[arg(long, default_value_t = 2.5)]
        max_drops_pct: f64,
    },
    /// Boot: power-on to up of one BIOS node from ombootd and from dnsmasq (DHCP + TFTP,
    /// serving the same script, kernel and initrd), alternating; then a boot storm from
    /// ombootd; writes build/bench/boot.json.
    Boot {
        /// Boots per server (the median is reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Nodes powered on at once in the storm (0: none).
        #[arg(long, default_value_t = 8)]
        storm: u8,
    },
    /// NFS: from one booted node, a sequential read of one large file of the image and `ls -lR
    /// /usr`, over ombootd's export of the node root and over nfs-ganesha's of the same
    /// directory, alternating; writes build/bench/nfs.json.
    Nfs {
        /// Rounds per server (the median is reported), after one warm-up round each.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// The file read, a path inside the image root (default: the largest file under
        /// /usr/lib).
        #[arg(long)]
        file: Option<String>,
    },
    /// Gossip at scale, in-process (no lab): omd's agents over a simulated lossy LAN against
    /// the membership, fresh-load-record and load-news targets; writes build/bench/gossip.json.
    Gossip {
        /// Nodes.
        #[arg(long, default_value_t = 1000)]
        nodes: usize,
        /// Packet loss, 0..1.
        #[arg(long, default_value_t = 0.05)]
        loss: f64,
        /// Simulated seconds.
        #[arg(long, default_value_t = 60)]
        secs: u64,
        /// First contact through this many seeds instead of multicast (0: multicast).
        #[arg(long, default_value_t = 0)]
        seeds: usize,
    },
}

/// Runs `omlab bench`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    match args.what {
        What::Tftp {
            size_mib,
            runs,
            clients,
        } => tftp(size_mib, runs, clients),
        What::Migrate {
            ref sizes,
            node_mib,
            ref dirty_pct,
        } => super::bench_migrate::run(sizes, node_mib, dirty_pct),
        What::Balance {
            ref counts,
            base_units,
        } => super::bench_balance::run(counts, base_units),
        What::Dashboard { window_s, rounds } => super::bench_dashboard::run(window_s, rounds),
        What::Dhcp {
            ref rates,
            secs,
            max_drops_pct,
        } => super::bench_dhcp::run(rates, secs, max_drops_pct),
        What::Boot { runs, storm } => super::bench_boot::run(runs, storm),
        What::Nfs { runs, ref file } => super::bench_nfs::run(runs, file.as_deref()),
        What::Gossip {
            nodes,
            loss,
            secs,
            seeds,
        } => super::bench_gossip::run(nodes, loss, secs, seeds),
    }
}

struct Server {
    name: &'static str,
    port: u16,
}

/// RFC 7440 window sizes measured: lock-step, and 16 blocks per acknowledgement.
const WINDOWS: [u32; 2] = [1, 16];

fn tftp(size_mib: usize, runs: usize, clients: usize) -> anyhow::Result<()> {
    if runs == 0 || size_mib == 0 {
        bail!("--runs and --size-mib must be at least 1");
    }
    step("Debian packages", debian_packages)?;
    step("build (release)", || {
        cargo(&["build", "--release", "-p", "bootserver"])
    })?;
    let root = workspace_root();
    let dir = root.join("build/anchors");
    let (hpa_root, atftpd_root, libwrap) =
        step("anchor servers (unpacked, not installed)", || {
            Ok((
                anchors::unpack("tftpd-hpa", &dir)?,
                anchors::unpack("atftpd", &dir)?,
                anchors::unpack("libwrap0", &dir)?,
            ))
        })?;

    let lab = Lab::new("bench-tftp").context("cannot create the lab")?;
    let result = (|| -> anyhow::Result<()> {
        let image = fixture::fake_image(lab.dir(), size_mib << 20)?;
        let tftp_root = image.join("tftp");
        let cfg = lab
            .ombootd_config(&image)
            .node("node1", MacAddr::lab(1), "10.77.0.11".parse()?);
        let path = lab.write_ombootd_config(&cfg)?;
        lab.start_ombootd(&root.join("target/release/ombootd"), &path)?;
        let libs = anchors::library_path(&[&libwrap, &hpa_root, &atftpd_root]);
        let mut hpa = Command::new(hpa_root.join("usr/sbin/in.tftpd"));
        hpa.args([
            "--foreground",
            "--address",
            "10.77.0.1:6969",
            "--secure",
            "--user",
            "root",
        ])
        .arg(&tftp_root)
        .env("LD_LIBRARY_PATH", &libs);
        lab.spawn("tftpd-hpa", hpa, lab.netns())?;
        let mut atftpd = Command::new(atftpd_root.join("usr/sbin/atftpd"));
        atftpd
            .args([
                "--daemon",
                "--no-fork",
                "--port",
                "7069",
                "--bind-address",
                "10.77.0.1",
                "--user",
                "root.root",
                "--logfile",
                "/dev/null",
            ])
            .arg(&tftp_root)
            .env("LD_LIBRARY_PATH", &libs);
        lab.spawn("atftpd", atftpd, lab.netns())?;

        let client = lab.add_client_ns("c1", true)?;
        lab.add_client_addr(&client, "10.77.0.11/24")?;
        let servers = [
            Server {
                name: "ombootd",
                port: 69,
            },
            Server {
                name: "tftpd-hpa",
                port: 6969,
            },
            Server {
                name: "atftpd",
                port: 7069,
            },
        ];
        let want = std::fs::read(tftp_root.join("big.bin"))?;
        let mut rows = Vec::new();
        for window in WINDOWS {
            // The servers take turns within each run, so a slow spell of the host (a busy
            // neighbour, idle vCPUs that wake slowly) falls on all of them alike. Run 0 is a
            // warm-up (page cache, server start-up) and is not counted.
            let mut times = vec![Vec::with_capacity(runs); servers.len()];
            for i in 0..=runs {
                for (s, t) in servers.iter().zip(times.iter_mut()) {
                    let out = lab.dir().join("got.bin");
                    let _ = std::fs::remove_file(&out);
                    let started = Instant::now();
                    fetch(&lab, client.netns(), s, window, &out)?;
                    let took = started.elapsed();
                    if std::fs::read(&out)? != want {
                        bail!("{}: the file arrived corrupted", s.name);
                    }
                    if i > 0 {
                        t.push(took);
                    }
                }
            }
            for (s, mut t) in servers.iter().zip(times) {
                t.sort();
                rows.push((s.name, window, t[t.len() / 2]));
            }
        }
        println!("\nTFTP, {size_mib} MiB file, atftp client blksize 1468, median of {runs}:\n");
        println!("| server | windowsize | seconds | MiB/s | ombootd's time vs it |");
        println!("|---|---:|---:|---:|---:|");
        for (name, window, t) in &rows {
            let ours = rows
                .iter()
                .find(|(n, w, _)| *n == "ombootd" && w == window)
                .map_or(1.0, |r| r.2.as_secs_f64());
            let secs = t.as_secs_f64();
            println!(
                "| {name} | {window} | {secs:.2} | {:.1} | {:.2}x |",
                size_mib as f64 / secs,
                ours / secs
            );
        }

        println!("\n{clients} clients at once, windowsize 16 asked, each file checked:\n");
        println!("| server | finished | corrupt or failed | seconds for all |");
        println!("|---|---:|---:|---:|");
        for s in &servers {
            let t = Instant::now();
            let results: Vec<bool> = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..clients)
                    .map(|i| {
                        let (lab, client, want, s) = (&lab, &client, &want, s);
                        scope.spawn(move || {
                            let out = lab.dir().join(format!("many-{i}.bin"));
                            let ok = fetch(lab, client.netns(), s, 16, &out).is_ok()
                                && std::fs::read(&out).is_ok_and(|got| got == *want);
                            let _ = std::fs::remove_file(&out);
                            ok
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or(false))
                    .collect()
            });
            let done = results.iter().filter(|ok| **ok).count();
            println!(
                "| {} | {done} | {} | {:.1} |",
                s.name,
                clients - done,
                t.elapsed().as_secs_f64()
            );
        }
        Ok(())
    })();
    if result.is_err() {
        lab.keep_dir();
    }
    let teardown = lab.teardown().context("teardown failed");
    result.and(teardown)
}

fn fetch(lab: &Lab, ns: &str, s: &Server, window: u32, out: &Path) -> anyhow::Result<()> {
    let mut cmd = Command::new("atftp");
    cmd.args(["--tftp-timeout", "1", "--option", "blksize 1468"]);
    if window > 1 {
        cmd.args(["--option", &format!("windowsize {window}")]);
    }
    cmd.args(["-g", "-r", "big.bin", "-l"])
        .arg(out)
        .args(["10.77.0.1", &s.port.to_string()]);
    let o = lab.run(cmd, ns, Duration::from_secs(600))?;
    if !o.status.success() {
        bail!(
            "atftp from {} failed: {}",
            s.name,
            String::from_utf8_lossy(&o.stderr)
        );
    }
    Ok(())
}
