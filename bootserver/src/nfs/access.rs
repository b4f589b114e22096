//! Permission checks for the read-write export, from AUTH_SYS credentials (RFC 1813 §4.4, RFC 5531
//! Appendix A) against mode bits, the way a local Linux file system decides; uid 0 is trusted.
//!
//! Pure functions: the caller's identity and the file's owner and mode in, a yes or no out.

/// Read permission (the `r` bit).
pub const READ: u32 = 4;
/// Write permission (the `w` bit).
pub const WRITE: u32 = 2;
/// Execute, or search for a directory (the `x` bit).
pub const EXEC: u32 = 1;

const S_ISUID: u32 = 0o4000;
const S_ISGID: u32 = 0o2000;
const S_ISVTX: u32 = 0o1000;

/// Who sends a call: the AUTH_SYS credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Effective user id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

impl Caller {
    /// The superuser (no_root_squash: root on a node is root here).
    pub fn root() -> Self {
        Self {
            uid: 0,
            gid: 0,
            groups: Vec::new(),
        }
    }

    /// `nobody`: what a call without AUTH_SYS credentials is treated as.
    pub fn nobody() -> Self {
        Self {
            uid: 65534,
            gid: 65534,
            groups: Vec::new(),
        }
    }

    /// Whether this is uid 0.
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    /// Whether `gid` is the primary or a supplementary group.
    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }
}

/// The parts of a file's attributes the checks need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// Mode bits including the file type bits or not (only the low 12 bits are read).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Whether it is a directory (root may search any directory, but execute only files with an x bit).
    pub is_dir: bool,
}

/// Whether `who` has every permission in `want` (a mix of [`READ`], [`WRITE`], [`EXEC`]) on `file`.
///
/// As in Linux: the owner class applies to the owner, else the group class to a group member, else
/// the other class; the classes are not merged.
pub fn permits(who: &Caller, file: &Owner, want: u32) -> bool {
    if who.is_root() {
        // Root reads and writes anything; it executes a file only if someone may.
        return want & EXEC == 0 || file.is_dir || file.mode & 0o111 != 0;
    }
    let bits = if who.uid == file.uid {
        (file.mode >> 6) & 7
    } else if who.in_group(file.gid) {
        (file.mode >> 3) & 7
    } else {
        file.mode & 7
    };
    bits & want == want
}

/// Whether `who` may read or write the data of a file it has open, as knfsd decides: the owner
/// always may, because a client checks the mode when the file is opened and a program may
/// legitimately create a file read-only and then write it through the descriptor it holds.
pub fn permits_io(who: &Caller, file: &Owner, want: u32) -> bool {
    (who.uid == file.uid && !file.is_dir) || permits(who, file, want)
}

/// The ACCESS3 bits (RFC 1813 §3.3.4) of `want` that `who` has on `file`; a read-only export
/// grants none of the writing ones. DELETE is asked of a directory, about its entries, and
/// answered without the sticky-bit rule, which depends on the entry (REMOVE applies it).
pub fn access3(who: &Caller, file: &Owner, want: u32, writable: bool) -> u32 {
    use nfs3_server::nfs3_types::nfs3::{
        ACCESS3_DELETE, ACCESS3_EXECUTE, ACCESS3_EXTEND, ACCESS3_LOOKUP, ACCESS3_MODIFY,
        ACCESS3_READ,
    };
    let mut granted = 0;
    let mut grant = |bit: u32, ok: bool| {
        if want & bit != 0 && ok {
            granted |= bit;
        }
    };
    grant(ACCESS3_READ, permits(who, file, READ));
    grant(ACCESS3_LOOKUP, file.is_dir && permits(who, file, EXEC));
    grant(ACCESS3_EXECUTE, !file.is_dir && permits(who, file, EXEC));
    let w = writable && permits(who, file, WRITE);
    grant(ACCESS3_MODIFY, w);
    grant(ACCESS3_EXTEND, w);
    grant(ACCESS3_DELETE, w && file.is_dir && permits(who, file, EXEC));
    granted
}

