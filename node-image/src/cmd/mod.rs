//! One module per `omimage` subcommand; they orchestrate the library with anyhow context.

pub mod build;
pub mod check_config;
