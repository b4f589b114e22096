//! The cluster wire format: framing, HMAC authentication and the LOAD/ANNOUNCE bodies.
//! No sockets here; `encode`/`decode` are pure and every rejected packet has a [`DropReason`].
//!
//! # Transport
//! - UDP port 7946 (configurable) on the gossip interface carries SWIM and LOAD, unicast.
//! - ANNOUNCE goes to multicast group 239.77.0.77, same port, TTL 1, sent on the gossip
//!   interface (IP_MULTICAST_IF); it is also sent unicast to configured seeds.
//!
//! # Frame (version 1), all integers big-endian
//! ```text
//! 0      3        4      5        6                         len-16        len
//! | "OMD" | version | kind | key id | body ...                | HMAC tag (16) |
//! ```
//! - kind: 1 = SWIM (body is foca's postcard payload), 2 = LOAD, 3 = ANNOUNCE.
//! - key id: reserved for key rotation, always 0 in version 1; covered by the MAC.
//! - tag: HMAC-SHA256 with the cluster key over bytes `0..len-16`, truncated to the first
//!   16 bytes, verified in constant time. Maximum frame: [`MAX_FRAME`] bytes.
//!
//! # LOAD body
//! `count: u8` then `count` records of [`LOAD_RECORD_LEN`] bytes, the sender's own record
//! first (unless it is quiet), then the freshest records it knows about others:
//! ```text
//! id u64 | seq u32 | age_ms u32 | cpus u16 | speed u32 | load_milli u32 | loadavg1_milli u32
//! | mem_total u64 | mem_free u64 | guests u32 | flags u8
//! ```
//! flags bits: 0 stay, 1 lstay, 2 block, 3 quiet, 4 observer, 5 takes migrations (CRIU ok).
//!
//! # ANNOUNCE body
//! The sender's identity: `id u64 | generation u64 | ip [4] | port u16 | observer u8 |
//! name_len u8 | name (UTF-8)`.

use std::net::{Ipv4Addr, SocketAddrV4};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::api::Flags;
use crate::identity::{NodeId, NodeIdentity};
use crate::key::ClusterKey;

/// Frame magic.
pub const MAGIC: &[u8; 3] = b"OMD";
/// The only protocol version this build speaks.
pub const VERSION: u8 = 1;
/// Header length: magic, version, kind, key id.
pub const HEADER_LEN: usize = 6;
/// Truncated HMAC-SHA256 tag length.
pub const TAG_LEN: usize = 16;
/// Largest frame we send or accept (fits an Ethernet MTU with IP/UDP headers).
pub const MAX_FRAME: usize = 1400;
/// Largest body: what foca may use for its own payload.
pub const MAX_BODY: usize = MAX_FRAME - HEADER_LEN - TAG_LEN;
/// Default UDP port for SWIM, LOAD and ANNOUNCE.
pub const DEFAULT_PORT: u16 = 7946;
/// Default multicast group for ANNOUNCE.
pub const DEFAULT_GROUP: Ipv4Addr = Ipv4Addr::new(239, 77, 0, 77);
/// Size of one encoded load record.
pub const LOAD_RECORD_LEN: usize = 8 + 4 + 4 + 2 + 4 + 4 + 4 + 8 + 8 + 4 + 1;
/// Most records one LOAD packet may carry (own + window), far below [`MAX_BODY`].
pub const MAX_LOAD_RECORDS: usize = 16;
/// Longest host name carried in an identity.
pub const MAX_NAME: usize = 64;

type HmacSha256 = Hmac<Sha256>;

/// Packet kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// foca's SWIM payload.
    Swim = 1,
    /// Load records.
    Load = 2,
    /// First contact: the sender's identity.
    Announce = 3,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        match b {
            1 => Some(Kind::Swim),
            2 => Some(Kind::Load),
            3 => Some(Kind::Announce),
            _ => None,
        }
    }
}

/// Why a received packet was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DropReason {
    /// Shorter than header + tag, or longer than [`MAX_FRAME`].
    #[error("bad length")]
    Length,
    /// Does not start with `OMD`.
    #[error("bad magic")]
    Magic,
    /// A protocol version we do not speak.
    #[error("unsupported version")]
    Version,
    /// Unknown kind byte.
    #[error("unknown kind")]
    Kind,
    /// HMAC mismatch: another cluster key, or tampering.
    #[error("authentication failed")]
    Mac,
    /// Authenticated but the body does not parse (a bug or a newer peer).
    #[error("malformed body")]
    Body,
    /// Well formed but refused by the agent (e.g. foca rejected it, sender unknown).
    #[error("rejected")]
    Rejected,
}

