//! Ethernet hardware addresses as written in the node table (`52:54:00:77:00:01`).
//!
//! One type so that DHCP lookups, URLs and file names all agree on one spelling.

use std::fmt;
use std::str::FromStr;

/// A 48-bit Ethernet address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

/// Why a MAC address could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{0}` is not a MAC address (expected six hex pairs such as 52:54:00:12:34:56)")]
pub struct MacParseError(pub String);

impl MacAddr {
    /// The address as a DHCP `chaddr` carries it, if the hardware type is Ethernet.
    pub fn from_chaddr(chaddr: &[u8]) -> Option<Self> {
        let bytes: [u8; 6] = chaddr.get(..6)?.try_into().ok()?;
        Some(Self(bytes))
    }

    /// The lower-case, hyphen-separated form used in URLs and file names (`52-54-00-77-00-01`).
    pub fn hyphenated(&self) -> String {
        self.to_string().replace(':', "-")
    }
}

impl FromStr for MacAddr {
    type Err = MacParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || MacParseError(s.to_string());
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(err());
        }
        let mut out = [0u8; 6];
        for (slot, part) in out.iter_mut().zip(parts) {
            if part.len() != 2 {
                return Err(err());
            }
            *slot = u8::from_str_radix(part, 16).map_err(|_| err())?;
        }
        Ok(Self(out))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_separators_and_prints_lower_case() {
        let a: MacAddr = "52:54:00:AB:00:01".parse().unwrap();
        let b: MacAddr = "52-54-00-ab-00-01".parse().unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "52:54:00:ab:00:01");
        assert_eq!(a.hyphenated(), "52-54-00-ab-00-01");
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "52:54:00:ab:00",
            "52:54:00:ab:00:01:02",
            "5:54:00:ab:00:01",
            "zz:54:00:ab:00:01",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn chaddr_needs_six_bytes() {
        assert_eq!(MacAddr::from_chaddr(&[1, 2, 3]), None);
        assert_eq!(
            MacAddr::from_chaddr(&[1, 2, 3, 4, 5, 6, 0, 0]),
            Some(MacAddr([1, 2, 3, 4, 5, 6]))
        );
    }
}
