//! The node image's serial-console markers: `OMBOOT-READY name=N ip=A state=S` once systemd has
//! reached multi-user, optionally followed by `OMBOOT-FAILED-UNITS u1 u2 …`. Parsing only, no I/O.

use std::net::Ipv4Addr;

use crate::error::{Error, Result};

/// The readiness marker.
pub const READY: &str = "OMBOOT-READY";
/// The failed-units marker.
pub const FAILED_UNITS: &str = "OMBOOT-FAILED-UNITS";

/// A parsed `OMBOOT-READY` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    /// The name the node gave itself.
    pub name: String,
    /// The address it got.
    pub ip: Ipv4Addr,
    /// `systemctl is-system-running`'s answer, such as `running` or `degraded`.
    pub state: String,
}

/// Parses a console line. `None` when it holds no marker; an error when it holds a marker that
/// lacks a field. The marker may sit after other console output on the same line.
pub fn parse_ready(line: &str) -> Option<Result<Ready>> {
    let start = line.find(READY)?;
    let rest = &line[start + READY.len()..];
    // "OMBOOT-READY" must be a whole word: not "OMBOOT-READYX".
    if !(rest.is_empty() || rest.starts_with(char::is_whitespace)) {
        return None;
    }
    let err = |reason: &str| Error::Marker {
        line: line.to_owned(),
        reason: reason.to_owned(),
    };
    let field = |key: &str| {
        rest.split_whitespace()
            .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
            .filter(|v| !v.is_empty())
    };
    Some((|| {
        let name = field("name").ok_or_else(|| err("no name="))?.to_owned();
        let ip = field("ip").ok_or_else(|| err("no ip="))?;
        let ip = ip.parse().map_err(|_| err("ip= is not an IPv4 address"))?;
        let state = field("state").ok_or_else(|| err("no state="))?.to_owned();
        Ok(Ready { name, ip, state })
    })())
}

/// Parses an `OMBOOT-FAILED-UNITS` line into unit names (separated by spaces or commas).
pub fn parse_failed_units(line: &str) -> Option<Vec<String>> {
    let start = line.find(FAILED_UNITS)?;
    let rest = &line[start + FAILED_UNITS.len()..];
    if !(rest.is_empty() || rest.starts_with([' ', '\t', ':', '='])) {
        return None;
    }
    let rest = rest.trim_start_matches([' ', '\t', ':', '=']);
    Some(
        rest.split([' ', '\t', ','])
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_line() {
        let r = parse_ready("OMBOOT-READY name=node1 ip=10.77.0.11 state=running")
            .expect("marker")
            .expect("valid");
        assert_eq!(
            r,
            Ready {
                name: "node1".into(),
                ip: Ipv4Addr::new(10, 77, 0, 11),
                state: "running".into()
            }
        );
    }

    #[test]
    fn ready_after_console_noise_and_fields_in_any_order() {
        let r = parse_ready(
            "[   27.1] foo: OMBOOT-READY state=degraded ip=10.77.0.12 name=node2 extra=1",
        )
        .expect("marker")
        .expect("valid");
        assert_eq!((r.name.as_str(), r.state.as_str()), ("node2", "degraded"));
    }

    #[test]
    fn not_a_marker() {
        assert!(parse_ready("Booting from ROM...").is_none());
        assert!(parse_ready("OMBOOT-READYNESS x").is_none());
    }

    #[test]
    fn malformed_marker() {
        assert!(
            parse_ready("OMBOOT-READY name=node1 state=running")
                .expect("marker")
                .is_err()
        );
        assert!(
            parse_ready("OMBOOT-READY name=node1 ip=10.77.0 state=x")
                .expect("marker")
                .is_err()
        );
        assert!(
            parse_ready("OMBOOT-READY name= ip=10.77.0.1 state=x")
                .expect("marker")
                .is_err()
        );
    }

    #[test]
    fn failed_units() {
        assert_eq!(
            parse_failed_units("OMBOOT-FAILED-UNITS a.service,b.mount  c.socket"),
            Some(vec![
                "a.service".into(),
                "b.mount".into(),
                "c.socket".into()
            ])
        );
        assert_eq!(parse_failed_units("OMBOOT-FAILED-UNITS"), Some(vec![]));
        assert_eq!(parse_failed_units("OMBOOT-READY x"), None);
    }
}
