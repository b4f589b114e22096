//! Running mmdebstrap: the argument list (pure, tested) and the subprocess with its output streamed.
//!
//! The result is a tarball made as root, so ownership, device nodes and capabilities are preserved.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use crate::recipe::Recipe;

/// mmdebstrap could not produce the root.
#[derive(Debug, thiserror::Error)]
pub enum MmdebstrapError {
    /// Root mode needs uid 0 (it chroots and creates device nodes).
    #[error("mmdebstrap must run as root to keep file ownership (current uid {uid})")]
    NotRoot {
        /// Our uid.
        uid: String,
    },
    /// The program could not be started.
    #[error("cannot run mmdebstrap (is the package installed?)")]
    Spawn(#[source] std::io::Error),
    /// Reading its output or waiting for it failed.
    #[error("lost contact with mmdebstrap")]
    Io(#[source] std::io::Error),
    /// It ran and failed.
    #[error("mmdebstrap failed ({status}); last output:\n{tail}")]
    Failed {
        /// Exit status.
        status: std::process::ExitStatus,
        /// The last lines it printed.
        tail: String,
    },
}

/// How many output lines a failure report repeats.
const TAIL_LINES: usize = 25;

/// The command line for `recipe`, writing a tarball to `target`.
pub fn arguments(recipe: &Recipe, target: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "--mode=root".into(),
        "--variant=apt".into(),
        "--format=tar".into(),
        format!("--components={}", recipe.components.join(",")).into(),
        // A diskless node needs no Recommends; they double the root size.
        "--aptopt=APT::Install-Recommends \"false\"".into(),
        "--aptopt=APT::Install-Suggests \"false\"".into(),
    ];
    // dpkg applies path filters in order: all excludes first, then the includes that punch holes in them.
    for glob in &recipe.path_excludes {
        args.push(format!("--dpkgopt=path-exclude={glob}").into());
    }
    for glob in &recipe.path_includes {
        args.push(format!("--dpkgopt=path-include={glob}").into());
    }
    args.push(format!("--include={}", recipe.packages.join(",")).into());
    args.push(recipe.suite.clone().into());
    args.push(target.as_os_str().to_owned());
    args.push(recipe.mirror.clone().into());
    args
}

/// Run mmdebstrap for `recipe` into the tarball `target`, calling `on_line` for every output line.
pub fn run(
    recipe: &Recipe,
    target: &Path,
    on_line: &(dyn Fn(&str) + Sync),
) -> Result<(), MmdebstrapError> {
    let uid = current_uid();
    if uid.as_deref() != Some("0") {
        return Err(MmdebstrapError::NotRoot {
            uid: uid.unwrap_or_else(|| "unknown".into()),
        });
    }
    let mut child = Command::new("mmdebstrap")
        .args(arguments(recipe, target))
        // The kernel package's postinst hook honours INITRD=No: Debian's own initramfs (tens of MB
        // and several seconds to generate) is never used, since we ship ours.
        .env("INITRD", "No")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(MmdebstrapError::Spawn)?;

    let tail = Mutex::new(std::collections::VecDeque::with_capacity(TAIL_LINES));
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let pump = |stream: Option<Box<dyn Read + Send>>| -> std::io::Result<()> {
        let Some(stream) = stream else { return Ok(()) };
        for line in BufReader::new(stream).split(b'\n') {
            let line = String::from_utf8_lossy(&line?).trim_end().to_owned();
            if line.is_empty() {
                continue;
            }
            on_line(&line);
            if let Ok(mut t) = tail.lock() {
                if t.len() == TAIL_LINES {
                    t.pop_front();
                }
                t.push_back(line);
            }
        }
        Ok(())
    };
    let (out_res, err_res) = std::thread::scope(|s| {
        let out = s.spawn(|| pump(stdout.map(|s| Box::new(s) as Box<dyn Read + Send>)));
        let err = pump(stderr.map(|s| Box::new(s) as Box<dyn Read + Send>));
        (out.join().unwrap_or(Ok(())), err)
    });
    let status = child.wait().map_err(MmdebstrapError::Io)?;
    out_res.and(err_res).map_err(MmdebstrapError::Io)?;
    if !status.success() {
        let tail = tail
            .into_inner()
            .map(|t| Vec::from(t).join("\n"))
            .unwrap_or_default();
        return Err(MmdebstrapError::Failed { status, tail });
    }
    Ok(())
}

/// Our real uid, from `/proc/self/status` (std has no getuid and this needs no unsafe).
fn current_uid() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(1).map(str::to_owned)
}

/// The temporary name mmdebstrap writes to before the cache renames it into place.
pub fn partial_path(final_path: &Path) -> PathBuf {
    let mut name = final_path.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_follow_the_recipe() {
        let recipe = Recipe {
            suite: "trixie".into(),
            mirror: "http://deb.debian.org/debian".into(),
            components: vec!["main".into(), "contrib".into()],
            packages: vec!["criu".into(), "linux-image-amd64".into()],
            path_excludes: vec!["/usr/share/doc/*".into(), "/usr/share/man/*".into()],
            path_includes: vec!["/usr/share/doc/*/copyright".into()],
        };
        let args: Vec<String> = arguments(&recipe, Path::new("/c/x.tar"))
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(args.contains(&"--variant=apt".to_owned()));
        assert!(args.contains(&"--components=main,contrib".to_owned()));
        assert!(args.contains(&"--include=criu,linux-image-amd64".to_owned()));
        let ex = args
            .iter()
            .position(|a| a == "--dpkgopt=path-exclude=/usr/share/man/*");
        let inc = args
            .iter()
            .position(|a| a == "--dpkgopt=path-include=/usr/share/doc/*/copyright");
        assert!(
            ex.is_some() && inc.is_some() && ex < inc,
            "includes must follow excludes: {args:?}"
        );
        assert_eq!(
            &args[args.len() - 3..],
            ["trixie", "/c/x.tar", "http://deb.debian.org/debian"]
        );
    }

    #[test]
    fn partial_path_appends_a_suffix() {
        assert_eq!(
            partial_path(Path::new("/c/ab.tar")),
            PathBuf::from("/c/ab.tar.partial")
        );
    }
}
