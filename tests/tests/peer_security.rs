//! The gRPC port against callers that do not belong, and against a valid peer that tries what
//! only the leader may (docs/SECURITY.md, "Peer TLS"): each attempt is refused and the
//! cluster goes on as before.

use std::path::Path;
use std::process::Command as Process;
use std::time::Duration;

use belfry_core::Command;
use belfry_node::proto::cluster_client::ClusterClient;
use belfry_node::proto::raft_client::RaftClient;
use belfry_node::proto::worker_client::WorkerClient;
use belfry_node::proto::{deliver_reply, forward_reply, DeliverRequest, Empty, ForwardRequest, RaftPayload, Refusal};
use belfry_tests::{binary, certs_dir, wait_for, Cluster, Sink};
use openraft::raft::{AppendEntriesRequest, VoteRequest};
use openraft::Vote;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

const SETTLE: Duration = Duration::from_secs(30);

/// A channel to node `server` at `addr`, presenting the certificate of node `as_node` from
/// `dir` (none when `None`), trusting the CA of `dir`.
async fn channel(dir: &Path, addr: std::net::SocketAddr, server: u64, as_node: Option<u64>) -> anyhow::Result<Channel> {
    let read = |name: String| std::fs::read(dir.join(name));
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read("ca.pem".into())?))
        .domain_name(belfry_node::peer_tls::peer_name(server));
    if let Some(id) = as_node {
        tls = tls.identity(Identity::from_pem(read(format!("node-{id}.pem"))?, read(format!("node-{id}-key.pem"))?));
    }
    let endpoint = Endpoint::from_shared(format!("https://{addr}"))?.tls_config(tls)?;
    Ok(endpoint.connect_timeout(Duration::from_secs(2)).connect_lazy())
}

/// A second CA and node certificates, unrelated to the cluster's.
fn rogue_certs() -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    let out = Process::new(binary()).args(["certs", "--nodes", "1-9", "--dir"]).arg(dir.path()).output()?;
    anyhow::ensure!(out.status.success(), "belfry certs: {}", String::from_utf8_lossy(&out.stderr));
    Ok(dir)
}

async fn info(ch: Channel) -> Result<u64, tonic::Status> {
    ClusterClient::new(ch).info(Empty {}).await.map(|r| r.into_inner().id)
}

#[tokio::test]
async fn no_certificate_or_a_foreign_one_gets_no_answer() -> anyhow::Result<()> {
    let cluster = Cluster::start(3)?;
    cluster.wait_for_leader(&[1, 2, 3], SETTLE).await?;
    let addr = cluster.grpc_addr(1);

    // With the cluster's own certificate the port answers: the refusals below are not a
    // broken setup.
    assert_eq!(info(channel(certs_dir(), addr, 1, Some(2)).await?).await?, 1);

    let plaintext = Endpoint::from_shared(format!("http://{addr}"))?.connect_lazy();
    assert!(info(plaintext).await.is_err(), "a plaintext client was answered");
    let anonymous = channel(certs_dir(), addr, 1, None).await?;
    assert!(info(anonymous).await.is_err(), "a client with no certificate was answered");
    let rogue = rogue_certs()?;
    let foreign = channel(rogue.path(), addr, 1, Some(2)).await?;
    assert!(info(foreign).await.is_err(), "a certificate from another CA was answered");
    // Trusting the rogue CA while presenting a real certificate fails too: the server's
    // certificate does not chain to it.
    let read = |p: &Path| std::fs::read(p);
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(&rogue.path().join("ca.pem"))?))
        .identity(Identity::from_pem(
            read(&certs_dir().join("node-2.pem"))?,
            read(&certs_dir().join("node-2-key.pem"))?,
        ))
        .domain_name(belfry_node::peer_tls::peer_name(1));
    let mismatched = Endpoint::from_shared(format!("https://{addr}"))?.tls_config(tls)?.connect_lazy();
    assert!(info(mismatched).await.is_err(), "a client trusting another CA reached the node");
    Ok(())
}

