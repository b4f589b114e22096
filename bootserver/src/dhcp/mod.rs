//! DHCPv4 for the nodes in the table (RFC 2131, options RFC 2132, PXE options RFC 4578).
//!
//! dhcproto is the codec; [`handler`] turns a request into a reply with no I/O ([`proxy`] when
//! ombootd is a proxyDHCP server beside the site's), [`reply_addr`] decides where that reply goes
//! (RFC 2131 §4.1), and [`server`] does the socket work.

pub mod arp;
pub mod boot_client;
pub mod handler;
pub mod log_gate;
pub mod proxy;
pub mod rate_limit;
pub mod reply_addr;
pub mod server;
pub mod stats;
