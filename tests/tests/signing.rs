//! Delivery signatures on a real cluster: every worker signs with the keys of its own
//! `--signing-secret-file` (one `v1=` per key, for rotation), and a `SIGHUP` makes it sign with
//! the file's new keys. No key crosses the network: `Deliver` carries none.

use std::path::Path;
use std::time::Duration;

use belfry_client::receiver::verify_signature;
use belfry_tests::{wait_for, Cluster, Sink};

const BODY: &str = "{\"n\":1}";
const OLD: &str = "old-key-0123456789abcdef";
const NEW: &str = "new-key-fedcba9876543210";

fn write_keys(path: &Path, keys: &[&str]) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, keys.join("\n") + "\n")?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

/// The `v1=` values of a `Belfry-Signature`, and its `t`.
fn parse(header: &str) -> Option<(i64, Vec<String>)> {
    let mut t = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        match part.split_once('=')? {
            ("t", value) => t = value.parse().ok(),
            ("v1", value) => v1.push(value.to_string()),
            _ => return None,
        }
    }
    Some((t?, v1))
}

/// The `v1=` value of `key` over `BODY` at `t`.
fn expected(key: &str, t: i64) -> String {
    let one = belfry_node::delivery::signature(key, t, BODY.as_bytes());
    one.split_once(",v1=").map(|(_, v)| v.to_string()).unwrap_or_default()
}

/// Waits for a delivery after `since_ms` whose signature holds exactly the `v1` of `keys`.
async fn signed_with(sink: &Sink, since_ms: i64, keys: &[&str]) -> anyhow::Result<()> {
    let what = format!("a delivery signed with {} key(s)", keys.len());
    wait_for(Duration::from_secs(30), &what, || async {
        let received = sink.received().await.ok()?;
        received.iter().filter(|r| r.received_at_ms > since_ms).find_map(|r| {
            let header = r.signature.as_deref()?;
            let (t, mut got) = parse(header)?;
            let mut want: Vec<String> = keys.iter().map(|k| expected(k, t)).collect();
            got.sort();
            want.sort();
            // The receiver helper accepts the delivery as the target got it, with any one key.
            let minutes = Duration::from_secs(300);
            let accepted = keys.iter().all(|k| verify_signature(header, r.body.as_bytes(), &[k], minutes).is_ok());
            let json = r.headers.get("content-type").is_some_and(|c| c == "application/json");
            (got == want && accepted && json).then_some(())
        })
    })
    .await
}

#[tokio::test]
async fn workers_sign_with_their_own_keys_and_take_new_ones_on_sighup() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let keys = dir.path().join("signing-keys");
    write_keys(&keys, &[OLD, NEW])?;
    let keys_arg = keys.to_string_lossy().to_string();
    let cluster = Cluster::start_with(3, &["--signing-secret-file", &keys_arg])?;
    let sink = Sink::start(Duration::ZERO).await?;
    let leader = cluster.wait_for_leader(&[1, 2, 3], Duration::from_secs(30)).await?;
    let spec = serde_json::json!({
        "name": "signed",
        "schedule": {"every": "1s"},
        "target": {"url": format!("{}/signed", sink.url), "method": "POST", "body": BODY}
    });
    let r = cluster.http.post(format!("{}/v1/jobs", cluster.url(leader))).json(&spec).send().await?;
    anyhow::ensure!(r.status() == 201, "create: {}", r.text().await?);

    // Two keys in the file: two signatures, each over `t.body` with one key.
    signed_with(&sink, 0, &[OLD, NEW]).await?;

    // Rotation's last step: the old key leaves the file, and every node is told.
    write_keys(&keys, &[NEW])?;
    let reloaded = chrono::Utc::now().timestamp_millis();
    for id in [1, 2, 3] {
        cluster.signal(id, "HUP")?;
    }
    // Deliveries go to every follower in turn: once each has sent one after the reload, none
    // signs with the old key any more.
    wait_for(Duration::from_secs(30), "every follower's deliveries to carry the new key only", || async {
        let received = sink.received().await.ok()?;
        let late: Vec<_> = received.iter().filter(|r| r.received_at_ms > reloaded + 1000).collect();
        let all_new = late.len() >= 4
            && late
                .iter()
                .all(|r| r.signature.as_deref().and_then(parse).is_some_and(|(t, v1)| v1 == vec![expected(NEW, t)]));
        all_new.then_some(())
    })
    .await?;
    Ok(())
}
