//! The error of a TOML configuration file (ombootd's and omimage's), with the line of the
//! offending value: toml reports byte spans, an operator wants `file:line: field: reason`.

use std::ops::Range;
use std::path::PathBuf;

/// A configuration that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid TOML, an unknown field, or a value of the wrong type (toml names line and field).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message, with line, column and field.
        message: String,
    },
    /// Well-formed but unusable.
    #[error("{path}:{line}: {field}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line of the offending value (0 when it was left at its default).
        line: usize,
        /// The field, in TOML dotted form (`root.packages[3]`, `node[2].ip`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// 1-based line of a byte span of `text`, 0 for a default (an empty span at 0: a value the file
/// did not set).
pub fn line_of(text: &str, span: Range<usize>) -> usize {
    if span.is_empty() && span.start == 0 {
        return 0;
    }
    text.get(..span.start.min(text.len()))
        .map_or(0, |before| before.matches('\n').count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_from_spans() {
        let text = "a = 1\nb = 2\nc = 3\n";
        assert_eq!(line_of(text, 0..0), 0);
        assert_eq!(line_of(text, 0..1), 1);
        assert_eq!(line_of(text, 6..7), 2);
        assert_eq!(line_of(text, 12..13), 3);
        assert_eq!(line_of(text, 500..501), 4, "past the end: the last line");
    }
}
