//! The node side of ombootd: discovery, membership, load gossip, and process migration on CRIU
//! (jobs, their keepers and deputies, the migration protocol).
//!
//! `omd` runs on every node; `omctl` talks to it over [`api`].

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod agent;
pub mod api;
pub mod balance;
pub mod clock;
pub mod config;
pub mod control;
pub mod flags_file;
pub mod frame;
pub mod generation;
pub mod identity;
pub mod job;
pub mod jobs;
pub mod key;
pub mod load;
pub mod migration;
pub mod netif;
pub mod node;
pub mod observer;
pub mod replay;
pub mod report;
pub mod server;
pub mod sim;
pub mod state_file;
pub mod table;
pub mod wire;
pub mod workload;
