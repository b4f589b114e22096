//! The job mix of `omctl stress`, from the command line's sizes: what each job runs and what
//! kind of result it owes, and the pipeline's input file (written to any writer, its digest
//! returned). No processes, no file system.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use migrator::job::record::command_line;
use sha2::{Digest, Sha256};

use crate::cli::StressArgs;

/// What a job does.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// `omwork spin UNITS`: fixed CPU work with a checksum.
    Spin {
        /// Units of work.
        units: u64,
    },
    /// `omwork mem MIB SECS PCT`: resident memory, rewritten as it runs.
    Mem {
        /// MiB.
        mib: u64,
        /// Seconds.
        secs: f64,
        /// Percent of pages rewritten per second.
        pct: f64,
    },
    /// `omwork threads N SECS`.
    Threads {
        /// Threads.
        n: u32,
        /// Seconds.
        secs: f64,
    },
    /// `cat FILE | gzip -c | gunzip -c | sha256sum` over a file in the shared directory.
    Pipe {
        /// The input file.
        input: PathBuf,
        /// Its size, MiB.
        mib: u64,
        /// Its SHA-256, hex.
        sha256: String,
    },
}

/// One job of the mix.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Short name in the report (`spin1`, `mem`, ...).
    pub name: String,
    /// What it does.
    pub kind: Kind,
}

impl Job {
    /// The command omrun runs, with `omwork` as the jobs find it.
    pub fn argv(&self, omwork: &str) -> Vec<String> {
        let own = |args: &[String]| {
            std::iter::once(omwork.to_owned())
                .chain(args.iter().cloned())
                .collect()
        };
        match &self.kind {
            Kind::Spin { units } => own(&["spin".into(), units.to_string()]),
            Kind::Mem { mib, secs, pct } => own(&[
                "mem".into(),
                mib.to_string(),
                secs.to_string(),
                pct.to_string(),
            ]),
            Kind::Threads { n, secs } => own(&["threads".into(), n.to_string(), secs.to_string()]),
            Kind::Pipe { input, .. } => vec![
                "sh".into(),
                "-c".into(),
                format!(
                    "cat {} | gzip -c | gunzip -c | sha256sum",
                    command_line(&[input.to_string_lossy().into_owned()])
                ),
            ],
        }
    }

    /// The kind and size, for the report (`spin 20`, `mem 64M`, ...).
    pub fn label(&self) -> String {
        match &self.kind {
            Kind::Spin { units } => format!("spin {units}"),
            Kind::Mem { mib, .. } => format!("mem {mib}M"),
            Kind::Threads { n, .. } => format!("threads {n}"),
            Kind::Pipe { mib, .. } => format!("pipe {mib}M"),
        }
    }
}

/// The pipeline's input, once written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipeInput {
    /// Where it is (in the shared directory).
    pub path: PathBuf,
    /// Its SHA-256, hex.
    pub sha256: String,
}

/// The mix for `args`: the CPU jobs (the k-th does k × `--units`), then the memory job, the
/// threads job and the pipeline, each left out when its size is 0 (the pipeline also when
/// `pipe` is `None`).
pub fn mix(args: &StressArgs, pipe: Option<PipeInput>) -> Vec<Job> {
    let mut jobs: Vec<Job> = (1..=u64::from(args.cpu_jobs))
        .map(|k| Job {
            name: format!("spin{k}"),
            kind: Kind::Spin {
                units: args.units.saturating_mul(k),
            },
        })
        .collect();
    if args.mem_mib > 0 {
        jobs.push(Job {
            name: "mem".into(),
            kind: Kind::Mem {
                mib: args.mem_mib,
                secs: args.secs,
                pct: args.mem_pct,
            },
        });
    }
    if args.threads > 0 {
        jobs.push(Job {
            name: "threads".into(),
            kind: Kind::Threads {
                n: args.threads,
                secs: args.secs,
            },
        });
    }
    if let Some(p) = pipe.filter(|_| args.pipe_mib > 0) {
        jobs.push(Job {
            name: "pipe".into(),
            kind: Kind::Pipe {
                input: p.path,
                mib: args.pipe_mib,
                sha256: p.sha256,
            },
        });
    }
    jobs
}

