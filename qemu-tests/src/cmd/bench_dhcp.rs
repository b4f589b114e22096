//! `omlab bench dhcp`: the DHCP lease rate of ombootd against Kea (kea-dhcp4, memfile) and
//! dnsmasq, all persisting their leases, measured by perfdhcp in one lab: a rate ramp, each step
//! a fresh server, until more than the allowed share of exchanges goes unanswered. Prints a
//! markdown table with ratios and writes `build/bench/dhcp.json`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use omlab::{Lab, Proc, anchors};
use serde::Serialize;

use super::prepare::{cargo, debian_packages, step, workspace_root};

/// The lab's /16: the master, perfdhcp beside it, and a pool of 65,000 addresses.
const MASTER: &str = "10.77.0.1";
const PERFDHCP_ADDR: &str = "10.77.0.2";
const POOL: (&str, &str) = ("10.77.1.1", "10.77.254.254");

/// One server under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    Ombootd,
    Kea,
    Dnsmasq,
}

impl Server {
    fn name(self) -> &'static str {
        match self {
            Server::Ombootd => "ombootd",
            Server::Kea => "kea-dhcp4 (memfile)",
            Server::Dnsmasq => "dnsmasq",
        }
    }
}

/// One ramp step of one server.
#[derive(Debug, Clone, Serialize)]
struct Step {
    server: &'static str,
    /// Exchanges per second perfdhcp was asked for.
    asked: u32,
    /// DORA exchanges per second completed (ACKs received over the sending period).
    rate: f64,
    /// Share of requests without an answer, percent.
    drops_pct: f64,
}

/// What the anchors need, unpacked (never installed: installing would start them on the host).
struct Anchors {
    perfdhcp: PathBuf,
    kea: PathBuf,
    /// Kea's libraries.
    libs: String,
    dnsmasq: anchors::Dnsmasq,
}

fn anchors_unpacked() -> anyhow::Result<Anchors> {
    let dir = workspace_root().join("build/anchors");
    let mut roots = std::collections::BTreeMap::new();
    let kea = [
        "kea-admin",
        "kea-common",
        "kea-dhcp4-server",
        "liblog4cplus-2.0.5",
        "libmariadb3",
    ];
    for p in kea {
        roots.insert(p, anchors::unpack(p, &dir)?);
    }
    let refs: Vec<&Path> = roots.values().map(PathBuf::as_path).collect();
    let mut libs = anchors::library_path(&refs);
    // Kea keeps its own libraries one level down.
    libs.push_str(&format!(
        ":{}",
        roots["kea-common"]
            .join("usr/lib/x86_64-linux-gnu/kea")
            .display()
    ));
    Ok(Anchors {
        perfdhcp: roots["kea-admin"].join("usr/sbin/perfdhcp"),
        kea: roots["kea-dhcp4-server"].join("usr/sbin/kea-dhcp4"),
        libs,
        dnsmasq: anchors::dnsmasq(&dir)?,
    })
}

