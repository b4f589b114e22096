//! `omctl`: command-line client and monitor for omd (the successor of mosctl, mosmon, mps, mtop).
//! Talks to omd over its unix control socket ([`migrator::api`]); exit 0 ok, 1 error, 2 usage.

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod balance;
mod bars;
mod cli;
mod client;
mod control;
mod jobs;
mod migrations;
mod mon;
mod monmoves;
mod monview;
mod nodes;
mod places;
mod poll;
mod procs;
mod ps;
mod selfnode;
mod stime;
mod stress;
mod table;
mod term;
mod top;
mod units;
mod users;
mod whois;

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use crate::cli::{Cli, Command};
use crate::client::Omd;

fn main() -> ExitCode {
    restore_sigpipe();
    // clap prints usage errors itself and exits 2; --help and --version exit 0.
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            migrator::report::print_error_chain("Error", &e);
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let omd = Omd::new(&cli.socket);
    match cli.command {
        Command::Nodes { json } => nodes::run(&omd, json),
        Command::Whois { who, json } => whois::run(&omd, &who, json),
        Command::Mon {
            view,
            once: true,
            width,
            height,
        } => mon::once(&omd, view.into(), width, height),
        Command::Mon { view, .. } => mon::live(&omd, view.into()),
        Command::Ps { json } => ps::run(&omd, json),
        Command::Top { iterations, delay } => top::run(&omd, iterations, delay),
        Command::Jobs { json } => jobs::run(&omd, json),
        Command::Migrate { job, to } => jobs::migrate(&omd, &job, &to),
        Command::Migrations { json } => migrations::run(&omd, json),
        Command::Stress(args) => stress::run(&omd, &cli.socket, &args),
        Command::Control(c) => control::run(&omd, c.into()),
    }
}

/// Rust ignores SIGPIPE, which turns `omctl ps | head` into a "Broken pipe" panic; like every
/// other Unix filter we want to just stop when the reader goes away.
fn restore_sigpipe() {
    // SAFETY: called first thing in main, before any thread exists; SIG_DFL is a valid handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
