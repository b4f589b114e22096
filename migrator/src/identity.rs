//! Node identity: a stable id from /etc/machine-id (or the MAC), plus what foca needs
//! to tell a restarted node from its previous life (the generation).

use std::net::SocketAddrV4;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A stable node id: the first 8 bytes of SHA-256 of the machine-id (or MAC). Never the IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeId(pub u64);

impl NodeId {
    /// Hash arbitrary stable bytes (machine-id contents, MAC) into an id.
    pub fn from_stable_bytes(bytes: &[u8]) -> NodeId {
        let h = Sha256::digest(bytes);
        let mut b = [0u8; 8];
        b.copy_from_slice(&h[..8]);
        NodeId(u64::from_be_bytes(b))
    }

    /// The id from `/etc/machine-id` contents (whitespace trimmed, so a trailing newline
    /// does not matter), or `None` if it is empty.
    pub fn from_machine_id(contents: &str) -> Option<NodeId> {
        let t = contents.trim();
        (!t.is_empty()).then(|| Self::from_stable_bytes(t.as_bytes()))
    }

    /// The id from a MAC address (`aa:bb:...` as in /sys/class/net/IF/address).
    pub fn from_mac(mac: &str) -> Option<NodeId> {
        let t = mac.trim().to_ascii_lowercase();
        (!t.is_empty() && t != "00:00:00:00:00:00").then(|| Self::from_stable_bytes(t.as_bytes()))
    }

    /// Parse 16 hex digits.
    pub fn parse_hex(s: &str) -> Option<NodeId> {
        (s.len() == 16)
            .then(|| u64::from_str_radix(s, 16).ok())
            .flatten()
            .map(NodeId)
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// The foca identity of a member.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeIdentity {
    /// Stable id; foca's "address" so a restarted node replaces its old self.
    pub id: NodeId,
    /// Host name.
    pub name: String,
    /// Where it gossips.
    pub addr: SocketAddrV4,
    /// Taken from a counter file at process start (`generation.rs`), +1 per `renew`: the
    /// newest wins.
    pub generation: u64,
    /// An observer (ombootd): a member that never takes load.
    pub observer: bool,
}

impl foca::Identity for NodeIdentity {
    type Addr = NodeId;

    fn renew(&self) -> Option<Self> {
        // Declared down while alive (a false suspicion, a pause): come back at once with a
        // newer generation, which wins the conflict below.
        Some(Self {
            generation: self.generation.wrapping_add(1),
            ..self.clone()
        })
    }

    fn addr(&self) -> NodeId {
        self.id
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.generation > adversary.generation
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foca::Identity;

    #[test]
    fn id_from_machine_id_is_stable_and_hex() {
        let a = NodeId::from_machine_id("0123456789abcdef0123456789abcdef\n").unwrap();
        let b = NodeId::from_machine_id("0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(a, b);
        let s = a.to_string();
        assert_eq!(s.len(), 16);
        assert_eq!(NodeId::parse_hex(&s), Some(a));
        // First 8 bytes of sha256("0123456789abcdef0123456789abcdef").
        let h = Sha256::digest(b"0123456789abcdef0123456789abcdef");
        assert_eq!(s, hex::encode(&h[..8]));
        assert_eq!(NodeId::from_machine_id("  \n"), None);
        assert_ne!(
            NodeId::from_mac("52:54:00:12:34:56"),
            NodeId::from_mac("52:54:00:12:34:57")
        );
        assert_eq!(NodeId::from_mac("00:00:00:00:00:00"), None);
        assert_eq!(NodeId::parse_hex("xyz"), None);
    }

    #[test]
    fn renewed_identity_wins() {
        let a = NodeIdentity {
            id: NodeId(1),
            name: "n".into(),
            addr: "127.0.0.1:7946".parse().unwrap(),
            generation: 10,
            observer: false,
        };
        let b = a.renew().unwrap();
        assert_eq!(a.addr(), b.addr());
        assert!(b.win_addr_conflict(&a));
        assert!(!a.win_addr_conflict(&b));
    }
}
