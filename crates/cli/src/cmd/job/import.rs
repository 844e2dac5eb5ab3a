//! `belfry job import FILE`: many job specs from one file, created through `POST /v1/jobs:batch`
//! in batches of at most [`MAX_BATCH_JOBS`] specs and [`MAX_BATCH_BYTES`] of JSON.
//!
//! The file is JSON lines (one spec per line) or YAML (a list of specs, or one spec per document
//! of a `---` stream): `.yaml` and `.yml` files are YAML; any other file is JSON lines when its
//! first non-blank character is `{`, else YAML (which also reads a JSON array). The whole file
//! is read and checked first (each spec's shape, names given twice), so a file that is not a
//! list of job specs is exit 2 before anything is sent.
//!
//! Each batch is all or none on the server; batches go one after the other, and the first one
//! refused stops the import. The error names the line (JSON lines) or item (YAML, counted from 1
//! across documents) of each refused spec, and how many jobs the batches before it created.
//! With `--skip-existing`, specs whose names are jobs already (the server's per-spec
//! `already_exists`) are left out and the rest of their batch is sent again; the existing jobs
//! are neither compared with the file nor changed.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::IsTerminal as _;
use std::ops::Range;
use std::path::{Path, PathBuf};

use belfry_core::api::{CreatedJobView, MAX_BATCH_BYTES};
use belfry_core::command::MAX_BATCH_JOBS;
use belfry_core::JobSpec;
use clap::Args;
use serde::{Deserialize, Serialize};

use super::super::{json, CliError, Ctx, Output};

/// Room in a batch's body for `{"jobs":[...]}` and the commas between specs.
const ENVELOPE_BYTES: usize = 64;
/// Most refused specs one error line names.
const SHOWN_REFUSALS: usize = 5;
/// Most skipped names the table summary lists.
const SHOWN_SKIPPED: usize = 20;

/// `job import`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// JSON lines (one spec per line) or YAML (a list of specs, or one per document); `-` reads
    /// stdin.
    pub file: PathBuf,
    /// Leave out specs whose name is a job already (the existing job is not compared or changed).
    #[arg(long)]
    pub skip_existing: bool,
}

/// Where a spec is in the file, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Line of a JSON lines file, from 1.
    Line(usize),
    /// Item of a YAML file, from 1, across documents.
    Item(usize),
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Line(n) => write!(f, "line {n}"),
            Place::Item(n) => write!(f, "item {n}"),
        }
    }
}

/// One spec of the file.
struct Entry {
    place: Place,
    spec: JobSpec,
}

/// What `-o json` prints: every job created, in file order, and the names skipped.
#[derive(Serialize)]
struct Imported {
    created: usize,
    skipped: Vec<String>,
    jobs: Vec<CreatedJobView>,
}

/// Runs `job import`.
pub async fn run(ctx: &Ctx, args: ImportArgs) -> Result<String, CliError> {
    let entries = read(&args.file)?;
    let shown = args.file.display().to_string();
    let progress = Progress::new(entries.len(), ctx.output);
    let mut imported = Imported { created: 0, skipped: Vec::new(), jobs: Vec::new() };
    for range in batches(&entries) {
        let result = send(ctx, &entries[range.clone()], args.skip_existing, &mut imported).await;
        if let Err(error) = result {
            progress.finish();
            return Err(stopped(error, &entries, range, &imported));
        }
        progress.done(&entries[range], imported.created + imported.skipped.len());
    }
    progress.finish();
    match ctx.output {
        Output::Json => json(&imported),
        Output::Table => Ok(summary(&imported, &shown)),
    }
}

