//! TFTP packets (RFC 1350 §5 and its appendix; the OACK and the option list of a request, RFC
//! 2347 §2): parsed from and built into bytes, with no socket in sight.
//!
//! Every field is big-endian; strings are NUL-terminated. A request is
//! `| opcode | filename | 0 | mode | 0 | opt1 | 0 | value1 | 0 | … |`.

use std::borrow::Cow;

/// Opcode of a read request.
pub const RRQ: u16 = 1;
/// Opcode of a write request.
pub const WRQ: u16 = 2;
/// Opcode of a data block.
pub const DATA: u16 = 3;
/// Opcode of an acknowledgement.
pub const ACK: u16 = 4;
/// Opcode of an error.
pub const ERROR: u16 = 5;
/// Opcode of an option acknowledgement (RFC 2347).
pub const OACK: u16 = 6;

/// Bytes before a DATA packet's payload: opcode and block number.
pub const DATA_HEADER: usize = 4;

/// A packet, borrowing from the datagram it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    /// RRQ.
    Read(Request<'a>),
    /// WRQ.
    Write(Request<'a>),
    /// DATA: a block number and up to the block size of payload.
    Data {
        /// Block number (wraps from 65535 to 0).
        block: u16,
        /// The payload.
        data: &'a [u8],
    },
    /// ACK of a block (0 acknowledges an OACK).
    Ack(u16),
    /// ERROR: ends the transfer.
    Error {
        /// The error code (RFC 1350 appendix; 8 from RFC 2347).
        code: u16,
        /// The message, lossily decoded.
        message: Cow<'a, str>,
    },
    /// OACK: the options the server accepted, as (name, value).
    Oack(Vec<(&'a str, &'a str)>),
}

/// A read or write request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    /// The file asked for, as sent.
    pub filename: &'a str,
    /// The transfer mode, as sent (`octet`, `netascii`, `mail`, in any case).
    pub mode: &'a str,
    /// The options (RFC 2347), as (name, value) in the order sent. An option name without a
    /// value, or one that is not text, is left out: a server ignores options it cannot read.
    pub options: Vec<(&'a str, &'a str)>,
}

/// Error codes (RFC 1350 appendix, RFC 2347 §2 for 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum ErrorCode {
    /// Not defined, see the message.
    NotDefined = 0,
    /// File not found.
    FileNotFound = 1,
    /// Access violation.
    AccessViolation = 2,
    /// Disk full or allocation exceeded.
    DiskFull = 3,
    /// Illegal TFTP operation.
    IllegalOperation = 4,
    /// Unknown transfer ID.
    UnknownTransferId = 5,
    /// File already exists.
    FileExists = 6,
    /// No such user.
    NoSuchUser = 7,
    /// The options were refused (the client ends a transfer this way, RFC 2347).
    OptionsRefused = 8,
}

/// Why a datagram is not a TFTP packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Shorter than any packet.
    #[error("the datagram is {0} bytes long, shorter than a TFTP packet")]
    TooShort(usize),
    /// An opcode outside 1..=6.
    #[error("opcode {0} is not a TFTP opcode")]
    UnknownOpcode(u16),
    /// A string field runs to the end of the datagram without its NUL.
    #[error("the {0} is not terminated by a NUL byte")]
    Unterminated(&'static str),
    /// A string field that must be read is not UTF-8.
    #[error("the {0} is not text")]
    NotText(&'static str),
    /// An ACK with bytes after the block number.
    #[error("an ACK of {0} bytes (an ACK is 4)")]
    BadAck(usize),
}

/// Parses one datagram.
pub fn parse(bytes: &[u8]) -> Result<Packet<'_>, ParseError> {
    let Some((op, rest)) = bytes.split_first_chunk::<2>() else {
        return Err(ParseError::TooShort(bytes.len()));
    };
    match u16::from_be_bytes(*op) {
        RRQ => Ok(Packet::Read(request(rest)?)),
        WRQ => Ok(Packet::Write(request(rest)?)),
        DATA => {
            let (block, data) = block_number(bytes, rest)?;
            Ok(Packet::Data { block, data })
        }
        ACK => {
            // Some stacks pad short frames; RFC 1350 has no room for it, but a trailing pad
            // changes nothing about which block is acknowledged.
            let (block, extra) = block_number(bytes, rest)?;
            if extra.iter().any(|&b| b != 0) {
                return Err(ParseError::BadAck(bytes.len()));
            }
            Ok(Packet::Ack(block))
        }
        ERROR => {
            let (code, text) = block_number(bytes, rest)?;
            // The message should end in a NUL; a client that forgets it still ends the transfer.
            let text = text.split(|&b| b == 0).next().unwrap_or_default();
            Ok(Packet::Error {
                code,
                message: String::from_utf8_lossy(text),
            })
        }
        OACK => Ok(Packet::Oack(options(rest)?)),
        other => Err(ParseError::UnknownOpcode(other)),
    }
}

