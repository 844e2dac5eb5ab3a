//! Batch create (`POST /v1/jobs:batch`) and `belfry job import` on a 3-node process cluster:
//! a batch commits whole through a follower and every node then serves every job; a refused
//! batch creates nothing and names each spec at fault by index; a batch must fit under the job
//! cap whole; the route's body limit is its own; and the CLI imports JSON lines and YAML files in batches, stopping at the first refused
//! one with the line it failed at.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use belfry_client::{Client, Error};
use belfry_core::api::{ErrorBody, ItemError, TokenRequest};
use belfry_core::{JobSpec, Role};
use belfry_tests::{wait_for, Cluster, TOKEN};
use serde_json::json;

const SETTLE: Duration = Duration::from_secs(20);

fn spec(name: &str) -> JobSpec {
    serde_json::from_value(json!({
        "name": name, "schedule": {"cron": "0 0 1 1 *"}, "target": {"url": "http://127.0.0.1:9/x"}
    }))
    .expect("a valid spec")
}

fn specs(prefix: &str, n: usize) -> Vec<JobSpec> {
    (0..n).map(|i| spec(&format!("{prefix}-{i:04}"))).collect()
}

fn client(cluster: &Cluster, id: u64) -> anyhow::Result<Client> {
    Ok(Client::new(&cluster.url(id))?.with_token(Some(TOKEN))?)
}

/// A 3-node cluster, its leader and a follower.
async fn cluster() -> anyhow::Result<(Cluster, u64, u64)> {
    let cluster = Cluster::start(3)?;
    let leader = cluster.wait_for_leader(&[1, 2, 3], SETTLE).await?;
    let follower = [1, 2, 3].into_iter().find(|id| *id != leader).unwrap_or(1);
    Ok((cluster, leader, follower))
}

