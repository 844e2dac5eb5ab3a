//! `belfry schedule preview`: a schedule's next instants, evaluated by the server (the same
//! code that fires jobs), with no job created.

use belfry_core::api::PreviewRequest;
use belfry_schedule::ScheduleSpec;
use clap::Subcommand;

use super::{job, CliError, Ctx};

/// `belfry schedule` subcommands.
#[derive(Subcommand, Debug)]
pub enum ScheduleCommand {
    /// Show the next instants of a cron expression (or --every / --at), in UTC and local time.
    Preview {
        /// Cron expression: 5 or 6 fields (seconds first) or an @macro.
        #[arg(required_unless_present_any = ["every", "at"], conflicts_with_all = ["every", "at"])]
        expr: Option<String>,
        /// IANA time zone of the cron expression (default UTC).
        #[arg(long, value_name = "ZONE")]
        tz: Option<String>,
        /// An interval instead of a cron expression (`30s`, `5m`).
        #[arg(long, value_name = "DURATION", conflicts_with = "at")]
        every: Option<String>,
        /// A one-off instant instead of a cron expression.
        #[arg(long, value_name = "RFC3339")]
        at: Option<String>,
        /// Anchor of --every and first allowed instant (RFC 3339).
        #[arg(long, value_name = "RFC3339")]
        start_at: Option<String>,
        /// Last allowed instant (RFC 3339).
        #[arg(long, value_name = "RFC3339")]
        end_at: Option<String>,
        /// How many instants (1..=1000).
        #[arg(long, short = 'n', default_value_t = 10)]
        count: usize,
        /// Instants strictly after this RFC 3339 instant (default now).
        #[arg(long, value_name = "RFC3339")]
        after: Option<String>,
    },
}

/// Runs a `schedule` subcommand.
pub async fn run(ctx: &Ctx, command: ScheduleCommand) -> Result<String, CliError> {
    match command {
        ScheduleCommand::Preview { expr, tz, every, at, start_at, end_at, count, after } => {
            // The local column is a convenience; an unknown zone is the server's to report.
            let zone = tz.as_deref().and_then(|z| z.parse::<chrono_tz::Tz>().ok());
            let text = |v: Option<String>| v.map(Into::into);
            let (cron, timezone, every, at, start_at, end_at) =
                (text(expr), text(tz), text(every), text(at), text(start_at), text(end_at));
            let schedule = ScheduleSpec { cron, timezone, every, at, start_at, end_at, jitter: None };
            let instants = ctx.client.preview(&PreviewRequest { schedule, count: Some(count), after }).await?;
            job::instants(ctx, &instants, zone)
        }
    }
}