fn block_number<'a>(whole: &[u8], rest: &'a [u8]) -> Result<(u16, &'a [u8]), ParseError> {
    rest.split_first_chunk::<2>()
        .map(|(n, tail)| (u16::from_be_bytes(*n), tail))
        .ok_or(ParseError::TooShort(whole.len()))
}

fn request(rest: &[u8]) -> Result<Request<'_>, ParseError> {
    let (filename, rest) = cstr(rest, "file name")?;
    let (mode, rest) = cstr(rest, "transfer mode")?;
    Ok(Request {
        filename: text(filename, "file name")?,
        mode: text(mode, "transfer mode")?,
        options: options(rest)?,
    })
}

/// Option pairs after a request's mode, or in an OACK. Trailing NUL padding (some PXE ROMs
/// send it) and an unpaired last name are ignored; so is a pair that is not text or has an
/// empty name or value (no option is empty, and padding after a name would look like one).
fn options(mut rest: &[u8]) -> Result<Vec<(&str, &str)>, ParseError> {
    let mut out = Vec::new();
    while !rest.is_empty() && rest.iter().any(|&b| b != 0) {
        let (name, after) = cstr(rest, "option name")?;
        if after.is_empty() {
            break;
        }
        let (value, after) = cstr(after, "option value")?;
        rest = after;
        if let (Ok(n), Ok(v)) = (std::str::from_utf8(name), std::str::from_utf8(value))
            && !n.is_empty()
            && !v.is_empty()
        {
            out.push((n, v));
        }
    }
    Ok(out)
}

fn cstr<'a>(bytes: &'a [u8], what: &'static str) -> Result<(&'a [u8], &'a [u8]), ParseError> {
    let end = bytes
        .iter()
        .position(|&b| b == 0)
        .ok_or(ParseError::Unterminated(what))?;
    Ok((&bytes[..end], &bytes[end + 1..]))
}

fn text<'a>(bytes: &'a [u8], what: &'static str) -> Result<&'a str, ParseError> {
    std::str::from_utf8(bytes).map_err(|_| ParseError::NotText(what))
}

/// Writes a DATA header for `block` into the first [`DATA_HEADER`] bytes of `packet`.
pub fn set_data_header(packet: &mut [u8], block: u16) {
    packet[..2].copy_from_slice(&DATA.to_be_bytes());
    packet[2..4].copy_from_slice(&block.to_be_bytes());
}

/// An ACK of `block`.
pub fn ack(block: u16) -> [u8; 4] {
    let mut p = [0; 4];
    p[..2].copy_from_slice(&ACK.to_be_bytes());
    p[2..].copy_from_slice(&block.to_be_bytes());
    p
}

/// An ERROR with `code` and `message` (NUL bytes in it are dropped).
pub fn error(code: ErrorCode, message: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(5 + message.len());
    p.extend_from_slice(&ERROR.to_be_bytes());
    p.extend_from_slice(&(code as u16).to_be_bytes());
    p.extend(message.bytes().filter(|&b| b != 0));
    p.push(0);
    p
}

/// An OACK listing `options` as (name, value).
pub fn oack<N: AsRef<str>, V: AsRef<str>>(options: &[(N, V)]) -> Vec<u8> {
    let mut p = OACK.to_be_bytes().to_vec();
    for (name, value) in options {
        p.extend_from_slice(name.as_ref().as_bytes());
        p.push(0);
        p.extend_from_slice(value.as_ref().as_bytes());
        p.push(0);
    }
    p
}

