//! Job owners' names: the nodes report uids, and the nodes' accounts are the image's, so the
//! master reads them from the current image's `/etc/passwd`.

use std::collections::HashMap;
use std::path::Path;

/// uid → name from passwd text; malformed lines are skipped.
pub fn parse_passwd(text: &str) -> HashMap<u32, String> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?.trim();
            let uid = f.nth(1)?.parse().ok()?;
            (!name.is_empty() && !name.starts_with('#')).then(|| (uid, name.to_owned()))
        })
        .collect()
}

/// The accounts of the image version `image_dir` boots now (empty if it cannot be read).
pub fn of_image(image_dir: &Path) -> HashMap<u32, String> {
    let Ok(version) = node_image::image_dir::current(image_dir) else {
        return HashMap::new();
    };
    let passwd = node_image::image_dir::version_dir(image_dir, &version)
        .join(node_image::image_dir::ROOTFS)
        .join("etc/passwd");
    std::fs::read_to_string(passwd)
        .map(|t| parse_passwd(&t))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_by_uid_and_junk_skipped() {
        let u = parse_passwd(
            "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\nbroken\n:x:5:5::/:\nbob:x:notanumber:1::/:\n",
        );
        assert_eq!(u.len(), 2);
        assert_eq!(u[&0], "root");
        assert_eq!(u[&1000], "alice");
    }
}
