//! What the dashboard shows at one moment, built by a pure function from what the master knows:
//! the node table, the boot stages, the observer's cluster table, and the jobs and migrations
//! the nodes reported. The page (`assets/app.js`) renders exactly this JSON.

use std::collections::HashMap;

use migrator::api::{Flags, Load, MemberState, NodeInfo};
use migrator::job::record::{JobState, JobView};
use migrator::migration::history::MoveEvent;
use serde::Serialize;

use crate::boot_stage::{Seen, Stage};
use crate::config::Node;
use crate::mac::MacAddr;

/// The whole page's data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    /// When it was made, ms since the epoch.
    pub now_ms: u64,
    /// The master.
    pub master: Master,
    /// Every table node, then nodes the observer sees that the table lacks.
    pub nodes: Vec<NodeView>,
    /// Every MAC seen booting, newest first.
    pub boot: Vec<BootRow>,
    /// Unknown MACs waiting to be approved.
    pub pending: Vec<Pending>,
    /// The cluster's jobs; `None` until the nodes were asked.
    pub jobs: Option<Vec<JobRow>>,
    /// The cluster's kept migrations, oldest first.
    pub moves: Vec<MoveEvent>,
}

/// The master in the header.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Master {
    /// Its name in the cluster table.
    pub name: String,
    /// Its address on the cluster network.
    pub ip: String,
    /// The served interface.
    pub interface: String,
}

/// A node's state on the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// omd answers.
    Up,
    /// omd missed probes.
    Suspect,
    /// Declared dead, or gone from the table after joining.
    Dead,
    /// A boot is under way (a stage before omd was seen).
    Booting,
    /// Never seen.
    Off,
}

/// A stage and how long ago it was seen.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageView {
    /// Its name in the JSON.
    pub stage: Stage,
    /// What the page calls it.
    pub label: &'static str,
    /// Seconds since.
    pub ago_s: f64,
}

/// One node card.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeView {
    /// Host name.
    pub name: String,
    /// Boot MAC ("" for a node outside the table).
    pub mac: String,
    /// Address.
    pub ip: String,
    /// State.
    pub state: NodeState,
    /// The last boot stage seen.
    pub stage: Option<StageView>,
    /// Its latest load record.
    pub load: Option<Load>,
    /// That record's age.
    pub load_age_ms: Option<u64>,
    /// Its flags.
    pub flags: Flags,
    /// Jobs running on it now.
    pub jobs: usize,
}

/// One row of the boot view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BootRow {
    /// The MAC.
    pub mac: String,
    /// Its table name, if it has one.
    pub name: Option<String>,
    /// Its reserved address, if it has one.
    pub ip: Option<String>,
    /// Stage name.
    pub stage: Stage,
    /// What the page calls it.
    pub label: &'static str,
    /// Seconds since.
    pub ago_s: f64,
    /// The boot is over (omd joined).
    pub done: bool,
}

/// An unknown MAC waiting to be approved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pending {
    /// The MAC.
    pub mac: String,
    /// Seconds since it last asked.
    pub ago_s: f64,
}

/// One job row: the node's view plus the owner's name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobRow {
    /// What the nodes reported.
    #[serde(flatten)]
    pub view: JobView,
    /// The owner's name in the image's passwd (the uid when it has none).
    pub user: String,
}

/// Everything [`build`] reads.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// Now, ms since the epoch.
    pub now_ms: u64,
    /// The master.
    pub master: &'a Master,
    /// The node table.
    pub table: &'a [Node],
    /// The observer's cluster table (`None`: not observing).
    pub cluster: Option<&'a [NodeInfo]>,
    /// Boot stages by MAC (times in seconds).
    pub stages: &'a [(MacAddr, Seen)],
    /// The jobs the nodes reported, if they were asked.
    pub jobs: Option<&'a [JobView]>,
    /// Their migrations.
    pub moves: &'a [MoveEvent],
    /// Names of uids.
    pub users: &'a HashMap<u32, String>,
    /// MACs waiting for approval, with when they last asked (seconds).
    pub pending: &'a [(MacAddr, u64)],
}

fn ago(now_ms: u64, at_s: u64) -> f64 {
    (now_ms.saturating_sub(at_s * 1000)) as f64 / 1000.0
}

