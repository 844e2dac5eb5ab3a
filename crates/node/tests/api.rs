//! History retention through the HTTP API of an in-process one-node cluster: a job keeps at
//! most `history.max_count` finished fires, and forgets one `history.max_age` after it
//! finished, at the next write the leader commits.

mod support;

use std::time::Duration;

use belfry_core::api::ExecutionList;
use serde_json::json;
use support::{wait_for, Harness};

async fn history(h: &Harness, name: &str) -> Vec<String> {
    let url = format!("{}/v1/executions?job={name}", h.url);
    let list: ExecutionList = h.http.get(url).send().await.expect("list").json().await.expect("a list");
    list.executions.into_iter().map(|e| e.key).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_keeps_the_newest_max_count_fires() {
    let h = Harness::start().await;
    let job = h.create("counted", "counted", json!({"history": {"max_count": 2}})).await;
    assert_eq!(job.history.max_count, Some(2));
    let mut keys = Vec::new();
    for _ in 0..4 {
        keys.push(h.fire("counted", "succeeded").await);
    }
    assert_eq!(history(&h, "counted").await, [keys[3].clone(), keys[2].clone()], "newest two, newest first");
    let r = h.http.get(format!("{}/v1/executions/{}", h.url, keys[0])).send().await.expect("get");
    assert_eq!(r.status(), 404, "the oldest fire is forgotten");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_forgets_fires_older_than_max_age_on_an_idle_cluster() {
    let h = Harness::start().await;
    h.create("aged", "aged", json!({"history": {"max_age": "1s"}})).await;
    h.create("other", "other", json!({})).await;
    let old = h.fire("aged", "succeeded").await;
    assert_eq!(history(&h, "aged").await, [old]);
    // Once a second has passed since it finished, the leader commits a write of its own that
    // forgets it, with no API write to carry it; the other job's history (no age limit) is
    // untouched.
    let kept = h.fire("other", "succeeded").await;
    wait_for(Duration::from_secs(10), "the aged fire to be forgotten", || async {
        history(&h, "aged").await.is_empty().then_some(())
    })
    .await;
    assert_eq!(history(&h, "other").await, [kept]);
}
