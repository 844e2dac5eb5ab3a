//! `belfry job …`: create, import, list, get, update, delete, pause, resume, trigger, upcoming.

use std::path::PathBuf;

use belfry_client::JobQuery;
use belfry_core::api::{ExecutionView, Instants, JobView};
use belfry_schedule::ScheduleSpec;
use clap::{Args, Subcommand};

use super::spec::{self, SpecFlags};
use super::table::{opt, Fields, Table};
use super::{hint_more, json, CliError, Ctx, Output, Pages};

mod import;

/// `belfry job` subcommands.
#[derive(Subcommand, Debug)]
pub enum JobCommand {
    /// Create a job from flags, from a JSON/YAML file (-f), or both (flags override the file).
    Create(CreateArgs),
    /// Create many jobs from a JSON lines or YAML file, in batches of up to 1000, each all or none.
    Import(import::ImportArgs),
    /// List jobs in name order.
    List(ListArgs),
    /// Show one job.
    Get {
        /// The job's name.
        name: String,
    },
    /// Change a job: flags over the job as it is, or a whole spec from -f (flags override it).
    Update(UpdateArgs),
    /// Delete a job; fires in flight finish.
    Delete {
        /// The job's name.
        name: String,
    },
    /// Pause a job: it claims no fires until resumed.
    Pause {
        /// The job's name.
        name: String,
    },
    /// Resume a paused job; its misfire policy decides what was missed.
    Resume {
        /// The job's name.
        name: String,
    },
    /// Fire a job now, with a key of its own; its schedule is unchanged.
    Trigger {
        /// The job's name.
        name: String,
    },
    /// Show a job's next fire instants.
    Upcoming {
        /// The job's name.
        name: String,
        /// How many instants (1..=1000).
        #[arg(long, short = 'n', default_value_t = 10)]
        count: usize,
    },
}

/// `job create`.
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// The job's name, `[a-z0-9][a-z0-9._-]{0,127}` (optional with -f when the file has one).
    pub name: Option<String>,
    /// A job spec as JSON (`.json`) or YAML (any other name); `-` reads stdin.
    #[arg(long, short = 'f', value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Create the job paused.
    #[arg(long)]
    pub paused: bool,
    #[command(flatten)]
    pub spec: SpecFlags,
}

/// `job update`.
#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// The job's name.
    pub name: String,
    /// Replace the whole spec with this JSON/YAML file; `-` reads stdin.
    #[arg(long, short = 'f', value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Only if the job is still at this version (409 otherwise). Without -f, the version just
    /// read is used, so a concurrent change is never overwritten.
    #[arg(long, value_name = "VERSION")]
    pub if_version: Option<u64>,
    #[command(flatten)]
    pub spec: SpecFlags,
}

/// `job list`.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// Only paused jobs.
    #[arg(long, conflicts_with = "active")]
    pub paused: bool,
    /// Only jobs that are not paused.
    #[arg(long)]
    pub active: bool,
    #[command(flatten)]
    pub pages: Pages,
}

/// Runs a `job` subcommand.
pub async fn run(ctx: &Ctx, command: JobCommand) -> Result<String, CliError> {
    let c = &ctx.client;
    match command {
        JobCommand::Create(a) => {
            let spec = spec::for_create(a.name.as_deref(), a.file.as_deref(), &a.spec, a.paused)?;
            show_job(ctx, &c.create_job(&spec).await?)
        }
        JobCommand::Import(a) => import::run(ctx, a).await,
        JobCommand::List(a) => list(ctx, a).await,
        JobCommand::Get { name } => show_job(ctx, &c.get_job(&name).await?),
        JobCommand::Update(a) => {
            let (spec, read_version) = match &a.file {
                Some(path) => (spec::from_file(path, Some(&a.name))?, None),
                None if a.spec.is_empty() => {
                    return Err(CliError::Usage("nothing to change: give flags such as --url, or -f FILE".into()))
                }
                None => {
                    let job = c.get_job(&a.name).await?;
                    let version = job.version;
                    (spec::of_view(job), Some(version))
                }
            };
            let mut spec = spec;
            a.spec.apply(&mut spec);
            show_job(ctx, &c.replace_job(&spec, a.if_version.or(read_version)).await?)
        }
        JobCommand::Delete { name } => {
            c.delete_job(&name).await?;
            Ok(match ctx.output {
                Output::Table => format!("deleted job {name}\n"),
                Output::Json => String::new(),
            })
        }
        JobCommand::Pause { name } => changed(ctx, &c.pause_job(&name).await?, "paused"),
        JobCommand::Resume { name } => changed(ctx, &c.resume_job(&name).await?, "resumed"),
        JobCommand::Trigger { name } => triggered(ctx, &c.trigger_job(&name).await?),
        JobCommand::Upcoming { name, count } => {
            // Each instant in the job's own zone too, as `schedule preview --tz` shows it.
            let zone = match ctx.output {
                Output::Table => {
                    c.get_job(&name).await?.schedule.timezone.and_then(|z| z.parse::<chrono_tz::Tz>().ok())
                }
                Output::Json => None,
            };
            instants(ctx, &c.upcoming(&name, Some(count)).await?, zone)
        }
    }
}

