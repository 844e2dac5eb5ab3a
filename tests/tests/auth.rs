//! API authentication on `belfry serve` processes: a node without a bootstrap token refuses
//! to start unless told `--no-auth`; `--auth-file` works; tokens made with `belfry token` work
//! on every node, show up as the writer of what they wrote, and stop working everywhere once
//! revoked; `--rate-limit`, `--max-jobs` and `--metrics-auth` apply.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use belfry_core::api::{ErrorBody, ExecutionView, JobView, NewToken, TokenList};
use belfry_node::sink::Answer;
use belfry_tests::{binary, free_ports, wait_for, Cluster, Sink, TOKEN};
use reqwest::StatusCode;
use serde_json::json;

const SETTLE: Duration = Duration::from_secs(20);

/// `belfry <args>` with `BELFRY_TOKEN=token` (none when `None`); exit code, stdout, stderr.
fn belfry(token: Option<&str>, args: &[&str]) -> anyhow::Result<(i32, String, String)> {
    let mut command = Command::new(binary());
    command.args(args).env_remove("BELFRY_TOKEN").env_remove("BELFRY_ENDPOINT");
    if let Some(t) = token {
        command.env("BELFRY_TOKEN", t);
    }
    let out = command.output()?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    Ok((out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr)))
}

/// A `belfry serve` of its own (outside the harness, whose nodes always get a token).
struct Lone {
    child: Child,
    url: String,
}

