//! Telling a statically linked ELF executable from a dynamic one, by its program headers.
//!
//! The initramfs has no libc: busybox must carry everything itself, i.e. have no `PT_INTERP`.

/// The bytes are not a 64-bit little-endian ELF executable we can inspect.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ElfError {
    /// Missing `\x7fELF` magic.
    #[error("not an ELF file")]
    NotElf,
    /// Only ELFCLASS64 little-endian is handled (the node is x86-64).
    #[error("not a 64-bit little-endian ELF file")]
    Unsupported,
    /// Header fields point outside the file.
    #[error("truncated ELF file")]
    Truncated,
}

const PT_INTERP: u32 = 3;
/// Offsets in the ELF64 file header (System V gABI, "ELF Header").
const E_PHOFF: usize = 0x20;
const E_PHENTSIZE: usize = 0x36;
const E_PHNUM: usize = 0x38;

fn read<const N: usize>(bytes: &[u8], at: usize) -> Result<[u8; N], ElfError> {
    bytes
        .get(at..at + N)
        .and_then(|s| s.try_into().ok())
        .ok_or(ElfError::Truncated)
}

/// True when the executable asks for no program interpreter (static, including static-pie).
pub fn is_static(bytes: &[u8]) -> Result<bool, ElfError> {
    if bytes.get(..4) != Some(b"\x7fELF") {
        return Err(ElfError::NotElf);
    }
    // EI_CLASS = 2 (64-bit), EI_DATA = 1 (little-endian).
    if bytes.get(4) != Some(&2) || bytes.get(5) != Some(&1) {
        return Err(ElfError::Unsupported);
    }
    let phoff = usize::try_from(u64::from_le_bytes(read(bytes, E_PHOFF)?))
        .map_err(|_| ElfError::Truncated)?;
    let phentsize = usize::from(u16::from_le_bytes(read(bytes, E_PHENTSIZE)?));
    let phnum = usize::from(u16::from_le_bytes(read(bytes, E_PHNUM)?));
    // The whole table must be in the file: a cut-off binary is not one to boot with.
    let table_end = phentsize
        .checked_mul(phnum)
        .and_then(|n| n.checked_add(phoff))
        .ok_or(ElfError::Truncated)?;
    if table_end > bytes.len() || (phnum > 0 && phentsize < 4) {
        return Err(ElfError::Truncated);
    }
    for i in 0..phnum {
        let at = phoff
            .checked_add(i * phentsize)
            .ok_or(ElfError::Truncated)?;
        if u32::from_le_bytes(read(bytes, at)?) == PT_INTERP {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 header followed by program headers of the given types.
    fn elf(types: &[u32]) -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[E_PHOFF..E_PHOFF + 8].copy_from_slice(&64u64.to_le_bytes());
        b[E_PHENTSIZE..E_PHENTSIZE + 2].copy_from_slice(&56u16.to_le_bytes());
        b[E_PHNUM..E_PHNUM + 2]
            .copy_from_slice(&u16::try_from(types.len()).expect("few").to_le_bytes());
        for t in types {
            let mut ph = vec![0u8; 56];
            ph[..4].copy_from_slice(&t.to_le_bytes());
            b.extend(ph);
        }
        b
    }

    #[test]
    fn interpreter_means_dynamic() {
        assert_eq!(is_static(&elf(&[6, PT_INTERP, 1])), Ok(false));
        assert_eq!(is_static(&elf(&[1, 1, 2])), Ok(true));
    }

    #[test]
    fn garbage_is_rejected() {
        assert_eq!(is_static(b"#!/bin/sh\n"), Err(ElfError::NotElf));
        let mut e = elf(&[1]);
        e.truncate(70);
        assert_eq!(is_static(&e), Err(ElfError::Truncated));
    }

    #[test]
    fn the_host_shell_is_dynamic() {
        // Debian's /bin/sh (dash) is dynamically linked; skip quietly where it is not readable.
        if let Ok(bytes) = std::fs::read("/bin/sh") {
            assert_eq!(is_static(&bytes), Ok(false));
        }
    }
}
