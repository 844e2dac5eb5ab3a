//! The HTTP server's edge (`belfry_node::http::serve`) with a small router and short limits:
//! slow or silent clients are cut off, connections are capped, oversized requests and
//! panics are answered in the error shape, and shutdown lets in-flight requests finish.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::routing::{get, post};
use axum::Router;
use belfry_core::api::ErrorBody;
use belfry_node::http::{serve, HttpLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

/// How long any single step may take before the test fails rather than hangs.
const STEP: Duration = Duration::from_secs(10);

struct Server {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

async fn start(router: Router, limits: HttpLimits) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(serve(listener, router, limits, None, stop_rx));
    Server { addr, stop, task }
}

fn basic() -> Router {
    Router::new()
        .route("/ok", get(|| async { "ok" }).post(|| async { "ignored the body" }))
        .route("/echo", post(|body: Bytes| async move { body }))
        .route("/panic", get(panics))
}

async fn panics() -> &'static str {
    panic!("a bug in a handler")
}

fn short(header_read_ms: u64) -> HttpLimits {
    HttpLimits { header_read: Duration::from_millis(header_read_ms), ..HttpLimits::default() }
}

/// One HTTP/1.1 response read off a raw connection.
struct Raw {
    status: u16,
    head: String,
    body: Vec<u8>,
}

/// Reads one response (head, then a `Content-Length` body) from `stream`.
async fn read_response(stream: &mut TcpStream) -> Raw {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = tokio::time::timeout(STEP, stream.read(&mut chunk)).await.expect("a response in time").expect("read");
        assert!(n > 0, "connection closed before a response: {:?}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status line");
    let length: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().expect("length")))
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = tokio::time::timeout(STEP, stream.read(&mut chunk)).await.expect("the body in time").expect("read");
        assert!(n > 0, "connection closed inside the body");
        body.extend_from_slice(&chunk[..n]);
    }
    Raw { status, head, body }
}

/// Waits for the server to close `stream`: a read returning end of file or an error.
async fn closed(stream: &mut TcpStream) {
    let mut chunk = [0u8; 4096];
    loop {
        match tokio::time::timeout(STEP, stream.read(&mut chunk)).await.expect("the server closes the connection") {
            Ok(0) | Err(_) => return,
            Ok(_) => continue,
        }
    }
}

fn assert_shape(body: &[u8], code: &str) {
    let text = String::from_utf8_lossy(body);
    let e: ErrorBody = serde_json::from_slice(body).unwrap_or_else(|e| panic!("not the error shape ({e}): {text}"));
    assert_eq!(e.error.code, code, "{text}");
    assert!(!e.error.message.is_empty(), "{text}");
}

