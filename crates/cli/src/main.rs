//! The `belfry` binary: the server commands (`serve`, `dev`, `sink`, `certs`) and the client commands
//! (`job`, `exec`, `dlq`, `schedule`, `cluster`, `token`; see [`cmd`] and docs/CLI.md).

mod backup;
mod certs;
mod cmd;
mod config_file;
mod dev;
mod private_file;
mod probe;
mod serve;
mod sink;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// belfry: a clustered job scheduler.
#[derive(Parser)]
#[command(name = "belfry", version, about)]
struct Cli {
    #[command(flatten)]
    client: cmd::ClientArgs,
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
    /// Make a cluster CA and node certificates for peer TLS (reusing the CA in --dir).
    Certs(certs::CertsArgs),
    /// Run a recording webhook receiver.
    Sink(sink::SinkArgs),
    /// Write a consistent backup of the cluster's state (through --endpoint) to a file.
    Backup(backup::BackupArgs),
    /// Stage a backup in an empty data dir to seed a new cluster.
    Restore(backup::RestoreArgs),
    /// GET a URL; exit 0 on 2xx, 1 otherwise (container healthchecks).
    Probe(probe::ProbeArgs),
    /// The client commands; new groups are variants of [`cmd::ClientCommand`].
    #[command(flatten)]
    Client(cmd::ClientCommand),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Dev(args) => dev::run(args).await,
        Command::Sink(args) => sink::run(args).await,
        Command::Certs(args) => certs::run(args),
        Command::Backup(args) => match cli.client.ca_pem() {
            Ok(ca) => backup::backup(&cli.client.endpoint, cli.client.token.as_deref(), ca.as_deref(), args).await,
            Err(e) => Err(anyhow::anyhow!("{e}")),
        },
        Command::Restore(args) => backup::restore(args),
        Command::Probe(args) => return probe::run(args).await,
        Command::Client(command) => return cmd::run(cli.client, command).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
