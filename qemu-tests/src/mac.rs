//! MAC addresses of lab nodes: parsed once, printed the way QEMU and ombootd's config expect
//! (lowercase, colon-separated).

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// A 48-bit Ethernet address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The lab's address for node `n`: `52:54:00:77:00:n` (QEMU's locally administered prefix).
    pub fn lab(n: u8) -> MacAddr {
        MacAddr([0x52, 0x54, 0x00, 0x77, 0x00, n])
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl FromStr for MacAddr {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::BadMac(s.to_owned());
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in &mut out {
            let part = parts.next().filter(|p| p.len() == 2).ok_or_else(bad)?;
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let mac: MacAddr = "52:54:00:77:00:0A".parse().expect("valid");
        assert_eq!(mac, MacAddr::lab(10));
        assert_eq!(mac.to_string(), "52:54:00:77:00:0a");
        for bad in [
            "",
            "52:54:00:77:00",
            "52:54:00:77:00:01:02",
            "52:54:00:77:00:zz",
            "5:54:00:77:00:01",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }
}
