//! Values that once panicked `State::apply` on every replica (and again after every restart,
//! since the entry stays in the log): each spec value is refused at validation with its field
//! named and nothing changed; each value from outside (a target's answer, a clock) is applied
//! safely.

use belfry_core::api::{rfc3339, ExecutionView};
use belfry_core::job::{MAX_BODY_BYTES, MAX_HEADERS, MAX_URL_BYTES};
use belfry_core::{
    ApplyError, Assignment, Attempt, Claim, Command, Completion, FireKey, FireStatus, JobSpec, Redispatch, Response,
    ResultClass, State,
};
use belfry_schedule::instant::{in_window, MAX_INSTANT, MIN_INSTANT};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use serde_json::{json, Value};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

/// A valid spec with whole sections of `patch` replacing its own.
fn spec(name: &str, patch: Value) -> Result<JobSpec, serde_json::Error> {
    let mut spec = json!({"name": name, "schedule": {"every": "1m"}, "target": {"url": "http://127.0.0.1:9/x"}});
    for (section, value) in patch.as_object().expect("an object") {
        spec[section] = value.clone();
    }
    serde_json::from_value(spec)
}

/// A state holding one job, `keep`.
fn state() -> State {
    let mut state = State::default();
    let r = state
        .apply(1, Command::CreateJob { spec: spec("keep", json!({})).unwrap(), now: now(), by: None, max_jobs: None });
    assert!(matches!(r, Response::Job { .. }), "{r:?}");
    state
}

fn assert_refused(field: &str, patch: Value) {
    let mut state = state();
    let before = state.data().clone();
    let spec = spec("poison", patch.clone()).unwrap_or_else(|e| panic!("{patch}: {e}"));
    for command in [
        Command::CreateJob { spec: spec.clone(), now: now(), by: None, max_jobs: None },
        Command::ReplaceJob { spec: JobSpec { name: "keep".into(), ..spec }, if_version: None, now: now(), by: None },
    ] {
        match state.apply(2, command) {
            Response::Rejected { error: ApplyError::Invalid { field: got, message } } => {
                assert_eq!(got, field, "{patch}: {message}");
                assert!(!message.is_empty());
            }
            other => panic!("{patch}: expected a refusal naming {field}, got {other:?}"),
        }
        assert_eq!(state.data(), &before, "{patch}: a refused spec changed the state");
    }
}

const HUGE: &str = "100000000000d";

#[test]
fn poison_durations_and_instants_are_refused_naming_their_field() {
    let cases = [
        ("schedule.jitter", json!({"schedule": {"every": "10s", "jitter": "18446744073709551615ms"}})),
        ("schedule.jitter", json!({"schedule": {"every": "10s", "jitter": "1000000000d"}})),
        ("schedule.jitter", json!({"schedule": {"cron": "0 * * * *", "jitter": "1000000000d"}})),
        ("schedule.jitter", json!({"schedule": {"every": "10s", "jitter": "11s"}})),
        ("schedule.every", json!({"schedule": {"every": HUGE}})),
        ("schedule.every", json!({"schedule": {"every": "367d"}})),
        ("schedule.at", json!({"schedule": {"at": "9999-12-31T23:59:59-01:00"}})),
        ("schedule.at", json!({"schedule": {"at": "1969-12-31T23:59:59Z"}})),
        ("schedule.start_at", json!({"schedule": {"every": "1m", "start_at": "0001-01-01T00:00:00Z"}})),
        ("schedule.end_at", json!({"schedule": {"every": "1m", "end_at": "9999-12-31T23:59:59-23:59"}})),
        ("retry.max_age", json!({"retry": {"max_age": HUGE}})),
        ("retry.max_age", json!({"retry": {"max_age": "30d1ms"}})),
        ("retry.initial_backoff", json!({"retry": {"initial_backoff": HUGE, "max_backoff": HUGE}})),
        ("retry.max_backoff", json!({"retry": {"max_backoff": HUGE}})),
        ("history.max_age", json!({"history": {"max_age": HUGE}})),
        ("history.max_age", json!({"history": {"max_age": "3651d"}})),
        ("misfire.grace", json!({"misfire": {"grace": HUGE}})),
        ("target.timeout", json!({"target": {"url": "http://h/", "timeout": HUGE}})),
    ];
    for (field, patch) in cases {
        assert_refused(field, patch);
    }
}

