//! Applying customisation [`Action`]s to an unpacked root, never writing outside it.
//!
//! We run as root and the tree holds symlinks with absolute targets (meant for the node, not the
//! host): every parent directory is resolved and checked to lie inside the root before writing.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use crate::customize::Action;

/// An action could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The path is absolute or has `..`.
    #[error("refusing path {0:?}: not a plain relative path")]
    BadPath(String),
    /// A parent directory resolves outside the root (a symlink with an absolute target).
    #[error("{path} resolves to {resolved}, outside the root {root}")]
    Escapes {
        /// The action's path.
        path: String,
        /// Where its parent resolves to.
        resolved: PathBuf,
        /// The root.
        root: PathBuf,
    },
    /// A directory is in the way of a file or link.
    #[error("{0} is a directory")]
    IsDirectory(PathBuf),
    /// File system error.
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> EditError + '_ {
    move |source| EditError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Apply `actions` in order under `root`.
pub fn apply(root: &Path, actions: &[Action]) -> Result<(), EditError> {
    let root = fs::canonicalize(root).map_err(io(root))?;
    for action in actions {
        match action {
            Action::Write {
                path,
                mode,
                contents,
            } => {
                let dest = prepare(&root, path)?;
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(*mode)
                    .open(&dest)
                    .map_err(io(&dest))?;
                f.write_all(contents).map_err(io(&dest))?;
                // The umask may have cleared bits of `mode`.
                fs::set_permissions(&dest, fs::Permissions::from_mode(*mode)).map_err(io(&dest))?;
            }
            Action::Symlink { path, target } => {
                let dest = prepare(&root, path)?;
                std::os::unix::fs::symlink(target, &dest).map_err(io(&dest))?;
            }
            Action::Remove { path } => {
                // A missing parent means nothing to remove; do not create it.
                if let Some(dest) = resolve_parent(&root, path, false)? {
                    remove_entry(&dest)?;
                }
            }
        }
    }
    Ok(())
}

/// The path for a new entry: parents created (inside the root), any old file or link removed.
fn prepare(root: &Path, rel: &str) -> Result<PathBuf, EditError> {
    let dest =
        resolve_parent(root, rel, true)?.ok_or_else(|| EditError::BadPath(rel.to_owned()))?;
    remove_entry(&dest)?;
    Ok(dest)
}

/// Remove a file or symlink; a missing entry is fine, a directory is an error.
fn remove_entry(path: &Path) -> Result<(), EditError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Err(EditError::IsDirectory(path.to_path_buf())),
        Ok(_) => fs::remove_file(path).map_err(io(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(path)(e)),
    }
}

/// `root/rel` with its parent directory resolved (symlinks followed) and checked to be inside
/// `root`; the parent is created when `create`, else `None` is returned if it is missing.
/// The last component is not followed: it is what we replace.
fn resolve_parent(root: &Path, rel: &str, create: bool) -> Result<Option<PathBuf>, EditError> {
    let rel_path = Path::new(rel);
    if rel.is_empty()
        || !rel_path
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(EditError::BadPath(rel.to_owned()));
    }
    let name = rel_path
        .file_name()
        .ok_or_else(|| EditError::BadPath(rel.to_owned()))?;
    let parent = root.join(rel_path.parent().unwrap_or(Path::new("")));
    // Check the deepest existing ancestor before creating anything below it.
    let mut existing = parent.as_path();
    while !existing.exists() {
        existing = existing.parent().unwrap_or(root);
    }
    check_inside(root, existing, rel)?;
    if !parent.exists() {
        if !create {
            return Ok(None);
        }
        fs::create_dir_all(&parent).map_err(io(&parent))?;
    }
    let resolved = check_inside(root, &parent, rel)?;
    Ok(Some(resolved.join(name)))
}

fn check_inside(root: &Path, dir: &Path, rel: &str) -> Result<PathBuf, EditError> {
    let resolved = fs::canonicalize(dir).map_err(io(dir))?;
    if !resolved.starts_with(root) {
        return Err(EditError::Escapes {
            path: rel.to_owned(),
            resolved,
            root: root.to_path_buf(),
        });
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_links_and_removes_inside_the_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        fs::create_dir_all(root.join("usr/lib")).expect("mkdir");
        std::os::unix::fs::symlink("usr/lib", root.join("lib")).expect("merged-usr link");
        fs::write(root.join("old"), b"x").expect("old");
        apply(
            root,
            &[
                Action::Write {
                    path: "lib/x/file".into(),
                    mode: 0o640,
                    contents: b"hello".to_vec(),
                },
                Action::Symlink {
                    path: "etc/link".into(),
                    target: "/dev/null".into(),
                },
                Action::Symlink {
                    path: "etc/link".into(),
                    target: "/dev/zero".into(),
                },
                Action::Remove { path: "old".into() },
                Action::Remove {
                    path: "never-there".into(),
                },
                Action::Remove {
                    path: "no/such/dir/file".into(),
                },
            ],
        )
        .expect("apply");
        assert_eq!(
            fs::read(root.join("usr/lib/x/file")).expect("file"),
            b"hello"
        );
        let mode = fs::metadata(root.join("usr/lib/x/file"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o640);
        assert_eq!(
            fs::read_link(root.join("etc/link")).expect("link"),
            PathBuf::from("/dev/zero")
        );
        assert!(!root.join("old").exists());
        assert!(
            !root.join("no").exists(),
            "removing does not create parents"
        );
    }

    #[test]
    fn absolute_symlinks_cannot_lead_outside() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("outside");
        let root = dir.path();
        std::os::unix::fs::symlink(outside.path(), root.join("etc")).expect("evil link");
        let err = apply(
            root,
            &[Action::Write {
                path: "etc/passwd".into(),
                mode: 0o644,
                contents: vec![],
            }],
        )
        .expect_err("must refuse");
        assert!(matches!(err, EditError::Escapes { .. }), "{err}");
        assert!(!outside.path().join("passwd").exists());
        assert!(matches!(
            apply(
                root,
                &[Action::Remove {
                    path: "../x".into()
                }]
            ),
            Err(EditError::BadPath(_))
        ));
    }

    #[test]
    fn a_final_symlink_is_replaced_not_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("outside");
        let victim = outside.path().join("victim");
        fs::write(&victim, b"keep").expect("victim");
        let root = dir.path();
        std::os::unix::fs::symlink(&victim, root.join("resolv.conf")).expect("link");
        apply(
            root,
            &[Action::Write {
                path: "resolv.conf".into(),
                mode: 0o644,
                contents: b"new".to_vec(),
            }],
        )
        .expect("apply");
        assert_eq!(fs::read(&victim).expect("victim"), b"keep");
        assert_eq!(fs::read(root.join("resolv.conf")).expect("new"), b"new");
    }
}
