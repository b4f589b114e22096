//! `omctl nodes`: the cluster table, this node first (marked `*`), then by name.
//! Rows are built by pure functions from omd's [`NodeInfo`] list; `--json` prints that list raw.

use anyhow::{Context, Result};
use migrator::api::{Flags, MemberState, NodeInfo};

use crate::client::Omd;
use crate::table::{self, Column};
use crate::units;

/// Runs the command.
pub fn run(omd: &Omd, json: bool) -> Result<()> {
    let mut nodes = omd.nodes()?;
    sort(&mut nodes);
    if json {
        let text = serde_json::to_string_pretty(&nodes).context("encoding the node list")?;
        println!("{text}");
    } else {
        print!("{}", render(&nodes));
    }
    Ok(())
}

/// This node first, then by name, then by id (names may clash between misconfigured nodes).
pub fn sort(nodes: &mut [NodeInfo]) {
    nodes.sort_by(|a, b| {
        b.is_self
            .cmp(&a.is_self)
            .then_with(|| a.name.cmp(&b.name))
            .then_with(|| a.id.cmp(&b.id))
    });
}

const COLUMNS: [Column; 12] = [
    // The unlabelled mark column: `*` for the node answering, like `mosctl` marked "this node".
    Column::left(" "),
    Column::left("ID"),
    Column::left("NAME"),
    Column::left("ADDR"),
    Column::left("STATE"),
    Column::right("LOAD"),
    Column::right("CPUS"),
    Column::right("SPEED"),
    Column::right("MEM(free/total)"),
    Column::right("GUESTS"),
    Column::left("MIGRATE"),
    Column::left("FLAGS"),
];

/// The table text, rows in the order given.
pub fn render(nodes: &[NodeInfo]) -> String {
    let rows: Vec<Vec<String>> = nodes.iter().map(row).collect();
    table::render(&COLUMNS, &rows)
}

/// One table row. Observers carry no load, so their load columns read `-`.
pub fn row(n: &NodeInfo) -> Vec<String> {
    let dash = || "-".to_owned();
    let (load, cpus, speed, mem, guests, migrate) = match (&n.load, n.observer) {
        (Some(l), false) => (
            units::load(l.load),
            l.cpus.to_string(),
            l.speed.to_string(),
            format!("{}/{}", units::bytes(l.mem_free), units::bytes(l.mem_total)),
            l.guests.to_string(),
            if l.migration { "yes" } else { "no" }.to_owned(),
        ),
        _ => (dash(), dash(), dash(), dash(), dash(), dash()),
    };
    vec![
        if n.is_self { "*" } else { "" }.to_owned(),
        n.id.clone(),
        n.name.clone(),
        n.addr.clone(),
        state_name(n.state).to_owned(),
        load,
        cpus,
        speed,
        mem,
        guests,
        migrate,
        flags_text(&n.flags, n.observer),
    ]
}

/// Lower-case state word, as in the API.
pub fn state_name(s: MemberState) -> &'static str {
    match s {
        MemberState::Alive => "alive",
        MemberState::Suspect => "suspect",
        MemberState::Dead => "dead",
    }
}

/// Set flags as comma-separated words (`observer` first), or `-` when none.
pub fn flags_text(f: &Flags, observer: bool) -> String {
    let mut words = f.names();
    if observer {
        words.insert(0, "observer");
    }
    if words.is_empty() {
        "-".to_owned()
    } else {
        words.join(",")
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use migrator::api::Load;

    const GIB: u64 = 1024 * 1024 * 1024;

    /// Three nodes as a small cluster shows them: this node, a dead one, the master's observer.
    pub fn sample() -> Vec<NodeInfo> {
        let load = |load, free| Load {
            cpus: 2,
            speed: 1000,
            load,
            loadavg1: load * 2.0,
            mem_total: 2 * GIB,
            mem_free: free,
            guests: 0,
            migration: true,
        };
        vec![
            NodeInfo {
                id: "00000000000000b2".into(),
                name: "node2".into(),
                addr: "10.77.0.12:7946".into(),
                state: MemberState::Dead,
                is_self: false,
                observer: false,
                load: Some(load(1.5, GIB / 2)),
                load_age_ms: Some(9000),
                flags: Flags::default(),
            },
            NodeInfo {
                id: "00000000000000a1".into(),
                name: "master".into(),
                addr: "10.77.0.1:7946".into(),
                state: MemberState::Alive,
                is_self: false,
                observer: true,
                load: None,
                load_age_ms: None,
                flags: Flags::default(),
            },
            NodeInfo {
                id: "00000000000000b1".into(),
                name: "node1".into(),
                addr: "10.77.0.11:7946".into(),
                state: MemberState::Alive,
                is_self: true,
                observer: false,
                load: Some(load(0.25, GIB)),
                load_age_ms: Some(300),
                flags: Flags {
                    stay: true,
                    block: true,
                    ..Flags::default()
                },
            },
        ]
    }

    #[test]
    fn self_first_then_by_name() {
        let mut nodes = sample();
        sort(&mut nodes);
        let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["node1", "master", "node2"]);
    }

    #[test]
    fn table_text() {
        let mut nodes = sample();
        sort(&mut nodes);
        let expected = concat!(
            "   ID                NAME    ADDR             STATE  LOAD  CPUS  SPEED  MEM(free/total)  GUESTS  MIGRATE  FLAGS\n",
            "*  00000000000000b1  node1   10.77.0.11:7946  alive  0.25     2   1000        1.0G/2.0G       0  yes      stay,block\n",
            "   00000000000000a1  master  10.77.0.1:7946   alive     -     -      -                -       -  -        observer\n",
            "   00000000000000b2  node2   10.77.0.12:7946  dead   1.50     2   1000        512M/2.0G       0  yes      -\n",
        );
        assert_eq!(render(&nodes), expected);
    }

    #[test]
    fn flag_words() {
        assert_eq!(flags_text(&Flags::default(), false), "-");
        let all = Flags {
            stay: true,
            lstay: true,
            block: true,
            quiet: true,
        };
        assert_eq!(flags_text(&all, true), "observer,stay,lstay,block,quiet");
    }
}
