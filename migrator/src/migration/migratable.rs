//! Can this job move? Its open files, memory maps, sockets and locks, read from /proc, against
//! what a target node can reopen: the read-only root and /cluster are the same everywhere;
//! tmpfs and the root overlay's writable layer exist only here. Each refusal is a sentence.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::job::tree;

/// Where the node's storage lives (the initramfs's layout).
#[derive(Debug, Clone)]
pub struct Storage {
    /// /proc.
    pub proc_root: PathBuf,
    /// The root overlay's writable (node-local) layer.
    pub upper: PathBuf,
    /// The shared directory, the same on every node.
    pub shared: PathBuf,
}

impl Default for Storage {
    fn default() -> Self {
        Self {
            proc_root: PathBuf::from("/proc"),
            upper: PathBuf::from("/run/omboot/rw/upper"),
            shared: PathBuf::from("/cluster"),
        }
    }
}

/// Devices any node has, which CRIU reopens by path.
const PLAIN_DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
];

/// A mount from mountinfo: where, and of what type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Mount point.
    pub point: String,
    /// File system type.
    pub fstype: String,
}

/// Parse /proc/PID/mountinfo.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|l| {
            let mut parts = l.split(" - ");
            let left: Vec<&str> = parts.next()?.split_whitespace().collect();
            let fstype = parts.next()?.split_whitespace().next()?;
            Some(Mount {
                point: unescape(left.get(4)?),
                fstype: fstype.to_owned(),
            })
        })
        .collect()
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// The mount holding `path` (longest matching mount point).
pub fn mount_of<'m>(mounts: &'m [Mount], path: &str) -> Option<&'m Mount> {
    mounts
        .iter()
        .filter(|m| {
            m.point == "/"
                || path == m.point
                || path
                    .strip_prefix(&m.point)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
        .max_by_key(|m| m.point.len())
}

/// Why a file at `path` would not exist on another node, or `None` when it would.
/// `in_upper` tells whether the path exists in the overlay's writable layer.
pub fn node_local(mounts: &[Mount], shared: &Path, path: &str, in_upper: bool) -> Option<String> {
    if path.starts_with(&*shared.to_string_lossy()) {
        return None;
    }
    match mount_of(mounts, path) {
        Some(m)
            if m.fstype == "tmpfs" || m.fstype == "devtmpfs" && !PLAIN_DEVICES.contains(&path) =>
        {
            Some(format!(
                "it has {path} open, which is on node-local storage ({})",
                m.fstype
            ))
        }
        Some(m) if m.fstype == "overlay" && in_upper => Some(format!(
            "it has {path} open, which was written on this node (the root's writable layer)"
        )),
        _ => None,
    }
}

/// Every reason the tree rooted at `pid` cannot move (empty: it can).
pub fn check(st: &Storage, pid: i32) -> Vec<String> {
    let mut reasons = Vec::new();
    let pids = tree::descendants(&st.proc_root, pid);
    let mounts = std::fs::read_to_string(st.proc_root.join(pid.to_string()).join("mountinfo"))
        .map(|t| parse_mountinfo(&t))
        .unwrap_or_default();
    let tcp = tcp_inodes(&st.proc_root);
    let mut seen = HashSet::new();
    let mut add = |r: String, reasons: &mut Vec<String>| {
        if seen.insert(r.clone()) {
            reasons.push(r);
        }
    };
    let in_upper = |path: &str| {
        st.upper
            .join(path.trim_start_matches('/'))
            .symlink_metadata()
            .is_ok()
    };
    for p in &pids {
        let base = st.proc_root.join(p.to_string());
        let Ok(fds) = std::fs::read_dir(base.join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let t = target.to_string_lossy().into_owned();
            if let Some(ino) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                if tcp.contains(ino) {
                    add("it has a TCP connection".into(), &mut reasons);
                }
            } else if t.contains("io_uring") {
                add("it uses io_uring".into(), &mut reasons);
            } else if t.starts_with("/dev/") && !PLAIN_DEVICES.contains(&t.as_str()) {
                add(format!("it has the device {t} open"), &mut reasons);
            } else if t.starts_with('/') {
                let path = t.trim_end_matches(" (deleted)");
                if let Some(r) = node_local(&mounts, &st.shared, path, in_upper(path)) {
                    add(r, &mut reasons);
                }
            }
        }
        if let Ok(maps) = std::fs::read_to_string(base.join("maps")) {
            for l in maps.lines() {
                let Some(path) = l.split_whitespace().nth(5) else {
                    continue;
                };
                if path.starts_with('/')
                    && !path.starts_with("/dev/zero")
                    && !path.starts_with("/SYSV")
                {
                    let path = path.trim_end_matches(" (deleted)");
                    if let Some(r) = node_local(&mounts, &st.shared, path, in_upper(path)) {
                        add(r.replace(" open", " mapped"), &mut reasons);
                    }
                }
            }
        }
    }
    if let Ok(locks) = std::fs::read_to_string(st.proc_root.join("locks")) {
        let set: HashSet<String> = pids.iter().map(|p| p.to_string()).collect();
        if locks
            .lines()
            .any(|l| l.split_whitespace().nth(4).is_some_and(|p| set.contains(p)))
        {
            add("it holds a file lock".into(), &mut reasons);
        }
    }
    reasons
}

/// Inodes of every TCP socket on the node (IPv4 and IPv6) that is not listening-only.
fn tcp_inodes(proc_root: &Path) -> HashSet<String> {
    let mut out = HashSet::new();
    for f in ["net/tcp", "net/tcp6"] {
        if let Ok(t) = std::fs::read_to_string(proc_root.join(f)) {
            for l in t.lines().skip(1) {
                let cols: Vec<&str> = l.split_whitespace().collect();
                if let Some(ino) = cols.get(9) {
                    out.insert((*ino).to_owned());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 0:20 / / rw,relatime - overlay overlay rw,lowerdir=/run/omboot/lower
23 22 0:5 / /dev rw,nosuid - devtmpfs devtmpfs rw
24 22 0:21 / /tmp rw,nosuid - tmpfs tmpfs rw
25 22 0:30 / /cluster rw,relatime - nfs 10.77.0.1:/ rw,vers=3
26 22 0:31 / /tmp\\040x rw - tmpfs tmpfs rw
";

    #[test]
    fn tmpfs_and_the_writable_layer_are_node_local_the_rest_is_not() {
        let m = parse_mountinfo(MOUNTINFO);
        assert_eq!(m.len(), 5);
        assert_eq!(m[4].point, "/tmp x");
        let shared = Path::new("/cluster");
        assert!(
            node_local(&m, shared, "/tmp/data", false)
                .unwrap()
                .contains("node-local")
        );
        assert!(node_local(&m, shared, "/tmp x/y", false).is_some());
        assert!(node_local(&m, shared, "/cluster/out.txt", false).is_none());
        assert!(node_local(&m, shared, "/usr/bin/python3", false).is_none());
        assert!(
            node_local(&m, shared, "/root/notes", true)
                .unwrap()
                .contains("writable layer")
        );
        assert!(node_local(&m, shared, "/dev/null", false).is_none());
        assert!(node_local(&m, shared, "/tmpfoo", false).is_none());
    }

    #[test]
    fn this_test_process_holding_a_tcp_connection_is_refused() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let st = Storage {
            upper: PathBuf::from("/nonexistent-upper"),
            ..Storage::default()
        };
        let reasons = check(&st, std::process::id() as i32);
        assert!(reasons.iter().any(|r| r.contains("TCP")), "{reasons:?}");
    }
}