async fn list(ctx: &Ctx, a: ListArgs) -> Result<String, CliError> {
    let paused = match (a.paused, a.active) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    };
    let page = if a.pages.all {
        ctx.client.list_all_jobs(paused).await?
    } else {
        ctx.client
            .list_jobs(&JobQuery { paused, limit: a.pages.limit, cursor: a.pages.cursor, ..JobQuery::default() })
            .await?
    };
    if ctx.output == Output::Json {
        return json(&page);
    }
    let mut t = Table::new(&["NAME", "SCHEDULE", "NEXT FIRE", "PAUSED", "VERSION", "TARGET"]);
    for j in &page.jobs {
        t.row(vec![
            j.name.clone(),
            schedule_text(&j.schedule),
            opt(j.next_fire_at.as_ref()),
            if j.paused { "yes".into() } else { "no".into() },
            j.version.to_string(),
            format!("{} {}", j.target.method, j.target.url),
        ]);
    }
    hint_more(page.next_cursor.as_deref());
    Ok(t.render())
}

/// A schedule on one line: `cron 0 30 2 * * * (Europe/Berlin)`, `every 30s`, `at …`.
pub fn schedule_text(s: &ScheduleSpec) -> String {
    let mut text = match (&s.cron, &s.every, &s.at) {
        (Some(c), _, _) => format!("cron {c}{}", s.timezone.as_ref().map(|z| format!(" ({z})")).unwrap_or_default()),
        (_, Some(e), _) => format!("every {e}"),
        (_, _, Some(a)) => format!("at {a}"),
        _ => String::new(),
    };
    if let Some(j) = &s.jitter {
        text.push_str(&format!(" ±{j}"));
    }
    text
}

fn show_job(ctx: &Ctx, j: &JobView) -> Result<String, CliError> {
    if ctx.output == Output::Json {
        return json(j);
    }
    let s = &j.schedule;
    let t = &j.target;
    let mut f = Fields::default();
    f.add("name", &j.name)
        .add("uid", j.uid.to_string())
        .add("version", j.version.to_string())
        .add("schedule", schedule_text(s))
        .add("description", &j.description)
        .add("start at", opt(s.start_at.as_ref()))
        .add("end at", opt(s.end_at.as_ref()))
        .add("next fire", opt(j.next_fire_at.as_ref()))
        .add("paused", if j.paused { "yes" } else { "no" })
        .add("target", format!("{} {}", t.method, t.url))
        .add("headers", t.headers.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", "))
        .add("body", opt(t.body.as_ref().map(|b| format!("{} bytes", b.len()))))
        .add("timeout", t.timeout.to_string())
        .add("overlap", json_word(&j.overlap))
        .add("misfire", format!("{} (grace {})", json_word(&j.misfire.policy), j.misfire.grace))
        .add(
            "retry",
            format!(
                "{} attempts, backoff {} to {}, max age {}",
                j.retry.max_attempts, j.retry.initial_backoff, j.retry.max_backoff, j.retry.max_age
            ),
        )
        .add("created", &j.created_at)
        .add("created by", opt(j.created_by.as_ref()))
        .add("updated", &j.updated_at)
        .add("updated by", opt(j.updated_by.as_ref()));
    Ok(f.render())
}

/// An enum as the API spells it (`buffer_one`).
fn json_word<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

fn changed(ctx: &Ctx, j: &JobView, what: &str) -> Result<String, CliError> {
    match ctx.output {
        Output::Json => json(j),
        Output::Table => Ok(format!(
            "{what} job {} (version {}, next fire {})\n",
            j.name,
            j.version,
            j.next_fire_at.as_deref().unwrap_or("-")
        )),
    }
}

fn triggered(ctx: &Ctx, e: &ExecutionView) -> Result<String, CliError> {
    match ctx.output {
        Output::Json => json(e),
        Output::Table => Ok(format!("triggered job {}: fire {} ({})\n", e.job, e.key, e.status)),
    }
}

/// Instants as a table, with each in `zone` too when one is given.
pub fn instants(ctx: &Ctx, i: &Instants, zone: Option<chrono_tz::Tz>) -> Result<String, CliError> {
    if ctx.output == Output::Json {
        return json(i);
    }
    let local_header = zone.map(|z| format!("LOCAL ({z})"));
    let mut header = vec!["#", "UTC"];
    header.extend(local_header.as_deref());
    let mut t = Table::new(&header);
    for (n, at) in i.instants.iter().enumerate() {
        let mut row = vec![(n + 1).to_string(), at.clone()];
        if let Some(z) = zone {
            let local = chrono::DateTime::parse_from_rfc3339(at)
                .map(|t| t.with_timezone(&z).to_rfc3339_opts(chrono::SecondsFormat::Secs, false))
                .unwrap_or_default();
            row.push(local);
        }
        t.row(row);
    }
    let mut out = String::new();
    if let Some(d) = &i.description {
        out.push_str(&format!("{d}\n"));
    }
    out.push_str(&t.render());
    Ok(out)
}
