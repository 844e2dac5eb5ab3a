//! Property: `State::apply` never panics and keeps its indexes consistent, for any sequence of
//! commands. Specs carry extreme durations, instants, jitter and sizes; fires are claimed and
//! redispatched both as the ticker would (from `State::due`) and as a stale or forged proposal
//! might; completions carry every outcome, any HTTP status, any `Retry-After` and any instants;
//! clocks range over all of chrono, its extremes included; writes name writers of any length,
//! job creates (one or a batch) carry a job cap, and tokens are created (valid or not) and
//! revoked.
//!
//! After every command: `State::check_indexes` holds, every stored instant lies in the instant
//! window, and `State::due` proposes no new attempt for a deleted job. After every sequence:
//! restoring the state's data into an empty state is accepted and yields the same data.

use std::time::Duration;

use belfry_core::{
    Assignment, Attempt, Claim, Command, Completion, DeadLetterSelector, FireKey, FireStatus, HistoryPolicy,
    HttpTarget, HumanDuration, JobSpec, MisfireAction, MisfirePolicy, OverlapPolicy, Redispatch, Response, ResultClass,
    RetryPolicy, Role, State,
};
use belfry_schedule::instant::{in_window, MAX_INSTANT, MIN_INSTANT};
use belfry_schedule::ScheduleSpec;
use chrono::{DateTime, TimeZone, Utc};
use compact_str::CompactString;
use proptest::prelude::*;
use proptest::sample::select;

const NAMES: &[&str] = &["a", "b", "c", "Bad name"];

fn base_ms() -> i64 {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap().timestamp_millis()
}

fn text(items: &'static [&'static str]) -> impl Strategy<Value = String> {
    select(items).prop_map(str::to_string)
}

/// Mostly instants near 2026 (so schedules fall due and retries run), sometimes anywhere in
/// chrono's range, sometimes exactly at its or the window's ends.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    let (lo, hi) = (DateTime::<Utc>::MIN_UTC.timestamp_millis(), DateTime::<Utc>::MAX_UTC.timestamp_millis());
    prop_oneof![
        24 => (0i64..200_000_000).prop_map(|ms| base_ms() + ms),
        1 => lo..=hi,
        1 => Just(lo),
        1 => Just(hi),
        1 => Just(MIN_INSTANT.timestamp_millis()),
        1 => Just(MAX_INSTANT.timestamp_millis()),
        1 => (0i64..10_000).prop_map(|ms| MAX_INSTANT.timestamp_millis() - ms),
    ]
    .prop_map(|ms| DateTime::from_timestamp_millis(ms).expect("in chrono's range"))
}

fn duration_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => text(&["1s", "500ms", "10s", "90s", "1h", "1d", "366d", "0s"]),
        3 => text(&[
            "367d", "18446744073709551615ms", "1000000000d", "100000000000d", "100000000000000000000d",
            "9223372036854775807ms", "soon", "",
        ]),
        2 => (1u64..5_000_000).prop_map(|ms| format!("{ms}ms")),
    ]
}

fn instant_text() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => text(&[
            "1970-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z", "9999-12-31T23:59:59-23:59",
            "0000-01-01T00:00:00+23:59", "1969-12-31T23:59:59.999Z", "+10000-01-01T00:00:00Z", "tomorrow",
        ]),
        3 => (0i64..200_000_000)
            .prop_map(|ms| belfry_core::api::rfc3339(DateTime::from_timestamp_millis(base_ms() + ms).unwrap())),
    ]
}

fn human() -> impl Strategy<Value = HumanDuration> {
    prop_oneof![
        4 => (0u64..100_000).prop_map(Duration::from_millis),
        1 => (0u64..40 * 86_400).prop_map(Duration::from_secs),
        1 => Just(Duration::MAX),
        1 => Just(Duration::from_millis(u64::MAX)),
        1 => Just(Duration::from_millis(100_000_000_000 * 86_400_000)),
    ]
    .prop_map(HumanDuration)
}

