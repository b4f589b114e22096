//! `ombootd status`: the master's `/api/status` as a table an operator reads at a glance, one
//! row per table node (its state, its last boot stage and how long ago, its lease, its load),
//! then the MACs outside the table. A pure renderer; `--json` prints the document itself.

use std::fmt::Write;

use migrator::api::NodeInfo;
use serde_json::Value;

use crate::boot_stage::Seen;
use crate::dashboard::snapshot::{NodeState, state_of};

fn ago(now: u64, at: u64) -> String {
    let s = now.saturating_sub(at);
    match s {
        0..120 => format!("{s} s ago"),
        120..7200 => format!("{} min ago", s / 60),
        _ => format!("{} h ago", s / 3600),
    }
}

fn state_word(s: NodeState) -> &'static str {
    match s {
        NodeState::Up => "up",
        NodeState::Suspect => "suspect",
        NodeState::Dead => "dead",
        NodeState::Booting => "booting",
        NodeState::Off => "off",
    }
}

/// The table for the status document `doc`, ages counted to `now` (seconds since the epoch).
pub fn render(doc: &Value, now: u64) -> String {
    let rows: Vec<NodeInfo> = serde_json::from_value(doc["cluster"].clone()).unwrap_or_default();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<12} {:<17} {:<15} {:<8} {:<12} {:<11} {:<14} {:>5}",
        "NODE", "MAC", "IP", "STATE", "STAGE", "SEEN", "LEASE", "LOAD"
    );
    for n in doc["nodes"].as_array().into_iter().flatten() {
        let s = |k: &str| n[k].as_str().unwrap_or("-").to_owned();
        let (name, ip) = (s("name"), s("ip"));
        let seen: Option<Seen> = serde_json::from_value(n["stage"].clone()).ok();
        let row = rows.iter().find(|r| {
            !r.observer && (r.ip().map(|a| a.to_string()) == Some(ip.clone()) || r.name == name)
        });
        let state = state_of(row, seen.map(|s| s.stage));
        let lease = match n["lease"]["expires"].as_u64() {
            Some(e) if e > now => format!("{} min left", (e - now) / 60),
            Some(_) => "expired".to_owned(),
            None => "-".to_owned(),
        };
        let load = row
            .filter(|_| matches!(state, NodeState::Up | NodeState::Suspect))
            .and_then(|r| r.load)
            .map_or_else(|| "-".to_owned(), |l| format!("{:.2}", l.load));
        let _ = writeln!(
            out,
            "{:<12} {:<17} {:<15} {:<8} {:<12} {:<11} {:<14} {:>5}",
            name,
            s("mac"),
            ip,
            state_word(state),
            seen.map_or("-", |s| s.stage.label()),
            seen.map_or_else(|| "-".to_owned(), |s| ago(now, s.at)),
            lease,
            load
        );
    }
    let unknown = doc["unknown"].as_array().cloned().unwrap_or_default();
    if !unknown.is_empty() {
        let _ = writeln!(out, "\nMACs not in the node table ({}):", unknown.len());
        for u in &unknown {
            let seen: Option<Seen> = serde_json::from_value(u["stage"].clone()).ok();
            let _ = writeln!(
                out,
                "  {:<17} {} {}",
                u["mac"].as_str().unwrap_or("-"),
                seen.map_or("-", |s| s.stage.label()),
                seen.map_or_else(String::new, |s| ago(now, s.at))
            );
        }
    }
    let d = &doc["dhcp"];
    let _ = writeln!(
        out,
        "\nDHCP: {} received, {} replied, {} from unknown MACs, {} rate-limited, {} malformed; TFTP: {} sent, {} refused",
        d["received"],
        d["replied"],
        d["unknown_client"],
        d["rate_limited"],
        d["malformed"],
        doc["tftp"]["sent"],
        doc["tftp"]["refused"]
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_per_node_with_state_stage_lease_and_load() {
        let doc = serde_json::json!({
            "nodes": [
                {"name": "node1", "mac": "52:54:00:77:00:01", "ip": "10.77.0.11",
                 "lease": {"mac": "52:54:00:77:00:01", "ip": "10.77.0.11", "name": "node1", "state": "bound", "expires": 4600},
                 "stage": {"stage": "omd", "at": 900}},
                {"name": "node2", "mac": "52:54:00:77:00:02", "ip": "10.77.0.12", "lease": null,
                 "stage": {"stage": "tftp", "at": 990}},
                {"name": "node3", "mac": "52:54:00:77:00:03", "ip": "10.77.0.13", "lease": null, "stage": null}
            ],
            "unknown": [{"mac": "02:00:00:00:00:01", "stage": {"stage": "dhcp", "at": 999}}],
            "dhcp": {"received": 9, "replied": 7, "unknown_client": 2, "rate_limited": 0, "malformed": 0},
            "tftp": {"sent": 3, "refused": 0},
            "cluster": [{"id": "1", "name": "node1", "addr": "10.77.0.11:7946", "state": "alive",
                         "is_self": false, "observer": false,
                         "load": {"cpus": 1, "speed": 1000, "load": 0.25, "loadavg1": 0.25,
                                  "mem_total": 1, "mem_free": 1, "guests": 0, "migration": true},
                         "load_age_ms": 10, "flags": {"stay": false, "lstay": false, "block": false, "quiet": false}}]
        });
        let t = render(&doc, 1000);
        let lines: Vec<&str> = t.lines().collect();
        assert!(
            lines[1].starts_with("node1")
                && lines[1].contains(" up ")
                && lines[1].contains("omd joined")
                && lines[1].contains("60 min left")
                && lines[1].ends_with("0.25"),
            "{t}"
        );
        assert!(
            lines[2].contains("booting")
                && lines[2].contains("TFTP")
                && lines[2].contains("10 s ago"),
            "{t}"
        );
        assert!(lines[3].contains(" off ") && lines[3].ends_with('-'), "{t}");
        assert!(
            t.contains("MACs not in the node table (1):\n  02:00:00:00:00:01 DHCP 1 s ago"),
            "{t}"
        );
        assert!(
            t.contains("DHCP: 9 received, 7 replied, 2 from unknown MACs"),
            "{t}"
        );
    }
}
