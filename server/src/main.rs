//! The `retl` binary: parses the command line and runs it.

use clap::Parser;

fn main() -> std::process::ExitCode {
    retl::cli::run(retl::cli::Cli::parse())
}
