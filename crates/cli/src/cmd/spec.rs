//! Job specs from the command line: a JSON or YAML file (`-f`), flags, or a file with flags
//! laid over it; for `update`, flags laid over the job as it is.
//!
//! Only the shape is checked here (what serde checks: field names, types, durations); the
//! schedule, URL and policies are validated by the server, whose error names the field, so
//! the rules live in one place.

use std::path::Path;

use belfry_core::api::JobView;
use belfry_core::{HumanDuration, JobSpec, MisfireAction, OverlapPolicy};
use clap::{Args, ValueEnum};

use super::CliError;

/// Flags that set fields of a job spec. Each given flag overrides the base (file or current
/// job); an empty value (`--tz ""`) clears an optional field.
#[derive(Args, Debug, Default, PartialEq)]
pub struct SpecFlags {
    /// Cron expression: 5 or 6 fields (seconds first) or @hourly/@daily/@weekly/@monthly/@yearly.
    #[arg(long, value_name = "EXPR", conflicts_with_all = ["every", "at"], help_heading = "Schedule")]
    pub cron: Option<String>,
    /// IANA time zone of the cron expression (default UTC).
    #[arg(long, value_name = "ZONE", help_heading = "Schedule")]
    pub tz: Option<String>,
    /// Fixed interval (`30s`, `5m`, `1h30m`), counted from --start-at (default: creation).
    #[arg(long, value_name = "DURATION", conflicts_with = "at", help_heading = "Schedule")]
    pub every: Option<String>,
    /// One-off RFC 3339 instant.
    #[arg(long, value_name = "RFC3339", help_heading = "Schedule")]
    pub at: Option<String>,
    /// No fire before this RFC 3339 instant.
    #[arg(long, value_name = "RFC3339", help_heading = "Schedule")]
    pub start_at: Option<String>,
    /// No fire after this RFC 3339 instant.
    #[arg(long, value_name = "RFC3339", help_heading = "Schedule")]
    pub end_at: Option<String>,
    /// Maximum random delay added to each fire (deterministic per fire).
    #[arg(long, value_name = "DURATION", help_heading = "Schedule")]
    pub jitter: Option<String>,

    /// The URL each fire requests.
    #[arg(long, help_heading = "Target")]
    pub url: Option<String>,
    /// HTTP method (default POST).
    #[arg(long, help_heading = "Target")]
    pub method: Option<String>,
    /// A request header, repeatable; on update it adds to or replaces the job's headers.
    #[arg(long = "header", value_name = "NAME:VALUE", value_parser = parse_header, help_heading = "Target")]
    pub headers: Vec<(String, String)>,
    /// Request body, sent as is.
    #[arg(long, help_heading = "Target")]
    pub body: Option<String>,
    /// Per-attempt timeout (default 30s).
    #[arg(long, value_name = "DURATION", value_parser = parse_human_duration, help_heading = "Target")]
    pub timeout: Option<HumanDuration>,

    /// Whether a fire may start while the previous one runs.
    #[arg(long, value_enum, help_heading = "Policies")]
    pub overlap: Option<OverlapArg>,
    /// What to do with fires missed while no leader could claim them.
    #[arg(long, value_enum, help_heading = "Policies")]
    pub misfire: Option<MisfireArg>,
    /// How late a fire may be and still count as on time (default 60s).
    #[arg(long, value_name = "DURATION", value_parser = parse_human_duration, help_heading = "Policies")]
    pub misfire_grace: Option<HumanDuration>,
    /// Delivery attempts in all, the first included (default 3).
    #[arg(long, value_name = "N", help_heading = "Policies")]
    pub max_attempts: Option<u32>,
    /// Backoff before the second attempt, doubling after (default 1s).
    #[arg(long, value_name = "DURATION", value_parser = parse_human_duration, help_heading = "Policies")]
    pub initial_backoff: Option<HumanDuration>,
    /// Ceiling of the backoff (default 60s).
    #[arg(long, value_name = "DURATION", value_parser = parse_human_duration, help_heading = "Policies")]
    pub max_backoff: Option<HumanDuration>,
    /// No attempt starts later than this after the fire (default 1h).
    #[arg(long, value_name = "DURATION", value_parser = parse_human_duration, help_heading = "Policies")]
    pub max_age: Option<HumanDuration>,
    /// Finished fires kept in the job's history (default 100).
    #[arg(long, value_name = "N", help_heading = "Policies")]
    pub history_count: Option<u32>,
    /// Forget a finished fire this long after it finished (default: never, only by count).
    #[arg(long, value_name = "DURATION", value_parser = parse_human_duration, help_heading = "Policies")]
    pub history_age: Option<HumanDuration>,
}

/// `--overlap`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq)]
pub enum OverlapArg {
    /// Fires run concurrently.
    Allow,
    /// A fire due while another runs is skipped.
    Forbid,
    /// At most one fire waits for the running one.
    BufferOne,
}

/// `--misfire`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq)]
pub enum MisfireArg {
    /// Missed fires coalesce into one.
    FireOnce,
    /// Every missed fire is delivered, late.
    FireAll,
    /// Missed fires are skipped.
    Skip,
}

