//! A delivery reads no more of a target's answer than the excerpt it keeps: a 100 MiB answer
//! costs the worker neither memory nor time. Alone in its test binary, so the process's
//! resident memory is this test's.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::header::RETRY_AFTER;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use belfry_node::delivery::{send, Delivery, BODY_EXCERPT, MAX_RETRY_AFTER_MS};
use tokio::sync::Notify;

const HUGE: u64 = 100 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;

/// What the target's answer stream saw: bytes handed to the server, and whether the stream
/// was dropped (the connection ended).
#[derive(Default)]
struct Produced {
    bytes: AtomicU64,
    dropped: AtomicBool,
    notify: Notify,
}

struct OnDrop(Arc<Produced>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.dropped.store(true, Ordering::SeqCst);
        self.0.notify.notify_one();
    }
}

/// A 100 MiB answer made chunk by chunk as the connection takes it, never held whole.
fn huge_answer(produced: Arc<Produced>) -> Body {
    let chunks = futures::stream::unfold((OnDrop(produced), 0u64), |(guard, sent)| async move {
        if sent >= HUGE {
            return None;
        }
        guard.0.bytes.fetch_add(CHUNK as u64, Ordering::SeqCst);
        Some((Ok::<_, std::convert::Infallible>(Bytes::from(vec![b'x'; CHUNK])), (guard, sent + CHUNK as u64)))
    });
    Body::from_stream(chunks)
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line")
}

fn delivery(url: String) -> Delivery {
    Delivery {
        key: "1:1".into(),
        attempt: 1,
        job: "huge".into(),
        scheduled_at: chrono::Utc::now(),
        method: "GET".into(),
        url,
        headers: Vec::new(),
        body: Vec::new(),
        timeout: Duration::from_secs(30),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_answer_is_read_only_up_to_the_excerpt() {
    let produced = Arc::new(Produced::default());
    let for_route = produced.clone();
    let app = Router::new()
        .route("/small", get(|| async { "warm" }))
        .route("/huge", get(move || std::future::ready(huge_answer(for_route.clone()))))
        .route("/later", get(|| async { (StatusCode::SERVICE_UNAVAILABLE, [(RETRY_AFTER, "10000000000000")]) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::new();
    // Warm up every code path once, so what is measured is the huge answer alone.
    let warm = send(&client, &delivery(format!("{base}/small")), 1).await;
    assert_eq!(warm.body_excerpt.as_deref(), Some("warm"));

    let before = rss_kib();
    let started = Instant::now();
    let attempt = send(&client, &delivery(format!("{base}/huge")), 1).await;
    let took = started.elapsed();
    assert_eq!(attempt.http_status, Some(200), "{attempt:?}");
    assert_eq!(attempt.error, None);
    let excerpt = attempt.body_excerpt.expect("an excerpt");
    assert_eq!(excerpt, "x".repeat(BODY_EXCERPT));
    tokio::time::timeout(Duration::from_secs(10), async {
        while !produced.dropped.load(Ordering::SeqCst) {
            produced.notify.notified().await;
        }
    })
    .await
    .expect("the target's connection was dropped");
    let grown = rss_kib().saturating_sub(before);
    let sent = produced.bytes.load(Ordering::SeqCst);
    assert!(sent < HUGE / 4, "the target made {sent} bytes of its answer before the worker hung up");
    assert!(grown < 8 * 1024, "resident memory grew by {grown} KiB");
    assert!(took < Duration::from_secs(5), "the send took {took:?}");

    // A Retry-After of 10^13 seconds is capped at an hour.
    let attempt = send(&client, &delivery(format!("{base}/later")), 1).await;
    assert_eq!((attempt.http_status, attempt.retry_after_ms), (Some(503), Some(MAX_RETRY_AFTER_MS)));
}
