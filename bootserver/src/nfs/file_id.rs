//! File handles of the read-write export (RFC 1813 §2.5 `nfs_fh3`): what names one file for good.
//!
//! A handle holds the inode number, the inode generation (`FS_IOC_GETVERSION`) and the birth time,
//! all read from the file itself, so it survives a restart and never reaches a later file that
//! reuses the inode number: the generation or birth time differs and the handle answers STALE.
//! On the wire, nfs3_server puts its handle [`generation`](super::generation) before it.

use std::os::fd::{AsRawFd, BorrowedFd};

use nfs3_server::nfs3_types::nfs3::nfsstat3;
use nfs3_server::vfs::FileHandle;

/// Bytes nfs3_server puts before our handle: its generation, little-endian.
const WIRE_PREFIX: usize = 8;
/// The version byte at the start of every handle we make.
const VERSION: u8 = 1;
/// version, inode, generation, birth seconds, birth nanoseconds.
const LEN: usize = 1 + 8 + 4 + 8 + 4;
/// Bytes of a handle on the wire.
pub const WIRE_LEN: usize = WIRE_PREFIX + LEN;

/// What identifies a file across restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Identity {
    /// Inode number.
    pub ino: u64,
    /// Inode generation; 0 when the file system does not say (or for symlinks and special files).
    pub generation: u32,
    /// Birth time, seconds; 0 when the file system does not record it.
    pub birth_sec: i64,
    /// Birth time, nanoseconds.
    pub birth_nsec: u32,
}

/// The handle of one file of the read-write export.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExportHandle {
    bytes: [u8; LEN],
}

impl ExportHandle {
    /// The handle for `id`.
    pub fn new(id: &Identity) -> Self {
        let mut bytes = [0u8; LEN];
        bytes[0] = VERSION;
        bytes[1..9].copy_from_slice(&id.ino.to_le_bytes());
        bytes[9..13].copy_from_slice(&id.generation.to_le_bytes());
        bytes[13..21].copy_from_slice(&id.birth_sec.to_le_bytes());
        bytes[21..25].copy_from_slice(&id.birth_nsec.to_le_bytes());
        Self { bytes }
    }

    /// The identity this handle names.
    pub fn identity(&self) -> Identity {
        let b = &self.bytes;
        let mut ino = [0u8; 8];
        ino.copy_from_slice(&b[1..9]);
        let mut generation = [0u8; 4];
        generation.copy_from_slice(&b[9..13]);
        let mut sec = [0u8; 8];
        sec.copy_from_slice(&b[13..21]);
        let mut nsec = [0u8; 4];
        nsec.copy_from_slice(&b[21..25]);
        Identity {
            ino: u64::from_le_bytes(ino),
            generation: u32::from_le_bytes(generation),
            birth_sec: i64::from_le_bytes(sec),
            birth_nsec: u32::from_le_bytes(nsec),
        }
    }

    /// The `nfs_fh3` bytes nfs3_server sends for this handle under `generation`.
    pub fn to_wire(&self, generation: u64) -> Vec<u8> {
        [generation.to_le_bytes().as_slice(), &self.bytes].concat()
    }

    /// The handle in `nfs_fh3` bytes a client sent, judged as nfs3_server 0.11 judges them (its
    /// handle converter is private): an older generation is STALE (from before a restart with a
    /// new one), anything else not ours BADHANDLE.
    pub fn from_wire(generation: u64, fh: &[u8]) -> Result<Self, nfsstat3> {
        let (prefix, rest) = fh
            .split_first_chunk::<WIRE_PREFIX>()
            .ok_or(nfsstat3::NFS3ERR_BADHANDLE)?;
        match u64::from_le_bytes(*prefix) {
            g if g == generation => Self::from_bytes(rest).ok_or(nfsstat3::NFS3ERR_BADHANDLE),
            g if g < generation => Err(nfsstat3::NFS3ERR_STALE),
            _ => Err(nfsstat3::NFS3ERR_BADHANDLE),
        }
    }
}

impl std::fmt::Debug for ExportHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let id = self.identity();
        write!(
            f,
            "ExportHandle(ino {} gen {} born {}.{:09})",
            id.ino, id.generation, id.birth_sec, id.birth_nsec
        )
    }
}

