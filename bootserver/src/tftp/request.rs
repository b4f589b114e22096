//! What a datagram on the TFTP port asks for: a read to start, an ERROR to answer, or nothing.
//!
//! Pure: bytes in, a decision out. Opening the file and negotiating its options come after.

use super::options::{self, Mode};
use super::packet::{self, ErrorCode, Packet};

/// The decision about one datagram on the server port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer<'a> {
    /// A read request to serve: open `filename`, negotiate `options`, send in `mode`.
    Read {
        /// The file asked for.
        filename: &'a str,
        /// How to send it.
        mode: Mode,
        /// The options asked (RFC 2347).
        options: Vec<(&'a str, &'a str)>,
    },
    /// A write request: the server is read-only.
    Write {
        /// The file the client wanted to write.
        filename: &'a str,
    },
    /// A request to answer with an ERROR and count as malformed.
    Error {
        /// The code.
        code: ErrorCode,
        /// Why, for the client and the log.
        message: String,
    },
    /// Not a request: dropped and counted, never answered (the sender may be forged, and
    /// answering garbage would make us a reflector).
    Drop(String),
}

/// Decides what `datagram` asks.
pub fn answer(datagram: &[u8]) -> Answer<'_> {
    match packet::parse(datagram) {
        Ok(Packet::Read(r)) => match options::mode(r.mode) {
            Ok(mode) => Answer::Read {
                filename: r.filename,
                mode,
                options: r.options,
            },
            Err(e) => Answer::Error {
                code: ErrorCode::IllegalOperation,
                message: e.to_string(),
            },
        },
        Ok(Packet::Write(w)) => Answer::Write {
            filename: w.filename,
        },
        Ok(other) => Answer::Drop(format!(
            "a {} packet on the request port, outside any transfer",
            kind(&other)
        )),
        Err(e) => Answer::Drop(e.to_string()),
    }
}

fn kind(p: &Packet<'_>) -> &'static str {
    match p {
        Packet::Read(_) => "RRQ",
        Packet::Write(_) => "WRQ",
        Packet::Data { .. } => "DATA",
        Packet::Ack(_) => "ACK",
        Packet::Error { .. } => "ERROR",
        Packet::Oack(_) => "OACK",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tftp::packet::{RRQ, WRQ, ack, request_bytes};

    #[test]
    fn a_read_request_is_served_in_its_mode() {
        let bytes = request_bytes(RRQ, "pxelinux.cfg/default", "NETASCII", &[("tsize", "0")]);
        assert_eq!(
            answer(&bytes),
            Answer::Read {
                filename: "pxelinux.cfg/default",
                mode: Mode::Netascii,
                options: vec![("tsize", "0")]
            }
        );
    }

    #[test]
    fn writes_unknown_modes_and_strays_are_not_served() {
        assert_eq!(
            answer(&request_bytes(WRQ, "x", "octet", &[])),
            Answer::Write { filename: "x" }
        );
        assert_eq!(
            answer(&request_bytes(RRQ, "x", "mail", &[])),
            Answer::Error {
                code: ErrorCode::IllegalOperation,
                message: "mail mode is not supported".into()
            }
        );
        assert!(matches!(
            answer(&request_bytes(RRQ, "x", "image", &[])),
            Answer::Error {
                code: ErrorCode::IllegalOperation,
                ..
            }
        ));
        assert!(matches!(answer(&ack(1)), Answer::Drop(m) if m.contains("ACK")));
        assert!(matches!(answer(b"\x00"), Answer::Drop(_)));
    }
}
