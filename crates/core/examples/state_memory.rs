//! Bytes the replicated state holds per idle job, counted by the allocator.
//!
//! `cargo run --release -p belfry-core --example state_memory -- 100000` creates that many
//! jobs shaped like bench/compare's (every 1s, one header, a small body) through apply(), in
//! batches of 1000 as `POST /v1/jobs:batch` sends them, and prints the live heap bytes per job.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use belfry_core::command::Command;
use belfry_core::job::JobSpec;
use belfry_core::state::State;
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

fn main() {
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
    let live = LIVE.load(Ordering::Relaxed) - live0;
    let blocks = BLOCKS.load(Ordering::Relaxed) - blocks0;
    println!(
        "{jobs} jobs: {live} bytes live in {blocks} allocations: {:.0} bytes and {:.1} allocations per job",
        live as f64 / jobs as f64,
        blocks as f64 / jobs as f64
    );
    println!(
        "inline sizes: Job {} · JobSpec {} · ScheduleSpec {} · HttpTarget {}",
        std::mem::size_of::<belfry_core::job::Job>(),
        std::mem::size_of::<JobSpec>(),
        std::mem::size_of::<belfry_schedule::ScheduleSpec>(),
        std::mem::size_of::<belfry_core::job::HttpTarget>()
    );
    drop(state);
}
