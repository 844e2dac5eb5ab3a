//! `belfry probe URL`: one HTTP GET that exits 0 on a 2xx answer and 1 otherwise, for
//! container healthchecks (the minimal image has no curl or wget).

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

/// Flags of `belfry probe`.
#[derive(Debug, Clone, Args)]
pub struct ProbeArgs {
    /// The URL to GET, e.g. `http://127.0.0.1:7100/readyz`.
    pub url: String,
    /// Give up after this many milliseconds (connecting included).
    #[arg(long, default_value_t = 2000)]
    pub timeout_ms: u64,
    /// Print nothing, not even the reason for a failure.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Runs the probe: 0 on 2xx, 1 on any other status, an unreachable URL or a timeout.
pub async fn run(args: ProbeArgs) -> ExitCode {
    let result = async {
        let http = reqwest::Client::builder().timeout(Duration::from_millis(args.timeout_ms)).build()?;
        let response = http.get(&args.url).send().await?;
        Ok::<_, reqwest::Error>(response.status())
    }
    .await;
    match result {
        Ok(status) if status.is_success() => ExitCode::SUCCESS,
        Ok(status) => {
            if !args.quiet {
                eprintln!("probe {}: {status}", args.url);
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            if !args.quiet {
                eprintln!("probe {}: {e}", args.url);
            }
            ExitCode::FAILURE
        }
    }
}
