//! The HTTP/1.1 server: an accept loop over hyper with belfry's limits, so that no client,
//! slow or hostile, holds a connection or memory without bound.
//!
//! - At most `max_connections` connections are open at once. The loop takes a slot before it
//!   accepts, so connections beyond the limit wait in the kernel's listen backlog and are
//!   served as slots free up (the same backpressure as mini-redis); none is refused. Every
//!   connection frees its slot within a bounded time: the timeouts below.
//! - `header_read`: from the moment a connection is ready for a request (accepted, or its
//!   previous response written) to the end of the request head. hyper runs one timer for
//!   both, so it is also the keep-alive idle timeout. On expiry hyper closes the connection
//!   without an answer (there is no request to answer).
//! - `body_read`: the whole request body, from the end of the head (`edge::read_body`: 408).
//! - `write_stall`: a response write that makes no progress (`stall::StallGuard`).
//! - Request head limits: belfry's (`max_uri_bytes`, `max_headers`, `max_header_bytes`)
//!   answer 414 or 431 in the error shape (`edge::check_head`). hyper's own limits are set
//!   above them (see [`HttpLimits::hyper_head_bytes`]) only to bound its read buffer; a head
//!   beyond those gets hyper's bare 431, and a request hyper cannot parse at all its bare
//!   400: both come from hyper before any belfry code runs.
//!
//! Only HTTP/1.1 (and 1.0) is served; the API has no use for h2c. With TLS on, every connection
//! is TLS: the handshake must finish within `header_read`.
//!
//! Every request carries its peer address (`ConnectInfo`), and every response, the edge
//! layers' own included, the headers of `browser::security_headers`.
//!
//! Shutdown: when `stop` turns true the listener closes, every connection is told to finish
//! (an idle one closes at once, one with a request in flight once its response is written)
//! and [`serve`] returns when the last one has.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::middleware;
use axum::Router;
use hyper::service::Service as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use super::edge;
use super::stall::StallGuard;
use super::tls::HttpTls;

/// Longest any configured timeout is taken to be: beyond it, deadline arithmetic could
/// overflow, and no client needs a day.
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// The limits of the HTTP edge, in one place (defaults in [`HttpLimits::default`]).
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Time to receive a request head, counted from when the connection is ready for one
    /// (so also the keep-alive idle timeout). Default 10 s: a real client sends its head in
    /// one write; 10 s covers a slow mobile link and keeps a slot held by a silent client short.
    pub header_read: Duration,
    /// Time to receive the whole request body after the head. Default 30 s: 256 KiB in 30 s
    /// is under 9 KiB/s, slower than any client that means it (a 16 MiB batch create, about
    /// 550 KiB/s).
    pub body_read: Duration,
    /// Time a response write may make no progress. Default 30 s, as for the body.
    pub write_stall: Duration,
    /// Open connections at most. Default 1024: far above what the CLI, a UI and a few
    /// services need, and within a default `ulimit -n` with room for raft and deliveries.
    pub max_connections: u32,
    /// Longest request target (path and query), in bytes. Default 8 KiB, the common
    /// proxy limit: job names are at most 128 bytes and cursors are short.
    pub max_uri_bytes: usize,
    /// Most header fields in a request. Default 100 (hyper's own default count).
    pub max_headers: usize,
    /// Most bytes of header names and values together. Default 32 KiB: an `Authorization`
    /// token and the usual headers fit many times over.
    pub max_header_bytes: usize,
    /// Largest request body (413 beyond). Default [`super::MAX_REQUEST_BYTES`] (256 KiB): a
    /// job spec holds at most a 64 KiB target body.
    pub max_body_bytes: usize,
    /// Largest body of a batch create (`POST` [`super::BATCH_PATH`]). Default
    /// [`belfry_core::api::MAX_BATCH_BYTES`] (16 MiB): 1000 specs of 16 KiB.
    pub max_batch_body_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> HttpLimits {
        HttpLimits {
            header_read: Duration::from_secs(10),
            body_read: Duration::from_secs(30),
            write_stall: Duration::from_secs(30),
            max_connections: 1024,
            max_uri_bytes: 8 * 1024,
            max_headers: 100,
            max_header_bytes: 32 * 1024,
            max_body_bytes: super::MAX_REQUEST_BYTES,
            max_batch_body_bytes: belfry_core::api::MAX_BATCH_BYTES,
        }
    }
}

