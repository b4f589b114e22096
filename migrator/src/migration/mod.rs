//! Moving a running job between nodes with CRIU: the peer [`protocol`] and its authenticated
//! [`session`], the [`criu`] driver (its CPU checks made once, [`cpu_cache`]), iterative [`pre_dump`], the image [`transfer`], the [`migratable`] checks, the
//! [`outcome`] record that makes a migration all-or-nothing, the two sides ([`source`],
//! [`target`]), and the [`history`] of moves this node started.

pub mod cpu_cache;
pub mod criu;
pub mod history;
pub mod migratable;
pub mod outcome;
pub mod pre_dump;
pub mod protocol;
pub mod session;
pub mod source;
pub mod target;
pub mod transfer;
