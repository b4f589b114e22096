//! User names for uids, from /etc/passwd, as ps shows them. Read once per run; a uid with no
//! entry (containers, NSS-only users) is shown as its number, which is what ps does too.

use std::collections::HashMap;

/// uid → login name.
#[derive(Debug, Default)]
pub struct Users(HashMap<u32, String>);

impl Users {
    /// The local user table; empty (numbers everywhere) if /etc/passwd cannot be read.
    pub fn load() -> Self {
        Self(
            std::fs::read_to_string("/etc/passwd")
                .map(|text| parse_passwd(&text))
                .unwrap_or_default(),
        )
    }

    /// The name for `uid`, or the number.
    pub fn name(&self, uid: u32) -> String {
        self.0.get(&uid).cloned().unwrap_or_else(|| uid.to_string())
    }
}

/// Parses passwd(5) lines `name:pw:uid:…`, skipping comments and malformed lines; the first entry
/// for a uid wins (as getpwuid returns it).
pub fn parse_passwd(text: &str) -> HashMap<u32, String> {
    let mut map = HashMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let mut fields = line.split(':');
        let (Some(name), Some(_), Some(uid)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        if let Ok(uid) = uid.parse() {
            map.entry(uid).or_insert_with(|| name.to_owned());
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_lines() {
        let map = parse_passwd(
            "root:x:0:0:root:/root:/bin/bash\n# comment\nbroken\n\
             daemon:x:1:1::/:/usr/sbin/nologin\ntoor:x:0:0::/:/bin/sh\nbad:x:nan:0::/:\n",
        );
        assert_eq!(map.len(), 2);
        assert_eq!(map[&0], "root");
        assert_eq!(map[&1], "daemon");
    }

    #[test]
    fn unknown_uid_is_a_number() {
        assert_eq!(Users::default().name(4242), "4242");
    }
}