/// Counters of dropped packets, one per [`DropReason`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DropCounters {
    /// [`DropReason::Length`].
    pub length: u64,
    /// [`DropReason::Magic`].
    pub magic: u64,
    /// [`DropReason::Version`].
    pub version: u64,
    /// [`DropReason::Kind`].
    pub kind: u64,
    /// [`DropReason::Mac`].
    pub mac: u64,
    /// [`DropReason::Body`].
    pub body: u64,
    /// [`DropReason::Rejected`].
    pub rejected: u64,
}

impl DropCounters {
    /// Count one drop.
    pub fn count(&mut self, reason: DropReason) {
        let c = match reason {
            DropReason::Length => &mut self.length,
            DropReason::Magic => &mut self.magic,
            DropReason::Version => &mut self.version,
            DropReason::Kind => &mut self.kind,
            DropReason::Mac => &mut self.mac,
            DropReason::Body => &mut self.body,
            DropReason::Rejected => &mut self.rejected,
        };
        *c = c.saturating_add(1);
    }

    /// All drops.
    pub fn total(&self) -> u64 {
        self.length + self.magic + self.version + self.kind + self.mac + self.body + self.rejected
    }
}

fn mac(key: &ClusterKey) -> HmacSha256 {
    match HmacSha256::new_from_slice(key.bytes()) {
        Ok(m) => m,
        // HMAC hashes over-long keys and pads short ones: no key length is invalid.
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    }
}

/// Frame `body` as a `kind` packet authenticated with `key`.
pub fn encode(key: &ClusterKey, kind: Kind, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len() + TAG_LEN);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(kind as u8);
    out.push(0);
    out.extend_from_slice(body);
    let mut m = mac(key);
    m.update(&out);
    let tag = m.finalize().into_bytes();
    out.extend_from_slice(&tag[..TAG_LEN]);
    out
}

/// Check and unframe a packet; returns its kind and body.
pub fn decode<'a>(key: &ClusterKey, pkt: &'a [u8]) -> Result<(Kind, &'a [u8]), DropReason> {
    if pkt.len() < HEADER_LEN + TAG_LEN || pkt.len() > MAX_FRAME {
        return Err(DropReason::Length);
    }
    if &pkt[..3] != MAGIC {
        return Err(DropReason::Magic);
    }
    if pkt[3] != VERSION {
        return Err(DropReason::Version);
    }
    let (signed, tag) = pkt.split_at(pkt.len() - TAG_LEN);
    let mut m = mac(key);
    m.update(signed);
    // Constant-time comparison of the truncated tag (left 16 bytes of the full HMAC).
    m.verify_truncated_left(tag).map_err(|_| DropReason::Mac)?;
    // The kind is checked only after authentication so unauthenticated noise is counted as MAC.
    let kind = Kind::from_u8(pkt[4]).ok_or(DropReason::Kind)?;
    Ok((kind, &signed[HEADER_LEN..]))
}

/// One load record as carried on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadRecord {
    /// Origin node.
    pub id: NodeId,
    /// Origin's sequence number, increasing per sample.
    pub seq: u32,
    /// How old the record was when sent, ms (0 for the sender's own).
    pub age_ms: u32,
    /// Online CPUs.
    pub cpus: u16,
    /// Speed figure.
    pub speed: u32,
    /// Normalised, smoothed load × 1000.
    pub load_milli: u32,
    /// Raw loadavg1 × 1000.
    pub loadavg1_milli: u32,
    /// Bytes.
    pub mem_total: u64,
    /// Bytes available.
    pub mem_free: u64,
    /// Guest jobs.
    pub guests: u32,
    /// Flag bits, see the module docs.
    pub flags: u8,
}

/// Flag bit for an observer node.
pub const FLAG_OBSERVER: u8 = 1 << 4;
/// Flag bit: CRIU works on the node, it takes migrations.
pub const FLAG_MIGRATION: u8 = 1 << 5;

/// Pack [`Flags`] (+ observer) into the record's flag byte.
pub fn flags_to_bits(f: Flags, observer: bool) -> u8 {
    u8::from(f.stay)
        | u8::from(f.lstay) << 1
        | u8::from(f.block) << 2
        | u8::from(f.quiet) << 3
        | if observer { FLAG_OBSERVER } else { 0 }
}

