//! Locking root in the image's `/etc/passwd` and `/etc/shadow` (pure text edits).
//!
//! The image is shared by every node and readable over NFS: root must have no usable password
//! (the serial console's autologin does not need one).

/// The locked-password marker: `!` locks, `*` can never match a hash.
pub const LOCKED: &str = "!*";

/// The account files lack a root entry.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("/etc/passwd has no root entry")]
pub struct NoRootEntry;

/// `passwd` with root's password field pointing to shadow (`x`), and `shadow` with root's
/// password locked (the entry is added when missing, as Debian's base-passwd leaves it out).
pub fn lock_root(passwd: &str, shadow: &str) -> Result<(String, String), NoRootEntry> {
    let mut found = false;
    let passwd = edit_lines(passwd, |fields| {
        if fields.first() == Some(&"root") && fields.len() >= 7 {
            found = true;
            fields[1] = "x";
        }
    });
    if !found {
        return Err(NoRootEntry);
    }
    let mut in_shadow = false;
    let mut shadow = edit_lines(shadow, |fields| {
        if fields.first() == Some(&"root") && fields.len() >= 2 {
            in_shadow = true;
            fields[1] = LOCKED;
            // A last-change day of 0 forces a password change at login, which would stop the
            // console autologin at a prompt; empty disables ageing.
            if fields.get(2) == Some(&"0") {
                fields[2] = "";
            }
        }
    });
    if !in_shadow {
        // name:password:lastchange:min:max:warn:inactive:expire:reserved; an empty lastchange
        // disables ageing (0 would force a password change at the autologin).
        shadow = format!("root:{LOCKED}::0:99999:7:::\n{shadow}");
    }
    Ok((passwd, shadow))
}

/// Apply `edit` to the `:`-separated fields of every line, keeping the text otherwise intact.
fn edit_lines(text: &str, mut edit: impl FnMut(&mut Vec<&str>)) -> String {
    let mut out = String::with_capacity(text.len() + 32);
    for line in text.lines() {
        let mut fields: Vec<&str> = line.split(':').collect();
        edit(&mut fields);
        out.push_str(&fields.join(":"));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_locked_and_added_to_shadow() {
        let passwd =
            "root:*:0:0:root:/root:/bin/bash\ndaemon:*:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n";
        let shadow = "systemd-network:!*:20781:::::1:\n";
        let (p, s) = lock_root(passwd, shadow).expect("lock");
        assert!(p.starts_with("root:x:0:0:root:/root:/bin/bash\n"));
        assert!(p.contains("daemon:*:1:1:"));
        assert!(s.starts_with("root:!*::"), "{s}");
        assert!(s.contains("systemd-network:!*:20781:::::1:\n"));
    }

    #[test]
    fn an_empty_root_password_is_replaced() {
        let (p, s) = lock_root(
            "root::0:0:root:/root:/bin/sh\n",
            "root::19000:0:99999:7:::\n",
        )
        .expect("lock");
        assert_eq!(p, "root:x:0:0:root:/root:/bin/sh\n");
        assert_eq!(s, "root:!*:19000:0:99999:7:::\n");
    }

    #[test]
    fn a_forced_password_change_is_cleared() {
        let (_, s) =
            lock_root("root:x:0:0:root:/root:/bin/sh\n", "root:*:0:0:99999:7:::\n").expect("lock");
        assert_eq!(s, "root:!*::0:99999:7:::\n");
    }

    #[test]
    fn passwd_without_root_is_an_error() {
        assert_eq!(
            lock_root("daemon:*:1:1::/:/bin/false\n", ""),
            Err(NoRootEntry)
        );
    }
}