#[tokio::test]
async fn a_peer_cannot_make_a_worker_send_what_the_log_does_not_hold() -> anyhow::Result<()> {
    let cluster = Cluster::start(3)?;
    let sink = Sink::start(Duration::ZERO).await?;
    let leader = cluster.wait_for_leader(&[1, 2, 3], SETTLE).await?;
    let term = cluster.status(leader).await?.term;
    // The first fire is due a few seconds out, so its key is known and not yet dispatched
    // while the forged requests go in.
    let first = chrono::Utc::now() + chrono::Duration::seconds(6);
    let body = serde_json::json!({
        "name": "real",
        "schedule": {"every": "1h", "start_at": belfry_core::api::rfc3339(first)},
        "target": {"url": format!("{}/real", sink.url)}
    });
    let r = cluster.http.post(format!("{}/v1/jobs", cluster.url(leader))).json(&body).send().await?;
    anyhow::ensure!(r.status() == 201, "create: {}", r.text().await?);
    let job: belfry_core::api::JobView = r.json().await?;
    let next = job.next_fire_at.clone().expect("an every job has a next fire");
    let next_ms = chrono::DateTime::parse_from_rfc3339(&next)?.timestamp_millis();
    let key = format!("{}:{next_ms}", job.uid);
    let followers: Vec<u64> = [1, 2, 3].into_iter().filter(|id| *id != leader).collect();

    for &worker in &followers {
        let other = followers.iter().copied().find(|id| *id != worker).expect("two followers");
        let deliver = |as_node: u64, term: u64| {
            let key = key.clone();
            let addr = cluster.grpc_addr(worker);
            async move {
                let ch = channel(certs_dir(), addr, worker, Some(as_node)).await?;
                let req = DeliverRequest { key, attempt: 1, term, log_index: 0 };
                let reply = WorkerClient::new(ch).deliver(req).await?.into_inner();
                match reply.result {
                    Some(deliver_reply::Result::Refused(why)) => anyhow::Ok(why),
                    other => anyhow::bail!("worker {worker} did not refuse a forged deliver: {other:?}"),
                }
            }
        };
        // A follower's certificate is not the leader's.
        let why = deliver(other, term).await?;
        assert_eq!(why.reason, Refusal::NotLeader as i32, "{why:?}");
        // No term from the future (the old fence accepted u64::MAX).
        let why = deliver(leader, u64::MAX).await?;
        assert_eq!(why.reason, Refusal::StaleTerm as i32, "{why:?}");
        // Even the leader's own certificate cannot send a fire the log has not dispatched to
        // this worker: the key of the job's next fire, before it is due, is refused.
        let why = deliver(leader, term).await?;
        assert_eq!(why.reason, Refusal::NotDispatched as i32, "{why:?}");
    }

    // The real fire is still delivered, once, when it falls due (nothing recorded it as sent).
    let received = wait_for(SETTLE, "the real fire", || async {
        let all = sink.received().await.ok()?;
        all.iter().any(|r| r.key == key).then_some(all)
    })
    .await?;
    let copies = received.iter().filter(|r| r.key == key).count();
    assert_eq!(copies, 1, "the real fire must arrive exactly once");
    Ok(())
}

#[tokio::test]
async fn forward_takes_client_commands_only_and_stamps_them_with_the_leaders_clock() -> anyhow::Result<()> {
    let cluster = Cluster::start(3)?;
    let leader = cluster.wait_for_leader(&[1, 2, 3], SETTLE).await?;
    let peer = [1, 2, 3].into_iter().find(|id| *id != leader).expect("a follower");
    let ch = channel(certs_dir(), cluster.grpc_addr(leader), leader, Some(peer)).await?;
    let mut client = ClusterClient::new(ch);
    let forged_now: chrono::DateTime<chrono::Utc> = "2001-01-01T00:00:00Z".parse()?;

    let complete = Command::Complete { now: forged_now, completions: vec![] };
    let fire = Command::Fire { now: forged_now, claims: vec![], redispatches: vec![] };
    for command in [complete, fire] {
        let refused = client.forward(ForwardRequest { command: serde_json::to_vec(&command)? }).await;
        let status = refused.expect_err("a peer forwarded a leader-only command");
        assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    }

    let spec = serde_json::json!({"name": "forwarded", "schedule": {"every": "1h"}, "target": {"url": "http://127.0.0.1:9/x"}});
    let create =
        Command::CreateJob { spec: serde_json::from_value(spec)?, now: forged_now, by: None, max_jobs: Some(10) };
    let reply = client.forward(ForwardRequest { command: serde_json::to_vec(&create)? }).await?.into_inner();
    assert!(matches!(reply.result, Some(forward_reply::Result::Response(_))), "{reply:?}");
    let job: belfry_core::api::JobView =
        cluster.http.get(format!("{}/v1/jobs/forwarded", cluster.url(leader))).send().await?.json().await?;
    let created = chrono::DateTime::parse_from_rfc3339(&job.created_at)?;
    assert!(created.timestamp() > chrono::Utc::now().timestamp() - 600, "the forged clock was used: {created}");
    Ok(())
}

