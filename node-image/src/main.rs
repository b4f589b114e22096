//! `omimage`: build the node image ombootd serves (`omimage build`) or check its configuration.
//!
//! Paths are taken relative to the current directory, normally the repository root.

mod cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "omimage",
    version,
    about = "Build the diskless node image (Debian root, initramfs, manifest) for ombootd"
)]
struct Cli {
    /// Configuration file.
    #[arg(long, short, global = true, default_value = "configs/node-image.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build the image: root (cached by recipe hash), customisation, initramfs, tftp/, manifest.json.
    Build {
        /// Output directory (vmlinuz, initrd.img, rootfs/, tftp/, manifest.json).
        #[arg(long, default_value = "build/image")]
        out: PathBuf,
        /// Cache directory for root tarballs.
        #[arg(long, default_value = "build/cache")]
        cache: PathBuf,
        /// Log root in on the serial console without a password (labs and tests only: anyone at
        /// the console, or at a VM's serial socket, gets a root shell).
        #[arg(long)]
        console_autologin: bool,
    },
    /// Validate the configuration and print the recipe and its hash.
    CheckConfig,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Build {
            out,
            cache,
            console_autologin,
        } => cmd::build::run(&cli.config, &out, &cache, console_autologin),
        Command::CheckConfig => cmd::check_config::run(&cli.config),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            migrator::report::print_error_chain("Error", &e);
            ExitCode::FAILURE
        }
    }
}
