//! A library entry point for ombootd: join the cluster as an observer (a member that never
//! samples or sends load) and read the table, on the caller's tokio runtime.

use std::net::{Ipv4Addr, SocketAddrV4};

use crate::agent::{AgentConfig, SwimTuning};
use crate::api::NodeInfo;
use crate::identity::{NodeId, NodeIdentity};
use crate::key::ClusterKey;
use crate::node::{self, NodeConfig, NodeError, NodeHandle};
use crate::wire::DropCounters;

/// How to observe.
#[derive(Debug, Clone)]
pub struct ObserverConfig {
    /// Address to gossip from (the master's address on the cluster network).
    pub interface_addr: Ipv4Addr,
    /// Gossip port (7946 by default, as the nodes).
    pub port: u16,
    /// Cluster key (ombootd generates it and ships it in the image).
    pub key: ClusterKey,
    /// Host name shown in the table.
    pub name: String,
    /// Stable id; `None`: derived from /etc/machine-id (distinct from an omd on the same host).
    pub id: Option<NodeId>,
    /// This life's SWIM generation, newer than any earlier life's: take it with
    /// [`crate::generation::take`] from a file that outlives the process.
    pub generation: u64,
    /// Static first-contact addresses.
    pub seeds: Vec<SocketAddrV4>,
    /// Multicast group for ANNOUNCE (`Some(wire::DEFAULT_GROUP)` normally).
    pub multicast: Option<Ipv4Addr>,
    /// SWIM timing (defaults match omd's).
    pub swim: SwimTuning,
}

/// A running observer.
#[derive(Debug, Clone)]
pub struct ObserverHandle(NodeHandle);

impl ObserverHandle {
    /// The cluster table, the observer's own row first.
    pub fn nodes(&self) -> Vec<NodeInfo> {
        self.0.nodes()
    }

    /// Packets refused, by reason.
    pub fn drops(&self) -> DropCounters {
        self.0.drops()
    }

    /// Stop observing.
    pub fn stop(&self) {
        self.0.stop()
    }
}

/// The observer's default id: machine-id hashed with a suffix, so omd on the same host differs.
pub fn default_observer_id() -> NodeId {
    let mid = std::fs::read_to_string("/etc/machine-id").unwrap_or_default();
    NodeId::from_stable_bytes(format!("{}:observer", mid.trim()).as_bytes())
}

/// Join as an observer. Must be called inside a tokio runtime.
pub fn spawn(cfg: ObserverConfig) -> Result<ObserverHandle, NodeError> {
    let addr = SocketAddrV4::new(cfg.interface_addr, cfg.port);
    let identity = NodeIdentity {
        id: cfg.id.unwrap_or_else(default_observer_id),
        name: cfg.name,
        addr,
        generation: cfg.generation,
        observer: true,
    };
    let agent = AgentConfig {
        swim: cfg.swim,
        seeds: cfg.seeds,
        multicast: cfg.multicast.map(|g| SocketAddrV4::new(g, cfg.port)),
        ..AgentConfig::default()
    };
    node::spawn(NodeConfig {
        identity,
        key: cfg.key,
        agent,
        load_source: None,
    })
    .map(ObserverHandle)
}