fn parse_header(s: &str) -> Result<(String, String), String> {
    let (name, value) = s.split_once(':').ok_or_else(|| format!("{s:?} is not NAME:VALUE"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("{s:?} has an empty header name"));
    }
    Ok((name.to_string(), value.trim().to_string()))
}

fn parse_human_duration(s: &str) -> Result<HumanDuration, String> {
    belfry_schedule::parse_duration(s).map(HumanDuration)
}

/// `Some(v)` for a non-empty flag value, `None` for an empty one (which clears the field).
fn set<T: for<'a> From<&'a str>>(v: &str) -> Option<T> {
    (!v.is_empty()).then(|| T::from(v))
}

impl SpecFlags {
    /// Whether no flag was given.
    pub fn is_empty(&self) -> bool {
        *self == SpecFlags::default()
    }

    /// Lays the given flags over `spec`.
    pub fn apply(&self, spec: &mut JobSpec) {
        let s = &mut spec.schedule;
        if let Some(cron) = &self.cron {
            let was_cron = s.cron.is_some();
            (s.cron, s.every, s.at) = (set(cron), None, None);
            if !was_cron {
                s.timezone = None;
            }
        } else if let Some(every) = &self.every {
            (s.cron, s.every, s.at, s.timezone) = (None, set(every), None, None);
        } else if let Some(at) = &self.at {
            (s.cron, s.every, s.at, s.timezone) = (None, None, set(at), None);
        }
        for (flag, field) in [
            (&self.tz, &mut s.timezone),
            (&self.start_at, &mut s.start_at),
            (&self.end_at, &mut s.end_at),
            (&self.jitter, &mut s.jitter),
        ] {
            if let Some(v) = flag {
                *field = set(v);
            }
        }
        let t = &mut spec.target;
        if let Some(url) = &self.url {
            t.url = url.as_str().into();
        }
        if let Some(method) = &self.method {
            t.method = method.to_ascii_uppercase().into();
        }
        t.headers.extend(self.headers.iter().cloned());
        if let Some(body) = &self.body {
            t.body = set(body);
        }
        if let Some(timeout) = self.timeout {
            t.timeout = timeout;
        }
        if let Some(o) = self.overlap {
            spec.overlap = match o {
                OverlapArg::Allow => OverlapPolicy::Allow,
                OverlapArg::Forbid => OverlapPolicy::Forbid,
                OverlapArg::BufferOne => OverlapPolicy::BufferOne,
            };
        }
        if let Some(m) = self.misfire {
            spec.misfire.policy = match m {
                MisfireArg::FireOnce => MisfireAction::FireOnce,
                MisfireArg::FireAll => MisfireAction::FireAll,
                MisfireArg::Skip => MisfireAction::Skip,
            };
        }
        if let Some(g) = self.misfire_grace {
            spec.misfire.grace = g;
        }
        let r = &mut spec.retry;
        if let Some(n) = self.max_attempts {
            r.max_attempts = n;
        }
        for (flag, field) in [
            (self.initial_backoff, &mut r.initial_backoff),
            (self.max_backoff, &mut r.max_backoff),
            (self.max_age, &mut r.max_age),
        ] {
            if let Some(v) = flag {
                *field = v;
            }
        }
        if let Some(n) = self.history_count {
            spec.history.max_count = Some(n);
        }
        if let Some(age) = self.history_age {
            spec.history.max_age = Some(age);
        }
    }
}

/// The spec `job create` sends: the file (or an empty spec) with the flags laid over it.
pub fn for_create(
    name: Option<&str>,
    file: Option<&Path>,
    flags: &SpecFlags,
    paused: bool,
) -> Result<JobSpec, CliError> {
    let mut spec = match file {
        Some(path) => from_file(path, name)?,
        None => {
            let name = name.ok_or_else(|| CliError::Usage("a job NAME or -f FILE is required".into()))?;
            // Through serde, so every default is the one the server would fill in.
            let skeleton = serde_json::json!({"name": name, "schedule": {}, "target": {"url": ""}});
            serde_json::from_value(skeleton).map_err(|e| CliError::Usage(format!("job {name}: {e}")))?
        }
    };
    flags.apply(&mut spec);
    if paused {
        spec.paused = true;
    }
    let s = &spec.schedule;
    if s.cron.is_none() && s.every.is_none() && s.at.is_none() {
        return Err(CliError::Usage("a schedule is required: --cron, --every or --at (or -f FILE)".into()));
    }
    if spec.target.url.is_empty() {
        return Err(CliError::Usage("a target is required: --url (or -f FILE)".into()));
    }
    Ok(spec)
}

/// The spec of a job as it is, to lay `update` flags over.
pub fn of_view(job: JobView) -> JobSpec {
    JobSpec {
        name: job.name.into(),
        schedule: job.schedule,
        target: job.target,
        overlap: job.overlap,
        misfire: job.misfire,
        retry: job.retry,
        history: job.history,
        paused: job.paused,
    }
}

