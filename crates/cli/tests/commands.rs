//! The client subcommands as a user runs them: the `belfry` binary as a subprocess against a
//! real 3-node cluster, checking output (table and JSON) and the exit codes of docs/CLI.md.

use std::path::Path;
use std::time::Duration;

use belfry_core::api::{ClusterView, ExecutionList, ExecutionView, Instants, JobList, JobView};
use belfry_tests::{wait_for, Cluster, Sink};
use serde::de::DeserializeOwned;

/// What one `belfry` run left behind.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Asserts exit 0 and returns stdout.
    fn ok(self) -> String {
        assert_eq!(self.code, 0, "expected success; stderr: {}\nstdout: {}", self.stderr, self.stdout);
        self.stdout
    }

    /// Asserts exit 0 and decodes stdout.
    fn json<T: DeserializeOwned>(self) -> T {
        let out = self.ok();
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("stdout is not the expected JSON ({e}):\n{out}"))
    }

    /// Asserts `code` and a single `error: …` line on stderr; returns that line.
    fn fails(self, code: i32) -> String {
        assert_eq!(self.code, code, "stderr: {}\nstdout: {}", self.stderr, self.stdout);
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "expected one error line, got:\n{}", self.stderr);
        assert!(lines[0].starts_with("error: "), "{}", lines[0]);
        lines[0].to_string()
    }
}

