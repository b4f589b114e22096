//! `/metrics`: what the status API holds, as Prometheus text (exposition format 0.0.4): counters
//! of every service, the leases, and per node its state, its last boot stage and when, and its
//! load. A pure renderer over [`Status`](super::Status).

use std::fmt::Write;

use super::Status;
use crate::boot_stage::Stage;

/// Label values escape `\`, `"` and newlines.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

const STAGES: [Stage; 9] = [
    Stage::Dhcp,
    Stage::Tftp,
    Stage::Loader,
    Stage::Script,
    Stage::Kernel,
    Stage::Initrd,
    Stage::Key,
    Stage::Nfs,
    Stage::Omd,
];

fn stage_name(s: Stage) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The text for `s`, leases counted as live when they expire after `now` (seconds).
pub fn render(s: &Status, now: u64) -> String {
    let mut out = String::new();
    family(
        &mut out,
        "ombootd_dhcp_datagrams_total",
        "counter",
        "DHCP datagrams by what became of them.",
    );
    let d = &s.dhcp;
    for (what, n) in [
        ("received", d.received),
        ("replied", d.replied),
        ("malformed", d.malformed),
        ("not_dhcp", d.not_dhcp),
        ("unknown_client", d.unknown_client),
        ("ignored", d.ignored),
        ("failed", d.failed),
        ("rate_limited", d.rate_limited),
        ("pool_exhausted", d.pool_exhausted),
        ("declined", d.declined),
    ] {
        let _ = writeln!(out, "ombootd_dhcp_datagrams_total{{result=\"{what}\"}} {n}");
    }
    family(
        &mut out,
        "ombootd_tftp_requests_total",
        "counter",
        "TFTP requests and transfers by result.",
    );
    for what in [
        "sent",
        "ended_early",
        "gave_up",
        "refused",
        "not_found",
        "malformed",
        "unknown_tid",
        "busy",
        "limited",
    ] {
        let n = s
            .tftp
            .get(what)
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        let _ = writeln!(out, "ombootd_tftp_requests_total{{result=\"{what}\"}} {n}");
    }
    family(
        &mut out,
        "ombootd_nfs_refused_total",
        "counter",
        "NFS connections refused, by export and reason.",
    );
    let exports = [
        ("root", Some(&s.nfs_refused)),
        ("cluster", s.cluster_dir_refused.as_ref()),
    ];
    for (export, r) in exports {
        if let Some(r) = r {
            let _ = writeln!(
                out,
                "ombootd_nfs_refused_total{{export=\"{export}\",reason=\"outside_subnet\"}} {}",
                r.outside
            );
            let _ = writeln!(
                out,
                "ombootd_nfs_refused_total{{export=\"{export}\",reason=\"unprivileged_port\"}} {}",
                r.unprivileged
            );
        }
    }
    family(
        &mut out,
        "ombootd_leases",
        "gauge",
        "Leases of table nodes that have not expired.",
    );
    let live = s
        .nodes
        .iter()
        .filter(|n| n.lease.as_ref().is_some_and(|l| l.expires > now))
        .count();
    let _ = writeln!(out, "ombootd_leases {live}");
    family(
        &mut out,
        "ombootd_node_boot_stage",
        "gauge",
        "1 for the last boot stage seen of each node (DHCP .. omd joined).",
    );
    for n in &s.nodes {
        let Some(seen) = n.stage else { continue };
        for st in STAGES {
            let _ = writeln!(
                out,
                "ombootd_node_boot_stage{{node=\"{}\",mac=\"{}\",stage=\"{}\"}} {}",
                label(&n.name),
                n.mac,
                stage_name(st),
                u8::from(seen.stage == st)
            );
        }
    }
    family(
        &mut out,
        "ombootd_node_boot_stage_timestamp_seconds",
        "gauge",
        "When that stage was seen, seconds since the epoch.",
    );
    for n in &s.nodes {
        if let Some(seen) = n.stage {
            let _ = writeln!(
                out,
                "ombootd_node_boot_stage_timestamp_seconds{{node=\"{}\",mac=\"{}\"}} {}",
                label(&n.name),
                n.mac,
                seen.at
            );
        }
    }
    family(
        &mut out,
        "ombootd_unknown_macs",
        "gauge",
        "MACs outside the node table seen asking for DHCP.",
    );
    let _ = writeln!(out, "ombootd_unknown_macs {}", s.unknown.len());
    family(
        &mut out,
        "ombootd_pending_macs",
        "gauge",
        "MACs waiting for `ombootd node approve`.",
    );
    let _ = writeln!(out, "ombootd_pending_macs {}", s.pending.len());
    if let Some(rows) = &s.cluster {
        family(
            &mut out,
            "ombootd_node_up",
            "gauge",
            "1 while the node's omd is alive in the cluster as the master observes it.",
        );
        for r in rows.iter().filter(|r| !r.observer) {
            let up = u8::from(r.state == migrator::api::MemberState::Alive);
            let _ = writeln!(out, "ombootd_node_up{{node=\"{}\"}} {up}", label(&r.name));
        }
        family(
            &mut out,
            "ombootd_node_load",
            "gauge",
            "The node's load, normalised: 1.0 = one standard CPU busy per CPU.",
        );
        for r in rows.iter().filter(|r| !r.observer) {
            if let Some(l) = r
                .load
                .filter(|_| r.state != migrator::api::MemberState::Dead)
            {
                let _ = writeln!(
                    out,
                    "ombootd_node_load{{node=\"{}\"}} {}",
                    label(&r.name),
                    l.load
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot_stage::Seen;
    use crate::dhcp::stats::DhcpCounts;
    use crate::http::NodeStatus;
    use crate::nfs::gate::RefusedCounts;

    #[test]
    fn counters_stages_and_escaped_labels() {
        let s = Status {
            interface: "ombr0".into(),
            master_ip: "10.77.0.1".into(),
            nodes: vec![NodeStatus {
                name: "no\"de1".into(),
                mac: "52:54:00:77:00:01".into(),
                ip: "10.77.0.11".into(),
                lease: None,
                stage: Some(Seen {
                    stage: Stage::Kernel,
                    at: 1700,
                }),
            }],
            unknown: vec![],
            pending: vec![],
            dhcp: DhcpCounts {
                received: 5,
                replied: 4,
                ..DhcpCounts::default()
            },
            tftp: serde_json::json!({"sent": 2, "refused": 1, "not_found": 0}),
            nfs_refused: RefusedCounts {
                outside: 3,
                unprivileged: 0,
            },
            cluster_dir_refused: None,
            cluster: None,
        };
        let text = render(&s, 0);
        assert!(
            text.contains("ombootd_dhcp_datagrams_total{result=\"received\"} 5\n"),
            "{text}"
        );
        assert!(text.contains("ombootd_tftp_requests_total{result=\"refused\"} 1\n"));
        assert!(
            text.contains(
                "ombootd_nfs_refused_total{export=\"root\",reason=\"outside_subnet\"} 3\n"
            )
        );
        assert!(text.contains("ombootd_node_boot_stage{node=\"no\\\"de1\",mac=\"52:54:00:77:00:01\",stage=\"kernel\"} 1\n"), "{text}");
        assert!(text.contains("stage=\"dhcp\"} 0\n"));
        assert!(text.contains("ombootd_node_boot_stage_timestamp_seconds{node=\"no\\\"de1\",mac=\"52:54:00:77:00:01\"} 1700\n"));
        // Every sample line belongs to a declared family.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(text.contains(&format!("# TYPE {name} ")), "{line}");
        }
    }
}
