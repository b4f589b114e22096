//! `omlab clean`: removes every lab namespace (in use or not), the processes inside them and
//! stale ownership records, then says what it removed.

use anyhow::Context;
use omlab::cleanup::{self, Scope};

/// Options of `omlab clean`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only remove labs whose owner process is gone (leave running labs alone).
    #[arg(long)]
    stale_only: bool,
}

/// Runs `omlab clean`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let scope = if args.stale_only {
        Scope::Stale
    } else {
        Scope::All
    };
    let removed = cleanup::remove_leftovers(scope).context("cannot remove leftover labs")?;
    for (ns, pid) in &removed.processes {
        println!("killed process {pid} in {ns}");
    }
    for ns in &removed.namespaces {
        println!("deleted namespace {ns}");
    }
    for ns in &removed.records {
        println!("removed stale record of {ns}");
    }
    if removed.namespaces.is_empty() && removed.records.is_empty() {
        println!("nothing to clean");
    }
    Ok(())
}
