//! What a read request gets: its transfer mode (RFC 1350 §5) and the options the server accepts
//! (RFC 2347 negotiation; blksize RFC 2348, timeout and tsize RFC 2349, windowsize RFC 7440).
//!
//! Pure: the request's strings and the file's size in, the transfer's parameters and the OACK out.

use std::time::Duration;

/// The block size without options (RFC 1350).
pub const DEFAULT_BLOCK_SIZE: u16 = 512;
/// The smallest block size a client may ask (RFC 2348).
pub const MIN_BLOCK_SIZE: u16 = 8;
/// The largest block size a client may ask (RFC 2348): 65535 minus the IP and UDP headers.
pub const MAX_BLOCK_SIZE: u16 = 65464;

/// A transfer mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Bytes as they are.
    Octet,
    /// Text: each LF becomes CR LF and each CR becomes CR NUL on the wire (RFC 764's NVT).
    Netascii,
}

/// Why a request's mode is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModeError {
    /// `mail` (RFC 1350 §1 calls it obsolete; it is a write mode anyway).
    #[error("mail mode is not supported")]
    Mail,
    /// Anything else.
    #[error("`{0}` is not a TFTP transfer mode (octet or netascii)")]
    Unknown(String),
}

/// Reads a request's mode; case does not matter (RFC 1350 §5).
pub fn mode(text: &str) -> Result<Mode, ModeError> {
    if text.eq_ignore_ascii_case("octet") {
        Ok(Mode::Octet)
    } else if text.eq_ignore_ascii_case("netascii") {
        Ok(Mode::Netascii)
    } else if text.eq_ignore_ascii_case("mail") {
        Err(ModeError::Mail)
    } else {
        Err(ModeError::Unknown(text.chars().take(32).collect()))
    }
}

/// The server's bounds on what clients may ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest block size granted.
    pub max_block_size: u16,
    /// The largest window granted.
    pub max_window: u16,
}

/// The parameters of one read transfer, and the OACK that announces them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// Payload bytes per DATA packet.
    pub block_size: u16,
    /// Blocks sent before waiting for an ACK (1: lock-step).
    pub window: u16,
    /// The retransmission interval the client asked for, if any.
    pub timeout: Option<Duration>,
    /// The accepted options, lower-case, in the request's order: the OACK. Empty: send no OACK,
    /// start with DATA 1 (RFC 2347: a server that accepts no option answers as RFC 1350 does).
    pub reply: Vec<(String, String)>,
}

