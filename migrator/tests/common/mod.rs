//! Helpers shared by the integration tests that run real agents in one process.

use std::net::SocketAddrV4;

use migrator::agent::AgentConfig;
use migrator::identity::{NodeId, NodeIdentity};
use migrator::key::ClusterKey;
use migrator::load::{Sample, ScriptedLoadSource};
use migrator::node::{self, NodeConfig, NodeHandle};

/// A node gossiping on `at`, named and numbered after the last byte of that address.
pub fn spawn_node(
    at: SocketAddrV4,
    key: &ClusterKey,
    generation: u64,
    seeds: Vec<SocketAddrV4>,
) -> NodeHandle {
    let n = at.ip().octets()[3];
    let sample = Sample {
        cpus: 2,
        loadavg1: f64::from(n),
        runnable: f64::from(n),
        mem_total: 1 << 30,
        mem_free: 1 << 29,
    };
    node::spawn(NodeConfig {
        identity: NodeIdentity {
            id: NodeId(0x1000 + u64::from(n)),
            name: format!("node{n}"),
            addr: at,
            generation,
            observer: false,
        },
        key: key.clone(),
        agent: AgentConfig {
            seeds,
            ..AgentConfig::default()
        },
        load_source: Some(Box::new(ScriptedLoadSource::new([sample]))),
    })
    .unwrap()
}
