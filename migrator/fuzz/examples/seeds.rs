//! Writes the gossip_wire seeds from the real encoders:
//! `cargo run --manifest-path migrator/fuzz/Cargo.toml --example seeds`.

use std::path::Path;

use migrator::identity::{NodeId, NodeIdentity};
use migrator::key::ClusterKey;
use migrator::wire::{self, Kind, LoadRecord};

fn main() -> std::io::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds/gossip_wire");
    std::fs::create_dir_all(&dir)?;
    // The key the target decodes with.
    let key = ClusterKey::from_bytes(vec![7; 32]).expect("a 32-byte key");
    let record = |id, flags| LoadRecord {
        id: NodeId(id),
        seq: 41,
        age_ms: if id == 1 { 0 } else { 350 },
        cpus: 4,
        speed: 2400,
        load_milli: 1250,
        loadavg1_milli: 5000,
        mem_total: 4 << 30,
        mem_free: 3 << 30,
        guests: 1,
        flags,
    };
    let load = wire::encode_load(&[
        record(1, wire::FLAG_MIGRATION),
        record(2, wire::FLAG_MIGRATION | 1),
        record(3, wire::FLAG_OBSERVER),
    ]);
    let announce = wire::encode_announce(&NodeIdentity {
        id: NodeId(0x5254_0077_0001),
        name: "node1".into(),
        addr: "10.77.0.11:7946".parse().expect("an address"),
        generation: 1_700_000_000_000,
        observer: false,
    });
    let from = wire::Sender {
        id: NodeId(0x5254_0077_0001),
        generation: 1_700_000_000_000,
        seq: 7,
        addr: "10.77.0.11:7946".parse().expect("an address"),
    };
    let seeds = [
        ("frame-load", wire::encode(&key, Kind::Load, &from, &load)),
        (
            "frame-announce",
            wire::encode(&key, Kind::Announce, &from, &announce),
        ),
        ("body-load", load),
        ("body-announce", announce),
    ];
    for (name, bytes) in seeds {
        std::fs::write(dir.join(name), bytes)?;
    }
    Ok(())
}