fn schedule() -> impl Strategy<Value = ScheduleSpec> {
    let cron = text(&[
        "* * * * * *",
        "*/5 * * * *",
        "0 0 30 2 *",
        "0 0 29 2 *",
        "30 2 * * MON-FRI",
        "0 0,30 2,3 * * *",
        "@hourly",
        "0 0 L * ?",
        "61 * * * *",
        "",
    ]);
    let zone = text(&[
        "UTC",
        "Europe/Berlin",
        "Pacific/Kiritimati",
        "Pacific/Pago_Pago",
        "Australia/Lord_Howe",
        "Mars/Olympus",
    ]);
    (
        prop_oneof![Just(0u8), Just(1), Just(2), Just(3)],
        proptest::option::of(cron),
        proptest::option::weighted(0.3, zone),
        duration_text(),
        instant_text(),
        proptest::option::weighted(0.3, instant_text()),
        proptest::option::weighted(0.2, instant_text()),
        proptest::option::weighted(0.4, duration_text()),
    )
        .prop_map(|(kind, cron, timezone, every, at, start_at, end_at, jitter)| {
            let (cron, every, at) = (compact(cron), Some(every.into()), Some(at.into()));
            let (timezone, start_at, end_at, jitter) =
                (compact(timezone), compact(start_at), compact(end_at), compact(jitter));
            let mut s = ScheduleSpec { timezone, start_at, end_at, jitter, ..Default::default() };
            match kind {
                0 => s.cron = cron.or(Some("* * * * * *".into())),
                1 => s.every = every,
                2 => s.at = at,
                _ => (s.every, s.cron) = (every, cron),
            }
            s
        })
}

/// The state's form of an optional text.
fn compact(text: Option<String>) -> Option<CompactString> {
    text.map(CompactString::from)
}

fn target() -> impl Strategy<Value = HttpTarget> {
    let url = text(&[
        "http://127.0.0.1:9/x",
        "https://user:pw@example.test/a?b#c",
        "http:///nohost",
        "http://h/a b",
        "http://h/a\r\nX: 1",
        "ftp://h/",
        "http://h\\x/",
        "http://hé.test/",
    ]);
    let header = (text(&["x-a", "X-A", "idempotency-key", "bad name", ""]), text(&["v", "a\u{1}b", "é"]));
    let body = prop_oneof![
        4 => Just(None),
        2 => Just(Some("{}".to_string())),
        1 => Just(Some("x".repeat(64 * 1024 + 1))),
    ];
    (url, text(&["POST", "GET", "BREW"]), proptest::collection::btree_map(header.0, header.1, 0..3), body, human())
        .prop_map(|(url, method, headers, body, timeout)| HttpTarget {
            url: url.into(),
            method: method.into(),
            headers: headers.into(),
            body: compact(body),
            timeout,
        })
}

/// Mostly specs that pass validation, at and near their bounds, so jobs exist and fire; the
/// rest are wild (any value, valid or poison).
fn spec() -> impl Strategy<Value = JobSpec> {
    prop_oneof![3 => valid_spec(), 1 => wild_spec()]
}

fn valid_schedule() -> impl Strategy<Value = ScheduleSpec> {
    let near = || {
        (0i64..200_000_000)
            .prop_map(|ms| belfry_core::api::rfc3339(DateTime::from_timestamp_millis(base_ms() + ms).unwrap()))
    };
    let edge = || text(&["1970-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z", "9999-12-31T23:59:58Z"]);
    let instant = move || prop_oneof![4 => near(), 1 => edge()];
    let cron = text(&["* * * * * *", "*/5 * * * * *", "0 0 30 2 *", "0 0,30 2,3 * * *", "@hourly", "0 0 L * ?"]);
    let zone = text(&["UTC", "Europe/Berlin", "Pacific/Kiritimati", "Pacific/Pago_Pago", "Australia/Lord_Howe"]);
    (
        0u8..3,
        cron,
        proptest::option::of(zone),
        text(&["1s", "2s", "10s", "90s", "1h", "1d", "366d"]),
        instant(),
        proptest::option::weighted(0.2, instant()),
        proptest::option::weighted(0.1, instant()),
        proptest::option::weighted(0.3, text(&["1ms", "500ms", "1s"])),
        proptest::option::weighted(0.2, text(&["1m", "1h"])),
    )
        .prop_map(|(kind, cron, timezone, every, at, start_at, end_at, short_jitter, long_jitter)| {
            let (start_at, end_at, short_jitter) = (compact(start_at), compact(end_at), compact(short_jitter));
            let (timezone, long_jitter) = (compact(timezone), compact(long_jitter));
            let mut s = ScheduleSpec { start_at, end_at, jitter: short_jitter, ..Default::default() };
            match kind {
                0 => (s.cron, s.timezone, s.jitter) = (Some(cron.into()), timezone, long_jitter.or(s.jitter)),
                1 => s.every = Some(every.into()),
                _ => (s.at, s.jitter) = (Some(at.into()), long_jitter.or(s.jitter)),
            }
            s
        })
}

