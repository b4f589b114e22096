//! The cluster wire format: framing, HMAC authentication, the sender header that replay and
//! address checks use, and the LOAD/ANNOUNCE bodies. No sockets here; `encode`/`decode` are
//! pure and every rejected packet has a [`DropReason`].
//!
//! # Transport
//! - UDP port 7946 (configurable) on the gossip interface carries SWIM and LOAD, unicast.
//! - ANNOUNCE goes to multicast group 239.77.0.77, same port, TTL 1, sent on the gossip
//!   interface (IP_MULTICAST_IF); it is also sent unicast to configured seeds. A receiver
//!   takes the sender as a member at once; seeds and members joined for a while answer with
//!   their own ANNOUNCE, unicast, and a node that has just joined ANNOUNCEs itself to a few
//!   members (`join_fanout`).
//!
//! # Frame (version 2), all integers big-endian
//! ```text
//! 0      3         4      5        6         14           22    30   34     36       len-16     len
//! | "OMD" | version | kind | key id | node id | generation | seq | ip | port | body ... | tag (16) |
//! ```
//! - kind: 1 = SWIM (body is foca's postcard payload), 2 = LOAD, 3 = ANNOUNCE.
//! - key id: [`ClusterKey::id`] of the key the tag was made with; the receiver verifies with
//!   the key(s) it holds under that id (two during a key rotation).
//! - node id, generation: the sender's identity as foca knows it (`identity.rs`).
//! - seq: the sender's frame counter, 1 for its first frame after each process start, +1 per
//!   frame it sends to anyone. With the generation it lets a receiver drop a recorded frame
//!   sent again (`replay.rs`).
//! - ip, port: the sender's gossip address; a frame arriving from any other UDP source is
//!   dropped, so a captured frame cannot be re-sent from elsewhere.
//! - tag: HMAC-SHA256 with the cluster key over bytes `0..len-16` (the whole header included),
//!   truncated to the first 16 bytes, verified in constant time. Maximum frame: [`MAX_FRAME`].
//!
//! Version 1 (no sender header, key id always 0) is refused as [`DropReason::Version`]: the
//! version byte is read before the MAC, since another version's layout cannot be
//! authenticated, so anyone can provoke that drop; the agent logs it rate-limited.
//!
//! # LOAD body
//! `count: u8` then `count` records of [`LOAD_RECORD_LEN`] bytes, the sender's own record
//! first (unless it is quiet), then a window of records about others younger than
//! [`FRESH`](crate::table::FRESH), news first, each part freshest first:
//! ```text
//! id u64 | seq u32 | age_ms u32 | cpus u16 | speed u32 | load_milli u32 | loadavg1_milli u32
//! | mem_total u64 | mem_free u64 | guests u32 | flags u8
//! ```
//! flags bits: 0 stay, 1 lstay, 2 block, 3 quiet, 4 observer, 5 takes migrations (CRIU ok),
//! 6 news (the origin's load moved by [`NEWS_LOAD_MILLI`] or its flags changed within its last
//! [`NEWS_ROUNDS`] samples: receivers forward it before other records, see `table.rs`).
//! Receivers ignore bits they do not know, so a new bit needs no new version.
//!
//! [`NEWS_LOAD_MILLI`]: crate::agent::NEWS_LOAD_MILLI
//! [`NEWS_ROUNDS`]: crate::agent::NEWS_ROUNDS
//!
//! # ANNOUNCE body
//! The sender's identity: `id u64 | generation u64 | ip [4] | port u16 | observer u8 |
//! name_len u8 | name (UTF-8)`; its address must be the header's.

use std::net::{Ipv4Addr, SocketAddrV4};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::api::Flags;
use crate::identity::{NodeId, NodeIdentity};
use crate::key::ClusterKey;

