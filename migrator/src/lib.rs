//! The node side of ombootd: discovery, membership, load gossip and (next) process migration.
//!
//! `omd` runs on every node; `omctl` talks to it over [`api`].

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod api;