fn valid_spec() -> impl Strategy<Value = JobSpec> {
    let ms =
        |max: u64| prop_oneof![3 => 1..=max, 1 => Just(max)].prop_map(|ms| HumanDuration(Duration::from_millis(ms)));
    let day = 86_400_000;
    let retry =
        (1u32..=100, ms(2_000), ms(day), ms(30 * day)).prop_map(|(max_attempts, initial_backoff, cap, max_age)| {
            RetryPolicy { max_attempts, initial_backoff, max_backoff: initial_backoff.max(cap), max_age }
        });
    let history = (proptest::option::of(1u32..=10_000), proptest::option::weighted(0.3, ms(3650 * day)))
        .prop_map(|(max_count, max_age)| HistoryPolicy { max_count, max_age });
    let target = (
        text(&["http://127.0.0.1:9/x", "https://user:pw@example.test/a?b#c", "http://[::1]:9/"]),
        proptest::collection::btree_map(text(&["x-a", "x-b", "Authorization"]), text(&["v", "é", ""]), 0..3),
        prop_oneof![4 => Just(None), 1 => Just(Some("x".repeat(64 * 1024)))],
        ms(15 * 60_000),
    )
        .prop_map(|(url, headers, body, timeout)| HttpTarget {
            url: url.into(),
            method: "POST".into(),
            headers: headers.into(),
            body: compact(body),
            timeout,
        });
    let overlap = select(&[OverlapPolicy::Allow, OverlapPolicy::Forbid, OverlapPolicy::BufferOne][..]);
    let action = select(&[MisfireAction::FireOnce, MisfireAction::FireAll, MisfireAction::Skip][..]);
    (select(&NAMES[..3]), valid_schedule(), target, overlap, action, ms(7 * day), retry, history, any::<bool>())
        .prop_map(|(name, schedule, target, overlap, policy, grace, retry, history, paused)| JobSpec {
            name: name.into(),
            schedule,
            target,
            overlap,
            misfire: MisfirePolicy { policy, grace },
            retry,
            history,
            paused: paused && name == "c",
        })
}

fn wild_spec() -> impl Strategy<Value = JobSpec> {
    let overlap = select(&[OverlapPolicy::Allow, OverlapPolicy::Forbid, OverlapPolicy::BufferOne][..]);
    let action = select(&[MisfireAction::FireOnce, MisfireAction::FireAll, MisfireAction::Skip][..]);
    let retry =
        (0u32..120, human(), human(), human()).prop_map(|(max_attempts, initial_backoff, max_backoff, max_age)| {
            RetryPolicy { max_attempts, initial_backoff, max_backoff, max_age }
        });
    let history = (proptest::option::of(0u32..12_000), proptest::option::of(human()))
        .prop_map(|(max_count, max_age)| HistoryPolicy { max_count, max_age });
    (select(NAMES), schedule(), target(), overlap, action, human(), retry, history, any::<bool>()).prop_map(
        |(name, schedule, target, overlap, policy, grace, retry, history, paused)| JobSpec {
            name: name.into(),
            schedule,
            target,
            overlap,
            misfire: MisfirePolicy { policy, grace },
            retry,
            history,
            paused: paused && name == "c",
        },
    )
}

/// What a worker reports; `number: None` stands for the fire's current attempt (a report that
/// counts), `Some(n)` for a stale or forged one.
#[derive(Debug, Clone)]
struct Report {
    number: Option<u32>,
    class: ResultClass,
    http_status: Option<u16>,
    retry_after_ms: Option<u64>,
    started_at: DateTime<Utc>,
    finished_at: DateTime<Utc>,
    error: Option<String>,
    body_excerpt: Option<String>,
}

