//! A private random secret kept in a file: read if it is there (refused if group or others may
//! read it), made from /dev/urandom with mode 0600 if not. The cluster key and the dashboard's
//! control token are both kept this way.

use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// How a new secret is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// The random bytes themselves.
    Raw,
    /// Their lowercase hex, which an operator can `cat` and paste.
    Hex,
}

/// The file's contents: at least `len` random bytes (or `2 * len` hex digits), made when the
/// file is missing. The error is a sentence about the file, for the caller to name it.
pub fn load_or_create(path: &Path, len: usize, form: Form) -> Result<Vec<u8>, String> {
    let len_in_file = match form {
        Form::Raw => len,
        Form::Hex => 2 * len,
    };
    match std::fs::metadata(path) {
        Ok(meta) => {
            if meta.permissions().mode() & 0o077 != 0 {
                return Err(format!(
                    "mode {:o} lets others read it; `chmod 600` it or remove it to make a new one",
                    meta.permissions().mode() & 0o777
                ));
            }
            let secret = std::fs::read(path).map_err(|e| e.to_string())?;
            if secret.len() < len_in_file {
                return Err(format!(
                    "{} bytes, need at least {len_in_file}",
                    secret.len()
                ));
            }
            Ok(secret)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut secret = vec![0u8; len];
            std::fs::File::open("/dev/urandom")
                .and_then(|mut f| f.read_exact(&mut secret))
                .map_err(|e| format!("no randomness: {e}"))?;
            if form == Form::Hex {
                secret = secret
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
                    .into_bytes();
            }
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| e.to_string())?;
            f.write_all(&secret)
                .and_then(|()| f.sync_all())
                .map_err(|e| e.to_string())?;
            Ok(secret)
        }
        Err(e) => Err(e.to_string()),
    }
}
