//! The dashboard's control token: 32 random bytes kept root-only in the state directory
//! ([`FILE`]), shown as hex. The page is read-only without it; a control request must carry it
//! as `Authorization: Bearer <hex>`, compared in constant time.

use std::path::Path;

use node_image::secret::Form;
use subtle::ConstantTimeEq;

/// The token's file in the state directory.
pub const FILE: &str = "dashboard.token";
/// Random bytes in a token.
pub const LEN: usize = 32;

/// The token, as the hex text an operator pastes.
#[derive(Clone)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// The token in `<state_dir>/dashboard.token`, made (mode 0600) if missing. The file holds
    /// the hex text, so `cat` shows what to paste.
    pub fn load_or_create(state_dir: &Path) -> Result<Self, String> {
        let path = state_dir.join(FILE);
        let bytes = node_image::secret::load_or_create(&path, LEN, Form::Hex)
            .map_err(|e| format!("dashboard token {}: {e}", path.display()))?;
        Self::parse(&bytes).ok_or_else(|| {
            format!(
                "dashboard token {}: not {} hex digits; remove it and restart ombootd to make a new one",
                path.display(),
                LEN * 2
            )
        })
    }

    fn parse(file: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(file).ok()?.trim();
        (text.len() == LEN * 2 && text.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Self(text.to_ascii_lowercase()))
    }

    /// A token for tests.
    pub fn from_text(text: &str) -> Self {
        Self(text.to_owned())
    }

    /// Whether an `Authorization` header value carries this token.
    pub fn admits(&self, authorization: Option<&str>) -> bool {
        let Some(given) = authorization.and_then(|h| h.strip_prefix("Bearer ")) else {
            return false;
        };
        let given = given.trim().to_ascii_lowercase();
        given.len() == self.0.len() && bool::from(given.as_bytes().ct_eq(self.0.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn made_root_only_kept_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let t = Token::load_or_create(dir.path()).unwrap();
        let path = dir.path().join(FILE);
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.len(), 64);
        assert!(t.admits(Some(&format!("Bearer {text}"))));
        assert!(t.admits(Some(&format!("Bearer {}", text.to_uppercase()))));
        assert!(!t.admits(None));
        assert!(!t.admits(Some(&text)));
        assert!(!t.admits(Some("Bearer ")));
        assert!(!t.admits(Some(&format!("Bearer {}", &text[..63]))));
        // Kept across restarts.
        let again = Token::load_or_create(dir.path()).unwrap();
        assert!(again.admits(Some(&format!("Bearer {text}"))));
        // A token others can read is refused, not used.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(
            Token::load_or_create(dir.path())
                .unwrap_err()
                .contains("chmod 600")
        );
    }
}