fn report() -> impl Strategy<Value = Report> {
    let class = select(&[ResultClass::Success, ResultClass::Retryable, ResultClass::Permanent][..]);
    let retry_after =
        proptest::option::of(prop_oneof![0u64..120_000, Just(u64::MAX), Just(10_000_000_000_000_000), any::<u64>()]);
    let long = prop_oneof![
        3 => proptest::option::of(text(&["", "connection refused", "é", "日本"])),
        1 => (0usize..3000).prop_map(|n| Some(format!("x{}", "é日".repeat(n)))),
    ];
    (
        proptest::option::weighted(0.2, any::<u32>()),
        class,
        proptest::option::of(any::<u16>()),
        retry_after,
        instant(),
        instant(),
        long.clone(),
        long,
    )
        .prop_map(|(number, class, http_status, retry_after_ms, started_at, finished_at, error, body_excerpt)| {
            Report { number, class, http_status, retry_after_ms, started_at, finished_at, error, body_excerpt }
        })
}

fn assignment() -> impl Strategy<Value = Assignment> {
    (0u64..4, 0u64..4, instant()).prop_map(|(worker, term, lease_until)| Assignment { worker, term, lease_until })
}

/// One step. `pick` fields choose among what exists when the step runs (modulo its count).
#[derive(Debug, Clone)]
enum Op {
    Create(JobSpec, DateTime<Utc>, Option<String>, Option<u64>),
    /// A batch create: specs valid or not, names free, taken or repeated, under a cap or not.
    CreateMany(Vec<JobSpec>, DateTime<Utc>, Option<String>, Option<u64>),
    Replace(JobSpec, Option<u64>, DateTime<Utc>),
    Delete(usize),
    Pause(usize, DateTime<Utc>),
    Resume(usize, DateTime<Utc>),
    Trigger(usize, DateTime<Utc>),
    /// What the ticker would propose at this instant.
    Tick(DateTime<Utc>, Assignment),
    /// Claims of arbitrary instants of existing jobs, and redispatches of picked fires.
    Forged(DateTime<Utc>, Vec<(usize, DateTime<Utc>)>, Vec<(usize, u32)>, Assignment),
    Complete(DateTime<Utc>, Vec<(usize, Report)>),
    Requeue(usize, DateTime<Utc>),
    RequeueAll(DateTime<Utc>),
    PurgeJob(usize, DateTime<Utc>),
    /// A token create, with ids, names and hashes valid or not.
    Token(String, Role, String, String, DateTime<Utc>, Option<String>),
    Revoke(String),
}

/// Who a write names: nobody, a token id, the bootstrap token, or an oversized id.
fn actor() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(prop_oneof![
        3 => text(&["abcdef123456", "bootstrap", ""]),
        1 => Just("x".repeat(200)),
        1 => Just("é".repeat(40)),
    ])
}

fn token_op() -> impl Strategy<Value = Op> {
    let id = text(&["abcdef123456", "zyxwvu987654", "bootstrap", "ABCDEF123456", "short"]);
    let name = prop_oneof![3 => text(&["ci", "grafana", "", " ", "a\nb"]), 1 => Just("n".repeat(65))];
    let hash = prop_oneof![3 => Just("ab".repeat(32)), 1 => text(&["", "AB", "zz"])];
    (id, select(Role::ALL.to_vec()), name, hash, instant(), actor())
        .prop_map(|(id, role, name, hash, now, by)| Op::Token(id, role, name, hash, now, by))
}