/// The status, code, top-level field and per-spec errors of a refusal.
fn refusal(result: Result<impl std::fmt::Debug, Error>) -> (u16, String, Option<String>, Vec<ItemError>) {
    match result {
        Err(Error::Api { status, code, field, errors, .. }) => (status, code, field, errors),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn names_on(cluster: &Cluster, id: u64) -> anyhow::Result<BTreeSet<String>> {
    Ok(client(cluster, id)?.list_all_jobs(None).await?.jobs.into_iter().map(|j| j.name).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_commits_whole_through_a_follower_or_not_at_all() -> anyhow::Result<()> {
    let (cluster, _, follower) = cluster().await?;
    let via = client(&cluster, follower)?;

    // 1000 jobs in one request through a follower; every node then serves every one.
    let batch = specs("bulk", 1000);
    let answer = via.create_jobs(&batch).await?;
    assert_eq!(answer.created, 1000);
    let answered: Vec<&str> = answer.jobs.iter().map(|j| j.name.as_str()).collect();
    let sent: Vec<&str> = batch.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(answered, sent, "the answer lists the jobs in the order sent");
    let uids: BTreeSet<u64> = answer.jobs.iter().map(|j| j.uid).collect();
    assert_eq!(uids.len(), 1000, "every job has its own uid");
    let expected: BTreeSet<String> = batch.iter().map(|s| s.name.to_string()).collect();
    for id in [1, 2, 3] {
        assert_eq!(names_on(&cluster, id).await?, expected, "node {id} serves every job of the batch");
    }
    let job = client(&cluster, 1)?.get_job("bulk-0999").await?;
    assert_eq!((job.created_by.as_deref(), job.version), (Some("bootstrap"), 1), "the writer is recorded");

    // One invalid spec (index 7): nothing is created, and the answer names index 7 and its field.
    let mut bad = specs("bad", 10);
    bad[7].schedule.cron = Some("61 * * * *".into());
    let (status, code, field, errors) = refusal(via.create_jobs(&bad).await);
    assert_eq!((status, code.as_str(), field.as_deref()), (400, "invalid", Some("jobs[7].schedule.cron")));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!((errors[0].index, errors[0].code.as_str()), (7, "invalid"));
    assert_eq!(errors[0].field.as_deref(), Some("schedule.cron"));
    assert!(errors[0].message.contains("minute 61 out of range 0-59"), "{errors:?}");

    // A spec of the wrong shape is refused by its index too, with the field inside it.
    let shapeless = json!({"jobs": [spec("shape-a"), {
        "name": "shape-b", "schedule": {"every": "1m"}, "target": {"url": "http://127.0.0.1:9/x"},
        "retry": {"max_attempts": "three"}
    }]});
    let r = cluster.http.post(format!("{}/v1/jobs:batch", cluster.url(follower))).json(&shapeless).send().await?;
    assert_eq!(r.status(), 400);
    let body: ErrorBody = r.json().await?;
    assert_eq!(body.error.field.as_deref(), Some("jobs[1].retry.max_attempts"), "{body:?}");
    let got: Vec<(usize, Option<&str>)> = body.errors.iter().map(|e| (e.index, e.field.as_deref())).collect();
    assert_eq!(got, [(1, Some("retry.max_attempts"))]);

    // A name in use (index 3) and a name given twice (index 5 repeats index 1): each named.
    let mut clash = specs("clash", 6);
    clash[3] = spec("bulk-0042");
    clash[5] = spec("clash-0001");
    let (status, _, _, errors) = refusal(via.create_jobs(&clash).await);
    assert_eq!(status, 400, "a name given twice is the request's own mistake");
    let got: Vec<(usize, &str, Option<&str>)> =
        errors.iter().map(|e| (e.index, e.code.as_str(), e.field.as_deref())).collect();
    assert_eq!(got, [(3, "already_exists", None), (5, "invalid", Some("name"))]);
    let (status, code, field, errors) = refusal(via.create_jobs(&clash[..5]).await);
    assert_eq!((status, code.as_str(), field.as_deref()), (409, "already_exists", Some("jobs[3]")));
    assert_eq!(errors.iter().map(|e| e.index).collect::<Vec<_>>(), [3]);
    let after = names_on(&cluster, follower).await?;
    assert_eq!(after, expected, "refused batches created nothing");

    // Empty and oversized batches.
    let (status, _, field, _) = refusal(via.create_jobs(&[]).await);
    assert_eq!((status, field.as_deref()), (400, Some("jobs")));
    let (status, _, field, _) = refusal(via.create_jobs(&specs("many", 1001)).await);
    assert_eq!((status, field.as_deref()), (400, Some("jobs")));

    // The route takes bodies past the 256 KiB of other routes, up to its own limit.
    let mut wide = specs("wide", 10);
    for s in &mut wide {
        s.target.body = Some("x".repeat(60 * 1024).into());
    }
    assert_eq!(via.create_jobs(&wide).await?.created, 10, "a 600 KiB batch is taken");
    // Just past the limit (about 16.2 MiB), within the margin a node still reads so that the
    // client, which is still writing, gets the 413; a body far past it is cut off with a reset
    // (edge.rs, DRAIN_BYTES), which a client may see before the answer.
    let mut huge = specs("huge", 276);
    for s in &mut huge {
        s.target.body = Some("x".repeat(60 * 1024).into());
    }
    let (status, code, _, _) = refusal(via.create_jobs(&huge).await);
    assert_eq!((status, code.as_str()), (413, "too_large"), "a 16.2 MiB batch is not");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_must_fit_under_the_job_cap_whole() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(1, &["--max-jobs", "5"])?;
    cluster.wait_for_leader(&[1], SETTLE).await?;
    let via = client(&cluster, 1)?;
    assert_eq!(via.create_jobs(&specs("first", 2)).await?.created, 2);
    // Room for 3 more: the fourth spec (index 3) is the first past the cap, and none is created.
    let (status, code, field, errors) = refusal(via.create_jobs(&specs("second", 4)).await);
    assert_eq!((status, code.as_str(), field.as_deref()), (409, "quota_exceeded", Some("jobs[3]")));
    assert_eq!(errors.iter().map(|e| (e.index, e.code.as_str())).collect::<Vec<_>>(), [(3, "quota_exceeded")]);
    assert_eq!(names_on(&cluster, 1).await?.len(), 2);
    assert_eq!(via.create_jobs(&specs("second", 3)).await?.created, 3);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_may_not_create_a_batch() -> anyhow::Result<()> {
    let (cluster, leader, follower) = cluster().await?;
    let viewer =
        client(&cluster, leader)?.create_token(&TokenRequest { role: Role::Viewer, name: "dash".into() }).await?;
    let as_viewer = Client::new(&cluster.url(follower))?.with_token(Some(&viewer.token))?;
    let result = wait_for(SETTLE, "the follower to know the viewer token", || async {
        let result = as_viewer.create_jobs(&specs("v", 2)).await;
        (result.as_ref().err().and_then(Error::status) != Some(401)).then_some(result)
    })
    .await?;
    let (status, code, _, _) = refusal(result);
    assert_eq!((status, code.as_str()), (403, "forbidden"));
    assert!(names_on(&cluster, follower).await?.is_empty());
    Ok(())
}

/// What one `belfry` run left behind: exit code, stdout, stderr.
async fn belfry(endpoint: &str, args: &[&str]) -> anyhow::Result<(i32, String, String)> {
    let out = tokio::process::Command::new(belfry_tests::binary())
        .arg("--endpoint")
        .arg(endpoint)
        .args(args)
        .env_remove("BELFRY_ENDPOINT")
        .env("BELFRY_TOKEN", TOKEN)
        .output()
        .await?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    Ok((out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr)))
}

fn write(dir: &Path, name: &str, text: &str) -> anyhow::Result<String> {
    let path = dir.join(name);
    std::fs::write(&path, text)?;
    Ok(path.display().to_string())
}

fn json_lines(specs: &[JobSpec]) -> anyhow::Result<String> {
    let lines: Result<Vec<String>, _> = specs.iter().map(serde_json::to_string).collect();
    Ok(lines?.join("\n") + "\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_import_creates_jobs_from_json_lines_and_yaml_in_batches() -> anyhow::Result<()> {
    let (cluster, _, follower) = cluster().await?;
    let ep = cluster.url(follower);
    let dir = tempfile::tempdir()?;

    // JSON lines, 1500 specs: two batches.
    let lines = write(dir.path(), "jobs.jsonl", &json_lines(&specs("line", 1500))?)?;
    let (code, out, err) = belfry(&ep, &["job", "import", &lines]).await?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, format!("created 1500 jobs from {lines}\n"));
    assert!(err.contains("imported lines 1-1000") && err.contains("imported lines 1001-1500"), "{err}");

    // YAML, a document stream and a list in one file.
    let yaml = "name: yaml-a\nschedule: {every: 1h}\ntarget: {url: 'http://127.0.0.1:9/a'}\n---\n\
                - name: yaml-b\n  schedule: {cron: '@daily', timezone: Europe/Berlin}\n  target: {url: 'http://127.0.0.1:9/b'}\n\
                - name: yaml-c\n  schedule: {at: '2030-01-01T00:00:00Z'}\n  target: {url: 'http://127.0.0.1:9/c'}\n";
    let yaml = write(dir.path(), "jobs.yaml", yaml)?;
    let (code, out, err) = belfry(&ep, &["-o", "json", "job", "import", &yaml]).await?;
    assert_eq!(code, 0, "{err}");
    let answer: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(answer["created"], 3, "{out}");
    let names: Vec<&str> = answer["jobs"].as_array().into_iter().flatten().filter_map(|j| j["name"].as_str()).collect();
    assert_eq!(names, ["yaml-a", "yaml-b", "yaml-c"]);
    let mut all = names_on(&cluster, 1).await?;
    assert_eq!(all.len(), 1503, "every imported job is there");

    // Again: refused whole without --skip-existing, the rest created with it.
    let (code, _, err) = belfry(&ep, &["job", "import", &yaml]).await?;
    assert_eq!(code, 1, "{err}");
    assert!(err.starts_with("error: item 1 (job yaml-a): already_exists"), "{err}");
    let more = [spec("yaml-b"), spec("yaml-new")];
    let mixed = write(dir.path(), "mixed.jsonl", &json_lines(&more)?)?;
    let (code, out, err) = belfry(&ep, &["job", "import", "--skip-existing", &mixed]).await?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, format!("created 1 job from {mixed}\nskipped 1 that exist already: yaml-b\n"));
    all.insert("yaml-new".into());
    assert_eq!(names_on(&cluster, 2).await?, all);

    // A bad spec in the second batch stops the import there: the first batch stays created.
    let mut broken = specs("stop", 1200);
    broken[1099].schedule.cron = Some("0 0 31 2 * * extra".into());
    let broken = write(dir.path(), "broken.jsonl", &json_lines(&broken)?)?;
    let (code, _, err) = belfry(&ep, &["job", "import", &broken]).await?;
    assert_eq!(code, 1, "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: line 1100 (job stop-1099): invalid: "), "{err}");
    assert!(last.contains("(field: schedule.cron)"), "{err}");
    assert!(
        last.contains("nothing from the batch of lines 1001-1200 was created; 1000 jobs created before it"),
        "{err}"
    );
    let now = names_on(&cluster, 3).await?;
    assert_eq!(now.iter().filter(|n| n.starts_with("stop-")).count(), 1000);
    assert!(now.contains("stop-0999") && !now.contains("stop-1000"));

    // A file that is not a list of specs is a usage error, and nothing is sent.
    let shapeless = write(dir.path(), "shapeless.yaml", "- name: s\n  schedule: {every: soon}\n  target: 7\n")?;
    let (code, _, err) = belfry(&ep, &["job", "import", &shapeless]).await?;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("item 1: target"), "{err}");
    Ok(())
}