/// Runs `omlab bench dhcp`.
pub fn run(rates: &[u32], secs: u64, max_drops_pct: f64) -> anyhow::Result<()> {
    if rates.is_empty() || secs == 0 {
        bail!("--rates needs at least one rate and --secs at least 1");
    }
    step("Debian packages", debian_packages)?;
    step("build (release)", || {
        cargo(&["build", "--release", "-p", "bootserver"])
    })?;
    let anchors = step("anchor servers (unpacked, not installed)", anchors_unpacked)?;
    let mut steps = Vec::new();
    for server in [Server::Ombootd, Server::Kea, Server::Dnsmasq] {
        for &asked in rates {
            let s = measure(server, asked, secs, &anchors)?;
            println!(
                "{:<22} asked {:>6}/s: {:>8.0} DORA/s, {:>5.1} % unanswered",
                s.server, s.asked, s.rate, s.drops_pct
            );
            let over = s.drops_pct > max_drops_pct;
            steps.push(s);
            if over {
                break;
            }
        }
    }
    let best = |server: Server| -> f64 {
        steps
            .iter()
            .filter(|s| s.server == server.name() && s.drops_pct <= max_drops_pct)
            .map(|s| s.rate)
            .fold(0.0, f64::max)
    };
    let ours = best(Server::Ombootd);
    println!(
        "\nDHCP, perfdhcp DORA ramp, {secs} s per step, leases persisted; best rate with at most {max_drops_pct} % unanswered:\n"
    );
    println!("| server | DORA/s | ombootd vs it |");
    println!("|---|---:|---:|");
    for server in [Server::Ombootd, Server::Kea, Server::Dnsmasq] {
        let r = best(server);
        let ratio = if r > 0.0 {
            format!("{:.2}x", ours / r)
        } else {
            "–".into()
        };
        println!("| {} | {r:.0} | {ratio} |", server.name());
    }
    let out = workspace_root().join("build/bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("dhcp.json"), serde_json::to_vec_pretty(&steps)?)?;
    println!("\nwrote {}", out.join("dhcp.json").display());
    Ok(())
}

/// One step: a fresh lab and server, perfdhcp at `asked` exchanges per second for `secs`.
fn measure(server: Server, asked: u32, secs: u64, a: &Anchors) -> anyhow::Result<Step> {
    let lab =
        Lab::with_master("bench-dhcp", MASTER.parse()?, 16).context("cannot create the lab")?;
    let result = (|| -> anyhow::Result<Step> {
        let _server = start(&lab, server, a)?;
        let client = lab.add_client_ns("pd", true)?;
        lab.add_client_addr(&client, &format!("{PERFDHCP_ADDR}/16"))?;
        let mut cmd = Command::new(&a.perfdhcp);
        cmd.args(["-4", "-l", PERFDHCP_ADDR])
            .args(["-r", &asked.to_string()])
            // Every exchange a new client: each takes a new lease, which each server persists.
            .args(["-R", "60000"])
            .args(["-p", &secs.to_string()])
            // Answers still on their way when sending stops are answers, not drops.
            .args(["-W", "2000000"])
            .arg(MASTER)
            .env("LD_LIBRARY_PATH", &a.libs);
        let out = lab.run(cmd, client.netns(), Duration::from_secs(secs + 60))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (acks, drops_pct) = parse_report(&text).with_context(|| {
            format!(
                "no perfdhcp report: {}{}",
                text,
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
        Ok(Step {
            server: server.name(),
            asked,
            rate: acks / secs as f64,
            drops_pct,
        })
    })();
    lab.close(result)
}

/// Starts `server` in the lab, ready to answer.
fn start(lab: &Lab, server: Server, a: &Anchors) -> anyhow::Result<Proc> {
    let state = lab.dir().join("state");
    std::fs::create_dir_all(&state)?;
    match server {
        Server::Ombootd => {
            let image = omlab::fixture::fake_image(lab.dir(), 1 << 20)?;
            let mut cfg = lab.ombootd_config(&image);
            cfg.unknown_macs = bootserver::config::wire::UnknownMacs::Boot;
            cfg.pool = Some(omlab::config::set(format!("{}-{}", POOL.0, POOL.1)));
            // perfdhcp speaks as one relay: lift the per-source budget, or this measures it.
            cfg.dhcp_source_rate = omlab::config::set(1_000_000);
            let path = lab.write_ombootd_config(&cfg)?;
            Ok(lab.start_ombootd(&workspace_root().join("target/release/ombootd"), &path)?)
        }
        Server::Kea => {
            let config = serde_json::json!({"Dhcp4": {
                "interfaces-config": {"interfaces": [lab.bridge()], "dhcp-socket-type": "udp"},
                "lease-database": {"type": "memfile", "persist": true,
                    "name": state.join("kea-leases4.csv"), "lfc-interval": 0},
                "valid-lifetime": 3600,
                "subnet4": [{"id": 1, "subnet": "10.77.0.0/16",
                    "pools": [{"pool": format!("{} - {}", POOL.0, POOL.1)}]}],
                "loggers": [{"name": "kea-dhcp4", "severity": "WARN",
                    "output_options": [{"output": "stderr"}]}],
            }});
            let path = lab.dir().join("kea.json");
            std::fs::write(&path, serde_json::to_vec_pretty(&config)?)?;
            let mut cmd = Command::new(&a.kea);
            cmd.arg("-c")
                .arg(&path)
                .env("LD_LIBRARY_PATH", &a.libs)
                .env("KEA_PIDFILE_DIR", &state)
                .env("KEA_LOCKFILE_DIR", &state);
            let p = lab.spawn("kea-dhcp4", cmd, lab.netns())?;
            std::thread::sleep(Duration::from_secs(2));
            Ok(p)
        }
        Server::Dnsmasq => {
            let mut cmd = a.dnsmasq.command(&state, "dnsmasq");
            cmd.arg("--no-ping")
                .arg(format!("--interface={}", lab.bridge()))
                .arg("--bind-interfaces")
                .arg(format!("--dhcp-range={},{},255.255.0.0,1h", POOL.0, POOL.1))
                .arg("--dhcp-lease-max=70000");
            let p = lab.spawn("dnsmasq", cmd, lab.netns())?;
            std::thread::sleep(Duration::from_secs(1));
            Ok(p)
        }
    }
}

/// perfdhcp's final report: the ACKs received (completed exchanges) and the share of requests
/// unanswered (DISCOVER-OFFER and REQUEST-ACK together).
fn parse_report(text: &str) -> Option<(f64, f64)> {
    let section = |name: &str| -> Option<&str> {
        let header = format!("***Statistics for: {name}***");
        let rest = &text[text.find(&header)? + header.len()..];
        Some(rest.find("***").map_or(rest, |end| &rest[..end]))
    };
    let field = |text: &str, name: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
    };
    let (offers, acks) = (section("DISCOVER-OFFER")?, section("REQUEST-ACK")?);
    let sent = field(offers, "sent packets:")? + field(acks, "sent packets:")?;
    let drops = field(offers, "drops:")? + field(acks, "drops:")?;
    let received = field(acks, "received packets:")?;
    (sent > 0.0).then(|| (received, 100.0 * drops / sent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_rate_and_the_drops_of_both_exchanges() {
        let report = "\
***Rate statistics***
Rate: 1996.5 4-way exchanges/second, expected rate: 2000

***Statistics for: DISCOVER-OFFER***
sent packets: 1000
received packets: 990
drops: 10
drops ratio: 1 %

***Statistics for: REQUEST-ACK***
sent packets: 990
received packets: 980
drops: 10
drops ratio: 1.01 %
";
        let (acks, drops) = parse_report(report).expect("a report");
        assert_eq!(acks, 980.0);
        assert!((drops - 100.0 * 20.0 / 1990.0).abs() < 1e-9);
        assert_eq!(parse_report("nothing"), None);
    }
}