fn payload<T: serde::Serialize>(value: &T) -> anyhow::Result<RaftPayload> {
    Ok(RaftPayload { data: serde_json::to_vec(value)? })
}

#[tokio::test]
async fn raft_rpcs_must_come_from_the_member_they_name() -> anyhow::Result<()> {
    let cluster = Cluster::start(3)?;
    let leader = cluster.wait_for_leader(&[1, 2, 3], SETTLE).await?;
    let term = cluster.status(leader).await?.term;
    let target = [1, 2, 3].into_iter().find(|id| *id != leader).expect("a follower");
    let peer = [1, 2, 3].into_iter().find(|id| *id != leader && *id != target).expect("another follower");
    let raft = |as_node: u64| {
        let addr = cluster.grpc_addr(target);
        async move { anyhow::Ok(RaftClient::new(channel(certs_dir(), addr, target, Some(as_node)).await?)) }
    };
    let denied = |r: Result<tonic::Response<RaftPayload>, tonic::Status>, what: &str| match r {
        Err(s) if s.code() == tonic::Code::PermissionDenied => {}
        other => panic!("{what}: not refused: {other:?}"),
    };

    // A vote for a node that does not exist, a thousand terms ahead (it was granted before).
    let vote = VoteRequest::<u64> { vote: Vote::new(term + 1000, 99), last_log_id: None };
    denied(raft(peer).await?.vote(payload(&vote)?).await, "a vote naming node 99");
    // A CA-signed certificate of a node that is no member.
    let vote = VoteRequest::<u64> { vote: Vote::new(term + 1000, 9), last_log_id: None };
    denied(raft(9).await?.vote(payload(&vote)?).await, "a vote from non-member node 9");
    // A member's certificate, claiming to be the leader.
    let mut leader_vote = Vote::new(term, leader);
    leader_vote.commit();
    let append = AppendEntriesRequest::<belfry_node::raft::TypeConfig> {
        vote: leader_vote,
        prev_log_id: None,
        entries: vec![],
        leader_commit: None,
    };
    denied(raft(peer).await?.append_entries(payload(&append)?).await, "an append forged by a follower");

    // Nothing moved: same leader, same term, on every node.
    for id in [1, 2, 3] {
        let status = cluster.status(id).await?;
        assert_eq!((status.leader, status.term), (Some(leader), term), "node {id} after the forged RPCs");
    }
    Ok(())
}

#[tokio::test]
async fn a_node_with_a_certificate_from_another_ca_cannot_join() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(3)?;
    cluster.wait_for_leader(&[1, 2, 3], SETTLE).await?;
    let rogue = rogue_certs()?;
    let dir = rogue.path().to_string_lossy().to_string();
    cluster.extra_args.extend(["--peer-certs-dir".to_string(), dir]);
    let id = cluster.add_node(1)?;
    wait_for(SETTLE, "the join to be refused", || async { cluster.log(id).contains("join refused").then_some(()) })
        .await?;
    let members: Vec<u64> = cluster.status(1).await?.members.iter().map(|m| m.id).collect();
    assert_eq!(members, vec![1, 2, 3], "the rogue node became a member");
    Ok(())
}