/// The state of a node from its cluster row and its last boot stage. A node that is declared
/// dead but shows a boot stage other than "omd joined" is booting again.
pub fn state_of(row: Option<&NodeInfo>, stage: Option<Stage>) -> NodeState {
    match (row.map(|r| r.state), stage) {
        (Some(MemberState::Alive), _) => NodeState::Up,
        (Some(MemberState::Suspect), _) => NodeState::Suspect,
        (_, Some(s)) if s != Stage::Omd => NodeState::Booting,
        (Some(MemberState::Dead), _) | (None, Some(Stage::Omd)) => NodeState::Dead,
        (None, _) => NodeState::Off,
    }
}

/// Build the snapshot.
pub fn build(i: Inputs<'_>) -> Snapshot {
    let rows: Vec<&NodeInfo> = i
        .cluster
        .unwrap_or_default()
        .iter()
        .filter(|r| !r.observer)
        .collect();
    let stage_of: HashMap<MacAddr, Seen> = i.stages.iter().copied().collect();
    let running = |name: &str| {
        i.jobs
            .unwrap_or_default()
            .iter()
            .filter(|j| j.node == name && j.state != JobState::Exited)
            .count()
    };
    let view = |name: &str, mac: String, ip: String, row: Option<&NodeInfo>, seen: Option<Seen>| {
        NodeView {
            name: name.to_owned(),
            mac,
            ip,
            state: state_of(row, seen.map(|s| s.stage)),
            stage: seen.map(|s| StageView {
                stage: s.stage,
                label: s.stage.label(),
                ago_s: ago(i.now_ms, s.at),
            }),
            // A dead node's last record is history, not its load.
            load: row
                .filter(|r| r.state != MemberState::Dead)
                .and_then(|r| r.load),
            load_age_ms: row
                .filter(|r| r.state != MemberState::Dead)
                .and_then(|r| r.load_age_ms),
            flags: row.map(|r| r.flags).unwrap_or_default(),
            jobs: running(name),
        }
    };
    let mut nodes: Vec<NodeView> = i
        .table
        .iter()
        .map(|n| {
            let row = rows
                .iter()
                .find(|r| r.ip() == Some(n.ip))
                .or_else(|| rows.iter().find(|r| r.name == n.name))
                .copied();
            view(
                &n.name,
                n.mac.to_string(),
                n.ip.to_string(),
                row,
                stage_of.get(&n.mac).copied(),
            )
        })
        .collect();
    for r in &rows {
        let in_table = i
            .table
            .iter()
            .any(|n| r.ip() == Some(n.ip) || r.name == n.name);
        if !in_table {
            let ip = r.ip().map(|a| a.to_string()).unwrap_or_default();
            nodes.push(view(&r.name, String::new(), ip, Some(r), None));
        }
    }
    let mut boot: Vec<BootRow> = i
        .stages
        .iter()
        .map(|(mac, s)| {
            let node = i.table.iter().find(|n| n.mac == *mac);
            BootRow {
                mac: mac.to_string(),
                name: node.map(|n| n.name.clone()),
                ip: node.map(|n| n.ip.to_string()),
                stage: s.stage,
                label: s.stage.label(),
                ago_s: ago(i.now_ms, s.at),
                done: s.stage == Stage::Omd,
            }
        })
        .collect();
    boot.sort_by(|a, b| a.ago_s.total_cmp(&b.ago_s).then(a.mac.cmp(&b.mac)));
    let jobs = i.jobs.map(|jobs| {
        jobs.iter()
            .map(|j| JobRow {
                user: i
                    .users
                    .get(&j.uid)
                    .cloned()
                    .unwrap_or_else(|| j.uid.to_string()),
                view: j.clone(),
            })
            .collect()
    });
    Snapshot {
        now_ms: i.now_ms,
        master: i.master.clone(),
        nodes,
        boot,
        pending: i
            .pending
            .iter()
            .map(|(m, at)| Pending {
                mac: m.to_string(),
                ago_s: ago(i.now_ms, *at),
            })
            .collect(),
        jobs,
        moves: i.moves.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use migrator::job::record::JobId;
    use std::net::Ipv4Addr;

    fn node(n: u8) -> Node {
        Node {
            mac: MacAddr([0x52, 0x54, 0, 0x77, 0, n]),
            name: format!("node{n}"),
            ip: Ipv4Addr::new(10, 77, 0, 10 + n),
        }
    }

    fn row(n: u8, state: MemberState) -> NodeInfo {
        NodeInfo {
            id: format!("{n:016x}"),
            name: format!("node{n}"),
            addr: format!("10.77.0.{}:7946", 10 + n),
            state,
            is_self: false,
            observer: false,
            load: Some(Load {
                cpus: 1,
                speed: 1000,
                load: 0.5,
                loadavg1: 0.5,
                mem_total: 1 << 29,
                mem_free: 1 << 28,
                guests: 0,
                migration: true,
            }),
            load_age_ms: Some(300),
            flags: Flags {
                block: n == 2,
                ..Flags::default()
            },
        }
    }

    fn job(node: &str, state: JobState) -> JobView {
        JobView {
            id: JobId::new("node1", 7),
            uid: 1000,
            command: "omwork cpu 90".into(),
            home: "node1".into(),
            node: node.into(),
            state,
            migrations: 1,
            pid: 70,
            unmovable: None,
        }
    }

    #[test]
    fn states_follow_membership_and_boot_stages() {
        let alive = row(1, MemberState::Alive);
        let dead = row(1, MemberState::Dead);
        assert_eq!(state_of(Some(&alive), Some(Stage::Omd)), NodeState::Up);
        assert_eq!(state_of(Some(&dead), Some(Stage::Omd)), NodeState::Dead);
        assert_eq!(state_of(None, Some(Stage::Omd)), NodeState::Dead);
        assert_eq!(
            state_of(Some(&dead), Some(Stage::Kernel)),
            NodeState::Booting
        );
        assert_eq!(state_of(None, Some(Stage::Dhcp)), NodeState::Booting);
        assert_eq!(state_of(None, None), NodeState::Off);
    }

    #[test]
    fn nodes_boot_rows_and_jobs_come_together() {
        let table = [node(1), node(2), node(3)];
        let mut ombootd = row(9, MemberState::Alive);
        ombootd.observer = true;
        let cluster = [
            ombootd,
            row(1, MemberState::Alive),
            row(2, MemberState::Dead),
            row(4, MemberState::Alive),
        ];
        let stages = [
            (
                node(1).mac,
                Seen {
                    stage: Stage::Omd,
                    at: 90,
                },
            ),
            (
                node(3).mac,
                Seen {
                    stage: Stage::Tftp,
                    at: 99,
                },
            ),
            (
                MacAddr([2, 0, 0, 0, 0, 1]),
                Seen {
                    stage: Stage::Dhcp,
                    at: 100,
                },
            ),
        ];
        let jobs = [
            job("node1", JobState::Running),
            job("node1", JobState::Exited),
        ];
        let users = HashMap::from([(1000, "alice".to_owned())]);
        let master = Master {
            name: "ombootd".into(),
            ip: "10.77.0.1".into(),
            interface: "ombr0".into(),
        };
        let s = build(Inputs {
            now_ms: 100_500,
            master: &master,
            table: &table,
            cluster: Some(&cluster),
            stages: &stages,
            jobs: Some(&jobs),
            moves: &[],
            users: &users,
            pending: &[(MacAddr([2, 0, 0, 0, 0, 7]), 99)],
        });
        let names: Vec<(&str, NodeState)> =
            s.nodes.iter().map(|n| (n.name.as_str(), n.state)).collect();
        assert_eq!(
            names,
            [
                ("node1", NodeState::Up),
                ("node2", NodeState::Dead),
                ("node3", NodeState::Booting),
                ("node4", NodeState::Up),
            ]
        );
        assert_eq!(s.nodes[0].jobs, 1);
        assert!(s.nodes[0].load.is_some());
        assert!(s.nodes[1].load.is_none(), "a dead node shows no load");
        assert!(s.nodes[1].flags.block);
        assert_eq!(s.nodes[3].mac, "");
        // Newest first; the unknown MAC has no name.
        assert_eq!(s.boot[0].name, None);
        assert_eq!(s.boot[1].name.as_deref(), Some("node3"));
        assert!((s.boot[1].ago_s - 1.5).abs() < 1e-9);
        assert!(s.boot[2].done);
        assert_eq!(s.jobs.as_ref().map(|j| j[0].user.as_str()), Some("alice"));
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["nodes"][2]["state"], "booting");
        assert_eq!(json["nodes"][2]["stage"]["label"], "TFTP");
        assert_eq!(json["jobs"][0]["id"], "node1.7");
        assert_eq!(json["jobs"][0]["user"], "alice");
        assert_eq!(json["pending"][0]["mac"], "02:00:00:00:00:07");
    }
}
