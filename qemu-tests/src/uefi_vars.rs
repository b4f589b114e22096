//! Firmware settings written into a node's copy of OVMF's variable store before it powers on:
//! what an operator would set in the firmware's setup screens. Today one setting, a boot option
//! for HTTP boot over IPv6 placed first in `BootOrder` ([`ipv6_http_boot_first`]); OVMF keeps
//! the order of the store when QEMU passes no `bootindex`, and adds its own options after it.
//!
//! The store is edk2's authenticated-variable store inside the NV-data firmware volume, as
//! Debian's `OVMF_VARS_4M.fd` ships it (edk2 MdeModulePkg `VariableFormat.h`): variables follow
//! the store header back to back, each a 60-byte header, its UCS-2 name and its data, aligned to
//! 4 bytes; the free space after them is 0xFF. New variables are appended there, and an older
//! copy of the same variable is marked deleted, as edk2 itself does.

use std::path::Path;

use crate::error::{Error, Result, io};
use crate::mac::MacAddr;

/// `EFI_GLOBAL_VARIABLE` (8BE4DF61-93CA-11D2-AA0D-00E098032B8C): `Boot####`, `BootOrder`.
const GLOBAL_VARIABLE: Guid = Guid(
    0x8be4_df61,
    0x93ca,
    0x11d2,
    [0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c],
);
/// The firmware volume holding the variables (`gEfiSystemNvDataFvGuid`).
const NV_DATA_FV: Guid = Guid(
    0xfff1_2b8d,
    0x7696,
    0x4c8b,
    [0xa9, 0x85, 0x27, 0x47, 0x07, 0x5b, 0x4f, 0x50],
);
/// A store of authenticated-variable headers (`gEfiAuthenticatedVariableGuid`).
const AUTHENTICATED_STORE: Guid = Guid(
    0xaaf3_2c78,
    0x947b,
    0x439a,
    [0xa1, 0x80, 0x2e, 0x14, 0x4e, 0xc3, 0x77, 0x92],
);

/// `_FVH`, at offset 40 of a firmware volume header.
const FV_SIGNATURE: u32 = 0x4856_465f;
/// Offset of the FV header's `HeaderLength`; the variable store header follows the FV header.
const FV_HEADER_LENGTH_AT: usize = 48;
/// Size of `VARIABLE_STORE_HEADER`.
const STORE_HEADER_LEN: usize = 28;
/// `VARIABLE_STORE_FORMATTED` and `VARIABLE_STORE_HEALTHY`.
const STORE_FORMATTED: u8 = 0x5a;
const STORE_HEALTHY: u8 = 0xfe;
/// Size of `AUTHENTICATED_VARIABLE_HEADER`.
const VAR_HEADER_LEN: usize = 60;
/// `VARIABLE_DATA`, the start of every variable header.
const VAR_START_ID: u16 = 0x55aa;
/// `VAR_ADDED`: a live variable.
const VAR_ADDED: u8 = 0x3f;
/// `VAR_DELETED`, cleared bit by bit into the state as flash allows.
const VAR_DELETED: u8 = 0xfd;
/// Non-volatile, boot-service and runtime access: how the firmware stores boot options.
const NV_BS_RT: u32 = 0x7;
/// `LOAD_OPTION_ACTIVE`.
const LOAD_OPTION_ACTIVE: u32 = 0x1;

/// The number of the boot option this module writes (`Boot0001`).
pub(crate) const IPV6_HTTP_BOOT_OPTION: u16 = 1;
/// Its description, as the firmware prints it when it starts the option.
pub(crate) const IPV6_HTTP_BOOT_DESCRIPTION: &str = "HTTP boot over IPv6, URL from DHCPv6";

/// An `EFI_GUID`: three little-endian fields, then eight bytes as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Guid(u32, u16, u16, [u8; 8]);

impl Guid {
    fn bytes(self) -> [u8; 16] {
        let mut b = [0; 16];
        b[..4].copy_from_slice(&self.0.to_le_bytes());
        b[4..6].copy_from_slice(&self.1.to_le_bytes());
        b[6..8].copy_from_slice(&self.2.to_le_bytes());
        b[8..].copy_from_slice(&self.3);
        b
    }
}

