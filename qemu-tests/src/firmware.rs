//! Node firmware: SeaBIOS (the virtio-net NIC's iPXE option ROM does PXE) or OVMF UEFI (iPXE's
//! EFI driver from the same ROM, or edk2's own PXE or HTTP boot client, over IPv4 or IPv6). Each
//! gets one per-node file: UEFI a writable copy of the variable store (for HTTP boot over IPv6
//! with its boot order set, see [`crate::uefi_vars`]), BIOS the SeaBIOS serial-console setting
//! that puts iPXE's output on ttyS0.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result, io};
use crate::mac::MacAddr;
use crate::node::NIC_PCI_SLOT;
use crate::uefi_vars;

/// Read-only OVMF code (Debian's `ovmf` package).
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
/// Template of the OVMF variable store, copied per node.
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
/// I/O port of COM1, where SeaBIOS mirrors its text console (`etc/sercon-port`).
const COM1: u16 = 0x3f8;
/// How long OVMF waits before its first boot option when it is to boot over IPv6 (QEMU's
/// `-boot splash-time`, milliseconds). OVMF starts its network stack just before it boots, and
/// edk2-stable202211's HTTP boot client starts DHCPv6 at once, before the IPv6 stack can send:
/// the boot fails on the spot ("Could not retrieve NBP file size from HTTP server") and the
/// firmware goes on to its IPv4 option. edk2 retries since May 2025 (commit 11f1d28bcb, which
/// waits for duplicate address detection); switching that detection off in the firmware's IPv6
/// settings did not help here, waiting did. In the lab 1 and 2 s were too short, 3 s was enough
/// in 4 boots out of 4 on an idle host; 5 s leaves room for a loaded one.
const IPV6_BOOT_WAIT_MS: u32 = 5000;

/// How a node starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Firmware {
    /// Legacy BIOS (SeaBIOS), PXE through the NIC's iPXE ROM.
    #[default]
    Bios,
    /// UEFI (OVMF), PXE through iPXE's EFI driver.
    Uefi,
    /// UEFI (OVMF) with its PXE boot options switched off, so that edk2 boots over HTTP (its
    /// HTTPClient DHCP request and a URL; no TFTP). Only with a NIC edk2 drives itself and no
    /// NIC ROM (iPXE's driver would boot first).
    UefiHttp,
    /// [`Firmware::UefiHttp`] over IPv6: the variable store carries a boot option for HTTP boot
    /// over IPv6 on the node's NIC, first in the boot order, with no URL in it, so the firmware
    /// takes its address and the loader's URL from DHCPv6 (RFC 5970). Without it OVMF tries
    /// IPv4 first. The server must serve IPv6 netboot (`ipv6_boot`).
    UefiHttpIpv6,
}

impl fmt::Display for Firmware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Firmware::Bios => "BIOS",
            Firmware::Uefi => "UEFI",
            Firmware::UefiHttp => "UEFI HTTP",
            Firmware::UefiHttpIpv6 => "UEFI HTTP IPv6",
        })
    }
}

impl Firmware {
    /// Prepares the per-node firmware file in `dir` and returns its path: for UEFI a fresh copy
    /// of the variable store (`<node>.OVMF_VARS.fd`; for [`Firmware::UefiHttpIpv6`] with the
    /// boot option for the NIC with `mac`), for BIOS `<node>.sercon-port`.
    pub(crate) fn prepare(self, dir: &Path, node: &str, mac: MacAddr) -> Result<PathBuf> {
        match self {
            Firmware::Bios => {
                // SeaBIOS reads this fw_cfg file as a little-endian integer. Without it, the
                // iPXE ROM under SeaBIOS prints only to the (invisible) VGA screen, so a PXE
                // failure would leave an empty serial log. QEMU warns that the name lacks the
                // "opt/" prefix; SeaBIOS looks for exactly this name, so the warning stays.
                let path = dir.join(format!("{node}.sercon-port"));
                std::fs::write(&path, COM1.to_le_bytes())
                    .map_err(io(format!("write {}", path.display())))?;
                Ok(path)
            }
            Firmware::Uefi | Firmware::UefiHttp | Firmware::UefiHttpIpv6 => {
                for (what, path) in [("OVMF code", OVMF_CODE), ("OVMF variable store", OVMF_VARS)] {
                    if !Path::new(path).exists() {
                        return Err(Error::Missing {
                            what,
                            path: path.into(),
                        });
                    }
                }
                let vars = dir.join(format!("{node}.OVMF_VARS.fd"));
                std::fs::copy(OVMF_VARS, &vars)
                    .map_err(io(format!("copy {OVMF_VARS} to {}", vars.display())))?;
                if self == Firmware::UefiHttpIpv6 {
                    uefi_vars::ipv6_http_boot_first(&vars, NIC_PCI_SLOT, mac)?;
                }
                Ok(vars)
            }
        }
    }

    /// QEMU arguments selecting this firmware; `file` is what [`Firmware::prepare`] returned.
    pub(crate) fn qemu_args(self, file: &Path) -> Vec<OsString> {
        match self {
            // SeaBIOS is QEMU's default; only its serial console needs switching on.
            Firmware::Bios => {
                let mut sercon = OsString::from("name=etc/sercon-port,file=");
                sercon.push(file);
                vec!["-fw_cfg".into(), sercon]
            }
            Firmware::Uefi | Firmware::UefiHttp | Firmware::UefiHttpIpv6 => {
                let mut code = OsString::from("if=pflash,format=raw,readonly=on,file=");
                code.push(OVMF_CODE);
                let mut vars = OsString::from("if=pflash,format=raw,file=");
                vars.push(file);
                let mut args = vec!["-drive".into(), code, "-drive".into(), vars];
                if self != Firmware::Uefi {
                    // OVMF's fw_cfg switches for its PXE boot options (edk2 OvmfPkg, since
                    // 2020): with both off, its first network boot option is HTTP over IPv4.
                    for knob in ["IPv4PXESupport", "IPv6PXESupport"] {
                        args.push("-fw_cfg".into());
                        args.push(format!("name=opt/org.tianocore/{knob},string=n").into());
                    }
                }
                if self == Firmware::UefiHttpIpv6 {
                    // QEMU merges this with the node's `-boot n`; OVMF takes the splash time
                    // as its boot timeout.
                    args.push("-boot".into());
                    args.push(format!("menu=on,splash-time={IPV6_BOOT_WAIT_MS}").into());
                }
                args
            }
        }
    }
}