/// Whether `who` may remove or rename away an entry owned by `victim_uid` from `dir`: write and
/// search on the directory and, in a sticky directory (like /tmp), owning the entry or the directory.
pub fn may_delete(who: &Caller, dir: &Owner, victim_uid: u32) -> bool {
    if !permits(who, dir, WRITE | EXEC) {
        return false;
    }
    dir.mode & S_ISVTX == 0 || who.is_root() || who.uid == victim_uid || who.uid == dir.uid
}

/// Whether `who` may create an entry in `dir`.
pub fn may_create(who: &Caller, dir: &Owner) -> bool {
    permits(who, dir, WRITE | EXEC)
}

/// Whether `who` may change the mode of `file`: its owner or root.
pub fn may_chmod(who: &Caller, file: &Owner) -> bool {
    who.is_root() || who.uid == file.uid
}

/// The mode a chmod by `who` really sets: like Linux, a non-root caller outside the file's group
/// cannot set the set-group-id bit.
pub fn chmod_mode(who: &Caller, file: &Owner, mode: u32) -> u32 {
    let mode = mode & 0o7777;
    if who.is_root() || who.in_group(file.gid) {
        mode
    } else {
        mode & !S_ISGID
    }
}

/// Whether `who` may change `file`'s owner to `uid` and group to `gid` (`None` = unchanged): root
/// may do anything; the owner may only give the file to a group it belongs to.
pub fn may_chown(who: &Caller, file: &Owner, uid: Option<u32>, gid: Option<u32>) -> bool {
    if who.is_root() {
        return true;
    }
    let uid_ok = uid.is_none_or(|u| u == file.uid);
    let gid_ok = gid.is_none_or(|g| g == file.gid || who.in_group(g));
    who.uid == file.uid && uid_ok && gid_ok
}

/// Whether `who` may set `file`'s times: to the server's clock, the owner or anyone who may write
/// it; to a given time, only the owner (or root).
pub fn may_set_times(who: &Caller, file: &Owner, to_server_time: bool) -> bool {
    who.is_root() || who.uid == file.uid || (to_server_time && permits(who, file, WRITE))
}

