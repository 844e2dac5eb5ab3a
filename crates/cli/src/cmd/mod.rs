//! The client subcommands (`belfry job|exec|dlq|schedule|cluster|token …`): one module per group,
//! each a thin layer over [`belfry_client::Client`] that renders the answer as a table
//! ([`table`]) or as the server's JSON.
//!
//! Exit codes (docs/CLI.md; the tests rely on them): 0 ok; 1 the server answered an error (one
//! line `error: <code>: <message> (field: <field>)` on stderr) or something that is not
//! belfry's API; 2 usage (clap's own errors, a bad job file, an invalid endpoint); 3 the
//! endpoint could not be reached; 4 a local file could not be written.

pub mod cluster;
pub mod exec;
pub mod job;
pub mod schedule;
mod spec;
mod table;
pub mod token;

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use belfry_client::Client;
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;

/// Where `--help` lists the client flags: apart, since `serve`, `dev` and `sink` ignore them.
const CLIENT_OPTIONS: &str = "Client options";

/// Connection and output flags shared by every client subcommand (global: accepted before or
/// after the subcommand).
#[derive(Args, Debug, Clone)]
pub struct ClientArgs {
    /// The node to talk to; any node answers (writes are forwarded to the leader).
    #[arg(long, global = true, help_heading = CLIENT_OPTIONS, env = "BELFRY_ENDPOINT", default_value = "http://127.0.0.1:7101")]
    pub endpoint: String,
    /// `table` for people, `json` for the server's JSON.
    #[arg(long, short = 'o', global = true, help_heading = CLIENT_OPTIONS, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Give up on a request after this many seconds.
    #[arg(long, global = true, help_heading = CLIENT_OPTIONS, env = "BELFRY_TIMEOUT_SECS", default_value_t = 30, value_name = "SECS")]
    pub timeout_secs: u64,
    /// API token sent as `Authorization: Bearer` (prefer the environment variable: every
    /// local user can read a command line).
    #[arg(long, global = true, help_heading = CLIENT_OPTIONS, env = "BELFRY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM file of CA certificates to trust for `https://` endpoints (a node serving the API
    /// with --http-tls-cert under a private CA).
    #[arg(long, global = true, help_heading = CLIENT_OPTIONS, env = "BELFRY_CA_CERT", value_name = "PEM")]
    pub ca_cert: Option<std::path::PathBuf>,
}

impl ClientArgs {
    /// The contents of `--ca-cert`, when given.
    pub fn ca_pem(&self) -> Result<Option<Vec<u8>>, CliError> {
        match &self.ca_cert {
            None => Ok(None),
            Some(path) => {
                std::fs::read(path).map(Some).map_err(|e| CliError::Usage(format!("--ca-cert {}: {e}", path.display())))
            }
        }
    }
}

/// How answers are printed.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Aligned columns, RFC 3339 times.
    Table,
    /// The server's JSON, pretty-printed.
    Json,
}

/// Paging flags shared by the list commands.
#[derive(Args, Debug)]
pub struct Pages {
    /// Page size (1..=1000; a page holds at most 500).
    #[arg(long, conflicts_with = "all")]
    pub limit: Option<usize>,
    /// Continue after this cursor (the `next_cursor` of a previous page).
    #[arg(long, conflicts_with = "all")]
    pub cursor: Option<String>,
    /// Every page.
    #[arg(long)]
    pub all: bool,
}

/// The client subcommand groups, flattened into the binary's top-level commands.
// Parsed once at start; the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Create, inspect and control jobs.
    #[command(subcommand)]
    Job(job::JobCommand),
    /// Inspect fires (executions) and their attempts.
    #[command(subcommand)]
    Exec(exec::ExecCommand),
    /// The dead-letter queue: fires that ran out of attempts.
    #[command(subcommand)]
    Dlq(exec::DlqCommand),
    /// Evaluate schedules without creating a job.
    #[command(subcommand)]
    Schedule(schedule::ScheduleCommand),
    /// Cluster status, membership, leadership and support dumps.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// API tokens: create, list, revoke (admin role).
    #[command(subcommand)]
    Token(token::TokenCommand),
}

