//! A job's process tree as the host sees it, from /proc: every task below its init, to resume
//! them after CRIU left them stopped and to inspect them before a migration.

use std::path::Path;

/// `pid` and all its descendants (host pids), parents first.
pub fn descendants(proc_root: &Path, pid: i32) -> Vec<i32> {
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        i += 1;
        let Ok(tasks) = std::fs::read_dir(proc_root.join(p.to_string()).join("task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let Ok(kids) = std::fs::read_to_string(t.path().join("children")) else {
                continue;
            };
            for k in kids
                .split_whitespace()
                .filter_map(|k| k.parse::<i32>().ok())
            {
                if !out.contains(&k) {
                    out.push(k);
                }
            }
        }
    }
    out
}

/// Send `sig` to `pid` and every descendant.
pub fn signal_tree(pid: i32, sig: i32) {
    for p in descendants(Path::new("/proc"), pid) {
        // SAFETY: kill has no memory effects; a vanished pid only yields ESRCH.
        unsafe {
            libc::kill(p, sig);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_child_of_this_process() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let me = std::process::id() as i32;
        let all = descendants(Path::new("/proc"), me);
        assert_eq!(all[0], me);
        assert!(all.contains(&(child.id() as i32)), "{all:?}");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
