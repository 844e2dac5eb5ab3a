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

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `serve` reads its config file first: it may size the runtime.
    let (command, threads) = match cli.command {
        Command::Serve(args) => match serve::resolve(args) {
            Ok(args) => {
                let threads = args.runtime_threads;
                (Command::Serve(args), threads)
            }
            Err(e) => return failed(&e),
        },
        command => (command, None),
    };
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(n) = threads.and_then(|n| usize::try_from(n).ok()) {
        runtime.worker_threads(n);
    }
    match runtime.build() {
        Ok(runtime) => runtime.block_on(run(cli.client, command)),
        Err(e) => failed(&anyhow::anyhow!("starting the runtime: {e}")),
    }
}

async fn run(client: cmd::ClientArgs, command: Command) -> ExitCode {
    let result = match command {
        Command::Serve(args) => serve::run(args).await,
        Command::Dev(args) => dev::run(args).await,
        Command::Sink(args) => sink::run(args).await,
        Command::Certs(args) => certs::run(args),
        Command::Backup(args) => match client.ca_pem() {
            Ok(ca) => backup::backup(&client.endpoint, client.token.as_deref(), ca.as_deref(), args).await,
            Err(e) => Err(anyhow::anyhow!("{e}")),
        },
        Command::Restore(args) => backup::restore(args),
        Command::Probe(args) => return probe::run(args).await,
        Command::Client(command) => return cmd::run(client, command).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => failed(&e),
    }
}

fn failed(e: &anyhow::Error) -> ExitCode {
    eprintln!("error: {e:#}");
    ExitCode::FAILURE
}