fn op() -> impl Strategy<Value = Op> {
    let name = 0usize..NAMES.len();
    prop_oneof![
        4 => (spec(), instant(), actor(), proptest::option::weighted(0.3, 0u64..3))
            .prop_map(|(s, t, by, max)| Op::Create(s, t, by, max)),
        1 => (proptest::collection::vec(spec(), 0..4), instant(), actor(), proptest::option::weighted(0.3, 0u64..4))
            .prop_map(|(s, t, by, max)| Op::CreateMany(s, t, by, max)),
        1 => token_op(),
        1 => text(&["abcdef123456", "zyxwvu987654", "nope"]).prop_map(Op::Revoke),
        2 => (spec(), proptest::option::of(0u64..4), instant()).prop_map(|(s, v, t)| Op::Replace(s, v, t)),
        1 => name.clone().prop_map(Op::Delete),
        1 => (name.clone(), instant()).prop_map(|(n, t)| Op::Pause(n, t)),
        1 => (name.clone(), instant()).prop_map(|(n, t)| Op::Resume(n, t)),
        2 => (name.clone(), instant()).prop_map(|(n, t)| Op::Trigger(n, t)),
        6 => (instant(), assignment()).prop_map(|(t, a)| Op::Tick(t, a)),
        2 => (
            instant(),
            proptest::collection::vec((any::<usize>(), instant()), 0..3),
            proptest::collection::vec((any::<usize>(), any::<u32>()), 0..3),
            assignment()
        )
            .prop_map(|(t, c, r, a)| Op::Forged(t, c, r, a)),
        6 => (instant(), proptest::collection::vec((any::<usize>(), report()), 1..4))
            .prop_map(|(t, c)| Op::Complete(t, c)),
        1 => (any::<usize>(), instant()).prop_map(|(p, t)| Op::Requeue(p, t)),
        1 => instant().prop_map(Op::RequeueAll),
        1 => (name, instant()).prop_map(|(n, t)| Op::PurgeJob(n, t)),
    ]
}

/// The keys of the state's fires, oldest first, to pick from.
fn keys(state: &State) -> Vec<FireKey> {
    state.data().fires.values().map(|f| f.key.clone()).collect()
}

fn pick<T: Clone>(items: &[T], at: usize) -> Option<T> {
    (!items.is_empty()).then(|| items[at % items.len()].clone())
}

/// The command `op` stands for, against the state as it is now.
fn command(state: &State, op: Op) -> Command {
    let name = |n: usize| NAMES[n % NAMES.len()].to_string();
    match op {
        Op::Create(spec, now, by, max_jobs) => Command::CreateJob { spec, now, by, max_jobs },
        Op::CreateMany(specs, now, by, max_jobs) => Command::CreateJobs { specs, now, by, max_jobs },
        Op::Token(id, role, name, secret_sha256, now, by) => {
            Command::CreateToken { id, role, name, secret_sha256, now, by }
        }
        Op::Revoke(id) => Command::RevokeToken { id },
        Op::Replace(spec, if_version, now) => Command::ReplaceJob { spec, if_version, now, by: None },
        Op::Delete(n) => Command::DeleteJob { name: name(n) },
        Op::Pause(n, now) => Command::PauseJob { name: name(n), now, by: None },
        Op::Resume(n, now) => Command::ResumeJob { name: name(n), now, by: None },
        Op::Trigger(n, now) => Command::TriggerJob { name: name(n), now, by: None },
        Op::Tick(now, assign) => {
            let due = state.due(now, 16);
            let claims =
                due.claims.into_iter().map(|(job_uid, scheduled_at)| Claim { job_uid, scheduled_at, assign }).collect();
            let redispatches =
                due.redispatches.into_iter().map(|(key, attempt)| Redispatch { key, attempt, assign }).collect();
            Command::Fire { now, claims, redispatches }
        }
        Op::Forged(now, claims, redispatches, assign) => {
            let uids: Vec<u64> =
                state.data().jobs.values().chain(state.data().retired.values()).map(|j| j.uid).collect();
            let keys = keys(state);
            Command::Fire {
                now,
                claims: claims
                    .into_iter()
                    .map(|(p, scheduled_at)| Claim {
                        job_uid: pick(&uids, p).unwrap_or(p as u64),
                        scheduled_at,
                        assign,
                    })
                    .collect(),
                redispatches: redispatches
                    .into_iter()
                    .filter_map(|(p, attempt)| pick(&keys, p).map(|key| Redispatch { key, attempt, assign }))
                    .collect(),
            }
        }
        Op::Complete(now, reports) => {
            let dispatched: Vec<FireKey> =
                state.fires_with_status(FireStatus::Dispatched).map(|f| f.key.clone()).collect();
            let keys = if dispatched.is_empty() { keys(state) } else { dispatched };
            let completions = reports
                .into_iter()
                .filter_map(|(p, r)| {
                    // Mostly a dispatched fire; now and then any fire at all.
                    let key = if p % 8 == 0 { pick(&self::keys(state), p / 8)? } else { pick(&keys, p)? };
                    let current = state.fire_by_key(&key).map_or(0, |f| f.attempt);
                    let attempt = Attempt {
                        number: r.number.unwrap_or(current),
                        worker: 1,
                        started_at: r.started_at,
                        finished_at: r.finished_at,
                        class: r.class,
                        http_status: r.http_status,
                        error: r.error,
                        body_excerpt: r.body_excerpt,
                        retry_after_ms: r.retry_after_ms,
                    };
                    Some(Completion { key, attempt })
                })
                .collect();
            Command::Complete { now, completions }
        }
        Op::Requeue(p, now) => {
            let dead: Vec<FireKey> = state.fires_with_status(FireStatus::DeadLettered).map(|f| f.key.clone()).collect();
            let key = pick(&dead, p).or_else(|| pick(&keys(state), p)).unwrap_or_else(|| FireKey("9:9".into()));
            Command::Requeue { key, now, by: None }
        }
        Op::RequeueAll(now) => Command::RequeueDeadLetters {
            select: DeadLetterSelector { all: true, ..Default::default() },
            now,
            by: None,
        },
        Op::PurgeJob(n, now) => {
            Command::PurgeDeadLetters { select: DeadLetterSelector { job: Some(name(n)), ..Default::default() }, now }
        }
    }
}