/// Sends one batch; with `skip_existing`, again without the specs the server found existing,
/// until it is created or refused for another reason (every round leaves out at least one).
async fn send(ctx: &Ctx, batch: &[Entry], skip_existing: bool, imported: &mut Imported) -> Result<(), Refused> {
    let mut pending: Vec<&Entry> = batch.iter().collect();
    while !pending.is_empty() {
        let specs: Vec<JobSpec> = pending.iter().map(|e| e.spec.clone()).collect();
        match ctx.client.create_jobs(&specs).await {
            Ok(answer) => {
                imported.created += answer.created;
                imported.jobs.extend(answer.jobs);
                return Ok(());
            }
            Err(e) if skip_existing && only_existing(&e, pending.len()) => {
                let existing: HashSet<usize> = e.item_errors().iter().map(|i| i.index).collect();
                let (skip, keep): (Vec<_>, Vec<_>) =
                    pending.into_iter().enumerate().partition(|(i, _)| existing.contains(i));
                imported.skipped.extend(skip.into_iter().map(|(_, e)| e.spec.name.to_string()));
                pending = keep.into_iter().map(|(_, e)| e).collect();
            }
            Err(error) => {
                let places = pending.iter().map(|e| (e.place, e.spec.name.to_string())).collect();
                return Err(Refused { error, places });
            }
        }
    }
    Ok(())
}

/// Whether every refusal of a batch of `len` specs is a name in use.
fn only_existing(e: &belfry_client::Error, len: usize) -> bool {
    let items = e.item_errors();
    !items.is_empty() && items.iter().all(|i| i.code == "already_exists" && i.index < len)
}

/// A batch the server did not create: its error, and the place and name of each spec it held
/// when sent (the server's indexes point into these).
struct Refused {
    error: belfry_client::Error,
    places: Vec<(Place, String)>,
}

/// The error that stops the import: each refused spec by place, what was left of the batch, and
/// what earlier batches did.
fn stopped(refused: Refused, entries: &[Entry], range: Range<usize>, imported: &Imported) -> CliError {
    let Refused { error, places } = refused;
    let batch = span(&entries[range]);
    let before = match imported.skipped.len() {
        0 => format!("{} jobs created before it", imported.jobs.len()),
        n => format!("{} jobs created and {n} existing skipped before it", imported.jobs.len()),
    };
    let unknown = matches!(error, belfry_client::Error::Unreachable { .. }) || error.code() == Some("outcome_unknown");
    let fate = if unknown {
        format!("the batch of {batch} may or may not have been created (run again with --skip-existing)")
    } else {
        format!("nothing from the batch of {batch} was created")
    };
    let items = error.item_errors();
    let what = if items.is_empty() {
        error.to_string()
    } else {
        let mut named: Vec<String> = items
            .iter()
            .take(SHOWN_REFUSALS)
            .map(|i| {
                let (place, name) = places.get(i.index).map_or(("?".to_string(), "?"), |(p, n)| (p.to_string(), n));
                let field = i.field.as_ref().map(|f| format!(" (field: {f})")).unwrap_or_default();
                format!("{place} (job {name}): {}: {}{field}", i.code, i.message)
            })
            .collect();
        if items.len() > SHOWN_REFUSALS {
            named.push(format!("and {} more", items.len() - SHOWN_REFUSALS));
        }
        named.join("; ")
    };
    CliError::After { message: format!("{what}; {fate}; {before}"), error: Box::new(error) }
}

/// `lines 1-1000`, `item 7`: the places a run of entries spans.
fn span(entries: &[Entry]) -> String {
    match (entries.first().map(|e| e.place), entries.last().map(|e| e.place)) {
        (Some(first), Some(last)) if first == last => first.to_string(),
        (Some(Place::Line(a)), Some(Place::Line(b))) => format!("lines {a}-{b}"),
        (Some(Place::Item(a)), Some(Place::Item(b))) => format!("items {a}-{b}"),
        _ => "nothing".into(),
    }
}

fn summary(imported: &Imported, shown: &str) -> String {
    let jobs = if imported.created == 1 { "job" } else { "jobs" };
    let mut out = format!("created {} {jobs} from {shown}\n", imported.created);
    if !imported.skipped.is_empty() {
        let mut names: Vec<&str> = imported.skipped.iter().take(SHOWN_SKIPPED).map(String::as_str).collect();
        let more = imported.skipped.len().saturating_sub(SHOWN_SKIPPED);
        let more = if more > 0 { format!(" and {more} more") } else { String::new() };
        names.sort_unstable();
        out.push_str(&format!("skipped {} that exist already: {}{more}\n", imported.skipped.len(), names.join(", ")));
    }
    out
}