/// The mode bits a write by `who` must clear, as a local write does: set-user-id, and
/// set-group-id when group execute is set (without it the bit means mandatory locking).
pub fn bits_killed_by_write(who: &Caller, file: &Owner) -> u32 {
    if who.is_root() || file.is_dir {
        return 0;
    }
    let mut kill = file.mode & S_ISUID;
    if file.mode & S_ISGID != 0 && file.mode & 0o010 != 0 {
        kill |= S_ISGID;
    }
    kill
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(uid: u32, gid: u32) -> Caller {
        Caller {
            uid,
            gid,
            groups: vec![],
        }
    }

    fn file(mode: u32, uid: u32, gid: u32) -> Owner {
        Owner {
            mode,
            uid,
            gid,
            is_dir: false,
        }
    }

    #[test]
    fn classes_are_owner_then_group_then_other_not_merged() {
        let f = file(0o604, 1000, 100);
        assert!(permits(&user(1000, 100), &f, READ | WRITE));
        // In the group: the group class (---) applies even though "other" may read.
        assert!(!permits(&user(2000, 100), &f, READ));
        assert!(permits(&user(2000, 200), &f, READ));
        assert!(!permits(&user(2000, 200), &f, WRITE));
        let mut member = user(2000, 200);
        member.groups.push(100);
        assert!(!permits(&member, &f, READ));
        // The owner with 0o044 cannot read its own file.
        assert!(!permits(&user(1000, 100), &file(0o044, 1000, 100), READ));
        assert!(permits_io(&user(1000, 100), &file(0o044, 1000, 100), READ));
        assert!(!permits_io(&user(1001, 1), &file(0o600, 1000, 100), READ));
    }

    #[test]
    fn access3_grants_what_the_mode_allows_and_no_writes_on_a_read_only_export() {
        const ALL: u32 = 0x3f;
        // root's 0600 file: uid 1000 gets nothing, root everything but EXECUTE.
        let secret = file(0o600, 0, 0);
        assert_eq!(access3(&user(1000, 1000), &secret, ALL, true), 0);
        assert_eq!(
            access3(&Caller::root(), &secret, ALL, true),
            0x1 | 0x4 | 0x8
        );
        assert_eq!(access3(&Caller::root(), &secret, ALL, false), 0x1);
        // 0644: READ for everyone, MODIFY/EXTEND for the owner only.
        let public = file(0o644, 1000, 1000);
        assert_eq!(access3(&user(2000, 2000), &public, ALL, true), 0x1);
        assert_eq!(
            access3(&user(1000, 1000), &public, ALL, true),
            0x1 | 0x4 | 0x8
        );
        // Only what was asked is answered.
        assert_eq!(access3(&user(1000, 1000), &public, 0x4, true), 0x4);
        // A 0755 directory: READ and LOOKUP for others, DELETE for its owner when writable.
        let dir = Owner {
            is_dir: true,
            ..file(0o755, 1000, 1000)
        };
        assert_eq!(access3(&user(2000, 2000), &dir, ALL, true), 0x1 | 0x2);
        assert_eq!(access3(&user(1000, 1000), &dir, ALL, true), 0x1f);
        assert_eq!(access3(&user(1000, 1000), &dir, ALL, false), 0x3);
        // EXECUTE of a program for others.
        assert_eq!(
            access3(&user(2000, 2000), &file(0o755, 0, 0), ALL, false),
            0x21
        );
    }

    #[test]
    fn root_is_trusted_but_executes_only_executables() {
        let root = Caller::root();
        assert!(permits(&root, &file(0o000, 5, 5), READ | WRITE));
        assert!(!permits(&root, &file(0o644, 5, 5), EXEC));
        assert!(permits(&root, &file(0o744, 5, 5), EXEC));
        let dir = Owner {
            is_dir: true,
            ..file(0o000, 5, 5)
        };
        assert!(permits(&root, &dir, EXEC | WRITE));
    }

    #[test]
    fn sticky_directories_protect_other_users_entries() {
        let tmp = Owner {
            mode: 0o1777,
            uid: 0,
            gid: 0,
            is_dir: true,
        };
        assert!(may_delete(&user(1000, 1000), &tmp, 1000));
        assert!(!may_delete(&user(1000, 1000), &tmp, 1001));
        assert!(may_delete(&Caller::root(), &tmp, 1001));
        let plain = Owner { mode: 0o777, ..tmp };
        assert!(may_delete(&user(1000, 1000), &plain, 1001));
        let closed = Owner { mode: 0o755, ..tmp };
        assert!(!may_delete(&user(1000, 1000), &closed, 1000));
        assert!(!may_create(&user(1000, 1000), &closed));
        assert!(may_create(&user(1000, 1000), &tmp));
    }

    #[test]
    fn only_root_gives_files_away() {
        let f = file(0o644, 1000, 1000);
        let mut owner = user(1000, 1000);
        owner.groups.push(50);
        assert!(may_chown(&Caller::root(), &f, Some(7), Some(7)));
        assert!(!may_chown(&owner, &f, Some(1001), None));
        assert!(may_chown(&owner, &f, Some(1000), Some(50)));
        assert!(!may_chown(&owner, &f, None, Some(51)));
        assert!(!may_chown(&user(1001, 1000), &f, None, Some(1000)));
        assert!(may_chmod(&owner, &f));
        assert!(!may_chmod(&user(1001, 1000), &f));
        assert_eq!(chmod_mode(&owner, &file(0, 1000, 9), 0o2755), 0o755);
        assert_eq!(chmod_mode(&owner, &f, 0o2755), 0o2755);
    }

    #[test]
    fn times_and_setuid_bits() {
        let f = file(0o666, 1000, 1000);
        assert!(may_set_times(&user(1001, 1), &f, true));
        assert!(!may_set_times(&user(1001, 1), &f, false));
        assert!(may_set_times(&user(1000, 1), &f, false));
        assert_eq!(
            bits_killed_by_write(&user(1001, 1), &file(0o6755, 1000, 1)),
            0o6000
        );
        assert_eq!(
            bits_killed_by_write(&user(1001, 1), &file(0o2745, 1000, 1)),
            0
        );
        assert_eq!(
            bits_killed_by_write(&Caller::root(), &file(0o6755, 1, 1)),
            0
        );
    }
}