impl Drop for Lone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `belfry serve` of one node in `dir` on free ports, with no token from this environment;
/// the command and the node's base URL.
fn serve(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> (Command, String) {
    let ports = free_ports(2);
    let mut command = Command::new(binary());
    command
        .args(["serve", "--id", "1", "--http-addr", &format!("127.0.0.1:{}", ports[0])])
        .args(["--grpc-addr", &format!("127.0.0.1:{}", ports[1])])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(extra)
        .env_remove("BELFRY_BOOTSTRAP_TOKEN")
        .env_remove("BELFRY_AUTH_FILE")
        .env_remove("BELFRY_NO_AUTH")
        .env("BELFRY_PEER_CERTS_DIR", belfry_tests::certs_dir())
        .stdin(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    (command, format!("http://127.0.0.1:{}", ports[0]))
}

async fn start(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Lone> {
    let (mut command, url) = serve(dir, extra, env);
    let log = std::fs::File::create(dir.join("node.log"))?;
    let child = command.stdout(log.try_clone()?).stderr(log).spawn()?;
    let lone = Lone { child, url };
    let ready = format!("{}/readyz", lone.url);
    wait_for(SETTLE, "the node to be ready", || async {
        reqwest::get(&ready).await.ok().filter(|r| r.status().is_success())
    })
    .await?;
    Ok(lone)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_needs_a_bootstrap_token_or_an_explicit_no_auth() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let out = serve(dir.path(), &[], &[]).0.output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started without a token: {stderr}");
    assert!(stderr.contains("BELFRY_BOOTSTRAP_TOKEN") && stderr.contains("--no-auth"), "{stderr}");
    let out = serve(dir.path(), &[], &[("BELFRY_BOOTSTRAP_TOKEN", "short")]).0.output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("at least 16 bytes"), "{stderr}");
    assert!(!stderr.contains("short"), "the token is never echoed: {stderr}");

    // --no-auth: served to anyone, with a warning in the log.
    let open = tempfile::tempdir()?;
    let node = start(open.path(), &["--no-auth"], &[]).await?;
    let r = reqwest::get(format!("{}/v1/cluster", node.url)).await?;
    assert_eq!(r.status(), 200);
    let log = std::fs::read_to_string(open.path().join("node.log"))?;
    assert!(log.contains("API authentication is off"), "{log}");
    drop(node);

    // --auth-file: the first line is the bootstrap token.
    let secured = tempfile::tempdir()?;
    let file = secured.path().join("token");
    std::fs::write(&file, "file-bootstrap-token-0123456789\nignored second line\n")?;
    let node = start(secured.path(), &["--auth-file", file.to_str().expect("utf-8")], &[]).await?;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/cluster", node.url);
    assert_eq!(http.get(&url).send().await?.status(), 401);
    assert_eq!(http.get(&url).bearer_auth("file-bootstrap-token-0123456789").send().await?.status(), 200);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_tokens_work_on_every_node_record_their_writes_and_stop_when_revoked() -> anyhow::Result<()> {
    let sink = Sink::start(Duration::ZERO).await?;
    let cluster = Cluster::start(3)?;
    cluster.wait_for_leader(&[1, 2, 3], SETTLE).await?;
    let (n1, n2, n3) = (cluster.url(1), cluster.url(2), cluster.url(3));

    let (code, out, err) =
        belfry(Some(TOKEN), &["--endpoint", &n1, "-o", "json", "token", "create", "--role", "editor", "--name", "ci"])?;
    assert_eq!(code, 0, "{err}");
    let editor: NewToken = serde_json::from_str(&out)?;
    let (code, out, err) = belfry(
        Some(TOKEN),
        &["--endpoint", &n1, "-o", "json", "token", "create", "--role", "viewer", "--name", "dash"],
    )?;
    assert_eq!(code, 0, "{err}");
    let viewer: NewToken = serde_json::from_str(&out)?;

    // Through a node that learns of the token by replication.
    let http = reqwest::Client::new();
    let spec = json!({
        "name": "audited", "schedule": {"cron": "0 0 1 1 *"},
        "target": {"url": format!("{}/audited", sink.url), "timeout": "5s"}, "retry": {"max_attempts": 1},
    });
    let created = wait_for(SETTLE, "node 2 to know the editor token", || async {
        let r = http.post(format!("{n2}/v1/jobs")).bearer_auth(&editor.token).json(&spec).send().await.ok()?;
        (r.status() != 401).then_some(r)
    })
    .await?;
    assert_eq!(created.status(), 201, "{}", created.text().await?);
    let (code, out, err) = belfry(Some(&editor.token), &["--endpoint", &n3, "job", "get", "audited"])?;
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().any(|l| l.starts_with("created by") && l.ends_with(&editor.view.id)), "{out}");

    // A viewer reads but does not write.
    let r = wait_for(SETTLE, "node 3 to know the viewer token", || async {
        let r = http.post(format!("{n3}/v1/jobs")).bearer_auth(&viewer.token).json(&spec).send().await.ok()?;
        (r.status() != 401).then_some(r)
    })
    .await?;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body: ErrorBody = r.json().await?;
    assert_eq!(body.error.code, "forbidden");

    // A trigger and a requeue name the token that asked for them.
    let answer: Answer = "/audited=404x1".parse().map_err(anyhow::Error::msg)?;
    http.post(format!("{}/_sink/answers", sink.url)).json(&answer).send().await?.error_for_status()?;
    let r = http.post(format!("{n1}/v1/jobs/audited/trigger")).bearer_auth(&editor.token).send().await?;
    let fire: ExecutionView = r.error_for_status()?.json().await?;
    assert_eq!(fire.triggered_by.as_deref(), Some(&*editor.view.id));
    let get = |url: String| {
        let http = http.clone();
        async move { http.get(url).bearer_auth(TOKEN).send().await.ok()?.json::<ExecutionView>().await.ok() }
    };
    wait_for(SETTLE, "the fire to be a dead letter", || async {
        get(format!("{n1}/v1/executions/{}", fire.key)).await.filter(|f| f.status == "dead_lettered")
    })
    .await?;
    let (code, out, err) = belfry(Some(&editor.token), &["--endpoint", &n2, "dlq", "requeue", &fire.key])?;
    assert_eq!(code, 0, "{err}");
    let (code, out2, err) = belfry(Some(TOKEN), &["--endpoint", &n2, "exec", "get", &fire.key])?;
    assert_eq!(code, 0, "{err}");
    for line in ["triggered by", "requeued by"] {
        assert!(out2.lines().any(|l| l.starts_with(line) && l.ends_with(&editor.view.id)), "{line}: {out}\n{out2}");
    }

    // The list shows ids and roles, never secrets.
    let (code, out, err) = belfry(Some(TOKEN), &["--endpoint", &n1, "-o", "json", "token", "list"])?;
    assert_eq!(code, 0, "{err}");
    let list: TokenList = serde_json::from_str(&out)?;
    assert_eq!(list.tokens.len(), 2);
    assert!(!out.contains(editor.token.rsplit_once('_').map(|p| p.1).unwrap_or("?")), "{out}");

    // Revoked through node 1: every node refuses it (each once it has applied the revocation).
    let (code, _, err) = belfry(Some(TOKEN), &["--endpoint", &n1, "token", "revoke", &editor.view.id])?;
    assert_eq!(code, 0, "{err}");
    for url in [&n1, &n2, &n3] {
        wait_for(SETTLE, &format!("{url} to refuse the revoked token"), || async {
            let r = http.get(format!("{url}/v1/jobs")).bearer_auth(&editor.token).send().await.ok()?;
            (r.status() == 401).then_some(())
        })
        .await?;
    }
    let (code, _, err) = belfry(None, &["--endpoint", &n1, "job", "list"])?;
    assert_eq!(code, 1, "no token: {err}");
    assert!(err.starts_with("error: unauthenticated: "), "{err}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_max_jobs_and_metrics_auth_flags_apply() -> anyhow::Result<()> {
    let cluster =
        Cluster::start_with(1, &["--rate-limit", "1", "--rate-burst", "2", "--max-jobs", "1", "--metrics-auth"])?;
    // /readyz is open and not limited: waiting on it spends none of the token's burst.
    cluster.wait_ready(1, SETTLE).await?;
    let url = cluster.url(1);
    let job = |name: &str| json!({"name": name, "schedule": {"cron": "0 0 1 1 *"}, "paused": true, "target": {"url": "http://8.8.8.8:9/x"}});
    let r = cluster.http.post(format!("{url}/v1/jobs")).json(&job("one")).send().await?;
    assert_eq!(r.status(), 201, "{}", r.text().await?);
    let r = wait_for(SETTLE, "the second create to pass the rate limit", || async {
        let r = cluster.http.post(format!("{url}/v1/jobs")).json(&job("two")).send().await.ok()?;
        (r.status() != 429).then_some(r)
    })
    .await?;
    let body: ErrorBody = serde_json::from_str(&r.text().await?)?;
    assert_eq!(body.error.code, "quota_exceeded", "--max-jobs 1");
    let mut throttled = None;
    for _ in 0..4 {
        let r = cluster.http.get(format!("{url}/v1/jobs")).send().await?;
        if r.status() == 429 {
            throttled = Some(r);
            break;
        }
    }
    let r = throttled.expect("four quick requests over a burst of 2 and 1/s");
    let retry: u64 = r.headers()["retry-after"].to_str()?.parse()?;
    assert!(retry >= 1, "Retry-After {retry}");
    let body: ErrorBody = r.json().await?;
    assert_eq!(body.error.code, "rate_limited");
    let r = reqwest::get(format!("{url}/metrics")).await?;
    assert_eq!(r.status(), 401, "--metrics-auth");
    let jobs: JobView = wait_for(SETTLE, "a read within the rate", || async {
        let r = cluster.http.get(format!("{url}/v1/jobs/one")).send().await.ok()?;
        r.json().await.ok()
    })
    .await?;
    assert_eq!(jobs.created_by.as_deref(), Some("bootstrap"));
    Ok(())
}
