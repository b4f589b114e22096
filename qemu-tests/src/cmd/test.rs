//! `omlab test`: the project's whole test run, as CI runs it: Debian packages, format and lint
//! checks, the build, a fuzz smoke, the node image, then every test of the workspace (unit,
//! real-client, QEMU).

use super::fuzz_smoke::fuzz_smoke;
use super::prepare::{cargo, debian_packages, node_image, step};

/// Options of `omlab test`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Arguments passed on to `cargo test` after `--workspace` (a test name filter, say).
    #[arg(trailing_var_arg = true)]
    cargo_test_args: Vec<String>,
}

/// Runs `omlab test`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    step("Debian packages", debian_packages)?;
    step("rustfmt", || cargo(&["fmt", "--all", "--", "--check"]))?;
    step("clippy", || {
        cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ])
    })?;
    step("build", || cargo(&["build", "--workspace"]))?;
    step("fuzz smoke", fuzz_smoke)?;
    step("node image", node_image)?;
    let mut test_args = vec!["test", "--workspace"];
    test_args.extend(args.cargo_test_args.iter().map(String::as_str));
    step("tests", || cargo(&test_args))
}