/// Batches of consecutive entries: at most [`MAX_BATCH_JOBS`] specs and [`MAX_BATCH_BYTES`] of
/// JSON each (a spec larger than that alone goes alone, for the server to refuse).
fn batches(entries: &[Entry]) -> Vec<Range<usize>> {
    let budget = MAX_BATCH_BYTES - ENVELOPE_BYTES;
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0usize);
    for (i, entry) in entries.iter().enumerate() {
        // The size the client sends: compact JSON plus a comma.
        let size = serde_json::to_vec(&entry.spec).map_or(usize::MAX, |v| v.len()).saturating_add(1);
        if i > start && (i - start >= MAX_BATCH_JOBS || bytes.saturating_add(size) > budget) {
            out.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes = bytes.saturating_add(size);
    }
    if start < entries.len() {
        out.push(start..entries.len());
    }
    out
}

/// Reads and checks the whole file (`-` for stdin).
fn read(path: &Path) -> Result<Vec<Entry>, CliError> {
    let shown = path.display().to_string();
    let text =
        if path == Path::new("-") { std::io::read_to_string(std::io::stdin()) } else { std::fs::read_to_string(path) }
            .map_err(|e| CliError::Usage(format!("reading {shown}: {e}")))?;
    let yaml_by_name =
        path.extension().is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"));
    let entries = if yaml_by_name || !text.trim_start().starts_with('{') {
        parse_yaml(&text, &shown)?
    } else {
        parse_json_lines(&text, &shown)?
    };
    if entries.is_empty() {
        return Err(CliError::Usage(format!("{shown}: no job specs in it")));
    }
    let mut first_at: HashMap<&str, Place> = HashMap::new();
    for entry in &entries {
        if let Some(first) = first_at.insert(&entry.spec.name, entry.place) {
            return Err(CliError::Usage(format!(
                "{shown}: {}: job {} is also at {first}",
                entry.place, entry.spec.name
            )));
        }
    }
    Ok(entries)
}

fn parse_json_lines(text: &str, shown: &str) -> Result<Vec<Entry>, CliError> {
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let place = Place::Line(i + 1);
        let value: serde_json::Value = serde_json::from_str(line).map_err(|e| {
            CliError::Usage(format!("{shown}: {place}: not JSON ({e}); JSON lines hold one whole spec per line"))
        })?;
        entries.push(Entry { place, spec: spec_of(value, shown, place)? });
    }
    Ok(entries)
}

fn parse_yaml(text: &str, shown: &str) -> Result<Vec<Entry>, CliError> {
    let mut entries = Vec::new();
    let mut push = |value: serde_json::Value| {
        let place = Place::Item(entries.len() + 1);
        spec_of(value, shown, place).map(|spec| entries.push(Entry { place, spec }))
    };
    for document in yaml_serde::Deserializer::from_str(text) {
        let value =
            serde_json::Value::deserialize(document).map_err(|e| CliError::Usage(format!("{shown}: not YAML: {e}")))?;
        match value {
            // An empty document, as after a trailing `---`.
            serde_json::Value::Null => {}
            serde_json::Value::Array(items) => items.into_iter().try_for_each(&mut push)?,
            spec => push(spec)?,
        }
    }
    Ok(entries)
}

/// The spec `value` holds; an error names its place and the field.
fn spec_of(value: serde_json::Value, shown: &str, place: Place) -> Result<JobSpec, CliError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." { "spec" } else { &field };
        CliError::Usage(format!("{shown}: {place}: {field}: {}", e.inner()))
    })
}

/// What the user sees while batches go out: a bar on a terminal, a line per batch otherwise.
enum Progress {
    Bar(indicatif::ProgressBar),
    Lines { total: usize },
}