/// Unpack the record's flag byte.
pub fn flags_from_bits(b: u8) -> Flags {
    Flags {
        stay: b & 1 != 0,
        lstay: b & 2 != 0,
        block: b & 4 != 0,
        quiet: b & 8 != 0,
    }
}

/// Encode a LOAD body (at most [`MAX_LOAD_RECORDS`] records are written).
pub fn encode_load(records: &[LoadRecord]) -> Vec<u8> {
    let n = records.len().min(MAX_LOAD_RECORDS);
    let mut out = Vec::with_capacity(1 + n * LOAD_RECORD_LEN);
    out.push(n as u8);
    for r in &records[..n] {
        out.extend_from_slice(&r.id.0.to_be_bytes());
        out.extend_from_slice(&r.seq.to_be_bytes());
        out.extend_from_slice(&r.age_ms.to_be_bytes());
        out.extend_from_slice(&r.cpus.to_be_bytes());
        out.extend_from_slice(&r.speed.to_be_bytes());
        out.extend_from_slice(&r.load_milli.to_be_bytes());
        out.extend_from_slice(&r.loadavg1_milli.to_be_bytes());
        out.extend_from_slice(&r.mem_total.to_be_bytes());
        out.extend_from_slice(&r.mem_free.to_be_bytes());
        out.extend_from_slice(&r.guests.to_be_bytes());
        out.push(r.flags);
    }
    out
}

/// A cursor over a body that fails instead of panicking.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DropReason> {
        if self.0.len() < n {
            return Err(DropReason::Body);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N], DropReason> {
        self.take(N)?.try_into().map_err(|_| DropReason::Body)
    }
    fn u8(&mut self) -> Result<u8, DropReason> {
        Ok(self.arr::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, DropReason> {
        Ok(u16::from_be_bytes(self.arr()?))
    }
    fn u32(&mut self) -> Result<u32, DropReason> {
        Ok(u32::from_be_bytes(self.arr()?))
    }
    fn u64(&mut self) -> Result<u64, DropReason> {
        Ok(u64::from_be_bytes(self.arr()?))
    }
    fn done(&self) -> Result<(), DropReason> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(DropReason::Body)
        }
    }
}

/// Decode a LOAD body.
pub fn decode_load(body: &[u8]) -> Result<Vec<LoadRecord>, DropReason> {
    let mut r = Reader(body);
    let n = usize::from(r.u8()?);
    if n > MAX_LOAD_RECORDS {
        return Err(DropReason::Body);
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(LoadRecord {
            id: NodeId(r.u64()?),
            seq: r.u32()?,
            age_ms: r.u32()?,
            cpus: r.u16()?,
            speed: r.u32()?,
            load_milli: r.u32()?,
            loadavg1_milli: r.u32()?,
            mem_total: r.u64()?,
            mem_free: r.u64()?,
            guests: r.u32()?,
            flags: r.u8()?,
        });
    }
    r.done()?;
    Ok(out)
}

/// Encode an ANNOUNCE body.
pub fn encode_announce(id: &NodeIdentity) -> Vec<u8> {
    let name = truncate_name(&id.name);
    let mut out = Vec::with_capacity(24 + name.len());
    out.extend_from_slice(&id.id.0.to_be_bytes());
    out.extend_from_slice(&id.generation.to_be_bytes());
    out.extend_from_slice(&id.addr.ip().octets());
    out.extend_from_slice(&id.addr.port().to_be_bytes());
    out.push(u8::from(id.observer));
    out.push(name.len() as u8);
    out.extend_from_slice(name.as_bytes());
    out
}

/// Decode an ANNOUNCE body.
pub fn decode_announce(body: &[u8]) -> Result<NodeIdentity, DropReason> {
    let mut r = Reader(body);
    let id = NodeId(r.u64()?);
    let generation = r.u64()?;
    let ip = Ipv4Addr::from(r.arr::<4>()?);
    let port = r.u16()?;
    let observer = match r.u8()? {
        0 => false,
        1 => true,
        _ => return Err(DropReason::Body),
    };
    let len = usize::from(r.u8()?);
    if len > MAX_NAME {
        return Err(DropReason::Body);
    }
    let name = std::str::from_utf8(r.take(len)?).map_err(|_| DropReason::Body)?;
    r.done()?;
    Ok(NodeIdentity {
        id,
        name: name.to_owned(),
        addr: SocketAddrV4::new(ip, port),
        generation,
        observer,
    })
}