/// Frame magic.
pub const MAGIC: &[u8; 3] = b"OMD";
/// The only protocol version this build speaks.
pub const VERSION: u8 = 2;
/// Header length: magic, version, kind, key id, node id, generation, seq, ip, port.
pub const HEADER_LEN: usize = 3 + 1 + 1 + 1 + 8 + 8 + 8 + 4 + 2;
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
    /// Another protocol version (the one it speaks): a node running another build.
    #[error("cluster wire version {0}, this build speaks {VERSION}")]
    Version(u8),
    /// Unknown kind byte.
    #[error("unknown kind")]
    Kind,
    /// HMAC mismatch: another cluster key (or a key id we hold no key for), or tampering.
    #[error("authentication failed")]
    Mac,
    /// Authenticated, but it arrived from another UDP source than the address in its header
    /// (or an ANNOUNCE names another address than its header).
    #[error("sent from another address than its header names")]
    Readdressed,
    /// Authenticated, from an older generation of its sender than one already heard from.
    #[error("from an older generation of its sender")]
    OldGeneration,
    /// Authenticated, but its sequence number was already seen or is older than the window.
    #[error("replayed")]
    Replay,
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
    /// [`DropReason::Version`], whatever the version.
    pub version: u64,
    /// [`DropReason::Kind`].
    pub kind: u64,
    /// [`DropReason::Mac`].
    pub mac: u64,
    /// [`DropReason::Readdressed`].
    pub readdressed: u64,
    /// [`DropReason::OldGeneration`].
    pub old_generation: u64,
    /// [`DropReason::Replay`].
    pub replay: u64,
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
            DropReason::Version(_) => &mut self.version,
            DropReason::Kind => &mut self.kind,
            DropReason::Mac => &mut self.mac,
            DropReason::Readdressed => &mut self.readdressed,
            DropReason::OldGeneration => &mut self.old_generation,
            DropReason::Replay => &mut self.replay,
            DropReason::Body => &mut self.body,
            DropReason::Rejected => &mut self.rejected,
        };
        *c = c.saturating_add(1);
    }

    /// All drops.
    pub fn total(&self) -> u64 {
        [
            self.length,
            self.magic,
            self.version,
            self.kind,
            self.mac,
            self.readdressed,
            self.old_generation,
            self.replay,
            self.body,
            self.rejected,
        ]
        .iter()
        .fold(0, |a, b| a.saturating_add(*b))
    }
}

/// Who sent a frame, as its header says (authenticated once [`decode`] returned it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sender {
    /// The sender's node id.
    pub id: NodeId,
    /// Its identity's generation when it sent the frame.
    pub generation: u64,
    /// Its frame counter (1 for its first frame after it started).
    pub seq: u64,
    /// Its gossip address, where the frame must come from.
    pub addr: SocketAddrV4,
}

/// A frame that authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// What the body is.
    pub kind: Kind,
    /// The header's sender fields.
    pub from: Sender,
    /// The payload.
    pub body: &'a [u8],
}

fn mac(key: &ClusterKey) -> HmacSha256 {
    match HmacSha256::new_from_slice(key.bytes()) {
        Ok(m) => m,
        // HMAC hashes over-long keys and pads short ones: no key length is invalid.
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    }
}

/// Frame `body` as a `kind` packet from `from`, authenticated with `key`.
pub fn encode(key: &ClusterKey, kind: Kind, from: &Sender, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len() + TAG_LEN);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(kind as u8);
    out.push(key.id());
    out.extend_from_slice(&from.id.0.to_be_bytes());
    out.extend_from_slice(&from.generation.to_be_bytes());
    out.extend_from_slice(&from.seq.to_be_bytes());
    out.extend_from_slice(&from.addr.ip().octets());
    out.extend_from_slice(&from.addr.port().to_be_bytes());
    out.extend_from_slice(body);
    let mut m = mac(key);
    m.update(&out);
    let tag = m.finalize().into_bytes();
    out.extend_from_slice(&tag[..TAG_LEN]);
    out
}

