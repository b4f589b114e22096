//! Privileged: DHCPv6 for IPv6 netboot (RFC 8415; the boot file URL of RFC 5970), on the served
//! interface only and only with `ipv6_boot` set: [`prefix`] maps the table's IPv4 addresses into
//! the IPv6 prefix, [`handler`] decides with no I/O, [`server`] does the socket work.

pub mod handler;
pub mod prefix;
pub mod server;