#[test]
fn durations_that_overflow_are_refused_when_read() {
    for text in ["100000000000000000000d", "18446744073709551615d", "9223372036854775808ms"] {
        let e = spec("p", json!({"retry": {"max_age": text}})).expect_err(text);
        assert!(e.to_string().contains("too large"), "{text}: {e}");
    }
}

#[test]
fn urls_are_checked_as_written() {
    let long = format!("http://h/{}", "a".repeat(MAX_URL_BYTES));
    for url in [
        "http://127.0.0.1:9/a b",
        "http://127.0.0.1:9/a\r\nX-Injected: 1",
        "http://127.0.0.1:9/a\tb",
        "http:///nohost",
        "https:///nohost/x",
        "http://user@/x",
        "http://:80/x",
        "http://h\\x/",
        "http://hé.example/",
        "http://h/\u{7f}",
        "ftp://h/x",
        "h/x",
        long.as_str(),
    ] {
        assert_refused("target.url", json!({"target": {"url": url}}));
    }
    for url in ["http://user:pw@h:8080/a?b=c#d", "https://[::1]:9/x", "HTTP://h/"] {
        let mut state = state();
        let r = state.apply(
            2,
            Command::CreateJob {
                spec: spec("ok", json!({"target": {"url": url}})).unwrap(),
                now: now(),
                by: None,
                max_jobs: None,
            },
        );
        assert!(matches!(r, Response::Job { .. }), "{url}: {r:?}");
    }
}