impl FileHandle for ExportHandle {
    fn len(&self) -> usize {
        LEN
    }
    fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        // Anything else (another version, a forged length) is not ours: nfs3_server answers BADHANDLE.
        let bytes: [u8; LEN] = bytes.try_into().ok()?;
        (bytes[0] == VERSION).then_some(Self { bytes })
    }
}

/// The identity of the file open as `fd` (an `O_PATH` descriptor is fine). `readable` is an
/// ordinary descriptor of the same file when it is a regular file or directory, for the ioctl;
/// other kinds (symlinks, devices, FIFOs) are never opened, so they carry generation 0.
pub fn identity_of(
    fd: BorrowedFd<'_>,
    readable: Option<BorrowedFd<'_>>,
) -> std::io::Result<Identity> {
    // SAFETY: statx is plain old data; all-zero is a valid value.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open for the duration of the call, the path is a NUL-terminated empty
    // string (AT_EMPTY_PATH: the descriptor itself) and `stx` is a valid, writable statx.
    let r = unsafe {
        libc::statx(
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_INO | libc::STATX_BTIME,
            &mut stx,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let (birth_sec, birth_nsec) = if stx.stx_mask & libc::STATX_BTIME != 0 {
        (stx.stx_btime.tv_sec, stx.stx_btime.tv_nsec)
    } else {
        (0, 0)
    };
    let generation = match readable {
        Some(f) => {
            let mut generation: libc::c_long = 0;
            // SAFETY: FS_IOC_GETVERSION writes at most a long (file systems write an int) into
            // `generation`, which lives across the call; `f` is an open descriptor.
            let r = unsafe { libc::ioctl(f.as_raw_fd(), libc::FS_IOC_GETVERSION, &mut generation) };
            // A file system without generations (ENOTTY and friends): the birth time stands alone.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            if r == 0 { generation as u32 } else { 0 }
        }
        None => 0,
    };
    Ok(Identity {
        ino: stx.stx_ino,
        generation,
        birth_sec,
        birth_nsec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn handles_round_trip_and_refuse_foreign_bytes() {
        let id = Identity {
            ino: 0x0102_0304_0506_0708,
            generation: 0xdead_beef,
            birth_sec: -5,
            birth_nsec: 999_999_999,
        };
        let h = ExportHandle::new(&id);
        assert_eq!(h.len(), 25);
        let back = ExportHandle::from_bytes(h.as_bytes()).unwrap();
        assert_eq!(back.identity(), id);
        assert!(ExportHandle::from_bytes(&h.as_bytes()[..24]).is_none());
        assert!(ExportHandle::from_bytes(&[0u8; 8]).is_none());
        let mut other = *h.as_bytes().first_chunk::<25>().unwrap();
        other[0] = 2;
        assert!(ExportHandle::from_bytes(&other).is_none());
    }

    #[test]
    fn wire_handles_carry_the_generation_and_judge_it_as_nfs3_server() {
        let h = ExportHandle::new(&Identity {
            ino: 42,
            generation: 7,
            birth_sec: 1,
            birth_nsec: 2,
        });
        let wire = h.to_wire(1000);
        assert_eq!(wire.len(), 8 + 25);
        assert_eq!(&wire[..8], &1000u64.to_le_bytes());
        assert_eq!(ExportHandle::from_wire(1000, &wire), Ok(h));
        assert_eq!(
            ExportHandle::from_wire(2000, &wire),
            Err(nfsstat3::NFS3ERR_STALE)
        );
        assert_eq!(
            ExportHandle::from_wire(500, &wire),
            Err(nfsstat3::NFS3ERR_BADHANDLE)
        );
        for bad in [&wire[..7], &wire[..8], &wire[..32], b"".as_slice()] {
            assert_eq!(
                ExportHandle::from_wire(1000, bad),
                Err(nfsstat3::NFS3ERR_BADHANDLE)
            );
        }
        let mut other_version = wire.clone();
        other_version[8] = 9;
        assert_eq!(
            ExportHandle::from_wire(1000, &other_version),
            Err(nfsstat3::NFS3ERR_BADHANDLE)
        );
    }

    #[test]
    fn a_new_file_on_a_reused_inode_has_another_identity() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        let mut seen = Vec::new();
        for _ in 0..3 {
            let f = std::fs::File::create(&p).unwrap();
            let id = identity_of(f.as_fd(), Some(f.as_fd())).unwrap();
            assert!(!seen.contains(&id), "{id:?} seen twice");
            seen.push(id);
            drop(f);
            std::fs::remove_file(&p).unwrap();
        }
    }
}