/// A request (for tests and lab clients): RRQ or WRQ with `options`.
pub fn request_bytes(opcode: u16, filename: &str, mode: &str, options: &[(&str, &str)]) -> Vec<u8> {
    let mut p = opcode.to_be_bytes().to_vec();
    for s in [filename, mode] {
        p.extend_from_slice(s.as_bytes());
        p.push(0);
    }
    for (name, value) in options {
        for s in [name, value] {
            p.extend_from_slice(s.as_bytes());
            p.push(0);
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_request_with_options_parses() {
        let bytes = request_bytes(
            RRQ,
            "undionly.kpxe",
            "octet",
            &[("blksize", "1468"), ("tsize", "0")],
        );
        let Packet::Read(r) = parse(&bytes).unwrap() else {
            panic!("not a read request");
        };
        assert_eq!(r.filename, "undionly.kpxe");
        assert_eq!(r.mode, "octet");
        assert_eq!(r.options, vec![("blksize", "1468"), ("tsize", "0")]);
    }

    #[test]
    fn padding_an_unpaired_name_and_binary_options_are_ignored() {
        let mut bytes = request_bytes(RRQ, "f", "OCTET", &[("blksize", "512")]);
        bytes.extend_from_slice(b"\xff\xfe\x001\x00lonely\x00");
        bytes.extend_from_slice(&[0, 0, 0]);
        let Packet::Read(r) = parse(&bytes).unwrap() else {
            panic!("not a read request");
        };
        assert_eq!(r.mode, "OCTET");
        assert_eq!(r.options, vec![("blksize", "512")]);
    }

    #[test]
    fn broken_requests_are_errors_not_panics() {
        assert_eq!(parse(&[]), Err(ParseError::TooShort(0)));
        assert_eq!(parse(&[0]), Err(ParseError::TooShort(1)));
        assert_eq!(parse(&[0, 9]), Err(ParseError::UnknownOpcode(9)));
        assert_eq!(
            parse(b"\x00\x01file"),
            Err(ParseError::Unterminated("file name"))
        );
        assert_eq!(
            parse(b"\x00\x01file\x00octet"),
            Err(ParseError::Unterminated("transfer mode"))
        );
        assert_eq!(
            parse(b"\x00\x01\xc3\x28\x00octet\x00"),
            Err(ParseError::NotText("file name"))
        );
        assert_eq!(parse(b"\x00\x04\x00"), Err(ParseError::TooShort(3)));
        assert_eq!(parse(b"\x00\x04\x00\x01xy"), Err(ParseError::BadAck(6)));
    }

    #[test]
    fn acks_data_and_errors_parse() {
        assert_eq!(parse(&ack(65535)).unwrap(), Packet::Ack(65535));
        assert_eq!(parse(b"\x00\x04\x00\x07\x00\x00").unwrap(), Packet::Ack(7));
        assert_eq!(
            parse(b"\x00\x03\x00\x02abc").unwrap(),
            Packet::Data {
                block: 2,
                data: b"abc"
            }
        );
        assert_eq!(
            parse(&error(ErrorCode::OptionsRefused, "tsize probe")).unwrap(),
            Packet::Error {
                code: 8,
                message: "tsize probe".into()
            }
        );
        // No NUL after the message, or none at all: still an ERROR.
        assert_eq!(
            parse(b"\x00\x05\x00\x00bye").unwrap(),
            Packet::Error {
                code: 0,
                message: "bye".into()
            }
        );
        assert_eq!(
            parse(b"\x00\x05\x00\x01").unwrap(),
            Packet::Error {
                code: 1,
                message: "".into()
            }
        );
    }

    #[test]
    fn built_packets_parse_back() {
        let o = oack(&[("blksize", "1428"), ("tsize", "70000")]);
        assert_eq!(
            parse(&o).unwrap(),
            Packet::Oack(vec![("blksize", "1428"), ("tsize", "70000")])
        );
        let e = error(ErrorCode::FileNotFound, "no\0such file");
        assert_eq!(
            parse(&e).unwrap(),
            Packet::Error {
                code: 1,
                message: "nosuch file".into()
            }
        );
        let mut d = vec![0; DATA_HEADER + 3];
        set_data_header(&mut d, 258);
        d[4..].copy_from_slice(b"xyz");
        assert_eq!(
            parse(&d).unwrap(),
            Packet::Data {
                block: 258,
                data: b"xyz"
            }
        );
    }
}
