//! `belfry exec list|get` and `belfry dlq list|requeue|purge`: the history of fires and the
//! dead-letter queue.

use belfry_client::ExecutionQuery;
use belfry_core::api::{DeadLetterResult, ExecutionList, ExecutionView};
use belfry_core::{DeadLetterSelector, FireKey};
use clap::{Args, Subcommand};

use super::table::{millis, opt, Fields, Table};
use super::{hint_more, json, CliError, Ctx, Output, Pages};

/// `belfry exec` subcommands.
#[derive(Subcommand, Debug)]
pub enum ExecCommand {
    /// List fires, newest first.
    List {
        /// Only fires in this status: queued, dispatched, retry_waiting, succeeded, dead_lettered, skipped.
        #[arg(long)]
        status: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one fire with every attempt.
    Get {
        /// The fire's key (`{uid}:{scheduled_ms}` or `{uid}:manual:{index}`).
        key: String,
    },
}

/// `belfry dlq` subcommands.
#[derive(Subcommand, Debug)]
pub enum DlqCommand {
    /// List dead-lettered fires, newest first.
    List {
        #[command(flatten)]
        page: PageArgs,
    },
    /// Deliver dead letters again, each under its own key: the named ones, a job's, or all.
    /// All or none: if one named key is not a dead letter, nothing is requeued.
    Requeue {
        #[command(flatten)]
        select: SelectArgs,
    },
    /// Forget dead letters for good: the named ones, a job's, or all. All or none.
    Purge {
        #[command(flatten)]
        select: SelectArgs,
    },
}

/// Which dead letters `dlq requeue` and `dlq purge` touch: keys, `--job`, or `--all`.
#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct SelectArgs {
    /// Fire keys.
    keys: Vec<String>,
    /// Every dead letter of this job.
    #[arg(long)]
    job: Option<String>,
    /// Every dead letter in the cluster.
    #[arg(long)]
    all: bool,
}

impl SelectArgs {
    fn selector(self) -> DeadLetterSelector {
        DeadLetterSelector {
            keys: (!self.keys.is_empty()).then(|| self.keys.into_iter().map(FireKey).collect()),
            job: self.job,
            all: self.all,
        }
    }
}

/// Filters and paging shared by the fire lists.
#[derive(Args, Debug)]
pub struct PageArgs {
    /// Only this job's fires.
    #[arg(long)]
    pub job: Option<String>,
    #[command(flatten)]
    pub pages: Pages,
}

/// Runs an `exec` subcommand.
pub async fn run(ctx: &Ctx, command: ExecCommand) -> Result<String, CliError> {
    match command {
        ExecCommand::List { status, page } => {
            let query = query(&page, status);
            let list = if page.pages.all {
                ExecutionList { executions: ctx.client.list_all_executions(&query).await?, next_cursor: None }
            } else {
                ctx.client.list_executions(&query).await?
            };
            fire_list(ctx, &list, false)
        }
        ExecCommand::Get { key } => fire_detail(ctx, &ctx.client.get_execution(&key).await?),
    }
}

/// Runs a `dlq` subcommand.
pub async fn run_dlq(ctx: &Ctx, command: DlqCommand) -> Result<String, CliError> {
    match command {
        DlqCommand::List { page } => {
            let query = query(&page, None);
            let list = if page.pages.all {
                ExecutionList { executions: ctx.client.list_all_dead_letters(&query).await?, next_cursor: None }
            } else {
                ctx.client.list_dead_letters(&query).await?
            };
            fire_list(ctx, &list, true)
        }
        DlqCommand::Requeue { select } => {
            let done = ctx.client.requeue_dead_letters(&select.selector()).await?;
            bulk(ctx, &done, "requeued")
        }
        DlqCommand::Purge { select } => {
            let done = ctx.client.purge_dead_letters(&select.selector()).await?;
            bulk(ctx, &done, "purged")
        }
    }
}

fn bulk(ctx: &Ctx, done: &DeadLetterResult, verb: &str) -> Result<String, CliError> {
    match ctx.output {
        Output::Json => json(done),
        Output::Table if done.keys.is_empty() => Ok(format!("no dead letters {verb}\n")),
        Output::Table => Ok(done.keys.iter().map(|k| format!("{verb} fire {k}\n")).collect()),
    }
}

fn query(page: &PageArgs, status: Option<String>) -> ExecutionQuery {
    ExecutionQuery { job: page.job.clone(), status, limit: page.pages.limit, cursor: page.pages.cursor.clone() }
}

fn fire_list(ctx: &Ctx, list: &ExecutionList, dead_letters: bool) -> Result<String, CliError> {
    if ctx.output == Output::Json {
        return json(list);
    }
    let mut t = if dead_letters {
        Table::new(&["KEY", "JOB", "SCHEDULED", "FINISHED", "ATTEMPTS", "HTTP", "NOTE"])
    } else {
        Table::new(&["KEY", "JOB", "SCHEDULED", "STATUS", "ATTEMPTS", "HTTP", "WORKER", "DURATION"])
    };
    for f in &list.executions {
        t.row(if dead_letters {
            vec![
                f.key.clone(),
                f.job.clone(),
                f.scheduled_at.clone(),
                opt(f.finished_at.as_ref()),
                f.attempts.to_string(),
                opt(f.http_status),
                opt(f.note.as_ref()),
            ]
        } else {
            vec![
                f.key.clone(),
                f.job.clone(),
                f.scheduled_at.clone(),
                f.status.clone(),
                f.attempts.to_string(),
                opt(f.http_status),
                opt(f.worker),
                millis(f.duration_ms),
            ]
        });
    }
    hint_more(list.next_cursor.as_deref());
    Ok(t.render())
}

fn fire_detail(ctx: &Ctx, f: &ExecutionView) -> Result<String, CliError> {
    if ctx.output == Output::Json {
        return json(f);
    }
    let mut fields = Fields::default();
    fields
        .add("key", &f.key)
        .add("job", &f.job)
        .add("status", &f.status)
        .add("manual", if f.manual { "yes" } else { "no" })
        .add("scheduled", &f.scheduled_at)
        .add("fired", &f.fired_at)
        .add("started", opt(f.started_at.as_ref()))
        .add("finished", opt(f.finished_at.as_ref()))
        .add("worker", opt(f.worker))
        .add("attempts", f.attempts.to_string())
        .add("next attempt", opt(f.next_attempt_at.as_ref()))
        .add("triggered by", opt(f.triggered_by.as_ref()))
        .add("requeued by", opt(f.requeued_by.as_ref()))
        .add("note", opt(f.note.as_ref()));
    let mut out = fields.render();
    if let Some(log) = f.attempt_log.as_ref().filter(|l| !l.is_empty()) {
        let mut t = Table::new(&["#", "WORKER", "STARTED", "DURATION", "RESULT", "HTTP", "ERROR"]);
        for a in log {
            t.row(vec![
                a.number.to_string(),
                a.worker.to_string(),
                a.started_at.clone(),
                millis(Some(a.duration_ms)),
                a.result.clone(),
                opt(a.http_status),
                opt(a.error.as_ref()),
            ]);
        }
        out.push('\n');
        out.push_str(&t.render());
    }
    Ok(out)
}
