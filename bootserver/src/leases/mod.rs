//! DHCP leases behind a small trait: the file store ombootd uses, and an in-memory one for tests.
//!
//! Addresses come from the node table, so a lease records what state a node's address is in
//! (offered or bound, until when) rather than choosing one.

pub mod commits;
mod file;
pub mod flusher;

pub use file::{FileLeases, Unsaved};

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::mac::MacAddr;

/// Where a node's address stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeaseState {
    /// Offered in reply to a DISCOVER, not yet requested.
    Offered,
    /// Acknowledged: the node uses it.
    Bound,
}

/// One lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The client's hardware address, as text so the file is readable.
    pub mac: String,
    /// The address.
    pub ip: Ipv4Addr,
    /// The node's name.
    pub name: String,
    /// Offered or bound.
    pub state: LeaseState,
    /// Expiry, seconds since the Unix epoch.
    pub expires: u64,
}

/// A lease store failed; the reply that depended on it is not sent, so the client retries.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Reading or writing the lease file failed.
    #[error("lease file {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The lease file is not ours to read.
    #[error(
        "lease file {path} is corrupt ({source}); it was left untouched, move it away to start afresh"
    )]
    Corrupt {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: serde_json::Error,
    },
}

/// Lease storage.
pub trait LeaseStore: Send {
    /// The lease of this client, if any.
    fn get(&self, mac: MacAddr) -> Option<Lease>;
    /// Record (or replace) the lease of `lease.mac`.
    fn put(&mut self, mac: MacAddr, lease: Lease) -> Result<(), LeaseError>;
    /// Forget the lease of this client.
    fn remove(&mut self, mac: MacAddr) -> Result<Option<Lease>, LeaseError>;
    /// Every lease, in MAC order.
    fn all(&self) -> Vec<Lease>;
    /// The lease on address `ip`, if any (an index lookup: the pool asks it per address tried).
    fn holder(&self, ip: Ipv4Addr) -> Option<Lease>;
    /// Mark `ip` unusable from `now` until `until` (seconds since the epoch): a client found it in use
    /// (DECLINE, RFC 2131 §4.3.3). Kept in memory: a restart forgets it.
    fn decline(&mut self, ip: Ipv4Addr, now: u64, until: u64);
    /// Whether `ip` is declined at `now`.
    fn declined(&self, ip: Ipv4Addr, now: u64) -> bool;
    /// Counts the changes that must reach the disk: a reply depending on the last change waits
    /// until [`commits::Commits::durable`] reaches this (0: nothing is ever written).
    fn generation(&self) -> u64 {
        0
    }
    /// What must be written to disk since the last call, if anything (see [`flusher`]).
    fn take_unsaved(&mut self) -> Option<Unsaved> {
        None
    }
    /// The last [`take_unsaved`](Self::take_unsaved) could not be written: offer it again.
    fn mark_unsaved(&mut self) {}
}

/// Addresses clients declined, and until when; bounded by the addresses the handler declines
/// (the pool's and the table's).
#[derive(Debug, Default)]
pub struct Declined(BTreeMap<Ipv4Addr, u64>);

impl Declined {
    /// Mark `ip` until `until`, forgetting the marks that ran out.
    pub fn add(&mut self, ip: Ipv4Addr, until: u64, now: u64) {
        self.0.retain(|_, u| *u > now);
        self.0.insert(ip, until);
    }

    /// Whether `ip` is marked at `now`.
    pub fn contains(&self, ip: Ipv4Addr, now: u64) -> bool {
        self.0.get(&ip).is_some_and(|u| *u > now)
    }
}

/// Leases kept in memory only.
#[derive(Debug, Default)]
pub struct MemoryLeases(BTreeMap<MacAddr, Lease>, Declined);

impl LeaseStore for MemoryLeases {
    fn decline(&mut self, ip: Ipv4Addr, now: u64, until: u64) {
        self.1.add(ip, until, now);
    }
    fn declined(&self, ip: Ipv4Addr, now: u64) -> bool {
        self.1.contains(ip, now)
    }
    fn get(&self, mac: MacAddr) -> Option<Lease> {
        self.0.get(&mac).cloned()
    }
    fn put(&mut self, mac: MacAddr, lease: Lease) -> Result<(), LeaseError> {
        self.0.insert(mac, lease);
        Ok(())
    }
    fn remove(&mut self, mac: MacAddr) -> Result<Option<Lease>, LeaseError> {
        Ok(self.0.remove(&mac))
    }
    fn all(&self) -> Vec<Lease> {
        self.0.values().cloned().collect()
    }
    fn holder(&self, ip: Ipv4Addr) -> Option<Lease> {
        self.0.values().find(|l| l.ip == ip).cloned()
    }
}
