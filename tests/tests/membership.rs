//! Membership and leadership on real processes: a node joins and becomes a voter, a node is
//! removed, an unsafe removal is refused unless forced, leadership moves on request, and
//! `/readyz` fails without a quorum while `/healthz` stays up. Adds that could wedge the
//! cluster are refused or undone: bad addresses, a node with another id, a learner that never
//! catches up, a second change while one runs; a forced removal ends a stuck add. Writes sent
//! while a fresh cluster elects its first leader wait for it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use belfry_core::api::{ClusterView, ErrorBody, JobList};
use belfry_node::proto::cluster_server::{Cluster as ClusterService, ClusterServer};
use belfry_node::proto::raft_server::{Raft as RaftService, RaftServer};
use belfry_node::proto::{
    AdminReply, AdminRequest, Empty, ForwardReply, ForwardRequest, InfoReply, RaftPayload, ReadIndexReply,
    TakeLeadershipRequest,
};
use belfry_tests::{free_ports, wait_for, Cluster};
use serde_json::json;
use tonic::{Request, Response, Status};

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

/// A gRPC server that answers belfry's `Info` probe as node `id` and never answers a raft
/// RPC: a learner that cannot catch up, or, probed under another id, the wrong node.
struct SilentPeer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Silent {
    id: u64,
    addr: SocketAddr,
}

#[tonic::async_trait]
impl ClusterService for Silent {
    async fn forward(&self, _: Request<ForwardRequest>) -> Result<Response<ForwardReply>, Status> {
        Err(Status::unimplemented("forward"))
    }
    async fn read_index(&self, _: Request<Empty>) -> Result<Response<ReadIndexReply>, Status> {
        Err(Status::unimplemented("read_index"))
    }
    async fn info(&self, _: Request<Empty>) -> Result<Response<InfoReply>, Status> {
        Ok(Response::new(InfoReply {
            id: self.id,
            http_addr: String::new(),
            grpc_addr: self.addr.to_string(),
            version: "silent".into(),
            term: 0,
            leader: None,
            applied_index: 0,
            ..InfoReply::default()
        }))
    }
    async fn admin(&self, _: Request<AdminRequest>) -> Result<Response<AdminReply>, Status> {
        Err(Status::unimplemented("admin"))
    }
    async fn take_leadership(&self, _: Request<TakeLeadershipRequest>) -> Result<Response<Empty>, Status> {
        Err(Status::unimplemented("take_leadership"))
    }
}

#[tonic::async_trait]
impl RaftService for Silent {
    async fn append_entries(&self, _: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        std::future::pending().await
    }
    async fn vote(&self, _: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        std::future::pending().await
    }
    async fn install_snapshot(&self, _: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        std::future::pending().await
    }
}

impl SilentPeer {
    /// A silent peer answering as node `id` with node `id`'s certificate.
    async fn start(id: u64) -> anyhow::Result<SilentPeer> {
        SilentPeer::start_as(id, id).await
    }

    /// A silent peer whose `Info` says node `id` and whose TLS certificate is node `cert`'s.
    async fn start_as(id: u64, cert: u64) -> anyhow::Result<SilentPeer> {
        let dir = belfry_tests::certs_dir();
        let read = |name: String| std::fs::read(dir.join(name));
        let tls = tonic::transport::ServerTlsConfig::new()
            .identity(tonic::transport::Identity::from_pem(
                read(format!("node-{cert}.pem"))?,
                read(format!("node-{cert}-key.pem"))?,
            ))
            .client_ca_root(tonic::transport::Certificate::from_pem(read("ca.pem".into())?));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let service = Silent { id, addr };
        let incoming =
            futures::stream::unfold(listener, |l| async move { Some((l.accept().await.map(|(s, _)| s), l)) });
        let server = tonic::transport::Server::builder()
            .tls_config(tls)?
            .add_service(ClusterServer::new(service.clone()))
            .add_service(RaftServer::new(service))
            .serve_with_incoming(incoming);
        let task = tokio::spawn(async move {
            let _ = server.await;
        });
        Ok(SilentPeer { addr, task })
    }
}

impl Drop for SilentPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn member_ids(view: &ClusterView) -> Vec<u64> {
    view.members.iter().map(|m| m.id).collect()
}