#[test]
fn bodies_and_headers_are_bounded() {
    let target = |extra: Value| {
        let mut t = json!({"url": "http://h/"});
        for (k, v) in extra.as_object().unwrap() {
            t[k] = v.clone();
        }
        json!({ "target": t })
    };
    let headers = |n: usize, name_len: usize, value_len: usize| -> Value {
        (0..n)
            .map(|i| (format!("x-{i:0>w$}", w = name_len.saturating_sub(2)), json!("v".repeat(value_len))))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    assert_refused("target.body", target(json!({"body": "x".repeat(MAX_BODY_BYTES + 1)})));
    assert_refused("target.headers", target(json!({"headers": headers(MAX_HEADERS + 1, 8, 1)})));
    assert_refused("target.headers", target(json!({"headers": headers(1, 129, 1)})));
    assert_refused("target.headers", target(json!({"headers": headers(1, 8, 4097)})));
    assert_refused("target.headers", target(json!({"headers": headers(20, 8, 1000)})));
    assert_refused("target.headers", target(json!({"headers": {"X-A": "1", "x-a": "2"}})));
    assert_refused("target.headers", target(json!({"headers": {"x-a": "1\u{1}"}})));
    assert_refused("target.headers", target(json!({"headers": {"Idempotency-Key": "mine"}})));
    // A body within its own bound whose JSON escaping breaks the bound of the whole spec.
    assert_refused("spec", target(json!({"body": "\"".repeat(MAX_BODY_BYTES)})));
}

#[test]
fn a_spec_at_every_bound_is_accepted() {
    let headers: serde_json::Map<String, Value> =
        (0..MAX_HEADERS).map(|i| (format!("x-h{i:02}"), json!("v".repeat(490)))).collect();
    let url = format!("http://h/{}", "a".repeat(MAX_URL_BYTES - 9));
    let patches = [
        json!({"schedule": {"every": "366d", "jitter": "1h"}}),
        json!({"schedule": {"cron": "0 * * * *", "jitter": "1h", "timezone": "Pacific/Kiritimati"}}),
        json!({"schedule": {"at": "9999-12-31T23:59:59.999Z"}}),
        json!({"schedule": {"every": "1s", "start_at": "1970-01-01T00:00:00Z", "end_at": "9999-12-31T23:59:59.999Z"}}),
        json!({"misfire": {"grace": "7d"}, "retry": {"initial_backoff": "1d", "max_backoff": "1d", "max_age": "30d"}}),
        json!({"history": {"max_age": "3650d", "max_count": 10000}}),
        json!({"target": {"url": url, "headers": headers, "body": "x".repeat(MAX_BODY_BYTES), "timeout": "15m"}}),
    ];
    for (i, patch) in patches.into_iter().enumerate() {
        let mut state = state();
        let spec = spec(&format!("edge-{i}"), patch.clone()).unwrap();
        let r = state.apply(2, Command::CreateJob { spec, now: now(), by: None, max_jobs: None });
        assert!(matches!(r, Response::Job { .. }), "{patch}: {r:?}");
    }
}

/// A state with one job whose fire `key` is dispatched as attempt 1.
fn dispatched(retry: Value) -> (State, FireKey) {
    let mut state = State::default();
    let r = state.apply(
        1,
        Command::CreateJob {
            spec: spec("j", json!({ "retry": retry })).unwrap(),
            now: now(),
            by: None,
            max_jobs: None,
        },
    );
    assert!(matches!(r, Response::Job { .. }), "{r:?}");
    let Response::Triggered { key } = state.apply(2, Command::TriggerJob { name: "j".into(), now: now(), by: None })
    else {
        panic!("trigger refused");
    };
    let assign = Assignment { worker: 2, term: 1, lease_until: now() + TimeDelta::seconds(30) };
    let r = state.apply(
        3,
        Command::Fire {
            now: now(),
            claims: vec![],
            redispatches: vec![Redispatch { key: key.clone(), attempt: 1, assign }],
        },
    );
    assert!(matches!(r, Response::Dispatches { ref dispatches } if dispatches.len() == 1), "{r:?}");
    (state, key)
}

fn answer(status: u16, retry_after_ms: Option<u64>) -> Attempt {
    Attempt {
        number: 1,
        worker: 2,
        started_at: now(),
        finished_at: now(),
        class: ResultClass::of_status(status),
        http_status: Some(status),
        error: None,
        body_excerpt: None,
        retry_after_ms,
    }
}

fn complete(state: &mut State, key: &FireKey, attempt: Attempt) -> belfry_core::Fire {
    let r =
        state.apply(4, Command::Complete { now: now(), completions: vec![Completion { key: key.clone(), attempt }] });
    assert_eq!(r, Response::None);
    state.check_indexes().unwrap();
    state.fire_by_key(key).expect("the fire").clone()
}

#[test]
fn a_retry_after_past_max_age_dead_letters_with_a_note() {
    // `Retry-After: 10000000000000` (seconds), and the largest value a worker can relay.
    for ms in [10_000_000_000_000_000, u64::MAX] {
        let (mut state, key) = dispatched(json!({"max_attempts": 5}));
        let fire = complete(&mut state, &key, answer(503, Some(ms)));
        assert_eq!(fire.status, FireStatus::DeadLettered);
        let note = fire.note.unwrap_or_default();
        assert!(note.starts_with("Retry-After of ") && note.contains("reaches past max_age 1h"), "{note}");
    }
}

#[test]
fn a_retry_after_within_max_age_waits_at_most_an_hour() {
    let (mut state, key) = dispatched(json!({"max_attempts": 5, "max_age": "30d"}));
    let fire = complete(&mut state, &key, answer(429, Some(2 * 3_600_000)));
    assert_eq!(fire.status, FireStatus::RetryWaiting);
    assert_eq!(fire.next_attempt_at, Some(now() + TimeDelta::hours(1)));

    let (mut state, key) = dispatched(json!({"max_attempts": 5}));
    let fire = complete(&mut state, &key, answer(503, Some(30_000)));
    assert_eq!(fire.next_attempt_at, Some(now() + TimeDelta::seconds(30)));
}

#[test]
fn what_a_target_answered_is_cut_at_a_character_boundary() {
    let (mut state, key) = dispatched(json!({"max_attempts": 1}));
    let mut attempt = answer(500, None);
    attempt.body_excerpt = Some(format!("a{}", "é".repeat(5000)));
    attempt.error = Some("日".repeat(2000));
    attempt.started_at = DateTime::<Utc>::MIN_UTC;
    attempt.finished_at = DateTime::<Utc>::MAX_UTC;
    let fire = complete(&mut state, &key, attempt);
    let kept = fire.attempts.last().expect("the attempt");
    let excerpt = kept.body_excerpt.as_deref().unwrap_or_default();
    assert_eq!(excerpt.len(), 511, "a, then 255 two-byte characters");
    assert_eq!(kept.error.as_deref().map(str::len), Some(1023));
    assert_eq!((kept.started_at, kept.finished_at), (MIN_INSTANT, MAX_INSTANT));
    let view = ExecutionView::of(&fire, true);
    let log = view.attempt_log.expect("detail");
    assert_eq!(
        (log[0].started_at.as_str(), log[0].finished_at.as_str()),
        ("1970-01-01T00:00:00.000Z", "9999-12-31T23:59:59.999Z")
    );
}

/// Every instant the state keeps renders as RFC 3339 with a four-digit year.
fn assert_instants_in_window(state: &State) {
    let data = state.data();
    for job in data.jobs.values().chain(data.retired.values()) {
        for t in [Some(job.created_at), Some(job.updated_at), job.next_fire_at].into_iter().flatten() {
            assert!(in_window(t), "job {}: {}", job.spec.name, rfc3339(t));
        }
    }
    for fire in data.fires.values() {
        let attempts = fire.attempts.iter().flat_map(|a| [a.started_at, a.finished_at]);
        let own = [fire.scheduled_at, fire.claimed_at, fire.budget_since];
        let optional = [fire.lease_until, fire.next_attempt_at, fire.finished_at].into_iter().flatten();
        for t in own.into_iter().chain(optional).chain(attempts) {
            assert!(in_window(t), "fire {}: {}", fire.key, rfc3339(t));
        }
    }
}

#[test]
fn any_clock_is_applied_safely() {
    let clocks = [
        DateTime::<Utc>::MIN_UTC,
        DateTime::<Utc>::MAX_UTC,
        MIN_INSTANT,
        MAX_INSTANT,
        MAX_INSTANT - TimeDelta::seconds(1),
        Utc.with_ymd_and_hms(1900, 1, 1, 0, 0, 0).unwrap(),
    ];
    let schedules = [
        json!({"every": "1s", "jitter": "1s"}),
        json!({"cron": "* * * * * *", "timezone": "Pacific/Kiritimati"}),
        json!({"at": "9999-12-31T23:59:59.999Z"}),
        json!({"every": "366d"}),
    ];
    for clock in clocks {
        let mut state = State::default();
        let mut index = 0;
        let mut apply = |state: &mut State, command| {
            index += 1;
            let r = state.apply(index, command);
            state.check_indexes().unwrap_or_else(|e| panic!("at {clock}: {e}"));
            r
        };
        for (i, schedule) in schedules.iter().enumerate() {
            let patch = json!({"schedule": schedule, "history": {"max_age": "3650d"}, "retry": {"max_age": "30d"}});
            let r = apply(
                &mut state,
                Command::CreateJob {
                    spec: spec(&format!("j{i}"), patch).unwrap(),
                    now: clock,
                    by: None,
                    max_jobs: None,
                },
            );
            assert!(matches!(r, Response::Job { .. }), "{schedule} at {clock}: {r:?}");
            apply(&mut state, Command::TriggerJob { name: format!("j{i}"), now: clock, by: None });
        }
        for later in [clock, DateTime::<Utc>::MAX_UTC, DateTime::<Utc>::MIN_UTC] {
            let due = state.due(later, 100);
            let assign = Assignment { worker: 1, term: 1, lease_until: DateTime::<Utc>::MAX_UTC };
            let claims =
                due.claims.iter().map(|(job_uid, at)| Claim { job_uid: *job_uid, scheduled_at: *at, assign }).collect();
            let redispatches = due
                .redispatches
                .iter()
                .map(|(key, attempt)| Redispatch { key: key.clone(), attempt: *attempt, assign })
                .collect();
            apply(&mut state, Command::Fire { now: later, claims, redispatches });
            let completions = state
                .fires_with_status(FireStatus::Dispatched)
                .map(|f| Completion {
                    key: f.key.clone(),
                    attempt: Attempt { number: f.attempt, ..answer(503, Some(u64::MAX / 2)) },
                })
                .collect();
            apply(&mut state, Command::Complete { now: later, completions });
            apply(
                &mut state,
                Command::RequeueDeadLetters {
                    select: belfry_core::DeadLetterSelector { all: true, ..Default::default() },
                    now: later,
                    by: None,
                },
            );
        }
        assert_instants_in_window(&state);
    }
}

#[test]
fn a_stored_spec_from_a_laxer_build_is_applied_safely() {
    // A snapshot written before the bounds existed can hold any spec: build one directly.
    let mut state = State::default();
    let r = state
        .apply(1, Command::CreateJob { spec: spec("old", json!({})).unwrap(), now: now(), by: None, max_jobs: None });
    assert!(matches!(r, Response::Job { .. }), "{r:?}");
    let mut data = state.data().clone();
    let job = data.jobs.get_mut("old").unwrap();
    job.spec.schedule.jitter = Some("1000000000d".into());
    job.spec.retry.max_age = belfry_core::HumanDuration(std::time::Duration::MAX);
    job.spec.retry.initial_backoff = belfry_core::HumanDuration(std::time::Duration::MAX);
    job.spec.retry.max_backoff = belfry_core::HumanDuration(std::time::Duration::MAX);
    job.spec.history.max_age = Some(belfry_core::HumanDuration(std::time::Duration::MAX));
    job.spec.misfire.grace = belfry_core::HumanDuration(std::time::Duration::MAX);
    let mut state = State::from_data(data);
    let late = now() + TimeDelta::days(1);
    let due = state.due(late, 10);
    let assign = Assignment { worker: 1, term: 1, lease_until: late };
    // Whatever the jitter makes of the due instant, a claim of next_fire_at is applied.
    let next = state.job("old").and_then(|j| j.next_fire_at).expect("an instant");
    let mut claims: Vec<Claim> =
        due.claims.iter().map(|(job_uid, at)| Claim { job_uid: *job_uid, scheduled_at: *at, assign }).collect();
    claims.push(Claim { job_uid: 1, scheduled_at: next, assign });
    let key = match state.apply(2, Command::TriggerJob { name: "old".into(), now: late, by: None }) {
        Response::Triggered { key } => key,
        other => panic!("{other:?}"),
    };
    state.apply(
        3,
        Command::Fire { now: late, claims, redispatches: vec![Redispatch { key: key.clone(), attempt: 1, assign }] },
    );
    let fire = complete(&mut state, &key, Attempt { number: 1, ..answer(500, Some(u64::MAX)) });
    assert_eq!(fire.status, FireStatus::RetryWaiting, "{fire:?}");
    // Today's bounds refuse its jitter, so its schedule cannot be evaluated: it stops being due
    // instead of being claimed in vain on every tick.
    assert_eq!(state.job("old").map(|j| j.next_fire_at), Some(None));
    assert!(state.due(DateTime::<Utc>::MAX_UTC, 10).claims.is_empty());
    assert_instants_in_window(&state);
}
