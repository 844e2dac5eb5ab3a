//! The `belfry` binary.

mod dev;
mod serve;
mod sink;

use clap::{Parser, Subcommand};

/// belfry: a clustered job scheduler.
#[derive(Parser)]
#[command(name = "belfry", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start; the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run one node.
    Serve(serve::ServeArgs),
    /// Run a 3-node cluster on loopback with a demo sink and job.
    Dev(dev::DevArgs),
    /// Run a recording webhook receiver.
    Sink(sink::SinkArgs),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Dev(args) => dev::run(args).await,
        Command::Sink(args) => sink::run(args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
