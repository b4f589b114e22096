//! Replacing a state file whole (leases, boot records, omd's generation and flags): written beside it, synced, renamed over it,
//! so a crash leaves the old contents or the new ones, never half of either.

use std::io::Write;
use std::path::Path;

/// Replace `path` with `bytes` (blocking: call it off the async runtime). Its directory is
/// made if missing.
pub fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    // The pid in the name: two processes sharing a file (tests) never write the same temporary.
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = Path::new(&tmp_name);
    let written = std::fs::File::create(tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    let r = written.and_then(|()| std::fs::rename(tmp, path));
    if r.is_err() {
        let _ = std::fs::remove_file(tmp);
        return r;
    }
    // The rename is durable only once the directory is: without this a crash can bring the old
    // file back after the caller was told the new one is written.
    sync_dir(
        path.parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new(".")),
    )
}

/// Fsync directory `dir`, so the names made, renamed or removed in it survive a crash.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_and_leaves_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state/boots");
        replace(&p, b"one\n").unwrap();
        replace(&p, b"two\n").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two\n");
        assert_eq!(
            std::fs::read_dir(d.path().join("state")).unwrap().count(),
            1
        );
    }
}
