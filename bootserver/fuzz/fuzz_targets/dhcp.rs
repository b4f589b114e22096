//! Fuzz target: a datagram on the DHCP port through the server's path from bytes to reply bytes
//! (`handler::decode`, `handler::handle`, the reply's encoding), with a two-node table.

#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use bootserver::config::Config;
use bootserver::dhcp::handler::{self, Outcome};
use bootserver::leases::{Lease, LeaseState, LeaseStore, MemoryLeases};
use bootserver::mac::MacAddr;
use dhcproto::{Encodable, Encoder};
use libfuzzer_sys::fuzz_target;

const NOW: u64 = 1_700_000_000;

fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let text = r#"
interface = "ombr0"
master_ip = "10.77.0.1"
subnet = "10.77.0.0/24"
router = "10.77.0.254"
image_dir = "/img"
state_dir = "/state"
[[node]]
mac = "52:54:00:77:00:01"
name = "node1"
ip = "10.77.0.11"
[[node]]
mac = "52:54:00:77:00:02"
name = "node2"
ip = "10.77.0.12"
"#;
        Config::parse(text, Path::new("fuzz.toml")).expect("the fuzz config parses")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(req) = handler::decode(data) else {
        return;
    };
    // A fresh store per input keeps runs reproducible; node1's pending offer lets a REQUEST
    // naming another server reach the path that withdraws it.
    let mut leases = MemoryLeases::default();
    let node1 = MacAddr([0x52, 0x54, 0, 0x77, 0, 1]);
    let offer = Lease {
        mac: node1.to_string(),
        ip: [10, 77, 0, 11].into(),
        name: "node1".into(),
        state: LeaseState::Offered,
        expires: NOW + 60,
    };
    leases
        .put(node1, offer)
        .expect("the memory store cannot fail");
    if let Ok(Outcome::Reply { msg, .. }) = handler::handle(&req, config(), &mut leases, NOW) {
        let mut bytes = Vec::new();
        let _ = msg.encode(&mut Encoder::new(&mut bytes));
    }
});