/// Writes into the variable store at `path` a boot option for UEFI HTTP boot over IPv6 on the
/// NIC at PCI slot `pci_slot` with `mac`, and a `BootOrder` that lists only it (the firmware
/// appends the options it finds itself). The option's URI node is empty, so edk2's HTTP boot
/// driver asks DHCPv6 for the boot file URL instead of carrying one.
pub(crate) fn ipv6_http_boot_first(path: &Path, pci_slot: u8, mac: MacAddr) -> Result<()> {
    let bad = |reason: String| Error::VarStore {
        path: path.to_owned(),
        reason,
    };
    let mut store = std::fs::read(path).map_err(io(format!("read {}", path.display())))?;
    let option = load_option(
        IPV6_HTTP_BOOT_DESCRIPTION,
        &ipv6_http_device_path(pci_slot, mac),
    );
    set_variable(
        &mut store,
        &format!("Boot{IPV6_HTTP_BOOT_OPTION:04X}"),
        &option,
    )
    .map_err(bad)?;
    set_variable(
        &mut store,
        "BootOrder",
        &IPV6_HTTP_BOOT_OPTION.to_le_bytes(),
    )
    .map_err(bad)?;
    std::fs::write(path, &store).map_err(io(format!("write {}", path.display())))
}

/// An `EFI_LOAD_OPTION` (UEFI 2.10 §3.1.3): active, `description`, `device_path`, no optional
/// data.
fn load_option(description: &str, device_path: &[u8]) -> Vec<u8> {
    let mut o = LOAD_OPTION_ACTIVE.to_le_bytes().to_vec();
    o.extend_from_slice(&(device_path.len() as u16).to_le_bytes());
    o.extend(ucs2(description));
    o.extend_from_slice(device_path);
    o
}

/// `PciRoot(0x0)/Pci(slot,0x0)/MAC(mac,0x1)/IPv6(::)/Uri()`, byte for byte what edk2's
/// HttpBootDxe installs for HTTP boot over IPv6 on that NIC (UEFI 2.10 §10.3): edk2's boot
/// manager loads an option whose path matches that handle's but for the IP and URI nodes.
fn ipv6_http_device_path(pci_slot: u8, mac: MacAddr) -> Vec<u8> {
    // The ACPI node of the PCI root bridge: _HID PNP0A03, _UID 0.
    const PNP0A03: u32 = 0x0a03_41d0;
    let mut acpi = PNP0A03.to_le_bytes().to_vec();
    acpi.extend_from_slice(&0u32.to_le_bytes());
    // MAC: the address padded to 32 bytes, then the interface type (1, Ethernet).
    let mut mac_node = [0u8; 33];
    mac_node[..6].copy_from_slice(&mac.0);
    mac_node[32] = 1;
    // IPv6: local and remote address, ports, protocol and origin all zero (unknown until
    // DHCPv6), prefix length 64 as edk2 writes it, gateway zero.
    let mut ipv6 = [0u8; 56];
    ipv6[39] = 64;
    let mut path = Vec::new();
    for (kind, sub, data) in [
        (0x02, 0x01, acpi.as_slice()),
        (0x01, 0x01, &[0, pci_slot][..]),
        (0x03, 0x0b, &mac_node[..]),
        (0x03, 0x0d, &ipv6[..]),
        (0x03, 0x18, &[][..]),
        (0x7f, 0xff, &[][..]),
    ] {
        path.extend_from_slice(&[kind, sub]);
        path.extend_from_slice(&((4 + data.len()) as u16).to_le_bytes());
        path.extend_from_slice(data);
    }
    path
}