impl HttpLimits {
    /// hyper's limit on a whole request head (request line and headers): twice belfry's URI
    /// and header limits plus the framing of every field hyper accepts, so a head well past
    /// belfry's limits (a 20 KiB path, 200 headers of 300 bytes) still reaches belfry's check
    /// and gets its shaped answer. It bounds what a connection can make hyper buffer for one
    /// head (about 100 KiB by default, against hyper's own default of about 400 KiB).
    pub fn hyper_head_bytes(&self) -> usize {
        let framing = self.hyper_max_headers().saturating_mul(4);
        self.max_uri_bytes.saturating_add(self.max_header_bytes).saturating_mul(2).saturating_add(framing + 4096)
    }

    /// The body limit of a request to `method` `path`: the batch route's own, or the general one.
    /// By the raw path, as the router matches it.
    pub fn body_limit(&self, method: &axum::http::Method, path: &str) -> usize {
        if method == axum::http::Method::POST && path == super::BATCH_PATH {
            self.max_batch_body_bytes
        } else {
            self.max_body_bytes
        }
    }

    /// hyper's limit on header fields: four times belfry's, for the same reason (a field
    /// costs hyper a few words while it parses).
    pub fn hyper_max_headers(&self) -> usize {
        self.max_headers.saturating_mul(4)
    }
}

/// An instant `d` from now, saturating at [`MAX_TIMEOUT`].
pub(crate) fn deadline_after(d: Duration) -> tokio::time::Instant {
    tokio::time::Instant::now() + d.min(MAX_TIMEOUT)
}

/// Serves `router` on `listener` with `limits` (over TLS with `tls`) until `stop` turns true
/// (or its sender is dropped), then lets every open connection finish and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    tls: Option<HttpTls>,
    mut stop: watch::Receiver<bool>,
) {
    let app = router
        .layer(middleware::from_fn_with_state(limits.clone(), edge::read_body))
        .layer(middleware::from_fn_with_state(limits.clone(), edge::check_head))
        .layer(middleware::from_fn(edge::catch_panic))
        .layer(middleware::from_fn(super::browser::security_headers));
    let slots = limits.max_connections.max(1);
    let permits = Arc::new(Semaphore::new(slots as usize));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read.min(MAX_TIMEOUT))
        .max_headers(limits.hyper_max_headers())
        .max_header_size(limits.hyper_head_bytes())
        .max_buf_size(limits.hyper_head_bytes().saturating_add(16 * 1024).max(8192));
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = stopped(&mut stop) => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        let (http, app, limits, stop) = (http.clone(), app.clone(), limits.clone(), stop.clone());
        let _ = stream.set_nodelay(true);
        match &tls {
            None => drop(tokio::spawn(connection(stream, peer, permit, http, app, limits, stop))),
            Some(tls) => {
                let acceptor = tls.acceptor();
                tokio::spawn(async move {
                    // The handshake counts against the head timeout: a client that opens a
                    // connection and says nothing holds its slot no longer over TLS.
                    let handshake = tokio::time::timeout(limits.header_read.min(MAX_TIMEOUT), acceptor.accept(stream));
                    match handshake.await {
                        Ok(Ok(stream)) => connection(stream, peer, permit, http, app, limits, stop).await,
                        Ok(Err(e)) => tracing::debug!(error = %e, %peer, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
    drop(listener);
    // Every connection holds a slot until it ends: all slots back means all are done.
    let _ = permits.acquire_many(slots).await;
}

async fn connection<S>(
    stream: S,
    peer: SocketAddr,
    _slot: OwnedSemaphorePermit,
    http: hyper::server::conn::http1::Builder,
    app: Router,
    limits: HttpLimits,
    mut stop: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let io = StallGuard::new(TokioIo::new(stream), limits.write_stall);
    // Every request learns its peer address (the rate limits of `auth` key on it).
    let app = TowerToHyperService::new(app);
    let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        app.call(req)
    });
    let conn = http.serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        // Clients that go away, time out or send garbage end here; none of it is the node's
        // fault, so it is not worth more than a debug line.
        tracing::debug!(error = %e, "HTTP connection ended with an error");
    }
}

/// Returns once `stop` is true or its sender is gone (the node is stopping either way).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Waits out an accept error that is about this process (descriptors exhausted, memory)
/// rather than one connection, so the loop does not spin on it.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(e.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    tracing::warn!(error = %e, "accepting an HTTP connection failed; pausing accepts for 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
