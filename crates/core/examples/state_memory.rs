//! Bytes the replicated state holds per idle job, counted by the allocator.
//!
//! `cargo run --release -p belfry-core --example state_memory -- 100000` creates that many
//! jobs shaped like bench/compare's (every 1s, one header, a small body) through apply(), in
//! batches of 1000 as `POST /v1/jobs:batch` sends them, and prints the live heap bytes per job
//! and the process's RSS; then how long the state takes to write as a snapshot document and to
//! read back (from memory, and streamed from a file), and what a finished fire costs (one
//! claimed and completed for each of up to 100,000 jobs).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use belfry_core::command::Command;
use belfry_core::job::JobSpec;
use belfry_core::state::State;
use belfry_core::{Assignment, Attempt, Claim, Completion, FireKey, ResultClass};
use chrono::{TimeZone, Utc};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static BLOCKS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        BLOCKS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        BLOCKS.fetch_sub(1, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn spec(i: usize) -> JobSpec {
    let json = format!(
        r#"{{"name":"m-{i:07}","schedule":{{"every":"1s","start_at":"2027-12-01T00:00:00.000Z"}},
            "target":{{"url":"http://127.0.0.1:18080/hook","method":"POST",
            "headers":{{"Content-Type":"application/json"}},"body":"{{}}","timeout":"30s"}}}}"#
    );
    serde_json::from_str(&json).expect("a valid spec")
}

/// This process's resident set, from /proc (0 where there is none).
fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap_or("");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn main() {
    println!("resident before: {} KiB (VmRSS)", resident_kib());
    let jobs: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let now = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
    let mut state = State::default();
    let (live0, blocks0) = (LIVE.load(Ordering::Relaxed), BLOCKS.load(Ordering::Relaxed));
    let mut index = 1;
    for start in (0..jobs).step_by(1000) {
        let specs = (start..(start + 1000).min(jobs)).map(spec).collect();
        state.apply(index, Command::CreateJobs { specs, now, by: Some("bootstrap".into()), max_jobs: None });
        index += 1;
    }
    report(&format!("{jobs} jobs"), "job", jobs, (live0, blocks0));
    println!("resident: {} KiB (VmRSS)", resident_kib());
    time_snapshot(&state);
    finish_one_fire_each(&mut state, jobs.min(100_000), &mut index);
    println!(
        "inline sizes: Job {} · JobSpec {} · ScheduleSpec {} · HttpTarget {}",
        std::mem::size_of::<belfry_core::job::Job>(),
        std::mem::size_of::<JobSpec>(),
        std::mem::size_of::<belfry_schedule::ScheduleSpec>(),
        std::mem::size_of::<belfry_core::job::HttpTarget>()
    );
    drop(state);
}

/// How long the state takes to write out as JSON and to read back with its indexes, as a
/// snapshot and a restart do.
fn time_snapshot(state: &State) {
    let began = std::time::Instant::now();
    let json = serde_json::to_vec(state.data()).expect("encode");
    let written = began.elapsed();
    let size = json.len();
    let began = std::time::Instant::now();
    let data: belfry_core::Data = serde_json::from_slice(&json).expect("decode");
    let parsed = began.elapsed();
    let path = std::env::temp_dir().join("belfry-state-memory.json");
    std::fs::write(&path, &json).expect("write");
    drop(json);
    let began = std::time::Instant::now();
    let file = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&path).expect("open"));
    let streamed: belfry_core::Data = serde_json::from_reader(file).expect("decode");
    let from_file = began.elapsed();
    let _ = std::fs::remove_file(&path);
    drop(streamed);
    println!("snapshot streamed from a file (1 MiB buffer) in {from_file:.2?}");
    let began = std::time::Instant::now();
    let rebuilt = State::from_data(data);
    let indexed = began.elapsed();
    println!(
        "snapshot: {} MB of JSON, written in {written:.2?}, parsed in {parsed:.2?}, indexed in {indexed:.2?}",
        size / 1_000_000
    );
    drop(rebuilt);
}

/// Claims and completes one fire of each of the first `count` jobs, as a leader and a worker
/// would, and prints what a finished fire costs.
fn finish_one_fire_each(state: &mut State, count: usize, index: &mut u64) {
    let at = Utc.with_ymd_and_hms(2027, 12, 1, 0, 0, 0).unwrap();
    let assign = Assignment { worker: 2, term: 1, lease_until: at + chrono::Duration::seconds(60) };
    let (live0, blocks0) = (LIVE.load(Ordering::Relaxed), BLOCKS.load(Ordering::Relaxed));
    let uids: Vec<u64> = (1..=count as u64).collect();
    for chunk in uids.chunks(1000) {
        let claims = chunk.iter().map(|&job_uid| Claim { job_uid, scheduled_at: at, assign }).collect();
        state.apply(*index, Command::Fire { now: at, claims, redispatches: Vec::new() });
        let completions = chunk
            .iter()
            .map(|&uid| Completion {
                key: FireKey::scheduled(uid, at),
                attempt: Attempt {
                    number: 1,
                    worker: 2,
                    started_at: at,
                    finished_at: at,
                    class: ResultClass::Success,
                    http_status: Some(200),
                    error: None,
                    body_excerpt: None,
                    retry_after_ms: None,
                },
            })
            .collect();
        state.apply(*index + 1, Command::Complete { now: at, completions });
        *index += 2;
    }
    report(&format!("{count} finished fires (each job's next instant moved on)"), "fire", count, (live0, blocks0));
}

/// Prints the heap bytes and allocations live now beyond `mark`, in all and per `unit`.
fn report(what: &str, unit: &str, count: usize, mark: (usize, usize)) {
    let live = LIVE.load(Ordering::Relaxed) - mark.0;
    let blocks = BLOCKS.load(Ordering::Relaxed) - mark.1;
    println!(
        "{what}: {live} bytes live in {blocks} allocations: {:.0} bytes and {:.1} allocations per {unit}",
        live as f64 / count as f64,
        blocks as f64 / count as f64
    );
}