/// What must hold after every command.
fn check(state: &State, after: &Command) -> Result<(), TestCaseError> {
    state.check_indexes().map_err(|e| TestCaseError::fail(format!("after {after:?}: {e}")))?;
    let data = state.data();
    for job in data.jobs.values().chain(data.retired.values()) {
        for t in [Some(job.created_at), Some(job.updated_at), job.next_fire_at].into_iter().flatten() {
            prop_assert!(in_window(t), "job {} keeps {t}", job.spec.name);
        }
    }
    for f in data.fires.values() {
        let attempts = f.attempts.iter().flat_map(|a| [a.started_at, a.finished_at]);
        let optional = [f.lease_until, f.send_at, f.next_attempt_at, f.finished_at].into_iter().flatten();
        for t in [f.scheduled_at, f.claimed_at, f.budget_since].into_iter().chain(optional).chain(attempts) {
            prop_assert!(in_window(t), "fire {} keeps {t}", f.key);
        }
        prop_assert!(f.attempts.iter().all(|a| a.error.as_ref().is_none_or(|e| e.len() <= 1024)));
        prop_assert!(f.attempts.iter().all(|a| a.body_excerpt.as_ref().is_none_or(|b| b.len() <= 512)));
    }
    for job in data.jobs.values().chain(data.retired.values()) {
        let actors = [&job.created_by, &job.updated_by];
        prop_assert!(
            actors.into_iter().flatten().all(|by| by.len() <= 64),
            "job {} keeps a long writer",
            job.spec.name
        );
    }
    for now in [MIN_INSTANT, MAX_INSTANT] {
        for (key, _) in state.due(now, 64).redispatches {
            let fire = state.fire_by_key(&key).expect("due names existing fires");
            prop_assert!(state.is_live(fire.job_uid), "due proposes {key} of deleted job {}", fire.job_uid);
        }
    }
    Ok(())
}

proptest! {
    // XorShift: a fifth of the run went to generating ChaCha randomness.
    #![proptest_config(ProptestConfig {
        cases: 512,
        rng_algorithm: proptest::test_runner::RngAlgorithm::XorShift,
        ..ProptestConfig::default()
    })]

    #[test]
    fn apply_never_panics_and_keeps_its_indexes(ops in proptest::collection::vec(op(), 1..64)) {
        let mut state = State::default();
        for (i, op) in ops.into_iter().enumerate() {
            let command = command(&state, op);
            let shown = command.clone();
            let index = u64::try_from(i).unwrap_or(u64::MAX).saturating_add(1);
            state.apply(index, command);
            check(&state, &shown)?;
        }
        let mut restored = State::default();
        let response = restored.apply(1, Command::Restore { data: Box::new(state.data().clone()) });
        prop_assert_eq!(response, Response::None, "a state apply() produced is a valid backup");
        prop_assert_eq!(restored.data(), state.data());
    }
}