/// Cut a name to [`MAX_NAME`] bytes on a character boundary.
pub fn truncate_name(name: &str) -> &str {
    if name.len() <= MAX_NAME {
        return name;
    }
    let mut end = MAX_NAME;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> ClusterKey {
        ClusterKey::from_bytes(vec![b; 32]).unwrap()
    }

    fn rec(id: u64) -> LoadRecord {
        LoadRecord {
            id: NodeId(id),
            seq: 7,
            age_ms: 120,
            cpus: 4,
            speed: 1000,
            load_milli: 1500,
            loadavg1_milli: 6000,
            mem_total: 8 << 30,
            mem_free: 3 << 30,
            guests: 0,
            flags: flags_to_bits(
                Flags {
                    stay: true,
                    quiet: true,
                    ..Flags::default()
                },
                false,
            ),
        }
    }

    #[test]
    fn frame_round_trip() {
        let k = key(1);
        let pkt = encode(&k, Kind::Swim, b"hello");
        assert_eq!(pkt.len(), HEADER_LEN + 5 + TAG_LEN);
        assert_eq!(decode(&k, &pkt), Ok((Kind::Swim, &b"hello"[..])));
    }

    #[test]
    fn each_failure_is_counted_by_reason() {
        let k = key(1);
        let mut c = DropCounters::default();
        let pkt = encode(&k, Kind::Load, b"x");
        let mut check = |r: Result<(Kind, &[u8]), DropReason>| {
            if let Err(e) = r {
                c.count(e)
            }
        };
        check(decode(&key(2), &pkt)); // wrong key
        check(decode(&k, &pkt[..pkt.len() - 1])); // truncated tag
        check(decode(&k, &pkt[..10])); // truncated below minimum
        let mut v = pkt.clone();
        v[3] = 2;
        check(decode(&k, &v)); // bad version
        let mut m = pkt.clone();
        m[0] = b'X';
        check(decode(&k, &m)); // bad magic
        let mut t = pkt.clone();
        t[6] ^= 1;
        check(decode(&k, &t)); // tampered body
        check(decode(&k, &encode(&k, Kind::Swim, &[0; MAX_BODY + 1]))); // too long
        assert_eq!(
            c.mac, 3,
            "wrong key, tampering and a shortened tag fail the MAC"
        );
        assert_eq!(c.length, 2);
        assert_eq!(c.version, 1);
        assert_eq!(c.magic, 1);
        assert_eq!(c.total(), 7);
    }

    #[test]
    fn unknown_kind_after_auth() {
        let k = key(1);
        let mut pkt = encode(&k, Kind::Swim, b"");
        pkt.truncate(pkt.len() - TAG_LEN);
        pkt[4] = 9;
        let mut m = mac(&k);
        m.update(&pkt);
        let tag = m.finalize().into_bytes();
        pkt.extend_from_slice(&tag[..TAG_LEN]);
        assert_eq!(decode(&k, &pkt), Err(DropReason::Kind));
    }

    #[test]
    fn load_round_trip_and_bounds() {
        let recs: Vec<_> = (0..9).map(rec).collect();
        let body = encode_load(&recs);
        assert_eq!(body.len(), 1 + 9 * LOAD_RECORD_LEN);
        assert!(
            HEADER_LEN + body.len() + TAG_LEN < 600,
            "one small datagram"
        );
        assert_eq!(decode_load(&body).unwrap(), recs);
        assert_eq!(decode_load(&body[..body.len() - 1]), Err(DropReason::Body));
        let mut extra = body.clone();
        extra.push(0);
        assert_eq!(decode_load(&extra), Err(DropReason::Body));
        assert_eq!(decode_load(&[200]), Err(DropReason::Body));
        let f = flags_from_bits(recs[0].flags);
        assert!(f.stay && f.quiet && !f.block && !f.lstay);
    }

    #[test]
    fn announce_round_trip() {
        let id = NodeIdentity {
            id: NodeId(0xdead_beef),
            name: "node-ü".into(),
            addr: "127.0.0.3:7946".parse().unwrap(),
            generation: 42,
            observer: true,
        };
        let body = encode_announce(&id);
        assert_eq!(decode_announce(&body).unwrap(), id);
        assert_eq!(decode_announce(&body[..5]), Err(DropReason::Body));
        let long = NodeIdentity {
            name: "é".repeat(40),
            ..id
        };
        let back = decode_announce(&encode_announce(&long)).unwrap();
        assert_eq!(back.name.chars().count(), 32);
    }
}
