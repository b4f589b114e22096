//! ombootd: the master side of an ombootd cluster.
//!
//! It hands diskless nodes an address (DHCP), a boot loader (TFTP), a boot script and kernel (HTTP)
//! and their root file system (read-only NFSv3), all from one configuration file.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod boot_stage;
pub mod boot_window;
pub mod config;
pub mod confined;
pub mod dashboard;
pub mod dhcp;
pub mod dhcp6;
pub mod http;
pub mod image;
pub mod leases;
pub mod live;
pub mod mac;
pub mod neighbors;
pub mod nfs;
pub mod node_admin;
pub mod open_files;
pub mod pending;
pub mod pool;
pub mod privileges;
pub mod ra;
pub mod serve;
pub mod status_table;
pub mod subnet;
pub mod tftp;
