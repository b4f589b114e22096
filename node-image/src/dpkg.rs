//! Reading the installed package set from a dpkg status file (`var/lib/dpkg/status`) of the root.
//!
//! Pure text parsing: RFC 822-style paragraphs; only fully installed packages count.

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Package {
    /// Package name.
    pub name: String,
    /// Installed version.
    pub version: String,
    /// Architecture (`amd64`, `all`).
    pub architecture: String,
}

/// The status file is not what dpkg writes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StatusError {
    /// A paragraph lacks a field every installed package has.
    #[error("dpkg status paragraph {paragraph} ({package}) has no {field} field")]
    MissingField {
        /// 1-based paragraph number.
        paragraph: usize,
        /// The package name, if known.
        package: String,
        /// The missing field.
        field: &'static str,
    },
}

/// Installed packages in `status`, sorted by name. Packages that are removed but keep their
/// configuration files (`deinstall ok config-files`) are left out.
pub fn installed_packages(status: &str) -> Result<Vec<Package>, StatusError> {
    let mut out = Vec::new();
    for (index, paragraph) in status
        .split("\n\n")
        .filter(|p| !p.trim().is_empty())
        .enumerate()
    {
        let field = |name: &str| {
            paragraph.lines().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                // Continuation lines start with a space; field names never do.
                (!line.starts_with([' ', '\t']) && key.eq_ignore_ascii_case(name))
                    .then(|| value.trim().to_owned())
            })
        };
        let paragraph_no = index + 1;
        let name = field("Package").ok_or(StatusError::MissingField {
            paragraph: paragraph_no,
            package: String::new(),
            field: "Package",
        })?;
        let missing = |field: &'static str| StatusError::MissingField {
            paragraph: paragraph_no,
            package: name.clone(),
            field,
        };
        let state = field("Status").ok_or_else(|| missing("Status"))?;
        if state.split_whitespace().last() != Some("installed") {
            continue;
        }
        let version = field("Version").ok_or_else(|| missing("Version"))?;
        let architecture = field("Architecture").ok_or_else(|| missing("Architecture"))?;
        out.push(Package {
            name,
            version,
            architecture,
        });
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "\
Package: criu
Status: install ok installed
Priority: optional
Architecture: amd64
Version: 4.1.1-1
Description: checkpoint and restore in userspace
 Version: this continuation line is not a field

Package: busybox-static
Status: install ok installed
Architecture: amd64
Version: 1:1.37.0-6+b9

Package: old-thing
Status: deinstall ok config-files
Architecture: all
Version: 1.0
";

    #[test]
    fn installed_packages_are_listed_sorted() {
        let pkgs = installed_packages(STATUS).expect("parse");
        assert_eq!(
            pkgs,
            vec![
                Package {
                    name: "busybox-static".into(),
                    version: "1:1.37.0-6+b9".into(),
                    architecture: "amd64".into()
                },
                Package {
                    name: "criu".into(),
                    version: "4.1.1-1".into(),
                    architecture: "amd64".into()
                },
            ]
        );
    }

    #[test]
    fn a_paragraph_without_version_is_an_error() {
        let err =
            installed_packages("Package: x\nStatus: install ok installed\nArchitecture: all\n")
                .expect_err("no version");
        assert_eq!(
            err,
            StatusError::MissingField {
                paragraph: 1,
                package: "x".into(),
                field: "Version"
            }
        );
    }
}
