//! `omctl stress`, openmosixtest's successor: a mix of checkable jobs started from this node
//! through omrun, then the same mix at home; where each ran, the migrations and the speedup.
//! The parts: [`mix`] (what runs), [`run`] (running it), [`check`], [`track`], [`report`].

mod check;
mod mix;
mod report;
mod run;
mod track;

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::cli::StressArgs;
use crate::client::Omd;

/// `omctl stress`: runs the passes, prints the report, fails if any job did.
pub fn run(omd: &Omd, socket: &Path, args: &StressArgs) -> Result<()> {
    let here = omd
        .nodes()?
        .into_iter()
        .find(|n| n.is_self)
        .map(|n| n.name)
        .context("omd listed no row for this node")?;
    let work = WorkDir::create(&args.cluster_dir)?;
    let pipe = if args.pipe_mib > 0 {
        let path = mix::input_path(&work.0);
        let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let sha256 = mix::write_input(BufWriter::new(file), args.pipe_mib)
            .with_context(|| format!("writing {}", path.display()))?;
        Some(mix::PipeInput { path, sha256 })
    } else {
        None
    };
    let jobs = mix::mix(args, pipe);
    if jobs.is_empty() {
        bail!("nothing to run: every job of the mix was sized 0");
    }
    // The jobs run in the stress directory: a relative program path must not change meaning.
    let omrun = absolute(&args.omrun)?;
    let omwork = absolute(Path::new(&args.omwork))?;
    let socket = absolute(socket)?;
    let setup = |home_only| run::Setup {
        omrun: omrun.clone(),
        socket: socket.clone(),
        omwork: omwork.to_string_lossy().into_owned(),
        workdir: work.0.clone(),
        timeout: Duration::from_secs_f64(args.timeout),
        home_only,
        here: here.clone(),
    };
    eprintln!(
        "omctl stress: {} jobs from {here} through omrun (placement as omd decides)...",
        jobs.len()
    );
    let balanced = run::pass(omd, &setup(false), &jobs);
    let moves = match omd.moves() {
        Ok(m) => Some(m),
        Err(e) => {
            eprintln!("omctl stress: note: no move history ({e:#}); counting from the jobs table");
            None
        }
    };
    let home = if args.no_baseline {
        None
    } else {
        eprintln!(
            "omctl stress: the same {} jobs at home (omrun -h)...",
            jobs.len()
        );
        Some(run::pass(omd, &setup(true), &jobs))
    };
    drop(work);
    let report = report::build(&jobs, &balanced, home.as_ref(), moves.as_deref());
    if args.json {
        let text = serde_json::to_string_pretty(&report).context("encoding the report")?;
        println!("{text}");
    } else {
        print!("{}", report::render(&report));
    }
    if !report.ok {
        let bad = report.jobs.iter().filter(|j| !j.ok).count();
        bail!(
            "{bad} of {} jobs failed or gave a wrong result",
            report.jobs.len()
        );
    }
    Ok(())
}

/// `path` made absolute against the current directory when it names a file relative to it
/// (`./omrun`, `bin/omwork`); a bare name stays one, for the search in PATH.
fn absolute(path: &Path) -> Result<PathBuf> {
    if path.is_absolute() || (path.components().count() == 1 && !path.starts_with(".")) {
        return Ok(path.to_path_buf());
    }
    std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))
}

/// `.stress-<pid>` in the shared directory: the jobs' working directory and the pipeline's
/// input; removed with everything in it when dropped.
#[derive(Debug)]
struct WorkDir(PathBuf);

impl WorkDir {
    fn create(shared: &Path) -> Result<Self> {
        if !shared.is_dir() {
            bail!(
                "{} is not a directory: omctl stress needs the cluster's shared directory \
                 (--cluster-dir)",
                shared.display()
            );
        }
        let dir = shared.join(format!(".stress-{}", std::process::id()));
        std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            eprintln!(
                "omctl stress: note: cannot remove {}: {e}",
                self.0.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_are_anchored_here_but_names_are_searched() {
        let here = std::env::current_dir().unwrap();
        assert_eq!(absolute(Path::new("omrun")).unwrap(), Path::new("omrun"));
        assert_eq!(
            absolute(Path::new("/bin/omrun")).unwrap(),
            Path::new("/bin/omrun")
        );
        assert_eq!(absolute(Path::new("./omrun")).unwrap(), here.join("omrun"));
        assert_eq!(
            absolute(Path::new("bin/omrun")).unwrap(),
            here.join("bin/omrun")
        );
    }
}