async fn get_ok(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET /ok HTTP/1.1\r\nhost: t\r\n\r\n").await.expect("write");
    let r = read_response(&mut s).await;
    assert_eq!((r.status, r.body.as_slice()), (200, b"ok".as_slice()));
    s
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected_within_the_header_timeout() {
    let server = start(basic(), short(300)).await;
    let mut s = TcpStream::connect(server.addr).await.expect("connect");
    s.write_all(b"GET /ok HTTP/1.1\r\nhost: t\r\nx-half: ").await.expect("write");
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(STEP, s.read(&mut buf)).await.expect("closed before the step limit");
    assert!(matches!(read, Ok(0) | Err(_)), "closed without an answer, got {read:?}");
    // The server goes on serving everyone else.
    get_ok(server.addr).await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let server = start(basic(), short(300)).await;
    let mut s = get_ok(server.addr).await;
    closed(&mut s).await;
}

#[tokio::test]
async fn a_half_sent_body_is_answered_408_in_the_error_shape() {
    let limits = HttpLimits { body_read: Duration::from_millis(300), ..HttpLimits::default() };
    let server = start(basic(), limits).await;
    let mut s = TcpStream::connect(server.addr).await.expect("connect");
    s.write_all(b"POST /echo HTTP/1.1\r\nhost: t\r\ncontent-length: 100\r\n\r\nonly ten b").await.expect("write");
    let r = read_response(&mut s).await;
    assert_eq!(r.status, 408, "{}", r.head);
    assert_shape(&r.body, "timeout");
    assert!(r.head.to_ascii_lowercase().contains("connection: close"), "{}", r.head);
    closed(&mut s).await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_in_the_error_shape_whether_declared_or_chunked() {
    let limits = HttpLimits { max_body_bytes: 1024, ..HttpLimits::default() };
    let server = start(basic(), limits).await;
    let http = reqwest::Client::new();
    let url = format!("http://{}", server.addr);
    for path in ["/ok", "/echo"] {
        let r = http.post(format!("{url}{path}")).body(vec![b'x'; 2000]).send().await.expect("an answer");
        assert_eq!(r.status(), 413, "{path}");
        assert_shape(&r.bytes().await.expect("body"), "too_large");
    }
    let r = http.post(format!("{url}/echo")).body(vec![b'x'; 1024]).send().await.expect("an answer");
    assert_eq!((r.status().as_u16(), r.bytes().await.expect("body").len()), (200, 1024), "at the limit");

    let mut s = TcpStream::connect(server.addr).await.expect("connect");
    let mut request = b"POST /echo HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n800\r\n".to_vec();
    request.extend(vec![b'x'; 0x800]);
    request.extend_from_slice(b"\r\n0\r\n\r\n");
    s.write_all(&request).await.expect("write");
    let r = read_response(&mut s).await;
    assert_eq!(r.status, 413, "{}", r.head);
    assert_shape(&r.body, "too_large");
}

#[tokio::test]
async fn a_request_target_over_the_limit_is_414_in_the_error_shape() {
    let server = start(basic(), HttpLimits::default()).await;
    let http = reqwest::Client::new();
    let base = format!("http://{}/ok?q=", server.addr);
    let within = format!("{base}{}", "a".repeat(8 * 1024 - "/ok?q=".len()));
    assert_eq!(http.get(&within).send().await.expect("an answer").status(), 200, "exactly 8 KiB");
    for over in [format!("{within}a"), format!("{base}{}", "a".repeat(20_000))] {
        let r = http.get(&over).send().await.expect("an answer");
        assert_eq!(r.status(), 414, "{} bytes", over.len());
        assert_shape(&r.bytes().await.expect("body"), "too_large");
    }
}

#[tokio::test]
async fn too_many_or_too_large_headers_are_431_in_the_error_shape() {
    let server = start(basic(), HttpLimits::default()).await;
    let http = reqwest::Client::new();
    let url = format!("http://{}/ok", server.addr);
    let with_headers = |n: usize, size: usize| {
        let mut request = http.get(&url);
        for i in 0..n {
            request = request.header(format!("x-h{i}"), "v".repeat(size));
        }
        request
    };
    assert_eq!(with_headers(90, 300).send().await.expect("an answer").status(), 200, "within both limits");
    let cases = [
        ("101 fields", with_headers(101, 1)),
        ("33 KiB", with_headers(1, 33 * 1024)),
        ("200 fields of 300 bytes", with_headers(200, 300)),
    ];
    for (what, request) in cases {
        let r = request.send().await.expect("an answer");
        assert_eq!(r.status(), 431, "{what}");
        assert_shape(&r.bytes().await.expect("body"), "too_large");
    }
}

#[tokio::test]
async fn a_panicking_handler_answers_500_internal_and_the_server_keeps_serving() {
    let server = start(basic(), HttpLimits::default()).await;
    let mut s = TcpStream::connect(server.addr).await.expect("connect");
    s.write_all(b"GET /panic HTTP/1.1\r\nhost: t\r\n\r\n").await.expect("write");
    let r = read_response(&mut s).await;
    assert_eq!(r.status, 500, "{}", r.head);
    assert_shape(&r.body, "internal");
    // The same connection serves the next request.
    s.write_all(b"GET /ok HTTP/1.1\r\nhost: t\r\n\r\n").await.expect("write");
    assert_eq!(read_response(&mut s).await.status, 200);
}

#[tokio::test]
async fn connections_over_the_limit_wait_for_a_free_slot() {
    let limits = HttpLimits { max_connections: 1, ..HttpLimits::default() };
    let server = start(basic(), limits).await;
    let first = get_ok(server.addr).await;
    // The second connection is taken by the kernel's backlog, but not served while the
    // first holds the only slot. That nothing happens can only be watched for a while.
    let mut second = TcpStream::connect(server.addr).await.expect("connect");
    second.write_all(b"GET /ok HTTP/1.1\r\nhost: t\r\n\r\n").await.expect("write");
    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(500), second.read(&mut buf)).await;
    assert!(early.is_err(), "the second connection was served while the first held the slot: {early:?}");
    drop(first);
    assert_eq!(read_response(&mut second).await.status, 200, "served once the slot is free");
}

/// Sets its flag when dropped: the response stream it travels in is gone.
struct DropFlag(Arc<AtomicBool>, Arc<Notify>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
        self.1.notify_one();
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_the_response_is_cut_off() {
    let (dropped, notify) = (Arc::new(AtomicBool::new(false)), Arc::new(Notify::new()));
    let flag = (dropped.clone(), notify.clone());
    let flood = move || {
        let guard = DropFlag(flag.0.clone(), flag.1.clone());
        let chunks = futures::stream::unfold(guard, |guard| async move {
            Some((Ok::<_, std::convert::Infallible>(Bytes::from(vec![b'x'; 64 * 1024])), guard))
        });
        async move { Body::from_stream(chunks) }
    };
    let limits = HttpLimits { write_stall: Duration::from_millis(300), ..HttpLimits::default() };
    let server = start(Router::new().route("/flood", get(flood)), limits).await;
    let mut s = TcpStream::connect(server.addr).await.expect("connect");
    s.write_all(b"GET /flood HTTP/1.1\r\nhost: t\r\n\r\n").await.expect("write");
    // Never read: the socket buffers fill, the server's writes stall, and it gives up.
    tokio::time::timeout(STEP, async {
        while !dropped.load(Ordering::SeqCst) {
            notify.notified().await;
        }
    })
    .await
    .expect("the server dropped the stalled response");
}

#[tokio::test]
async fn stopping_lets_an_in_flight_request_finish_and_closes_idle_connections() {
    let (started, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let (s2, r2) = (started.clone(), release.clone());
    let slow = move || {
        let (started, release) = (s2.clone(), r2.clone());
        async move {
            started.notify_one();
            release.notified().await;
            "finished"
        }
    };
    // Long header timeout: an idle connection that closes does so because of the stop.
    let server = start(basic().route("/slow", get(slow)), short(60_000)).await;
    let mut idle = get_ok(server.addr).await;
    let url = format!("http://{}/slow", server.addr);
    let in_flight = tokio::spawn(async move { reqwest::get(url).await?.text().await });
    tokio::time::timeout(STEP, started.notified()).await.expect("the slow request started");

    server.stop.send(true).expect("the server listens to stop");
    closed(&mut idle).await;
    release.notify_one();
    let body = tokio::time::timeout(STEP, in_flight).await.expect("answered").expect("joined").expect("a response");
    assert_eq!(body, "finished");
    tokio::time::timeout(STEP, server.task).await.expect("serve returns").expect("serve did not panic");
    assert!(TcpStream::connect(server.addr).await.is_err(), "the listener is closed");
}