/// Reads a job spec from a JSON (`.json`) or YAML (anything else) file, `-` for stdin. A file
/// without `name` takes `name`; a file whose name differs from it is refused.
pub fn from_file(path: &Path, name: Option<&str>) -> Result<JobSpec, CliError> {
    let shown = path.display().to_string();
    let text =
        if path == Path::new("-") { std::io::read_to_string(std::io::stdin()) } else { std::fs::read_to_string(path) }
            .map_err(|e| CliError::Usage(format!("reading {shown}: {e}")))?;
    let is_json = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let mut value: serde_json::Value = if is_json {
        serde_json::from_str(&text).map_err(|e| CliError::Usage(format!("{shown}: not JSON: {e}")))?
    } else {
        yaml_serde::from_str(&text).map_err(|e| CliError::Usage(format!("{shown}: not YAML: {e}")))?
    };
    let object =
        value.as_object_mut().ok_or_else(|| CliError::Usage(format!("{shown}: a job spec must be a mapping")))?;
    match (object.get("name").and_then(|n| n.as_str()), name) {
        (Some(in_file), Some(given)) if in_file != given => {
            return Err(CliError::Usage(format!("{shown} names job {in_file:?}, not {given:?}")));
        }
        (None, Some(given)) => {
            object.insert("name".into(), given.into());
        }
        _ => {}
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        CliError::Usage(format!("{shown}: {}: {}", if field == "." { "spec" } else { &field }, e.inner()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_with_cron() -> JobSpec {
        serde_json::from_value(serde_json::json!({
            "name": "j", "schedule": {"cron": "0 * * * *", "timezone": "Europe/Berlin", "jitter": "5s"},
            "target": {"url": "http://x/", "headers": {"A": "1"}}
        }))
        .unwrap()
    }

    #[test]
    fn a_new_schedule_kind_replaces_the_old_one_and_keeps_the_rest() {
        let mut spec = spec_with_cron();
        SpecFlags { every: Some("30s".into()), ..Default::default() }.apply(&mut spec);
        assert_eq!(spec.schedule.every.as_deref(), Some("30s"));
        assert_eq!((spec.schedule.cron.as_deref(), spec.schedule.timezone.as_deref()), (None, None));
        assert_eq!(spec.schedule.jitter.as_deref(), Some("5s"));
    }

    #[test]
    fn a_new_cron_keeps_the_zone_and_an_empty_value_clears_a_field() {
        let mut spec = spec_with_cron();
        let flags = SpecFlags { cron: Some("0 0 * * *".into()), jitter: Some(String::new()), ..Default::default() };
        flags.apply(&mut spec);
        assert_eq!(spec.schedule.timezone.as_deref(), Some("Europe/Berlin"));
        assert_eq!(spec.schedule.jitter, None);
    }

    #[test]
    fn headers_are_added_and_methods_uppercased() {
        let mut spec = spec_with_cron();
        let flags = SpecFlags {
            headers: vec![parse_header("B: 2").unwrap()],
            method: Some("put".into()),
            ..Default::default()
        };
        flags.apply(&mut spec);
        assert_eq!(spec.target.headers.len(), 2);
        assert_eq!(spec.target.headers["B"], "2");
        assert_eq!(spec.target.method, "PUT");
        assert!(parse_header("no-colon").is_err());
    }

    #[test]
    fn history_flags_set_the_retention() {
        let mut spec = spec_with_cron();
        let flags = SpecFlags {
            history_count: Some(5),
            history_age: Some(parse_human_duration("7d").unwrap()),
            ..Default::default()
        };
        flags.apply(&mut spec);
        assert_eq!(spec.history.max_count, Some(5));
        assert_eq!(spec.history.max_age, Some(HumanDuration::secs(7 * 86_400)));
    }

    #[test]
    fn create_needs_a_schedule_and_a_url() {
        let err = for_create(Some("j"), None, &SpecFlags::default(), false).unwrap_err();
        assert!(err.to_string().contains("schedule"), "{err}");
        let flags = SpecFlags { every: Some("1m".into()), ..Default::default() };
        let err = for_create(Some("j"), None, &flags, false).unwrap_err();
        assert!(err.to_string().contains("--url"), "{err}");
    }

    #[test]
    fn the_shipped_example_is_a_valid_job_spec() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hourly.yaml");
        let spec = from_file(&path, None).unwrap();
        assert_eq!(spec.name, "hourly-sync");
        JobSpec::validate(&spec, chrono::Utc::now()).unwrap();
    }

    #[test]
    fn a_yaml_file_error_names_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.yaml");
        std::fs::write(&path, "schedule:\n  every: 1m\ntarget:\n  url: http://x/\n  timeout: ten\n").unwrap();
        let err = from_file(&path, Some("j")).unwrap_err().to_string();
        assert!(err.contains("target.timeout"), "{err}");
        std::fs::write(&path, "name: other\nschedule: {every: 1m}\ntarget: {url: 'http://x/'}\n").unwrap();
        assert!(from_file(&path, Some("j")).is_err());
        assert_eq!(from_file(&path, None).unwrap().name, "other");
    }
}
