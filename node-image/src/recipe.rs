//! The recipe: everything that determines the mmdebstrap result, and its hash, which keys the cache.
//!
//! The hash covers a canonical text form, so reordering packages in the file keeps the cache valid,
//! while any change that could change the installed root (or [`CUSTOMISATION_VERSION`]) invalidates it.

use sha2::{Digest, Sha256};

/// Bump when the way omimage drives mmdebstrap (options, hooks, environment) changes in a way that
/// changes the root tarball, so old cache entries are not reused.
pub const CUSTOMISATION_VERSION: u32 = 1;

/// What mmdebstrap installs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Recipe {
    /// Debian suite, such as `trixie`.
    pub suite: String,
    /// Mirror URL without a trailing slash.
    pub mirror: String,
    /// Archive components.
    pub components: Vec<String>,
    /// Packages, sorted and without duplicates (the install set does not depend on order).
    pub packages: Vec<String>,
    /// dpkg path-exclude globs, in order.
    pub path_excludes: Vec<String>,
    /// dpkg path-include globs, in order (dpkg applies the filters in sequence, so order matters).
    pub path_includes: Vec<String>,
}

/// A recipe hash: 16 hex digits (64 bits) of SHA-256, short enough for file names and log lines.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecipeHash(String);

impl RecipeHash {
    /// The hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RecipeHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Recipe {
    /// The canonical text the hash is taken over: one `key=value` line each, lists joined by
    /// spaces (no value may contain a space: config validation guarantees it).
    pub fn canonical(&self) -> String {
        let mut packages = self.packages.clone();
        packages.sort();
        packages.dedup();
        format!(
            "omimage-recipe\ncustomisation={}\nvariant=apt\nsuite={}\nmirror={}\ncomponents={}\npackages={}\npath_excludes={}\npath_includes={}\n",
            CUSTOMISATION_VERSION,
            self.suite,
            self.mirror,
            self.components.join(" "),
            packages.join(" "),
            self.path_excludes.join(" "),
            self.path_includes.join(" "),
        )
    }

    /// The cache key.
    pub fn hash(&self) -> RecipeHash {
        let digest = Sha256::digest(self.canonical().as_bytes());
        RecipeHash(hex::encode(&digest[..8]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe() -> Recipe {
        Recipe {
            suite: "trixie".into(),
            mirror: "http://deb.debian.org/debian".into(),
            components: vec!["main".into()],
            packages: vec![
                "busybox-static".into(),
                "criu".into(),
                "linux-image-amd64".into(),
            ],
            path_excludes: vec!["/usr/share/doc/*".into()],
            path_includes: vec!["/usr/share/doc/*/copyright".into()],
        }
    }

    #[test]
    fn hash_is_stable_and_short() {
        let h = recipe().hash();
        assert_eq!(h, recipe().hash());
        assert_eq!(h.as_str().len(), 16);
        assert!(h.as_str().chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn changing_a_package_changes_the_hash() {
        let mut other = recipe();
        other.packages[1] = "criu-dbg".into();
        assert_ne!(recipe().hash(), other.hash());
        let mut more = recipe();
        more.packages.push("strace".into());
        assert_ne!(recipe().hash(), more.hash());
    }

    #[test]
    fn package_order_and_duplicates_do_not_matter() {
        let mut other = recipe();
        other.packages.reverse();
        other.packages.push("criu".into());
        assert_eq!(recipe().hash(), other.hash());
    }

    #[test]
    fn suite_mirror_and_filters_are_in_the_hash() {
        let base = recipe().hash();
        let mut r = recipe();
        r.suite = "forky".into();
        assert_ne!(base, r.hash());
        let mut r = recipe();
        r.mirror = "http://ftp.de.debian.org/debian".into();
        assert_ne!(base, r.hash());
        let mut r = recipe();
        r.path_excludes.clear();
        assert_ne!(base, r.hash());
        // Filter order is significant to dpkg, so it is significant to the hash.
        let mut r = recipe();
        r.path_excludes.push("/usr/share/man/*".into());
        let mut s = r.clone();
        s.path_excludes.reverse();
        assert_ne!(r.hash(), s.hash());
    }

    #[test]
    fn canonical_form_names_the_customisation_version() {
        assert!(
            recipe()
                .canonical()
                .contains(&format!("customisation={CUSTOMISATION_VERSION}\n"))
        );
    }
}
