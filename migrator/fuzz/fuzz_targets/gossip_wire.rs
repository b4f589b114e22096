//! Fuzz target: a datagram on the gossip port through `migrator::wire`'s decoders. Mutated frames
//! fail the MAC, so the body decoders also get the raw bytes, and what they accept must re-encode.

#![no_main]

use libfuzzer_sys::fuzz_target;
use migrator::key::ClusterKey;
use migrator::wire::{self, Kind};

fuzz_target!(|data: &[u8]| {
    let key = ClusterKey::from_bytes(vec![7; 32]).expect("a 32-byte key");
    if let Ok(frame) = wire::decode(std::slice::from_ref(&key), data) {
        match frame.kind {
            Kind::Load => {
                let _ = wire::decode_load(frame.body);
            }
            Kind::Announce => {
                let _ = wire::decode_announce(frame.body);
            }
            Kind::Swim => {}
        }
    }
    if let Ok(records) = wire::decode_load(data) {
        assert_eq!(wire::encode_load(&records), data);
    }
    if let Ok(identity) = wire::decode_announce(data) {
        assert_eq!(wire::encode_announce(&identity), data);
    }
});