/// What a command needs: a client for the endpoint and the output mode.
pub struct Ctx {
    /// Client for `--endpoint`.
    pub client: Client,
    /// `--output`.
    pub output: Output,
    /// `--timeout-secs`, for clients to other nodes (cluster dump, remove via the leader).
    pub timeout: Duration,
    /// `--token`, for clients to other nodes.
    pub token: Option<String>,
    /// `--ca-cert`'s contents, for clients to other nodes.
    pub ca_pem: Option<Vec<u8>>,
}

impl Ctx {
    /// A client for another node's HTTP address (`host:port` or a URL), with this one's timeout.
    pub fn client_for(&self, http_addr: &str) -> Result<Client, CliError> {
        let scheme = self.client.endpoint().split("://").next().unwrap_or("http");
        let url = if http_addr.contains("://") { http_addr.to_string() } else { format!("{scheme}://{http_addr}") };
        Ok(Client::with_timeout(&url, self.timeout)?
            .with_token(self.token.as_deref())?
            .with_ca_cert(self.ca_pem.as_deref())?)
    }
}

/// Why a client command failed; each kind has its own exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// From the client: the server's error, unreachable, unexpected answer, bad endpoint.
    #[error(transparent)]
    Client(#[from] belfry_client::Error),
    /// The command as given cannot be run (missing flag, bad job file).
    #[error("{0}")]
    Usage(String),
    /// A local file could not be written.
    #[error("{0}")]
    Local(String),
    /// The command did its work, but some of the requests it is made of failed (`cluster
    /// dump`): the message says what was done and what failed.
    #[error("{0}")]
    Incomplete(String),
    /// A client error after the command had done part of its work (`job import`): `message`
    /// says what failed and what was done before; the exit code is that of `error`.
    #[error("{message}")]
    After {
        /// What the client call answered.
        error: Box<belfry_client::Error>,
        /// The whole story, for the error line.
        message: String,
    },
}

impl CliError {
    /// The process exit code (docs/CLI.md, "Exit codes").
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Client(e) => client_exit_code(e),
            CliError::After { error, .. } => client_exit_code(error),
            CliError::Usage(_) => 2,
            CliError::Local(_) => 4,
            CliError::Incomplete(_) => 5,
        }
    }
}

/// The exit code of a client error (docs/CLI.md, "Exit codes").
fn client_exit_code(e: &belfry_client::Error) -> u8 {
    use belfry_client::Error as E;
    match e {
        E::Api { .. } | E::Unexpected { .. } => 1,
        E::InvalidEndpoint { .. } => 2,
        E::Unreachable { .. } => 3,
    }
}

/// Runs one client command and turns its outcome into output and an exit code.
pub async fn run(args: ClientArgs, command: ClientCommand) -> ExitCode {
    match execute(args, command).await {
        Ok(text) => {
            print(&text);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

async fn execute(args: ClientArgs, command: ClientCommand) -> Result<String, CliError> {
    let timeout = Duration::from_secs(args.timeout_secs.max(1));
    let ca_pem = args.ca_pem()?;
    let client = Client::with_timeout(&args.endpoint, timeout)?
        .with_token(args.token.as_deref())?
        .with_ca_cert(ca_pem.as_deref())?;
    let ctx = Ctx { client, output: args.output, timeout, token: args.token, ca_pem };
    match command {
        ClientCommand::Job(c) => job::run(&ctx, c).await,
        ClientCommand::Exec(c) => exec::run(&ctx, c).await,
        ClientCommand::Dlq(c) => exec::run_dlq(&ctx, c).await,
        ClientCommand::Schedule(c) => schedule::run(&ctx, c).await,
        ClientCommand::Cluster(c) => cluster::run(&ctx, c).await,
        ClientCommand::Token(c) => token::run(&ctx, c).await,
    }
}

/// Writes to stdout; a closed pipe (`belfry job list | head`) is not an error worth a panic.
fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// Pretty JSON with a trailing newline.
pub fn json<T: Serialize>(value: &T) -> Result<String, CliError> {
    serde_json::to_string_pretty(value).map(|s| s + "\n").map_err(|e| CliError::Local(format!("encoding JSON: {e}")))
}

/// Tells the user on stderr that a page was cut, and how to get the next one.
pub fn hint_more(next_cursor: Option<&str>) {
    if let Some(c) = next_cursor {
        eprintln!("more results: pass --cursor {c} (or --all)");
    }
}