/// Negotiates a read request's `options` for a file of `size` bytes sent in `mode`.
///
/// Option names are matched without regard to case; an option is taken the first time it
/// appears. Unknown options and invalid values are left out of the OACK (the client then goes
/// on without them, RFC 2347). A block size or window above the server's limit is granted at
/// the limit (RFC 2348: the server may answer with a smaller size). tsize is answered only for
/// octet transfers: in netascii the bytes on the wire differ from the file's size.
pub fn negotiate(options: &[(&str, &str)], mode: Mode, size: u64, limits: Limits) -> Negotiated {
    let mut n = Negotiated {
        block_size: DEFAULT_BLOCK_SIZE,
        window: 1,
        timeout: None,
        reply: Vec::new(),
    };
    let mut seen: Vec<String> = Vec::new();
    for &(name, value) in options {
        let name = name.to_ascii_lowercase();
        if seen.contains(&name) {
            continue;
        }
        seen.push(name.clone());
        let accepted = match name.as_str() {
            "blksize" => value
                .parse::<u32>()
                .ok()
                .filter(|&b| b >= u32::from(MIN_BLOCK_SIZE))
                .map(|b| {
                    let cap = limits.max_block_size.min(MAX_BLOCK_SIZE);
                    n.block_size = u16::try_from(b).unwrap_or(cap).min(cap);
                    n.block_size.to_string()
                }),
            "windowsize" => value
                .parse::<u32>()
                .ok()
                .filter(|w| (1..=65535).contains(w))
                .map(|w| {
                    let cap = limits.max_window.max(1);
                    n.window = u16::try_from(w).unwrap_or(cap).min(cap);
                    n.window.to_string()
                }),
            "timeout" => value
                .parse::<u64>()
                .ok()
                .filter(|t| (1..=255).contains(t))
                .map(|t| {
                    n.timeout = Some(Duration::from_secs(t));
                    t.to_string()
                }),
            // In a read request tsize must be 0, asking for the size (RFC 2349).
            "tsize" if mode == Mode::Octet && value.parse::<u64>() == Ok(0) => {
                Some(size.to_string())
            }
            _ => None,
        };
        if let Some(value) = accepted {
            n.reply.push((name, value));
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_block_size: MAX_BLOCK_SIZE,
        max_window: 64,
    };

    fn reply(n: &Negotiated) -> Vec<(&str, &str)> {
        n.reply
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect()
    }

    #[test]
    fn modes_in_any_case() {
        assert_eq!(mode("OCTET"), Ok(Mode::Octet));
        assert_eq!(mode("NetAscii"), Ok(Mode::Netascii));
        assert_eq!(mode("mail"), Err(ModeError::Mail));
        assert_eq!(mode("binary"), Err(ModeError::Unknown("binary".into())));
    }

    #[test]
    fn no_options_is_plain_rfc_1350() {
        let n = negotiate(&[], Mode::Octet, 100, LIMITS);
        assert_eq!((n.block_size, n.window, n.timeout), (512, 1, None));
        assert!(n.reply.is_empty());
    }

    #[test]
    fn accepted_options_are_echoed_in_order_lower_case() {
        let n = negotiate(
            &[
                ("TSIZE", "0"),
                ("blksize", "1468"),
                ("windowsize", "16"),
                ("timeout", "3"),
            ],
            Mode::Octet,
            70_000,
            LIMITS,
        );
        assert_eq!((n.block_size, n.window), (1468, 16));
        assert_eq!(n.timeout, Some(Duration::from_secs(3)));
        assert_eq!(
            reply(&n),
            vec![
                ("tsize", "70000"),
                ("blksize", "1468"),
                ("windowsize", "16"),
                ("timeout", "3")
            ]
        );
    }

    #[test]
    fn sizes_above_the_limits_are_granted_at_the_limit() {
        let small = Limits {
            max_block_size: 1468,
            max_window: 64,
        };
        let n = negotiate(
            &[("blksize", "65464"), ("windowsize", "65535")],
            Mode::Octet,
            1,
            small,
        );
        assert_eq!((n.block_size, n.window), (1468, 64));
        assert_eq!(reply(&n), vec![("blksize", "1468"), ("windowsize", "64")]);
        // Larger than RFC 2348 allows at all: the largest allowed.
        let n = negotiate(&[("blksize", "99999")], Mode::Octet, 1, LIMITS);
        assert_eq!(n.block_size, MAX_BLOCK_SIZE);
    }

    #[test]
    fn invalid_values_and_unknown_options_are_left_out() {
        let n = negotiate(
            &[
                ("blksize", "7"),
                ("windowsize", "0"),
                ("timeout", "256"),
                ("timeout", "2"),
                ("tsize", "12"),
                ("multicast", ""),
                ("rollover", "0"),
            ],
            Mode::Octet,
            5,
            LIMITS,
        );
        assert_eq!((n.block_size, n.window, n.timeout), (512, 1, None));
        // The first timeout was invalid; a second copy of the same option is not looked at.
        assert!(n.reply.is_empty(), "{:?}", n.reply);
    }

    #[test]
    fn tsize_is_not_answered_in_netascii() {
        let n = negotiate(
            &[("tsize", "0"), ("blksize", "1024")],
            Mode::Netascii,
            5,
            LIMITS,
        );
        assert_eq!(reply(&n), vec![("blksize", "1024")]);
    }
}
