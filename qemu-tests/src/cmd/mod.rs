//! The subcommands of `omlab`, one file each; `Cli::run` dispatches. A new subcommand gets a file here,
//! a variant in `Command` and an arm in `run`.

mod bench;
mod bench_balance;
mod bench_boot;
mod bench_dashboard;
mod bench_dhcp;
mod bench_gossip;
mod bench_migrate;
mod bench_nfs;
mod clean;
mod demo;
mod fuzz_smoke;
mod prepare;
mod test;

use clap::{Parser, Subcommand};

/// The ombootd lab: network namespaces, ombootd and QEMU nodes.
#[derive(Debug, Parser)]
#[command(name = "omlab", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Remove every leftover lab: omlab-* namespaces, the processes inside, state files.
    Clean(clean::Args),
    /// Boot two nodes (BIOS and UEFI) from ombootd and print how long each took.
    Demo(demo::Args),
    /// Benchmarks against the anchor servers (dnsmasq-era tools) in the same run.
    Bench(bench::Args),
    /// The whole test run (what CI runs): packages, fmt, clippy, build, fuzz, image, all tests.
    Test(test::Args),
}

impl Cli {
    /// Runs the chosen subcommand.
    pub fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Clean(args) => clean::run(&args),
            Command::Demo(args) => demo::run(&args),
            Command::Test(args) => test::run(&args),
            Command::Bench(args) => bench::run(&args),
        }
    }
}
