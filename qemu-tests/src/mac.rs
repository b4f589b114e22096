//! MAC addresses of lab nodes: ombootd's own [`MacAddr`] (parsed and printed as its config
//! expects), and the lab's numbering of them.

pub use bootserver::mac::MacAddr;

/// The lab's addresses.
pub trait LabMac {
    /// The lab's address for node `n`: `52:54:00:77:00:n` (QEMU's locally administered prefix).
    fn lab(n: u8) -> MacAddr;
}

impl LabMac for MacAddr {
    fn lab(n: u8) -> MacAddr {
        MacAddr([0x52, 0x54, 0x00, 0x77, 0x00, n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_addresses_print_as_qemu_and_ombootd_take_them() {
        let mac: MacAddr = "52:54:00:77:00:0A".parse().expect("valid");
        assert_eq!(mac, MacAddr::lab(10));
        assert_eq!(mac.to_string(), "52:54:00:77:00:0a");
    }
}
