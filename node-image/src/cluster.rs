//! The cluster software in the node root: `omd` (started at boot by systemd, no per-node
//! configuration), `omctl` and omd's config; and the cluster key that authenticates every cluster
//! packet, made once per image directory beside the root (never in it: the root is exported) and
//! kept across rebuilds, root-only. ombootd hands it to each booting node's initramfs.

use std::path::{Path, PathBuf};

use crate::customize::Action;

/// Where the programs come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSoftware {
    /// The omd binary.
    pub omd: PathBuf,
    /// The omctl binary.
    pub omctl: PathBuf,
    /// The omrun binary (deputy).
    pub omrun: PathBuf,
    /// The omjob binary (keeper and job init; beside omd).
    pub omjob: PathBuf,
    /// The omwork test workloads.
    pub omwork: PathBuf,
    /// omd's config file.
    pub omd_config: PathBuf,
}

/// Bytes of a new cluster key.
pub const KEY_LEN: usize = 32;
/// The key's name in the image directory, beside `rootfs/` (ombootd reads it to join as observer).
pub const KEY_FILE: &str = "cluster.key";

/// The cluster software could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A program or config is missing.
    #[error("cannot read {path}: {source} (build it with `cargo build --release -p migrator`)")]
    Missing {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The key could not be made or read.
    #[error("cluster key {path}: {reason}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

const OMD_UNIT: &str = "\
[Unit]
Description=omd: cluster discovery, membership and load (ombootd)
After=network.target

[Service]
ExecStart=/usr/local/sbin/omd --config /etc/omd/omd.toml
Restart=always
RestartSec=1
# A node busy with jobs must still answer SWIM probes in time, or the cluster declares it
# dead. Keepers reset their nice value to 0, so jobs run at the normal priority.
Nice=-5
# Jobs (their keepers) live on when omd restarts or is killed: a restarted omd adopts them.
KillMode=process
# Readiness and membership changes also on the serial console, where the lab watches.
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
";

/// The actions that install the cluster software into the root.
pub fn actions(sw: &ClusterSoftware) -> Result<Vec<Action>, ClusterError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| ClusterError::Missing {
            path: path.to_path_buf(),
            source,
        })
    };
    let write = |path: &str, mode: u32, contents: Vec<u8>| Action::Write {
        path: path.into(),
        mode,
        contents,
    };
    Ok(vec![
        write("usr/local/sbin/omd", 0o755, read(&sw.omd)?),
        write("usr/local/bin/omctl", 0o755, read(&sw.omctl)?),
        write("usr/local/bin/omrun", 0o755, read(&sw.omrun)?),
        write("usr/local/sbin/omjob", 0o755, read(&sw.omjob)?),
        write("usr/local/bin/omwork", 0o755, read(&sw.omwork)?),
        write("etc/omd/omd.toml", 0o644, read(&sw.omd_config)?),
        write(
            "etc/systemd/system/omd.service",
            0o644,
            OMD_UNIT.as_bytes().to_vec(),
        ),
        Action::Symlink {
            path: "etc/systemd/system/multi-user.target.wants/omd.service".into(),
            target: "/etc/systemd/system/omd.service".into(),
        },
    ])
}

/// The image's cluster key: `<out>/cluster.key` as made by an earlier build, or a new random one.
/// A key readable by group or others is refused rather than silently used.
pub fn key(out: &Path) -> Result<Vec<u8>, ClusterError> {
    let path = out.join(KEY_FILE);
    crate::secret::load_or_create(&path, KEY_LEN, crate::secret::Form::Raw)
        .map_err(|reason| ClusterError::Key { path, reason })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn key_is_made_once_and_kept() {
        let d = tempfile::tempdir().unwrap();
        let k1 = key(d.path()).unwrap();
        assert_eq!(k1.len(), KEY_LEN);
        assert_eq!(
            std::fs::metadata(d.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        assert_eq!(key(d.path()).unwrap(), k1);
        std::fs::set_permissions(
            d.path().join(KEY_FILE),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        assert!(
            key(d.path())
                .unwrap_err()
                .to_string()
                .contains("lets others read it")
        );
    }

    #[test]
    fn installs_programs_unit_and_a_root_only_key() {
        let d = tempfile::tempdir().unwrap();
        for f in ["omd", "omctl", "omrun", "omjob", "omwork", "omd.toml"] {
            std::fs::write(d.path().join(f), f).unwrap();
        }
        let sw = ClusterSoftware {
            omd: d.path().join("omd"),
            omctl: d.path().join("omctl"),
            omrun: d.path().join("omrun"),
            omjob: d.path().join("omjob"),
            omwork: d.path().join("omwork"),
            omd_config: d.path().join("omd.toml"),
        };
        let acts = actions(&sw).unwrap();
        let mode_of = |p: &str| {
            acts.iter().find_map(|a| match a {
                Action::Write { path, mode, .. } if path == p => Some(*mode),
                _ => None,
            })
        };
        assert_eq!(mode_of("usr/local/sbin/omd"), Some(0o755));
        assert_eq!(
            mode_of("etc/omd/cluster.key"),
            None,
            "the exported root must not hold the key"
        );
        assert!(acts.iter().any(|a| matches!(a, Action::Symlink { path, .. } if path.ends_with("multi-user.target.wants/omd.service"))));
        let missing = ClusterSoftware {
            omd: d.path().join("nope"),
            ..sw
        };
        assert!(
            actions(&missing)
                .unwrap_err()
                .to_string()
                .contains("cargo build --release -p migrator")
        );
    }
}