async fn add_member(cluster: &Cluster, via: u64, id: u64, grpc_addr: &str) -> anyhow::Result<reqwest::Response> {
    let url = format!("{}/v1/cluster/members", cluster.url(via));
    Ok(cluster.http.post(url).json(&json!({"id": id, "grpc_addr": grpc_addr})).send().await?)
}

/// Every node is ready, lists exactly nodes 1..=3 as voters, and takes a write named `name`.
async fn unchanged_and_writable(cluster: &Cluster, name: &str) -> anyhow::Result<()> {
    for id in [1, 2, 3] {
        cluster.wait_ready(id, SETTLE).await?;
    }
    let leader = cluster.wait_for_leader(&[1, 2, 3], SETTLE).await?;
    let view = cluster.status(leader).await?;
    assert_eq!(member_ids(&view), vec![1, 2, 3], "membership unchanged: {view:?}");
    assert_eq!(voters(&view), vec![1, 2, 3]);
    create_job(cluster, leader % 3 + 1, name).await
}

/// Waits until the leader lists `id` as a learner (the add is waiting for it to catch up).
async fn wait_for_learner(cluster: &Cluster, id: u64) -> anyhow::Result<u64> {
    wait_for(SETTLE, &format!("node {id} listed as a learner"), || async {
        let leader = cluster.wait_for_leader(&[1, 2, 3], SETTLE).await.ok()?;
        let view = cluster.status(leader).await.ok()?;
        view.members.iter().any(|m| m.id == id && !m.voter).then_some(leader)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_addresses_and_a_node_with_another_id_are_refused_and_change_nothing() -> anyhow::Result<()> {
    let cluster = Cluster::start(3)?;
    let leader = cluster.wait_for_leader(&[1, 2, 3], SETTLE).await?;
    let via = leader % 3 + 1;
    let nobody = format!("127.0.0.1:{}", free_ports(1)[0]);
    let cases = [
        ("127.0.0.1:0", "grpc_addr", "port"),
        ("no-such-host.invalid:7201", "grpc_addr", "resolve"),
        (nobody.as_str(), "grpc_addr", "no belfry node answers"),
    ];
    for (addr, field, says) in cases {
        let (status, body) = error_of(add_member(&cluster, via, 9, addr).await?).await?;
        assert_eq!((status, body.error.field.as_deref()), (400, Some(field)), "{addr}: {body:?}");
        assert!(body.error.message.contains(says), "{addr}: {}", body.error.message);
    }
    // A node holding node 7's certificate is not node 8: the TLS handshake fails.
    let other = SilentPeer::start(7).await?;
    let (status, body) = error_of(add_member(&cluster, via, 8, &other.addr.to_string()).await?).await?;
    assert_eq!((status, body.error.field.as_deref()), (400, Some("grpc_addr")), "{body:?}");
    assert!(body.error.message.contains("certificate"), "{}", body.error.message);
    // A node with node 8's certificate that says it is node 7 is refused too.
    let confused = SilentPeer::start_as(7, 8).await?;
    let (status, body) = error_of(add_member(&cluster, via, 8, &confused.addr.to_string()).await?).await?;
    assert_eq!((status, body.error.field.as_deref()), (400, Some("id")), "{body:?}");
    assert!(body.error.message.contains("is node 7"), "{}", body.error.message);
    unchanged_and_writable(&cluster, "after-bad-adds").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_that_does_not_catch_up_times_out_and_is_removed() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(3, &["--learner-catch-up-timeout-ms", "1500"])?;
    let leader = cluster.wait_for_leader(&[1, 2, 3], SETTLE).await?;
    let silent = SilentPeer::start(4).await?;
    let started = Instant::now();
    let r = add_member(&cluster, leader % 3 + 1, 4, &silent.addr.to_string()).await?;
    let (status, body) = error_of(r).await?;
    assert_eq!((status, body.error.code.as_str()), (503, "timeout"), "{body:?}");
    assert!(body.error.message.contains("did not catch up"), "{}", body.error.message);
    assert!(body.error.message.contains("removed again"), "{}", body.error.message);
    assert!(started.elapsed() < Duration::from_secs(15), "answered after {:?}", started.elapsed());
    unchanged_and_writable(&cluster, "after-timeout").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_change_while_an_add_waits_is_a_conflict() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(3, &["--learner-catch-up-timeout-ms", "30000"])?;
    let leader = cluster.wait_for_leader(&[1, 2, 3], SETTLE).await?;
    let (four, five) = (SilentPeer::start(4).await?, SilentPeer::start(5).await?);
    let stuck = tokio::spawn({
        let (http, url, addr) = (cluster.http.clone(), cluster.url(leader), four.addr.to_string());
        async move { http.post(format!("{url}/v1/cluster/members")).json(&json!({"id": 4, "grpc_addr": addr})).send().await }
    });
    let leader = wait_for_learner(&cluster, 4).await?;
    let via = leader % 3 + 1;

    let (status, body) = error_of(add_member(&cluster, via, 5, &five.addr.to_string()).await?).await?;
    assert_eq!((status, body.error.code.as_str()), (409, "conflict"), "{body:?}");
    assert!(body.error.message.contains("adding node 4"), "{}", body.error.message);
    let url = format!("{}/v1/cluster/transfer-leadership", cluster.url(via));
    let (status, body) = error_of(cluster.http.post(url).json(&json!({})).send().await?).await?;
    assert_eq!((status, body.error.code.as_str()), (409, "conflict"), "{body:?}");
    let view = cluster.status(leader).await?;
    assert!(view.members.iter().all(|m| m.id != 5), "node 5 never added: {view:?}");

    // Clean up: a forced removal ends the stuck add.
    let r = cluster.http.delete(format!("{}/v1/cluster/members/4?force=true", cluster.url(via))).send().await?;
    assert_eq!(r.status(), 204, "{}", r.text().await?);
    let (status, _) = error_of(stuck.await??).await?;
    assert_eq!(status, 409);
    unchanged_and_writable(&cluster, "after-conflict").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_removal_cancels_a_stuck_add_and_removes_the_learner() -> anyhow::Result<()> {
    // The default catch-up timeout (60 s) would hold the add far longer than this test runs.
    let cluster = Cluster::start(3)?;
    let leader = cluster.wait_for_leader(&[1, 2, 3], SETTLE).await?;
    let four = SilentPeer::start(4).await?;
    let stuck = tokio::spawn({
        let (http, url, addr) = (cluster.http.clone(), cluster.url(leader % 3 + 1), four.addr.to_string());
        async move { http.post(format!("{url}/v1/cluster/members")).json(&json!({"id": 4, "grpc_addr": addr})).send().await }
    });
    let leader = wait_for_learner(&cluster, 4).await?;

    let started = Instant::now();
    let url = format!("{}/v1/cluster/members/4?force=true", cluster.url(leader % 3 + 1));
    let r = cluster.http.delete(url).send().await?;
    assert_eq!(r.status(), 204, "{}", r.text().await?);
    assert!(started.elapsed() < Duration::from_secs(15), "removal took {:?}", started.elapsed());
    let (status, body) = error_of(stuck.await??).await?;
    assert_eq!((status, body.error.code.as_str()), (409, "conflict"), "{body:?}");
    assert!(body.error.message.contains("cancelled by a forced removal"), "{}", body.error.message);
    unchanged_and_writable(&cluster, "after-forced-removal").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_a_follower_while_the_first_leader_is_elected_all_succeed() -> anyhow::Result<()> {
    // Fresh clusters, one after another, each written to the moment its nodes serve HTTP,
    // through both nodes that are not node 1 (so through a follower, whoever wins).
    let budget = Instant::now() + Duration::from_secs(20);
    let mut clusters = 0;
    while clusters < 4 && Instant::now() < budget {
        let cluster = Cluster::start(3)?;
        for id in [1, 2, 3] {
            cluster.wait_healthy(id, SETTLE).await?;
        }
        let writes = [2u64, 3, 2, 3].into_iter().enumerate().map(|(i, via)| {
            let cluster = &cluster;
            async move {
                let body = json!({"name": format!("early-{i}"), "schedule": {"every": "1h"},
                                  "target": {"url": "http://127.0.0.1:9/x"}});
                let r = cluster.http.post(format!("{}/v1/jobs", cluster.url(via))).json(&body).send().await?;
                let status = r.status().as_u16();
                anyhow::Ok((via, status, r.text().await?))
            }
        });
        for result in futures::future::join_all(writes).await {
            let (via, status, text) = result?;
            assert_eq!(status, 201, "cluster {clusters}, write through node {via}: {text}");
        }
        clusters += 1;
    }
    assert!(clusters >= 2, "only {clusters} clusters fit in the time budget");
    Ok(())
}
