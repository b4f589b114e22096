//! What kind of boot client sent a request, and so which boot file it gets (RFC 4578 §2.1, iPXE).
//!
//! iPXE marks itself with user class (option 77) `iPXE` and gets the HTTP URL of its own script;
//! a firmware PXE client gets the iPXE binary for its architecture over TFTP; a UEFI HTTP boot
//! client (vendor class `HTTPClient`, UEFI 2.5 §24.7) gets `ipxe.efi` by URL; others get none.

use dhcproto::v4::{DhcpOption, Message, OptionCode};

/// RFC 4578 client system architecture types we boot.
const ARCH_BIOS: u16 = 0;
const ARCH_EFI_X86_64_BC: u16 = 7;
const ARCH_EFI_X86_64: u16 = 9;
const ARCH_EFI_X86_64_HTTP: u16 = 16;

/// The boot client behind a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootClient {
    /// iPXE already running: give it the boot script URL.
    Ipxe,
    /// A UEFI x86-64 firmware PXE client: give it `ipxe.efi`.
    UefiPxe,
    /// A BIOS PXE ROM: give it `undionly.kpxe`.
    BiosPxe,
    /// A UEFI x86-64 firmware HTTP boot client: give it the URL of `ipxe.efi`, and no TFTP.
    UefiHttp,
    /// A PXE client of an architecture we have no loader for (the number is RFC 4578's).
    UnsupportedPxe(u16),
    /// Not a network-boot client (an OS's own DHCP client): address only.
    Plain,
}

impl BootClient {
    /// Classify a request by its user class, vendor class and architecture options.
    pub fn of(msg: &Message) -> Self {
        let opts = msg.opts();
        if let Some(DhcpOption::UserClass(uc)) = opts.get(OptionCode::UserClass) {
            // iPXE sends the bare string, not RFC 3004 length-prefixed instances; accept both.
            if uc.as_slice() == b"iPXE" || uc.get(1..) == Some(b"iPXE".as_slice()) {
                return Self::Ipxe;
            }
        }
        let class = |prefix: &[u8]| {
            matches!(opts.get(OptionCode::ClassIdentifier),
                Some(DhcpOption::ClassIdentifier(v)) if v.starts_with(prefix))
        };
        let is_pxe = class(b"PXEClient");
        let arch = match opts.get(OptionCode::ClientSystemArchitecture) {
            Some(DhcpOption::ClientSystemArchitecture(a)) => Some(a.0),
            _ => None,
        };
        if class(b"HTTPClient") {
            return match arch {
                Some(ARCH_EFI_X86_64_HTTP) => Self::UefiHttp,
                Some(other) => Self::UnsupportedPxe(other),
                None => Self::Plain,
            };
        }
        match (is_pxe, arch) {
            (_, Some(ARCH_EFI_X86_64 | ARCH_EFI_X86_64_BC)) => Self::UefiPxe,
            (_, Some(ARCH_BIOS)) | (true, None) => Self::BiosPxe,
            (_, Some(other)) => Self::UnsupportedPxe(other),
            (false, None) => Self::Plain,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dhcproto::v4::Architecture;

    fn msg(opts: Vec<DhcpOption>) -> Message {
        let mut m = Message::default();
        for o in opts {
            m.opts_mut().insert(o);
        }
        m
    }

    #[test]
    fn classifies_clients() {
        let pxe = || DhcpOption::ClassIdentifier(b"PXEClient:Arch:00007:UNDI:003016".to_vec());
        let arch = |a| DhcpOption::ClientSystemArchitecture(Architecture(a));
        assert_eq!(
            BootClient::of(&msg(vec![
                DhcpOption::UserClass(b"iPXE".to_vec()),
                pxe(),
                arch(7)
            ])),
            BootClient::Ipxe
        );
        assert_eq!(
            BootClient::of(&msg(vec![DhcpOption::UserClass(b"\x04iPXE".to_vec())])),
            BootClient::Ipxe
        );
        assert_eq!(
            BootClient::of(&msg(vec![pxe(), arch(7)])),
            BootClient::UefiPxe
        );
        assert_eq!(
            BootClient::of(&msg(vec![pxe(), arch(9)])),
            BootClient::UefiPxe
        );
        assert_eq!(
            BootClient::of(&msg(vec![pxe(), arch(0)])),
            BootClient::BiosPxe
        );
        assert_eq!(BootClient::of(&msg(vec![pxe()])), BootClient::BiosPxe);
        assert_eq!(
            BootClient::of(&msg(vec![pxe(), arch(11)])),
            BootClient::UnsupportedPxe(11)
        );
        let http = || DhcpOption::ClassIdentifier(b"HTTPClient:Arch:00016:UNDI:003001".to_vec());
        assert_eq!(
            BootClient::of(&msg(vec![http(), arch(16)])),
            BootClient::UefiHttp
        );
        // The 32-bit UEFI HTTP client: we have no loader for it.
        assert_eq!(
            BootClient::of(&msg(vec![http(), arch(15)])),
            BootClient::UnsupportedPxe(15)
        );
        assert_eq!(BootClient::of(&msg(vec![])), BootClient::Plain);
        assert_eq!(
            BootClient::of(&msg(vec![DhcpOption::UserClass(b"other".to_vec())])),
            BootClient::Plain
        );
    }
}
