//! `omlab`: command-line front end of the ombootd lab (see the `omlab` library): cleans up
//! leftover labs and runs a two-node demo; one file per subcommand under `cmd/`.

mod cmd;
mod signals;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cmd::Cli::parse();
    let result = signals::install().and_then(|()| cli.run());
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            migrator::report::print_error_chain("error", &e);
            ExitCode::FAILURE
        }
    }
}
