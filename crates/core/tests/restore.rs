//! `Command::Restore`: survives the log's JSON encoding and only ever seeds an empty state.

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
        let r = state.apply(i as u64 + 1, Command::CreateJob { spec: spec(name), now });
        assert!(matches!(r, Response::Job { .. }), "{r:?}");
    }
    let r = state.apply(3, Command::TriggerJob { name: "a".into(), now });
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