/// The input file's name inside the stress directory.
pub fn input_path(dir: &Path) -> PathBuf {
    dir.join("input")
}

/// Writes `mib` MiB of the pipeline's input to `w` (numbered lines of pseudo-random hex, so
/// gzip has some work) and returns its SHA-256 in hex.
pub fn write_input(mut w: impl Write, mib: u64) -> io::Result<String> {
    let total = usize::try_from(mib << 20).map_err(|_| io::Error::other("input too large"))?;
    let mut hash = Sha256::new();
    let mut chunk = Vec::with_capacity(1 << 16);
    let (mut written, mut line, mut x) = (0usize, 0u64, 0x5eed_u64);
    while written < total {
        chunk.clear();
        while chunk.len() < 1 << 16 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            line += 1;
            writeln!(chunk, "{line:08} {x:016x} ombootd stress input")?;
        }
        chunk.truncate(total - written);
        hash.update(&chunk);
        w.write_all(&chunk)?;
        written += chunk.len();
    }
    w.flush()?;
    Ok(hex::encode(hash.finalize()))
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use clap::Parser;

    use crate::cli::{Cli, Command};

    /// The stress options for `extra` command-line arguments.
    pub fn args(extra: &[&str]) -> StressArgs {
        let cli = Cli::try_parse_from(["omctl", "stress"].iter().chain(extra)).unwrap();
        match cli.command {
            Command::Stress(a) => a,
            _ => unreachable!("stress parses as stress"),
        }
    }

    fn pipe() -> Option<PipeInput> {
        Some(PipeInput {
            path: "/cluster/.stress-7/input".into(),
            sha256: "ab".into(),
        })
    }

    #[test]
    fn default_mix_has_every_kind_with_unequal_cpu_jobs() {
        let jobs = mix(&args(&["--units", "3"]), pipe());
        let labels: Vec<String> = jobs.iter().map(Job::label).collect();
        assert_eq!(
            labels,
            [
                "spin 3",
                "spin 6",
                "spin 9",
                "spin 12",
                "mem 64M",
                "threads 4",
                "pipe 4M"
            ]
        );
        assert_eq!(jobs[0].name, "spin1");
        assert_eq!(jobs[0].argv("omwork"), ["omwork", "spin", "3"]);
        assert_eq!(
            jobs[4].argv("/x/omwork"),
            ["/x/omwork", "mem", "64", "20", "10"]
        );
        assert_eq!(jobs[5].argv("omwork"), ["omwork", "threads", "4", "20"]);
        assert_eq!(
            jobs[6].argv("omwork"),
            [
                "sh",
                "-c",
                "cat /cluster/.stress-7/input | gzip -c | gunzip -c | sha256sum"
            ]
        );
    }

    #[test]
    fn zero_sizes_leave_jobs_out_and_odd_paths_are_quoted() {
        let a = args(&[
            "--cpu-jobs",
            "1",
            "--mem-mib",
            "0",
            "--threads",
            "0",
            "--secs",
            "0.5",
        ]);
        let jobs = mix(&a, None);
        assert_eq!(jobs.len(), 1);
        let a = args(&["--cpu-jobs", "0", "--pipe-mib", "1"]);
        let odd = PipeInput {
            path: "/my cluster/in".into(),
            sha256: "ab".into(),
        };
        let jobs = mix(&a, Some(odd));
        assert_eq!(jobs.len(), 3);
        assert!(jobs[2].argv("omwork")[2].starts_with("cat '/my cluster/in' |"));
        let jobs = mix(&args(&["--pipe-mib", "0"]), pipe());
        assert!(jobs.iter().all(|j| j.name != "pipe"));
    }

    #[test]
    fn input_is_sized_and_digested() {
        let mut v = Vec::new();
        let digest = write_input(&mut v, 1).unwrap();
        assert_eq!(v.len(), 1 << 20);
        assert_eq!(digest, hex::encode(Sha256::digest(&v)));
        assert!(v.starts_with(b"00000001 "));
        let mut again = Vec::new();
        assert_eq!(write_input(&mut again, 1).unwrap(), digest);
        assert_eq!(
            write_input(io::sink(), 0).unwrap(),
            hex::encode(Sha256::digest(b""))
        );
    }
}
