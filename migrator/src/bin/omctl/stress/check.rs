//! Whether a stress job did its work: it exited 0 and printed what its kind promises (the spin
//! checksum worked out here, omwork's own `result ok` line for memory and threads, the input
//! file's digest for the pipeline). Pure.

use migrator::workload;

use super::mix::Kind;
use super::track;

/// How a job's omrun ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// Exited with this status (omrun relays the job's; 255 is omrun's own failure).
    Code(i32),
    /// omrun was killed by this signal.
    Signal(i32),
    /// Still running at the deadline; killed.
    TimedOut,
    /// omrun could not be started.
    NotStarted(String),
}

/// `Ok` when the job's exit and output are right, else what was wrong, in a few words.
pub fn check(kind: &Kind, exit: &Exit, stdout: &str, stderr: &str) -> Result<(), String> {
    match exit {
        Exit::Code(0) => {}
        Exit::Code(c) => return Err(with_words(format!("exit status {c}"), stdout, stderr)),
        Exit::Signal(s) => return Err(format!("omrun killed by signal {s}")),
        Exit::TimedOut => return Err("timed out (killed)".into()),
        Exit::NotStarted(why) => return Err(why.clone()),
    }
    let lines = || stdout.lines().map(str::trim_end);
    match kind {
        Kind::Spin { units } => {
            let want = workload::spin_result(*units, workload::spin_checksum(*units));
            if lines().any(|l| l == want) {
                return Ok(());
            }
            match lines().find(|l| l.starts_with("result ok spin ")) {
                Some(got) => Err(format!("wrong checksum: `{got}`, want `{want}`")),
                None => Err(with_words("no result line".into(), stdout, stderr)),
            }
        }
        Kind::Mem { mib, .. } => expect_prefix(
            lines(),
            &format!("result ok mem {mib} MiB "),
            stdout,
            stderr,
        ),
        Kind::Threads { n, .. } => {
            expect_prefix(lines(), &format!("result ok threads={n} "), stdout, stderr)
        }
        Kind::Pipe { sha256, .. } => {
            let got = stdout.split_whitespace().next().unwrap_or("");
            if got == sha256 {
                Ok(())
            } else if got.is_empty() {
                Err(with_words("no digest printed".into(), stdout, stderr))
            } else {
                Err(format!("wrong digest {got}, want {sha256}"))
            }
        }
    }
}

fn expect_prefix<'a>(
    mut lines: impl Iterator<Item = &'a str>,
    prefix: &str,
    stdout: &str,
    stderr: &str,
) -> Result<(), String> {
    if lines.any(|l| l.starts_with(prefix)) {
        Ok(())
    } else {
        Err(with_words(
            format!("no `{}` line", prefix.trim_end()),
            stdout,
            stderr,
        ))
    }
}

/// `what`, followed by the job's last words: the last line of stderr (omrun's progress lines
/// left out) or else of stdout, if any.
fn with_words(what: String, stdout: &str, stderr: &str) -> String {
    let last = |text: &str| {
        text.lines()
            .map(str::trim)
            .rev()
            .find(|l| !l.is_empty() && !track::is_progress(l))
            .map(str::to_owned)
    };
    match last(stderr).or_else(|| last(stdout)) {
        Some(words) => format!("{what}: {words}"),
        None => what,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: Exit = Exit::Code(0);

    fn spin(units: u64) -> Kind {
        Kind::Spin { units }
    }

    #[test]
    fn spin_needs_the_right_checksum() {
        let good = format!("{}\n", workload::spin_result(2, workload::spin_checksum(2)));
        assert_eq!(check(&spin(2), &OK, &good, ""), Ok(()));
        let e = check(&spin(3), &OK, &good, "").unwrap_err();
        assert!(
            e.starts_with("wrong checksum: `result ok spin units=2"),
            "{e}"
        );
        let e = check(&spin(2), &OK, "", "omrun: job n1.5 started on n1\n").unwrap_err();
        assert_eq!(e, "no result line");
    }

    #[test]
    fn a_failed_exit_says_why() {
        let e = check(
            &spin(2),
            &Exit::Code(1),
            "omwork: result BAD mem 3 pages wrong\n",
            "",
        )
        .unwrap_err();
        assert_eq!(e, "exit status 1: omwork: result BAD mem 3 pages wrong");
        let e = check(&spin(2), &Exit::Code(255), "", "omrun: cannot reach omd\n").unwrap_err();
        assert_eq!(e, "exit status 255: omrun: cannot reach omd");
        assert!(check(&spin(1), &Exit::TimedOut, "", "").is_err());
        assert_eq!(
            check(&spin(1), &Exit::NotStarted("no omrun".into()), "", ""),
            Err("no omrun".into())
        );
        assert_eq!(
            check(&spin(1), &Exit::Signal(9), "", ""),
            Err("omrun killed by signal 9".into())
        );
    }

    #[test]
    fn memory_threads_and_pipe() {
        let mem = Kind::Mem {
            mib: 64,
            secs: 1.0,
            pct: 0.0,
        };
        let out = "resident 64 MiB\nresult ok mem 64 MiB ticks=10 rewrites=0\n";
        assert_eq!(check(&mem, &OK, out, ""), Ok(()));
        let e = check(&mem, &OK, "resident 64 MiB\n", "").unwrap_err();
        assert_eq!(e, "no `result ok mem 64 MiB` line: resident 64 MiB");
        let threads = Kind::Threads { n: 4, secs: 1.0 };
        assert_eq!(
            check(&threads, &OK, "result ok threads=4 total=99\n", ""),
            Ok(())
        );
        assert!(check(&threads, &OK, "result ok threads=40 total=99\n", "").is_err());
        let pipe = Kind::Pipe {
            input: "/c/in".into(),
            mib: 1,
            sha256: "abc".into(),
        };
        assert_eq!(check(&pipe, &OK, "abc  -\n", ""), Ok(()));
        assert_eq!(
            check(&pipe, &OK, "abd  -\n", ""),
            Err("wrong digest abd, want abc".into())
        );
        assert_eq!(
            check(&pipe, &OK, "", "gzip: not found\n"),
            Err("no digest printed: gzip: not found".into())
        );
    }
}