/// Check and unframe a packet with any of `keys` whose id the header names (the first is the
/// one we send with; a second is accepted during a key rotation).
pub fn decode<'a>(keys: &[ClusterKey], pkt: &'a [u8]) -> Result<Frame<'a>, DropReason> {
    if pkt.len() > MAX_FRAME || pkt.len() < MAGIC.len() + 1 {
        return Err(DropReason::Length);
    }
    if &pkt[..3] != MAGIC {
        return Err(DropReason::Magic);
    }
    // Before the length: a version 1 frame is shorter than our header and must still be
    // reported as what it is.
    if pkt[3] != VERSION {
        return Err(DropReason::Version(pkt[3]));
    }
    if pkt.len() < HEADER_LEN + TAG_LEN {
        return Err(DropReason::Length);
    }
    let (signed, tag) = pkt.split_at(pkt.len() - TAG_LEN);
    let key_id = pkt[5];
    // Keys whose ids collide are all tried; each check is constant time (left 16 bytes of the
    // full HMAC), and which key matched is not secret.
    let authentic = keys.iter().filter(|k| k.id() == key_id).any(|k| {
        let mut m = mac(k);
        m.update(signed);
        m.verify_truncated_left(tag).is_ok()
    });
    if !authentic {
        return Err(DropReason::Mac);
    }
    // The kind is checked only after authentication so unauthenticated noise is counted as MAC.
    let kind = Kind::from_u8(pkt[4]).ok_or(DropReason::Kind)?;
    let mut r = Reader(&signed[6..HEADER_LEN]);
    let from = Sender {
        id: NodeId(r.u64()?),
        generation: r.u64()?,
        seq: r.u64()?,
        addr: SocketAddrV4::new(Ipv4Addr::from(r.arr::<4>()?), r.u16()?),
    };
    Ok(Frame {
        kind,
        from,
        body: &signed[HEADER_LEN..],
    })
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
/// Flag bit: news, the origin's load or flags changed lately; forwarded before other records.
pub const FLAG_NEWS: u8 = 1 << 6;

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

    fn sender(seq: u64) -> Sender {
        Sender {
            id: NodeId(0x1234_5678_9abc_def0),
            generation: (3 << 32) + 1,
            seq,
            addr: "10.77.0.12:7946".parse().unwrap(),
        }
    }

    /// A genuine version 1 frame: `OMD | 1 | kind | 0 | body | tag`.
    fn v1_frame(k: &ClusterKey, body: &[u8]) -> Vec<u8> {
        let mut out = vec![b'O', b'M', b'D', 1, Kind::Load as u8, 0];
        out.extend_from_slice(body);
        let mut m = mac(k);
        m.update(&out);
        out.extend_from_slice(&m.finalize().into_bytes()[..TAG_LEN]);
        out
    }

    #[test]
    fn frame_round_trip_carries_the_sender() {
        let k = key(1);
        let pkt = encode(&k, Kind::Swim, &sender(9), b"hello");
        assert_eq!(pkt.len(), HEADER_LEN + 5 + TAG_LEN);
        assert_eq!(HEADER_LEN, 36);
        assert_eq!(&pkt[..6], &[b'O', b'M', b'D', 2, 1, k.id()]);
        assert_eq!(
            decode(&[k], &pkt),
            Ok(Frame {
                kind: Kind::Swim,
                from: sender(9),
                body: b"hello"
            })
        );
        assert_eq!(MAX_BODY, 1348, "what foca may put in one frame");
    }

    #[test]
    fn each_failure_is_counted_by_reason() {
        let k = key(1);
        let keys = [k.clone()];
        let mut c = DropCounters::default();
        let pkt = encode(&k, Kind::Load, &sender(1), b"x");
        let mut check = |r: Result<Frame<'_>, DropReason>| {
            if let Err(e) = r {
                c.count(e)
            }
        };
        check(decode(&[key(2)], &pkt)); // wrong key
        check(decode(&keys, &pkt[..pkt.len() - 1])); // truncated tag
        check(decode(&keys, &pkt[..10])); // truncated below minimum
        let mut v = pkt.clone();
        v[3] = 3;
        check(decode(&keys, &v)); // a newer version
        let mut m = pkt.clone();
        m[0] = b'X';
        check(decode(&keys, &m)); // bad magic
        let mut t = pkt.clone();
        t[HEADER_LEN] ^= 1;
        check(decode(&keys, &t)); // tampered body
        check(decode(
            &keys,
            &encode(&k, Kind::Swim, &sender(2), &[0; MAX_BODY + 1]),
        )); // too long
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
    fn version_1_is_refused_as_such() {
        let k = key(1);
        // The smallest v1 frame is shorter than a v2 header: still a version drop, not length.
        let short = v1_frame(&k, b"");
        assert!(short.len() < HEADER_LEN + TAG_LEN);
        assert_eq!(
            decode(std::slice::from_ref(&k), &short),
            Err(DropReason::Version(1))
        );
        let long = v1_frame(&k, &[0; 100]);
        assert_eq!(decode(&[k], &long), Err(DropReason::Version(1)));
        assert_eq!(
            DropReason::Version(1).to_string(),
            "cluster wire version 1, this build speaks 2"
        );
    }

    #[test]
    fn every_tampered_byte_is_refused() {
        let k = key(1);
        let keys = [k.clone()];
        let pkt = encode(&k, Kind::Announce, &sender(77), b"some body");
        for i in 0..pkt.len() {
            let mut t = pkt.clone();
            t[i] ^= 0x40;
            let want = match i {
                0..3 => DropReason::Magic,
                3 => DropReason::Version(2 ^ 0x40),
                // The key id, the sender fields and the body are all under the MAC.
                _ => DropReason::Mac,
            };
            assert_eq!(decode(&keys, &t), Err(want), "byte {i}");
        }
    }

    #[test]
    fn every_truncation_is_refused_without_panic() {
        let k = key(1);
        let keys = [k.clone()];
        let pkt = encode(&k, Kind::Load, &sender(5), &[7; 40]);
        for n in 0..pkt.len() {
            let r = decode(&keys, &pkt[..n]);
            assert!(
                matches!(r, Err(DropReason::Length | DropReason::Mac)),
                "{n} bytes: {r:?}"
            );
        }
        for n in 0..HEADER_LEN + TAG_LEN {
            assert!(decode(&keys, &vec![0xff; n]).is_err());
            let mut p = pkt[..n.min(4)].to_vec();
            p.resize(n, 0);
            assert!(decode(&keys, &p).is_err(), "{n} bytes of header and zeros");
        }
    }

    #[test]
    fn unknown_kind_after_auth() {
        let k = key(1);
        let mut pkt = encode(&k, Kind::Swim, &sender(1), b"");
        pkt.truncate(pkt.len() - TAG_LEN);
        pkt[4] = 9;
        let mut m = mac(&k);
        m.update(&pkt);
        let tag = m.finalize().into_bytes();
        pkt.extend_from_slice(&tag[..TAG_LEN]);
        assert_eq!(decode(&[k], &pkt), Err(DropReason::Kind));
    }

    #[test]
    fn during_a_rotation_both_keys_are_accepted_otherwise_only_the_configured() {
        let (old, new, other) = (key(1), key(2), key(3));
        assert_ne!(old.id(), new.id(), "these test keys do not collide");
        let under_old = encode(&old, Kind::Load, &sender(1), b"x");
        let under_new = encode(&new, Kind::Load, &sender(2), b"x");
        let under_other = encode(&other, Kind::Load, &sender(3), b"x");
        let both = [new.clone(), old.clone()];
        assert!(decode(&both, &under_old).is_ok());
        assert!(decode(&both, &under_new).is_ok());
        assert_eq!(decode(&both, &under_other), Err(DropReason::Mac));
        assert!(decode(std::slice::from_ref(&new), &under_new).is_ok());
        assert_eq!(decode(&[new], &under_old), Err(DropReason::Mac));
        assert_eq!(decode(&[old], &under_new), Err(DropReason::Mac));
    }

    #[test]
    fn keys_with_colliding_ids_are_both_tried() {
        // Find two keys whose ids collide (one byte: a few hundred tries at most).
        let a = key(1);
        let b = (0u32..)
            .map(|n| {
                let mut bytes = vec![0; 32];
                bytes[..4].copy_from_slice(&n.to_be_bytes());
                ClusterKey::from_bytes(bytes).unwrap()
            })
            .find(|k| k.id() == a.id() && *k != a)
            .unwrap();
        let under_b = encode(&b, Kind::Swim, &sender(1), b"x");
        assert!(decode(&[a.clone(), b.clone()], &under_b).is_ok());
        assert!(decode(&[b, a.clone()], &encode(&a, Kind::Swim, &sender(2), b"x")).is_ok());
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
