//! The root cache: mmdebstrap tarballs in `<cache>/roots/<recipe hash>.tar`.
//!
//! A tarball appears under its final name only by rename after mmdebstrap succeeded, so an
//! interrupted build never leaves a half-written entry that a later build would trust.

use std::path::{Path, PathBuf};

use crate::recipe::{Recipe, RecipeHash};

/// The cache directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// Creating, renaming or removing a cache file failed.
    #[error("cache {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Whether a root for a recipe is already cached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The tarball to extract.
    Hit(PathBuf),
    /// Build into `partial`, then [`commit`] it to `final_path`.
    Miss {
        /// Where mmdebstrap writes.
        partial: PathBuf,
        /// The entry's name once complete.
        final_path: PathBuf,
    },
}

/// The cache entry for `hash` under `cache_dir`, creating the directory and clearing a stale
/// partial file left by an interrupted build.
pub fn lookup(cache_dir: &Path, hash: &RecipeHash) -> Result<Lookup, CacheError> {
    let roots = cache_dir.join("roots");
    std::fs::create_dir_all(&roots).map_err(io(&roots))?;
    let final_path = roots.join(format!("{hash}.tar"));
    if final_path.is_file() {
        return Ok(Lookup::Hit(final_path));
    }
    let partial = crate::mmdebstrap::partial_path(&final_path);
    match std::fs::remove_file(&partial) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&partial)(e)),
    }
    Ok(Lookup::Miss {
        partial,
        final_path,
    })
}

/// Publish a finished tarball under its final name, with the recipe beside it for humans
/// (`<hash>.recipe`) so an operator can tell cache entries apart.
pub fn commit(partial: &Path, final_path: &Path, recipe: &Recipe) -> Result<(), CacheError> {
    let recipe_path = final_path.with_extension("recipe");
    std::fs::write(&recipe_path, recipe.canonical()).map_err(io(&recipe_path))?;
    std::fs::rename(partial, final_path).map_err(io(final_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe() -> Recipe {
        Recipe {
            suite: "trixie".into(),
            mirror: "http://deb.debian.org/debian".into(),
            components: vec!["main".into()],
            packages: vec!["busybox-static".into()],
            path_excludes: vec![],
            path_includes: vec![],
        }
    }

    #[test]
    fn miss_then_commit_then_hit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let hash = recipe().hash();
        let Lookup::Miss {
            partial,
            final_path,
        } = lookup(dir.path(), &hash).expect("lookup")
        else {
            panic!("empty cache must miss");
        };
        std::fs::write(&partial, b"tar").expect("write partial");
        // A partial file is not an entry.
        assert!(matches!(
            lookup(dir.path(), &hash).expect("lookup"),
            Lookup::Miss { .. }
        ));
        assert!(!partial.exists(), "a stale partial is removed");
        std::fs::write(&partial, b"tar").expect("write partial");
        commit(&partial, &final_path, &recipe()).expect("commit");
        assert_eq!(
            lookup(dir.path(), &hash).expect("lookup"),
            Lookup::Hit(final_path.clone())
        );
        let sidecar = std::fs::read_to_string(final_path.with_extension("recipe")).expect("recipe");
        assert!(sidecar.contains("packages=busybox-static"));
    }
}
