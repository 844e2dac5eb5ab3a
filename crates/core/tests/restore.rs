//! `Command::Restore`: survives the log's JSON encoding, only ever seeds an empty state, and
//! only with data apply() itself could have produced.

use belfry_core::{ApplyError, Command, JobSpec, Response, State};
use chrono::{TimeZone, Utc};

fn spec(name: &str) -> JobSpec {
    serde_json::from_value(serde_json::json!({
        "name": name, "schedule": {"every": "1m"}, "target": {"url": "http://127.0.0.1:9/x"}
    }))
    .expect("valid spec")
}

fn populated() -> State {
    let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let mut state = State::default();
    for (i, name) in ["a", "b"].into_iter().enumerate() {
        let r = state.apply(i as u64 + 1, Command::CreateJob { spec: spec(name), now, by: None, max_jobs: None });
        assert!(matches!(r, Response::Job { .. }), "{r:?}");
    }
    let r = state.apply(3, Command::TriggerJob { name: "a".into(), now, by: None });
    assert!(matches!(r, Response::Triggered { .. }), "{r:?}");
    state
}

#[test]
fn restore_round_trips_through_json_and_seeds_an_empty_state() {
    let source = populated();
    let command = Command::Restore { data: Box::new(source.data().clone()) };
    let encoded = serde_json::to_string(&command).expect("encode");
    let decoded: Command = serde_json::from_str(&encoded).expect("decode");
    assert_eq!(decoded, command);

    let mut fresh = State::default();
    assert_eq!(fresh.apply(1, decoded), Response::None);
    assert_eq!(fresh.data(), source.data());
    assert_eq!(fresh.job("a").map(|j| j.uid), Some(1));
}

#[test]
fn restore_is_refused_once_the_state_has_jobs() {
    let mut target = populated();
    let before = target.data().clone();
    let r = target.apply(9, Command::Restore { data: Box::new(State::default().data().clone()) });
    assert!(matches!(r, Response::Rejected { error: ApplyError::Conflict { .. } }), "{r:?}");
    assert_eq!(target.data(), &before);
}

#[test]
fn restore_rejects_inconsistent_data() {
    let mut data = populated().data().clone();
    data.next_uid = 1;
    let r = State::default().apply(1, Command::Restore { data: Box::new(data) });
    assert!(matches!(r, Response::Rejected { error: ApplyError::Invalid { .. } }), "{r:?}");
}

/// Applies a restore of `data` to an empty state, expecting a refusal naming `field`.
fn assert_restore_refused(data: belfry_core::Data, field: &str, message: &str) {
    let mut fresh = State::default();
    let before = fresh.data().clone();
    match fresh.apply(1, Command::Restore { data: Box::new(data) }) {
        Response::Rejected { error: ApplyError::Invalid { field: got, message: said } } => {
            assert_eq!(got, field, "{said}");
            assert!(said.contains(message), "{said}");
        }
        other => panic!("expected a refusal naming {field}, got {other:?}"),
    }
    assert_eq!(fresh.data(), &before);
}

#[test]
fn restore_holds_a_backup_to_todays_bounds() {
    let mut data = populated().data().clone();
    data.jobs.get_mut("a").expect("a").spec.schedule.jitter = Some("1000000000d".into());
    assert_restore_refused(data, "data.jobs.a.spec.schedule.jitter", "at most 1h");

    let mut data = populated().data().clone();
    data.jobs.get_mut("b").expect("b").spec.retry.max_age = belfry_core::HumanDuration::days(100_000_000_000);
    assert_restore_refused(data, "data.jobs.b.spec.retry.max_age", "at most 30d");

    let mut data = populated().data().clone();
    data.next_seq = u64::MAX;
    assert_restore_refused(data, "data.next_seq", "at most 9007199254740992");

    let mut data = populated().data().clone();
    data.jobs.get_mut("a").expect("a").version = u64::MAX;
    assert_restore_refused(data, "data.jobs.a.version", "at most");

    let mut data = populated().data().clone();
    data.jobs.get_mut("a").expect("a").created_at = chrono::DateTime::<Utc>::MAX_UTC;
    assert_restore_refused(data, "data.jobs.a", "outside years 1970 to 9999");
}

#[test]
fn restore_refuses_fires_that_break_the_indexes() {
    let source = populated();
    let (seq, fire) = source.data().fires.iter().next().map(|(s, f)| (*s, f.clone())).expect("a fire");

    let mut data = source.data().clone();
    let mut twin = fire.clone();
    twin.seq = data.next_seq;
    let twin_seq = twin.seq;
    data.fires.insert(twin_seq, twin);
    data.next_seq += 1;
    assert_restore_refused(data, &format!("data.fires.{twin_seq}"), "used twice");

    let mut data = source.data().clone();
    data.fires.get_mut(&seq).expect("the fire").job_uid = 99;
    assert_restore_refused(data, &format!("data.fires.{seq}"), "neither a job nor a retired job");

    let mut data = source.data().clone();
    data.fires.get_mut(&seq).expect("the fire").seq = seq + 7;
    assert_restore_refused(data, &format!("data.fires.{seq}"), "keyed by their seq");

    let mut data = source.data().clone();
    let mut orphan = data.jobs.get("b").expect("b").clone();
    orphan.uid = 42;
    data.retired.insert(42, orphan);
    data.next_uid = 43;
    assert_restore_refused(data, "data.retired.42", "unfinished fire");
}

#[test]
fn a_restored_state_has_consistent_indexes() {
    let source = populated();
    let mut fresh = State::default();
    assert_eq!(fresh.apply(1, Command::Restore { data: Box::new(source.data().clone()) }), Response::None);
    fresh.check_indexes().expect("consistent");
    source.check_indexes().expect("consistent");
}
