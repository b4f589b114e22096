//! The file-handle generation, kept in the state directory.
//!
//! nfs3_server puts it in every handle and rejects handles of another generation as stale; keeping
//! it across restarts lets booted nodes carry on through an ombootd restart instead of hanging.

use std::path::Path;

/// Read the generation from `<state_dir>/nfs-generation`, creating it (from the clock) the first time.
pub fn load_or_create(state_dir: &Path, now_millis: u64) -> std::io::Result<u64> {
    let path = state_dir.join("nfs-generation");
    match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().parse().map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} does not hold a number; remove it to start a new generation (booted nodes will see stale handles)", path.display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, format!("{now_millis}\n"))?;
            std::fs::rename(&tmp, &path)?;
            Ok(now_millis)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persists_across_loads() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(load_or_create(d.path(), 7).unwrap(), 7);
        assert_eq!(load_or_create(d.path(), 99).unwrap(), 7);
        std::fs::write(d.path().join("nfs-generation"), "x").unwrap();
        assert!(
            load_or_create(d.path(), 1)
                .unwrap_err()
                .to_string()
                .contains("does not hold a number")
        );
    }
}
