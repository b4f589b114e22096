//! omlab: the ombootd test lab. A [`Lab`] is a network namespace with a bridge carrying the
//! master's address; ombootd runs inside it and QEMU [`Node`]s PXE-boot from it through taps,
//! so nothing touches the host's own interfaces.
//!
//! ```no_run
//! use std::time::Duration;
//! use omlab::{Firmware, Lab, LabMac, MacAddr, Node};
//!
//! # fn main() -> omlab::Result<()> {
//! let lab = Lab::new("doc")?;
//! let config = lab.ombootd_config("build/image".as_ref())
//!     .node("node1", MacAddr::lab(1), "10.77.0.11".parse().expect("address"));
//! let path = lab.write_ombootd_config(&config)?;
//! lab.start_ombootd("target/debug/ombootd".as_ref(), &path)?;
//! let node = Node::new("node1", MacAddr::lab(1)).firmware(Firmware::Uefi).boot(&lab)?;
//! let up = node.wait_up(Duration::from_secs(300))?;
//! println!("{} is {} at {} after {:.1} s", up.name, up.state, up.ip, up.up_secs);
//! node.power_off()?;
//! lab.teardown()
//! # }
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod anchors;
pub mod browser;
pub mod cancel;
pub mod cleanup;
pub mod cluster;
mod command;
pub mod config;
pub mod console;
pub mod dhcp_client;
mod error;
mod firmware;
pub mod fixture;
pub mod forward;
pub mod jobs;
mod lab;
mod link;
pub mod logwatch;
mod mac;
pub mod marker;
mod netns;
mod nic;
mod node;
mod ombootd;
mod owner;
pub mod proc_stat;
mod process;
mod qmp;
mod signal;
mod uefi_vars;
mod wait;

pub use config::{LabConfig, NodeEntry, Ports};
pub use error::{Error, Result};
pub use firmware::{Firmware, OVMF_CODE, OVMF_VARS};
pub use lab::{BRIDGE, ClientNs, DEFAULT_MASTER, DEFAULT_PREFIX, Lab};
pub use mac::{LabMac, MacAddr};
pub use nic::Nic;
pub use node::{Node, NodePaths, NodeUp, RunningNode};
pub use ombootd::{READY_LINE, START_TIMEOUT};
pub use process::{Proc, STOP_GRACE};
pub use wait::{TAIL_LINES, tail, wait_for_line};