/// `s` as UCS-2, little endian, NUL-terminated.
fn ucs2(s: &str) -> Vec<u8> {
    s.encode_utf16()
        .chain([0])
        .flat_map(u16::to_le_bytes)
        .collect()
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The byte range of the variables in `store`, after checking the volume and store headers.
fn variable_area(store: &[u8]) -> std::result::Result<(usize, usize), String> {
    if store.get(16..32) != Some(&NV_DATA_FV.bytes()[..]) || u32_at(store, 40) != Some(FV_SIGNATURE)
    {
        return Err("not an NV-data firmware volume".into());
    }
    let header = usize::from(u16_at(store, FV_HEADER_LENGTH_AT).unwrap_or(0));
    let ok = store.get(header..header + 16) == Some(&AUTHENTICATED_STORE.bytes()[..])
        && store.get(header + 20) == Some(&STORE_FORMATTED)
        && store.get(header + 21) == Some(&STORE_HEALTHY);
    let size = u32_at(store, header + 16).map_or(0, |s| s as usize);
    if !ok || header + size > store.len() || size < STORE_HEADER_LEN {
        return Err("no formatted, healthy authenticated-variable store".into());
    }
    Ok((header + STORE_HEADER_LEN, header + size))
}

/// Sets variable `name` of the global namespace to `data` in `store`: marks a live copy deleted
/// and appends the new one after the last variable.
fn set_variable(store: &mut [u8], name: &str, data: &[u8]) -> std::result::Result<(), String> {
    let (start, end) = variable_area(store)?;
    let name = ucs2(name);
    let guid = GLOBAL_VARIABLE.bytes();
    let mut at = start;
    while u16_at(store, at) == Some(VAR_START_ID) {
        let sizes = (u32_at(store, at + 36), u32_at(store, at + 40));
        let (Some(name_len), Some(data_len)) = sizes else {
            return Err(format!("variable header at {at:#x} runs off the store"));
        };
        let body = at + VAR_HEADER_LEN;
        let next = (body + name_len as usize + data_len as usize).next_multiple_of(4);
        if next > end {
            return Err(format!("variable at {at:#x} runs past the store"));
        }
        if store[at + 2] == VAR_ADDED
            && store[at + 44..at + 60] == guid
            && store[body..body + name_len as usize] == name[..]
        {
            store[at + 2] &= VAR_DELETED;
        }
        at = next;
    }
    let mut var = Vec::with_capacity(VAR_HEADER_LEN + name.len() + data.len());
    var.extend_from_slice(&VAR_START_ID.to_le_bytes());
    var.extend_from_slice(&[VAR_ADDED, 0]);
    var.extend_from_slice(&NV_BS_RT.to_le_bytes());
    // Monotonic count, time stamp and public key index: used by authenticated variables only.
    var.extend_from_slice(&[0; 8 + 16 + 4]);
    var.extend_from_slice(&(name.len() as u32).to_le_bytes());
    var.extend_from_slice(&(data.len() as u32).to_le_bytes());
    var.extend_from_slice(&guid);
    var.extend_from_slice(&name);
    var.extend_from_slice(data);
    let free = store.get(at..at + var.len().next_multiple_of(4));
    if !free.is_some_and(|f| f.iter().all(|&b| b == 0xff)) || at + var.len() > end {
        return Err(format!(
            "no room for {} bytes at {at:#x}: the free space is not empty",
            var.len()
        ));
    }
    store[at..at + var.len()].copy_from_slice(&var);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mac::LabMac;

    /// An empty store laid out as Debian's OVMF_VARS_4M.fd: FV header of 0x48 bytes, the
    /// store header, the free space.
    fn empty_store() -> Vec<u8> {
        let mut s = vec![0xff; 0x1000];
        s[..0x48].fill(0);
        s[16..32].copy_from_slice(&NV_DATA_FV.bytes());
        s[40..44].copy_from_slice(&FV_SIGNATURE.to_le_bytes());
        s[48..50].copy_from_slice(&0x48u16.to_le_bytes());
        s[0x48..0x58].copy_from_slice(&AUTHENTICATED_STORE.bytes());
        s[0x58..0x5c].copy_from_slice(&0xf00u32.to_le_bytes());
        s[0x5c..0x64].copy_from_slice(&[STORE_FORMATTED, STORE_HEALTHY, 0, 0, 0, 0, 0, 0]);
        s
    }

    /// The live global variables of `store`: name and data.
    fn live(store: &[u8]) -> Vec<(String, Vec<u8>)> {
        let (mut at, _) = variable_area(store).unwrap();
        let mut out = Vec::new();
        while u16_at(store, at) == Some(VAR_START_ID) {
            let n = u32_at(store, at + 36).unwrap() as usize;
            let d = u32_at(store, at + 40).unwrap() as usize;
            let body = at + VAR_HEADER_LEN;
            if store[at + 2] == VAR_ADDED {
                let units: Vec<u16> = store[body..body + n - 2]
                    .chunks(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect();
                let name = String::from_utf16(&units).unwrap();
                out.push((name, store[body + n..body + n + d].to_vec()));
            }
            at = (body + n + d).next_multiple_of(4);
        }
        out
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn the_device_path_is_the_one_ovmf_makes_for_its_ipv6_http_option() {
        // OVMF (Debian 2022.11) made this for "UEFI HTTPv6 (MAC:525400770005)" on a virtio-net
        // NIC at PCI slot 3, read back from its variable store after a boot.
        let ovmf = hex(concat!(
            "02010c00d041030a00000000",
            "010106000003",
            "030b2500525400770005",
            "0000000000000000000000000000000000000000000000000000",
            "01",
            "030d3c00",
            "00000000000000000000000000000000",
            "00000000000000000000000000000000",
            "0000000000000040",
            "00000000000000000000000000000000",
            "03180400",
            "7fff0400",
        ));
        assert_eq!(ipv6_http_device_path(3, MacAddr::lab(5)), ovmf);
    }

    #[test]
    fn writes_the_option_and_the_boot_order_into_an_empty_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vars.fd");
        std::fs::write(&path, empty_store()).unwrap();
        ipv6_http_boot_first(&path, 3, MacAddr::lab(5)).unwrap();
        let store = std::fs::read(&path).unwrap();
        let vars = live(&store);
        let names: Vec<&str> = vars.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["Boot0001", "BootOrder"]);
        assert_eq!(vars[1].1, [1, 0]);
        let option = &vars[0].1;
        assert_eq!(u32_at(option, 0), Some(LOAD_OPTION_ACTIVE));
        let path_len = usize::from(u16_at(option, 4).unwrap());
        let description = ucs2(IPV6_HTTP_BOOT_DESCRIPTION);
        assert_eq!(&option[6..6 + description.len()], &description[..]);
        assert_eq!(
            &option[6 + description.len()..],
            &ipv6_http_device_path(3, MacAddr::lab(5))[..]
        );
        assert_eq!(option.len(), 6 + description.len() + path_len);
        // The headers say what edk2 reads: live, NV+BS+RT, the global GUID, 4-byte aligned.
        let (start, _) = variable_area(&store).unwrap();
        assert_eq!(&store[start..start + 8], &[0xaa, 0x55, 0x3f, 0, 7, 0, 0, 0]);
        assert_eq!(&store[start + 44..start + 60], &GLOBAL_VARIABLE.bytes());
    }

    #[test]
    fn setting_again_replaces_the_live_copy() {
        let mut store = empty_store();
        set_variable(&mut store, "BootOrder", &[1, 0]).unwrap();
        set_variable(&mut store, "BootOrder", &[2, 0, 1, 0]).unwrap();
        assert_eq!(live(&store), [("BootOrder".to_owned(), vec![2, 0, 1, 0])]);
    }

    #[test]
    fn refuses_what_is_not_an_empty_enough_variable_store() {
        assert!(set_variable(&mut vec![0xff; 0x1000], "BootOrder", &[1, 0]).is_err());
        let mut full = empty_store();
        full.truncate(0x100);
        full[0x58..0x5c].copy_from_slice(&0xb8u32.to_le_bytes());
        let big = vec![0; 0x100];
        assert!(set_variable(&mut full, "Boot0001", &big).is_err());
    }
}
