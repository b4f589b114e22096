//! Conditional and partial GETs of the image files (RFC 9110 §8.8.3 ETag, §13.1.2
//! If-None-Match, §14 Range): an interrupted kernel download resumes where it stopped, and a
//! client that has the file already gets 304. Pure: headers and the file's identity in, what to
//! send out.

/// What to send for a GET of a file of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 200 with the whole file.
    Whole,
    /// 206 with bytes `start..=end`.
    Part {
        /// First byte.
        start: u64,
        /// Last byte (inclusive).
        end: u64,
    },
    /// 304: the client's copy is current.
    NotModified,
    /// 416: the range lies outside the file.
    Unsatisfiable,
}

/// A strong validator: the image version names the build, so version, file, size and mtime
/// identify the bytes.
pub fn etag(version: &str, file: &str, len: u64, mtime_secs: u64) -> String {
    format!("\"{version}-{file}-{len:x}-{mtime_secs:x}\"")
}

/// The single range `bytes=a-b`, `bytes=a-` or `bytes=-n` of a `len`-byte file. Several ranges,
/// or another unit, are answered with the whole file (RFC 9110 lets a server ignore Range).
fn single_range(value: &str, len: u64) -> Answer {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Answer::Whole;
    };
    if spec.contains(',') {
        return Answer::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Answer::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    let range = match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(start), Ok(end)) if start <= end => Some((start, end.min(len.saturating_sub(1)))),
        (Ok(start), Err(_)) if b.is_empty() => Some((start, len.saturating_sub(1))),
        (Err(_), Ok(n)) if a.is_empty() && n > 0 => {
            Some((len.saturating_sub(n), len.saturating_sub(1)))
        }
        _ => return Answer::Whole,
    };
    match range {
        Some((start, end)) if start < len && start <= end => Answer::Part { start, end },
        _ => Answer::Unsatisfiable,
    }
}

/// What to send, given the request's `If-None-Match`, `Range` and `If-Range` values.
pub fn answer(
    etag: &str,
    len: u64,
    if_none_match: Option<&str>,
    range: Option<&str>,
    if_range: Option<&str>,
) -> Answer {
    if if_none_match.is_some_and(|v| v.trim() == "*" || v.split(',').any(|t| t.trim() == etag)) {
        return Answer::NotModified;
    }
    match range {
        // A Range for another version of the file gets the whole new one.
        Some(r) if if_range.is_none_or(|v| v.trim() == etag) => single_range(r, len),
        _ => Answer::Whole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_validators_and_conditions() {
        let tag = etag("v1", "vmlinuz", 1000, 7);
        assert_eq!(tag, "\"v1-vmlinuz-3e8-7\"");
        let a = |inm, r, ir| answer(&tag, 1000, inm, r, ir);
        assert_eq!(a(None, None, None), Answer::Whole);
        assert_eq!(
            a(None, Some("bytes=0-99"), None),
            Answer::Part { start: 0, end: 99 }
        );
        assert_eq!(
            a(None, Some("bytes=900-"), None),
            Answer::Part {
                start: 900,
                end: 999
            }
        );
        assert_eq!(
            a(None, Some("bytes=-100"), None),
            Answer::Part {
                start: 900,
                end: 999
            }
        );
        assert_eq!(
            a(None, Some("bytes=990-5000"), None),
            Answer::Part {
                start: 990,
                end: 999
            }
        );
        assert_eq!(a(None, Some("bytes=1000-"), None), Answer::Unsatisfiable);
        assert_eq!(a(None, Some("bytes=5-1"), None), Answer::Whole);
        assert_eq!(a(None, Some("bytes=0-1,5-9"), None), Answer::Whole);
        assert_eq!(a(None, Some("lines=1-2"), None), Answer::Whole);
        assert_eq!(a(None, Some("bytes=-0"), None), Answer::Whole);
        assert_eq!(
            a(Some(tag.as_str()), Some("bytes=0-1"), None),
            Answer::NotModified
        );
        assert_eq!(a(Some("*"), None, None), Answer::NotModified);
        let list = format!("\"other\", {tag}");
        assert_eq!(a(Some(list.as_str()), None, None), Answer::NotModified);
        assert_eq!(a(Some("\"other\""), None, None), Answer::Whole);
        assert_eq!(a(None, Some("bytes=0-1"), Some("\"old\"")), Answer::Whole);
        assert_eq!(
            a(None, Some("bytes=0-1"), Some(tag.as_str())),
            Answer::Part { start: 0, end: 1 }
        );
        assert_eq!(
            answer(&tag, 0, None, Some("bytes=0-"), None),
            Answer::Unsatisfiable
        );
    }
}