impl Progress {
    fn new(total: usize, output: Output) -> Progress {
        if output == Output::Table && std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(total as u64);
            if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} specs, {elapsed}") {
                bar.set_style(style);
            }
            bar.tick();
            Progress::Bar(bar)
        } else {
            Progress::Lines { total }
        }
    }

    /// `batch` was sent; `done` specs of the file are now created or skipped.
    fn done(&self, batch: &[Entry], done: usize) {
        match self {
            Progress::Bar(bar) => bar.set_position(done as u64),
            Progress::Lines { total } => eprintln!("imported {}: {done} of {total} specs done", span(batch)),
        }
    }

    fn finish(&self) {
        if let Progress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    const SPEC_A: &str = r#"{"name": "a", "schedule": {"every": "1m"}, "target": {"url": "http://x/"}}"#;
    const SPEC_B: &str = r#"{"name": "b", "schedule": {"cron": "@daily"}, "target": {"url": "http://x/"}}"#;

    #[test]
    fn json_lines_skip_blank_lines_and_keep_line_numbers() {
        let (_dir, path) = write("jobs.txt", &format!("{SPEC_A}\n\n{SPEC_B}\n"));
        let entries = read(&path).unwrap();
        let got: Vec<(Place, &str)> = entries.iter().map(|e| (e.place, e.spec.name.as_str())).collect();
        assert_eq!(got, [(Place::Line(1), "a"), (Place::Line(3), "b")]);
    }

    #[test]
    fn yaml_reads_a_list_a_document_stream_or_a_json_array() {
        let list = "- {name: a, schedule: {every: 1m}, target: {url: 'http://x/'}}\n\
                    - {name: b, schedule: {cron: '@daily'}, target: {url: 'http://x/'}}\n";
        let stream = "name: a\nschedule: {every: 1m}\ntarget: {url: 'http://x/'}\n---\n\
                      name: b\nschedule: {cron: '@daily'}\ntarget: {url: 'http://x/'}\n---\n";
        let array = format!("[{SPEC_A},\n {SPEC_B}]\n");
        for (name, text) in [("l.yaml", list.to_string()), ("s.yml", stream.to_string()), ("a.json", array)] {
            let (_dir, path) = write(name, &text);
            let entries = read(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
            let got: Vec<(Place, &str)> = entries.iter().map(|e| (e.place, e.spec.name.as_str())).collect();
            assert_eq!(got, [(Place::Item(1), "a"), (Place::Item(2), "b")], "{name}");
        }
    }

    #[test]
    fn a_bad_spec_or_a_name_given_twice_is_named_by_its_place() {
        let bad = r#"{"name": "c", "schedule": {"every": "1m"}, "target": {"url": "http://x/", "timeout": 5}}"#;
        let (_dir, path) = write("jobs.jsonl", &format!("{SPEC_A}\n{bad}\n"));
        let err = read(&path).err().unwrap().to_string();
        assert!(err.contains("line 2: target.timeout"), "{err}");
        let (_dir, path) = write("jobs.jsonl", &format!("{SPEC_A}\n{SPEC_B}\n{SPEC_A}\n"));
        let err = read(&path).err().unwrap().to_string();
        assert!(err.contains("line 3: job a is also at line 1"), "{err}");
        let (_dir, path) = write("jobs.yaml", "---\n");
        assert!(read(&path).err().unwrap().to_string().contains("no job specs"));
    }

    #[test]
    fn batches_are_cut_by_count_and_by_size() {
        let spec = |i: usize, body: usize| Entry {
            place: Place::Line(i + 1),
            spec: serde_json::from_value(serde_json::json!({
                "name": format!("j{i}"), "schedule": {"every": "1m"},
                "target": {"url": "http://x/", "body": "x".repeat(body)}
            }))
            .unwrap(),
        };
        let small: Vec<Entry> = (0..2500).map(|i| spec(i, 0)).collect();
        assert_eq!(batches(&small), [0..1000, 1000..2000, 2000..2500]);
        // 64 KiB bodies: a batch holds what fits in MAX_BATCH_BYTES.
        let large: Vec<Entry> = (0..600).map(|i| spec(i, 64 * 1024)).collect();
        let cut = batches(&large);
        assert!(cut.len() > 1 && cut.iter().all(|r| r.len() < 300), "{cut:?}");
        assert_eq!(cut.iter().map(|r| r.len()).sum::<usize>(), 600);
        assert!(cut.windows(2).all(|w| w[0].end == w[1].start));
    }
}
