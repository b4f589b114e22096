//! `omlab test`'s fuzz smoke: each cargo-fuzz target runs a fixed number of inputs grown from its
//! checked-in seeds, so a target that no longer builds or an input that panics fails the run.

use std::process::{Command, Stdio};

use anyhow::Context;

use super::prepare::{run, workspace_root};

/// The fuzz targets, by the crate whose `fuzz/` directory holds them.
const TARGETS: &[(&str, &str)] = &[
    ("bootserver", "dhcp"),
    ("bootserver", "tftp_request"),
    ("migrator", "gossip_wire"),
];

/// Inputs per target: about a second each (tftp_request, the slowest, runs ~30,000 a second).
const RUNS: u32 = 50_000;

/// Installs the nightly toolchain and cargo-fuzz when missing, then runs every target.
pub fn fuzz_smoke() -> anyhow::Result<()> {
    if !succeeds(Command::new("rustup").args(["run", "nightly", "rustc", "--version"])) {
        run(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))?;
    }
    if !succeeds(Command::new("cargo").args(["fuzz", "--version"])) {
        run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    }
    let root = workspace_root();
    for &(krate, target) in TARGETS {
        // libFuzzer writes the inputs it finds to the first directory: not the checked-in seeds.
        let scratch = tempfile::tempdir().context("cannot make a scratch corpus directory")?;
        let seeds = root.join(krate).join("fuzz/seeds").join(target);
        // `-O` builds the fuzz crate's release profile, which sets the assertions (see its
        // Cargo.toml); no sanitizer, as the code under test is safe Rust.
        run(Command::new("cargo")
            .args([
                "+nightly",
                "fuzz",
                "run",
                "-O",
                "--sanitizer",
                "none",
                "--target-dir",
            ])
            .arg(root.join("target/fuzz"))
            .arg(target)
            .arg(scratch.path())
            .arg(&seeds)
            // No line per new input (a crash is still reported in full); the totals at the end.
            .args([
                "--",
                &format!("-runs={RUNS}"),
                "-verbosity=0",
                "-print_final_stats=1",
            ])
            .current_dir(root.join(krate)))?;
    }
    Ok(())
}

fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