async fn belfry(endpoint: &str, args: &[&str]) -> Run {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_belfry"))
        .arg("--endpoint")
        .arg(endpoint)
        .args(args)
        .env_remove("BELFRY_ENDPOINT")
        .env("BELFRY_TOKEN", belfry_tests::TOKEN)
        .output()
        .await
        .expect("running belfry");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn started_cluster() -> anyhow::Result<(Cluster, u64)> {
    let cluster = Cluster::start(3)?;
    let leader = cluster.wait_for_leader(&[1, 2, 3], Duration::from_secs(20)).await?;
    Ok((cluster, leader))
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("writing a test file");
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_exec_dlq_and_schedule_commands_against_a_cluster() -> anyhow::Result<()> {
    let sink = Sink::start(Duration::ZERO).await?;
    let (cluster, leader) = started_cluster().await?;
    // A follower: every command must work through any node.
    let follower = [1, 2, 3].into_iter().find(|id| *id != leader).unwrap_or(1);
    let ep = cluster.url(follower);
    let ep = ep.as_str();
    let sink_url = format!("{}/nightly", sink.url);

    let nightly = create_and_list(ep, &sink).await?;
    update_pause_resume(ep, &nightly).await;
    preview_across_a_dst_gap(ep).await;
    fires_and_dead_letters(ep, &sink).await?;

    // Server-side validation: exit 1, one line naming the field.
    let line = belfry(ep, &["job", "create", "bad", "--cron", "61 * * * *", "--url", &sink_url]).await.fails(1);
    assert!(line.starts_with("error: invalid: ") && line.ends_with("(field: schedule.cron)"), "{line}");
    let line = belfry(ep, &["job", "get", "nope"]).await.fails(1);
    assert!(line.starts_with("error: not_found: "), "{line}");

    // Delete.
    assert_eq!(belfry(ep, &["job", "delete", "hourly"]).await.ok(), "deleted job hourly\n");
    belfry(ep, &["job", "get", "hourly"]).await.fails(1);
    Ok(())
}

/// Creates `nightly` from flags and `hourly` from YAML, lists and gets them; returns `nightly`.
async fn create_and_list(ep: &str, sink: &Sink) -> anyhow::Result<JobView> {
    let dir = tempfile::tempdir()?;
    // Create from flags.
    let sink_url = format!("{}/nightly", sink.url);
    let out = belfry(ep, &["job", "create", "nightly", "--cron", "0 30 2 * * *", "--tz", "Europe/Berlin"]).await;
    assert!(out.fails(2).contains("--url"), "a job without a target is a usage error");
    let out = belfry(
        ep,
        &[
            "job",
            "create",
            "nightly",
            "--cron",
            "0 30 2 * * *",
            "--tz",
            "Europe/Berlin",
            "--url",
            &sink_url,
            "--header",
            "X-Team: ops",
            "--max-attempts",
            "5",
        ],
    )
    .await
    .ok();
    assert!(out.contains("cron 0 30 2 * * * (Europe/Berlin)") && out.contains("X-Team: ops"), "{out}");

    // Create from a YAML file.
    let yaml = format!(
        "name: hourly\nschedule:\n  every: 1h\ntarget:\n  url: {}/hourly\n  method: PUT\n  timeout: 5s\noverlap: forbid\n",
        sink.url
    );
    let file = write(dir.path(), "hourly.yaml", &yaml);
    let created: JobView = belfry(ep, &["-o", "json", "job", "create", "-f", &file]).await.json();
    assert_eq!((created.name.as_str(), created.target.method.as_str()), ("hourly", "PUT"));

    // List: a table with aligned columns, and JSON.
    let table = belfry(ep, &["job", "list"]).await.ok();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "header and two jobs:\n{table}");
    assert!(lines[0].starts_with("NAME") && lines[1].starts_with("hourly") && lines[2].starts_with("nightly"));
    let column = lines[0].find("SCHEDULE").expect("a SCHEDULE column");
    assert_eq!(lines[1].find("every 1h"), Some(column), "columns align:\n{table}");
    assert_eq!(lines[2].find("cron 0 30 2"), Some(column), "columns align:\n{table}");
    let list: JobList = belfry(ep, &["job", "list", "--output", "json"]).await.json();
    assert_eq!(list.jobs.iter().map(|j| j.name.as_str()).collect::<Vec<_>>(), ["hourly", "nightly"]);

    // Get.
    let job: JobView = belfry(ep, &["job", "get", "nightly", "-o", "json"]).await.json();
    assert_eq!(job.target.headers.get("X-Team"), Some("ops"));
    assert_eq!(job.retry.max_attempts, 5);
    Ok(job)
}

/// `job update` (stale and current versions), pause, resume and upcoming on `nightly`.
async fn update_pause_resume(ep: &str, job: &JobView) {
    // Update with a stale version: the server's conflict, one line, exit 1, nothing changed.
    let stale = (job.version + 7).to_string();
    let line = belfry(ep, &["job", "update", "nightly", "--if-version", &stale, "--every", "1m"]).await.fails(1);
    assert!(line.starts_with("error: version_mismatch: "), "{line}");
    let unchanged: JobView = belfry(ep, &["job", "get", "nightly", "-o", "json"]).await.json();
    assert_eq!(unchanged.schedule.cron.as_deref(), Some("0 30 2 * * *"));
    let current = job.version.to_string();
    let updated: JobView =
        belfry(ep, &["-o", "json", "job", "update", "nightly", "--if-version", &current, "--body", "hi"]).await.json();
    assert!(updated.version > job.version);
    assert_eq!((updated.target.body.as_deref(), updated.retry.max_attempts), (Some("hi"), 5));

    // Pause and resume.
    let paused: JobView = belfry(ep, &["-o", "json", "job", "pause", "nightly"]).await.json();
    assert!(paused.paused);
    assert_eq!(paused.next_fire_at, None, "a paused job shows no next fire");
    let only_paused: JobList = belfry(ep, &["-o", "json", "job", "list", "--paused"]).await.json();
    assert_eq!(only_paused.jobs.iter().map(|j| j.name.as_str()).collect::<Vec<_>>(), ["nightly"]);
    let out = belfry(ep, &["job", "resume", "nightly"]).await.ok();
    assert!(out.starts_with("resumed job nightly"), "{out}");
    let resumed: JobView = belfry(ep, &["job", "get", "nightly", "-o", "json"]).await.json();
    assert!(resumed.next_fire_at.is_some(), "a resumed job shows its next fire again");

    // Upcoming: the job's next instants, 02:30 in Berlin.
    let upcoming: Instants = belfry(ep, &["-o", "json", "job", "upcoming", "nightly", "--count", "3"]).await.json();
    assert_eq!(upcoming.instants.len(), 3);
    assert!(upcoming.instants.windows(2).all(|w| w[0] < w[1]), "{:?}", upcoming.instants);
    let table = belfry(ep, &["job", "upcoming", "nightly", "--count", "3"]).await.ok();
    assert!(table.contains("LOCAL (Europe/Berlin)") && table.contains("T02:30:00+0"), "{table}");
}

async fn preview_across_a_dst_gap(ep: &str) {
    // Schedule preview across the spring-forward gap: 02:30 does not exist on 2026-03-29, the
    // fixed-time rule fires once at the end of the gap (03:00 CEST).
    let preview = [
        "schedule",
        "preview",
        "0 30 2 * * *",
        "--tz",
        "Europe/Berlin",
        "--count",
        "3",
        "--after",
        "2026-03-28T00:00:00Z",
    ];
    let instants: Instants = belfry(ep, &[&["-o", "json"], &preview[..]].concat()).await.json();
    assert_eq!(instants.instants, ["2026-03-28T01:30:00.000Z", "2026-03-29T01:00:00.000Z", "2026-03-30T00:30:00.000Z"]);
    let table = belfry(ep, &preview).await.ok();
    assert!(table.contains("LOCAL (Europe/Berlin)") && table.contains("2026-03-29T03:00:00+02:00"), "{table}");
}

/// A trigger that succeeds (exec get/list) and one that dead-letters (dlq list/requeue).
async fn fires_and_dead_letters(ep: &str, sink: &Sink) -> anyhow::Result<()> {
    // Trigger, then the fire shows in exec list and get.
    let fire: ExecutionView = belfry(ep, &["-o", "json", "job", "trigger", "hourly"]).await.json();
    assert!(fire.manual && fire.job == "hourly");
    let done = wait_for(Duration::from_secs(20), "the triggered fire to succeed", || async {
        let f: ExecutionView = belfry(ep, &["-o", "json", "exec", "get", &fire.key]).await.json();
        (f.status == "succeeded").then_some(f)
    })
    .await?;
    assert_eq!(done.attempt_log.as_ref().map(Vec::len), Some(1));
    assert!(sink.received().await?.iter().any(|r| r.key == fire.key), "the sink got the fire");
    let table = belfry(ep, &["exec", "list", "--job", "hourly"]).await.ok();
    let row = table.lines().find(|l| l.starts_with(&fire.key)).unwrap_or_else(|| panic!("no row:\n{table}"));
    assert!(row.contains("succeeded"), "{row}");
    let list: ExecutionList =
        belfry(ep, &["-o", "json", "exec", "list", "--status", "succeeded", "--all"]).await.json();
    assert!(list.executions.iter().any(|e| e.key == fire.key));

    // A target that answers 404 dead-letters at once; dlq list shows it, requeue takes it.
    // (The sink answers it: the cluster's own API is no target.)
    let answer = serde_json::json!({"path": "/gone", "status": 404});
    let scripted = reqwest::Client::new().post(format!("{}/_sink/answers", sink.url)).json(&answer);
    scripted.send().await?.error_for_status()?;
    let missing = format!("{}/gone", sink.url);
    belfry(ep, &["job", "create", "broken", "--cron", "0 0 1 1 *", "--url", &missing, "--max-attempts", "1"])
        .await
        .ok();
    let dead: ExecutionView = belfry(ep, &["-o", "json", "job", "trigger", "broken"]).await.json();
    wait_for(Duration::from_secs(20), "the fire to be dead-lettered", || async {
        let l: ExecutionList = belfry(ep, &["-o", "json", "dlq", "list"]).await.json();
        l.executions.iter().any(|e| e.key == dead.key).then_some(())
    })
    .await?;
    let table = belfry(ep, &["dlq", "list", "--job", "broken"]).await.ok();
    assert!(table.lines().any(|l| l.starts_with(&dead.key) && l.contains("404")), "{table}");
    let out = belfry(ep, &["dlq", "requeue", &dead.key]).await.ok();
    assert!(out.starts_with(&format!("requeued fire {}", dead.key)), "{out}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_status_members_dump_and_remove() -> anyhow::Result<()> {
    let (mut cluster, leader) = started_cluster().await?;
    let ep = cluster.url(leader);
    let dir = tempfile::tempdir()?;

    let table = belfry(&ep, &["cluster", "status"]).await.ok();
    assert!(table.contains(&format!("leader {leader},")), "{table}");
    let leader_row = table.lines().find(|l| l.starts_with(&format!("{leader} "))).unwrap_or_default();
    assert!(leader_row.contains("voter (leader)"), "{table}");
    let view: ClusterView = belfry(&ep, &["cluster", "status", "-o", "json"]).await.json();
    assert_eq!((view.leader, view.members.len()), (Some(leader), 3));
    let members: Vec<belfry_core::api::MemberView> = belfry(&ep, &["cluster", "members", "-o", "json"]).await.json();
    assert!(members.iter().all(|m| m.reachable && m.voter), "{members:?}");
    let table = belfry(&ep, &["cluster", "members"]).await.ok();
    assert_eq!(table.lines().count(), 4, "{table}");

    // Leadership moves on request; the answer is the view after the move.
    let to = [1, 2, 3].into_iter().find(|id| *id != leader).unwrap_or(1);
    let view: ClusterView =
        belfry(&ep, &["cluster", "transfer-leader", "--to", &to.to_string(), "-o", "json"]).await.json();
    assert_eq!(view.leader, Some(to), "{view:?}");
    let leader = cluster.wait_for_leader(&[1, 2, 3], Duration::from_secs(20)).await?;
    assert_eq!(leader, to);
    let ep = cluster.url(leader);

    // The dump has every node's view, health, readiness and metrics.
    let out = dir.path().join("dump.json");
    let out_arg = out.display().to_string();
    let summary = belfry(&ep, &["cluster", "dump", "--out", &out_arg]).await.ok();
    assert!(summary.contains("3 nodes"), "{summary}");
    let dump: serde_json::Value = serde_json::from_slice(&std::fs::read(&out)?)?;
    let nodes = dump["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.iter().map(|n| n["id"].as_u64()).collect::<Vec<_>>(), [Some(1), Some(2), Some(3)]);
    for n in nodes {
        assert_eq!(n["cluster"]["ok"]["node"], n["id"], "{n}");
        assert_eq!(n["healthz"]["ok"], "ok\n", "{n}");
        assert!(n["readyz"]["ok"]["checklist"].as_str().is_some_and(|c| c.contains("node")), "{n}");
        assert!(n["metrics"]["ok"].as_str().is_some_and(|m| m.contains("belfry_raft_term")), "{n}");
    }

    // Through a follower, status shows each member's match and lag as the leader sees them.
    let follower = [1, 2, 3].into_iter().find(|id| *id != leader).unwrap_or(1);
    let view: ClusterView = belfry(&cluster.url(follower), &["cluster", "status", "-o", "json"]).await.json();
    assert_eq!(view.node, follower);
    assert!(view.members.iter().all(|m| m.match_index.is_some() && m.lag.is_some()), "{view:?}");

    // With a node down, the dump is still written, records that node's errors, and says so
    // with exit 5.
    let down = follower;
    cluster.kill(down);
    let line = belfry(&ep, &["cluster", "dump", "--out", &out_arg]).await.fails(5);
    assert!(line.contains("3 nodes") && line.contains("failed requests"), "{line}");
    let dump: serde_json::Value = serde_json::from_slice(&std::fs::read(&out)?)?;
    for n in dump["nodes"].as_array().expect("nodes") {
        if n["id"] == down {
            assert!(n["healthz"]["error"].is_string() && n["metrics"]["error"].is_string(), "{n}");
        } else {
            assert_eq!(n["healthz"]["ok"], "ok\n", "{n}");
        }
    }

    // Remove the dead node through a follower: the CLI finds the leader.
    let follower = [1, 2, 3].into_iter().find(|id| *id != leader && *id != down).unwrap_or(1);
    let via = cluster.url(follower);
    let out = belfry(&via, &["cluster", "remove", &down.to_string()]).await.ok();
    assert_eq!(out, format!("removed node {down}\n"));
    let view: ClusterView = belfry(&ep, &["cluster", "status", "-o", "json"]).await.json();
    assert!(view.members.iter().all(|m| m.id != down), "{view:?}");
    Ok(())
}

#[tokio::test]
async fn usage_errors_and_an_unreachable_endpoint_have_their_exit_codes() {
    // A port nothing listens on: bound, then released.
    let port = belfry_tests::free_ports(1)[0];
    let nowhere = format!("http://127.0.0.1:{port}");
    let line = belfry(&nowhere, &["job", "list"]).await.fails(3);
    assert!(line.starts_with(&format!("error: cannot reach {nowhere}/v1/jobs")), "{line}");
    belfry(&nowhere, &["cluster", "dump", "--out", "/dev/null"]).await.fails(3);

    // clap's usage errors: exit 2.
    assert_eq!(belfry(&nowhere, &["job", "frobnicate"]).await.code, 2);
    assert_eq!(belfry(&nowhere, &["job", "create", "x", "--cron", "* * * * *", "--every", "1m"]).await.code, 2);
    assert_eq!(belfry(&nowhere, &["job", "create", "x", "--timeout", "soon"]).await.code, 2);
    // Ours, checked before any request: an update that changes nothing.
    let line = belfry(&nowhere, &["job", "update", "x"]).await.fails(2);
    assert!(line.contains("nothing to change"), "{line}");
    // A job file that does not describe a job, checked before any request.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(dir.path(), "j.yaml", "name: x\nschedule: {every: 1m}\ntarget: {url: 'http://h/', retries: 3}\n");
    let line = belfry(&nowhere, &["job", "create", "-f", &file]).await.fails(2);
    assert!(line.contains("target") && line.contains("retries"), "{line}");
    let line = belfry("ftp://h", &["job", "list"]).await.fails(2);
    assert!(line.contains("invalid endpoint"), "{line}");
}
