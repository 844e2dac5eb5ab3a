//! Membership and leadership on real processes: a node joins and becomes a voter, a node is
//! removed, an unsafe removal is refused unless forced, leadership moves on request, and
//! `/readyz` fails without a quorum while `/healthz` stays up.

use std::time::Duration;

use belfry_core::api::{ClusterView, ErrorBody, JobList};
use belfry_tests::{wait_for, Cluster};
use serde_json::json;

const SETTLE: Duration = Duration::from_secs(20);

async fn create_job(cluster: &Cluster, via: u64, name: &str) -> anyhow::Result<()> {
    let body = json!({"name": name, "schedule": {"every": "1h"}, "target": {"url": "http://127.0.0.1:9/x"}});
    let r = cluster.http.post(format!("{}/v1/jobs", cluster.url(via))).json(&body).send().await?;
    anyhow::ensure!(r.status() == 201, "create {name}: {}", r.text().await?);
    Ok(())
}

async fn job_names(cluster: &Cluster, id: u64) -> anyhow::Result<Vec<String>> {
    let r = cluster.http.get(format!("{}/v1/jobs?limit=1000", cluster.url(id))).send().await?;
    let list: JobList = r.error_for_status()?.json().await?;
    Ok(list.jobs.into_iter().map(|j| j.name).collect())
}

async fn error_of(r: reqwest::Response) -> anyhow::Result<(u16, ErrorBody)> {
    let status = r.status().as_u16();
    Ok((status, r.json().await?))
}

fn voters(view: &ClusterView) -> Vec<u64> {
    view.members.iter().filter(|m| m.voter).map(|m| m.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fourth_node_joins_as_voter_and_is_removed() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(3)?;
    let leader = cluster.wait_for_leader(&[1, 2, 3], SETTLE).await?;
    create_job(&cluster, 1, "before-join").await?;

    let four = cluster.add_node(2)?;
    // Right after the promotion the leader rebuilds its replication streams, so contact and
    // match index are unknown for a moment: wait for the leader to have heard from node 4.
    let view = wait_for(Duration::from_secs(30), "node 4 a reachable, replicating voter", || async {
        let v = cluster.status(leader).await.ok()?;
        let m = v.members.iter().find(|m| m.id == four)?;
        (m.voter && m.reachable && m.last_contact_ms.is_some()).then_some(v)
    })
    .await?;
    assert_eq!(voters(&view), vec![1, 2, 3, 4]);
    let member = view.members.iter().find(|m| m.id == four).expect("node 4 listed");
    assert_eq!(member.grpc_addr, cluster.grpc_addr(four).to_string());
    assert!(member.last_contact_ms.is_some_and(|ms| ms < 5_000), "leader has heard from node 4: {member:?}");
    // The new node serves reads of what was written before it joined, and after.
    create_job(&cluster, four, "after-join").await?;
    let names = job_names(&cluster, four).await?;
    assert_eq!(names, vec!["after-join", "before-join"]);

    // Removal through a node that is not the leader.
    let via = [1, 2, 3].into_iter().find(|id| *id != leader).expect("a follower");
    let r = cluster.http.delete(format!("{}/v1/cluster/members/{four}", cluster.url(via))).send().await?;
    assert_eq!(r.status(), 204, "{}", r.text().await?);
    let view = cluster.status(leader).await?;
    assert_eq!(voters(&view), vec![1, 2, 3]);
    assert!(view.members.iter().all(|m| m.id != four), "node 4 gone: {view:?}");

    // Removing an unknown member is a 404 in the API's error shape.
    let r = cluster.http.delete(format!("{}/v1/cluster/members/9", cluster.url(via))).send().await?;
    let (status, body) = error_of(r).await?;
    assert_eq!((status, body.error.code.as_str()), (404, "not_found"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removal_that_leaves_no_reachable_majority_is_refused_unless_forced() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(3)?;
    let leader = cluster.wait_for_leader(&[1, 2, 3], SETTLE).await?;
    let followers: Vec<u64> = [1, 2, 3].into_iter().filter(|id| *id != leader).collect();
    let (down, up) = (followers[0], followers[1]);
    cluster.kill(down);

    // Removing the live follower would leave the leader and a dead node: refused, unchanged.
    let url = format!("{}/v1/cluster/members/{up}", cluster.url(leader));
    let (status, body) = error_of(cluster.http.delete(&url).send().await?).await?;
    assert_eq!((status, body.error.code.as_str()), (409, "unsafe_change"), "{body:?}");
    assert!(body.error.message.contains("force=true"), "{}", body.error.message);
    assert_eq!(voters(&cluster.status(leader).await?), vec![1, 2, 3]);

    // Removing the dead node leaves two reachable voters: allowed.
    let r = cluster.http.delete(format!("{}/v1/cluster/members/{down}", cluster.url(leader))).send().await?;
    assert_eq!(r.status(), 204, "{}", r.text().await?);
    let mut expected = vec![leader, up];
    expected.sort();
    assert_eq!(voters(&cluster.status(leader).await?), expected);
    create_job(&cluster, up, "still-writable").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_moves_on_request() -> anyhow::Result<()> {
    let cluster = Cluster::start(3)?;
    let leader = cluster.wait_for_leader(&[1, 2, 3], SETTLE).await?;
    let to = [1, 2, 3].into_iter().find(|id| *id != leader).expect("a follower");
    let via = [1, 2, 3].into_iter().find(|id| *id != leader && *id != to).expect("the other follower");
    let term = cluster.status(leader).await?.term;
    create_job(&cluster, via, "before").await?;

    // Asked through the third node, so the request is forwarded to the leader.
    let url = format!("{}/v1/cluster/transfer-leadership", cluster.url(via));
    let r = cluster.http.post(&url).json(&json!({"to": to})).send().await?;
    assert_eq!(r.status(), 200, "{}", r.text().await?);
    assert_eq!(cluster.wait_for_leader(&[1, 2, 3], SETTLE).await?, to);
    assert!(cluster.status(to).await?.term > term);
    create_job(&cluster, leader, "after").await?;
    assert_eq!(job_names(&cluster, via).await?, vec!["after", "before"]);

    // A target that is not a voter is a 400 naming the field.
    let r = cluster.http.post(&url).json(&json!({"to": 42})).send().await?;
    let (status, body) = error_of(r).await?;
    assert_eq!((status, body.error.field.as_deref()), (400, Some("to")), "{body:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_fails_without_quorum_while_healthz_stays_up() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(3)?;
    cluster.wait_for_leader(&[1, 2, 3], SETTLE).await?;
    let ready = cluster.http.get(format!("{}/readyz", cluster.url(1))).send().await?;
    assert_eq!(ready.status(), 200);
    assert!(ready.text().await?.lines().all(|l| l.starts_with("ok ")));

    cluster.kill(2);
    cluster.kill(3);
    let text = wait_for(Duration::from_secs(30), "/readyz to fail on node 1", || async {
        let r = cluster.http.get(format!("{}/readyz", cluster.url(1))).send().await.ok()?;
        (r.status() == 503).then_some(r.text().await.ok()?)
    })
    .await?;
    assert!(text.lines().any(|l| l.starts_with("fail ")), "{text}");
    let health = cluster.http.get(format!("{}/healthz", cluster.url(1))).send().await?;
    assert_eq!(health.status(), 200);
    Ok(())
}
