//! API tokens, roles, browser safety and limits through the HTTP API of an in-process one-node
//! cluster: every route for every role (and for no token), bad and revoked tokens, what writes
//! record, cross-site requests, the security headers, rate limits, the job cap and page caps.

mod support;

use std::time::Duration;

use belfry_core::api::{ErrorBody, JobList, JobView, NewToken, TokenList};
use belfry_core::Role;
use belfry_node::config::Config;
use belfry_node::http::{Access, ApiAuth, BootstrapToken, RateLimit, ROUTES};
use belfry_node::node::Node;
use futures::StreamExt as _;
use reqwest::{Method, StatusCode};
use serde_json::json;
use support::{free_addr, wait_for};

const BOOTSTRAP: &str = "bootstrap-token-for-the-auth-tests";

/// A ready one-node cluster with authentication on.
struct Secured {
    _node: Node,
    url: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Secured {
    async fn start(adjust: impl FnOnce(&mut Config)) -> Secured {
        let dir = tempfile::tempdir().expect("temp dir");
        let (http_addr, grpc_addr) = (free_addr(), free_addr());
        let mut config = Config::new(1, http_addr, grpc_addr, dir.path().join("1"));
        config.initial_cluster = vec![(1, grpc_addr.to_string())];
        config.auth = ApiAuth::Tokens { bootstrap: BootstrapToken::new(BOOTSTRAP).expect("a valid token") };
        adjust(&mut config);
        let node = Node::start(config).await.expect("the node starts");
        let s =
            Secured { url: format!("http://{}", node.http_addr), _node: node, http: reqwest::Client::new(), _dir: dir };
        let ready = format!("{}/readyz", s.url);
        wait_for(Duration::from_secs(20), "the node to be ready", || async {
            s.http.get(&ready).send().await.ok().filter(|r| r.status().is_success())
        })
        .await;
        s
    }

    fn request(&self, method: Method, path: &str, token: Option<&str>) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.url));
        match token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    async fn token(&self, role: &str, name: &str) -> NewToken {
        let r = self.request(Method::POST, "/v1/tokens", Some(BOOTSTRAP)).json(&json!({"role": role, "name": name}));
        let r = r.send().await.expect("create a token");
        assert_eq!(r.status(), 201, "creating a {role} token");
        r.json().await.expect("a new token")
    }

    /// A paused job aimed at a public address: it never fires, so nothing is ever sent.
    async fn create_job(&self, name: &str, token: &str, body_bytes: usize) -> reqwest::Response {
        let spec = json!({
            "name": name, "schedule": {"every": "1h"}, "paused": true,
            "target": {"url": "http://8.8.8.8:9/never", "body": "x".repeat(body_bytes)},
        });
        self.request(Method::POST, "/v1/jobs", Some(token)).json(&spec).send().await.expect("create a job")
    }
}

async fn error_of(r: reqwest::Response) -> (StatusCode, ErrorBody) {
    let status = r.status();
    let text = r.text().await.expect("a body");
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status}: not the error shape ({e}): {text}"));
    (status, body)
}

/// Who may call what, as docs/SECURITY.md ("Roles") promises it: `None` is open to anyone
/// (`/metrics` only while `--metrics-auth` is off).
const EXPECTED: &[(&str, &str, Option<Role>)] = &[
    ("POST", "/v1/jobs", Some(Role::Editor)),
    ("POST", "/v1/jobs:batch", Some(Role::Editor)),
    ("GET", "/v1/jobs", Some(Role::Viewer)),
    ("GET", "/v1/jobs/{name}", Some(Role::Viewer)),
    ("PUT", "/v1/jobs/{name}", Some(Role::Editor)),
    ("DELETE", "/v1/jobs/{name}", Some(Role::Editor)),
    ("POST", "/v1/jobs/{name}/pause", Some(Role::Editor)),
    ("POST", "/v1/jobs/{name}/resume", Some(Role::Editor)),
    ("POST", "/v1/jobs/{name}/trigger", Some(Role::Editor)),
    ("GET", "/v1/jobs/{name}/upcoming", Some(Role::Viewer)),
    ("POST", "/v1/schedule/preview", Some(Role::Editor)),
    ("GET", "/v1/executions", Some(Role::Viewer)),
    ("GET", "/v1/executions/{key}", Some(Role::Viewer)),
    ("GET", "/v1/dead-letters", Some(Role::Viewer)),
    ("GET", "/v1/stats", Some(Role::Viewer)),
    ("POST", "/v1/dead-letters/requeue", Some(Role::Editor)),
    ("POST", "/v1/dead-letters/purge", Some(Role::Editor)),
    ("DELETE", "/v1/dead-letters/{key}", Some(Role::Editor)),
    ("POST", "/v1/dead-letters/{key}/requeue", Some(Role::Editor)),
    ("GET", "/v1/cluster", Some(Role::Viewer)),
    ("POST", "/v1/cluster/members", Some(Role::Operator)),
    ("DELETE", "/v1/cluster/members/{id}", Some(Role::Operator)),
    ("POST", "/v1/cluster/transfer-leadership", Some(Role::Operator)),
    ("GET", "/v1/backup", Some(Role::Operator)),
    ("POST", "/v1/tokens", Some(Role::Admin)),
    ("GET", "/v1/tokens", Some(Role::Admin)),
    ("DELETE", "/v1/tokens/{id}", Some(Role::Admin)),
    ("GET", "/healthz", None),
    ("GET", "/readyz", None),
    ("GET", "/metrics", None),
    ("GET", "/v1/openapi.json", None),
    ("GET", "/", None),
    ("GET", "/jobs/{name}", None),
    ("GET", "/jobs/{name}/edit", None),
    ("GET", "/new-job", None),
    ("GET", "/executions/{key}", None),
    ("GET", "/dead-letters", None),
    ("GET", "/cluster", None),
    ("GET", "/console/{file}", None),
];

#[test]
fn the_route_table_is_the_documented_policy() {
    let table: Vec<(&str, &str, Option<Role>)> = ROUTES
        .iter()
        .map(|r| {
            let least = match r.access {
                Access::Least(role) => Some(role),
                Access::Open | Access::Metrics => None,
            };
            (r.method.as_str(), r.path, least)
        })
        .collect();
    for entry in &table {
        assert!(EXPECTED.contains(entry), "route {entry:?} is not in the documented policy (docs/SECURITY.md)");
    }
    for entry in EXPECTED {
        assert!(table.contains(entry), "the documented {entry:?} is not what the router serves");
    }
}

/// A concrete path for a route template; the names match nothing, so no call changes state.
fn concrete(template: &str) -> String {
    template
        .replace("/v1/tokens/{id}", "/v1/tokens/nosuchtoken0")
        .replace("{id}", "99")
        .replace("{name}", "nosuch")
        .replace("{key}", "nosuch")
        .replace("{file}", "app.js")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_every_role_as_the_table_says() {
    let s = Secured::start(|_| {}).await;
    let mut tokens = vec![(None, None)];
    for role in Role::ALL {
        let t = s.token(role.as_str(), &format!("{role} token")).await;
        tokens.push((Some(role), Some(t.token)));
    }
    for route in ROUTES {
        let path = concrete(route.path);
        for (role, token) in &tokens {
            let mut request = s.request(route.method.clone(), &path, token.as_deref());
            if route.method != Method::GET {
                // No node 99 exists: a transfer to it is refused at once.
                let body = if path.ends_with("transfer-leadership") { json!({"to": 99}) } else { json!({}) };
                request = request.json(&body);
            }
            let r = request.timeout(Duration::from_secs(30)).send().await.expect("an answer");
            let what = format!("{} {} as {role:?}", route.method, route.path);
            let status = r.status();
            let least = EXPECTED.iter().find(|e| (e.0, e.1) == (route.method.as_str(), route.path)).map(|e| e.2);
            let allowed = match least.expect("every route is in EXPECTED") {
                None => true,
                Some(least) => role.is_some_and(|r| r >= least),
            };
            if allowed {
                assert!(![401, 403, 405].contains(&status.as_u16()), "{what}: {status}");
                if status == 404 {
                    let (_, body) = error_of(r).await;
                    assert_ne!(body.error.message, "no such route", "{what}: the route does not exist");
                }
                continue;
            }
            let (status, body) = error_of(r).await;
            match role {
                None => assert_eq!((status.as_u16(), body.error.code.as_str()), (401, "unauthenticated"), "{what}"),
                Some(role) => {
                    assert_eq!((status.as_u16(), body.error.code.as_str()), (403, "forbidden"), "{what}");
                    assert!(body.error.message.contains(role.as_str()), "{what}: {}", body.error.message);
                }
            }
        }
    }
    // Paths and methods the table does not know are 404 and 405, but only to a token.
    let viewer = tokens[1].1.as_deref();
    assert_eq!(s.request(Method::GET, "/v1/nope", None).send().await.unwrap().status(), 401);
    assert_eq!(s.request(Method::GET, "/v1/nope", viewer).send().await.unwrap().status(), 404);
    assert_eq!(s.request(Method::PATCH, "/v1/jobs", None).send().await.unwrap().status(), 401);
    assert_eq!(s.request(Method::PATCH, "/v1/jobs", viewer).send().await.unwrap().status(), 405);
    assert_eq!(s.request(Method::HEAD, "/v1/jobs", None).send().await.unwrap().status(), 401, "HEAD is GET");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_bad_unknown_and_revoked_tokens_get_one_and_the_same_401() {
    let s = Secured::start(|_| {}).await;
    let editor = s.token("editor", "ci").await;
    let (id, secret) = (editor.view.id.clone(), editor.token.rsplit_once('_').unwrap().1.to_string());
    let wrong_secret = format!("bf_{id}_{}", "0".repeat(secret.len()));
    let unknown_id = format!("bf_zzzzzzzzzzzz_{secret}");
    let ok = s.request(Method::GET, "/v1/jobs", Some(&editor.token)).send().await.unwrap();
    assert_eq!(ok.status(), 200, "the token works before it is revoked");
    let r = s.request(Method::DELETE, &format!("/v1/tokens/{id}"), Some(BOOTSTRAP)).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let mut answers = Vec::new();
    for auth in [
        None,
        Some("Bearer".to_string()),
        Some("Basic dXNlcjpwYXNz".to_string()),
        Some("Bearer not-a-token".to_string()),
        Some(format!("Bearer {wrong_secret}")),
        Some(format!("Bearer {unknown_id}")),
        Some(format!("Bearer {}", editor.token)),
        Some(format!("Bearer {BOOTSTRAP}x")),
    ] {
        let mut request = s.http.get(format!("{}/v1/jobs", s.url));
        if let Some(a) = &auth {
            request = request.header("authorization", a);
        }
        let r = request.send().await.unwrap();
        assert_eq!(r.headers().get("www-authenticate").map(|v| v.to_str().unwrap()), Some("Bearer"), "{auth:?}");
        let (status, body) = error_of(r).await;
        assert_eq!(status, 401, "{auth:?}");
        answers.push(body);
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "every 401 is the same: {answers:?}");
    assert!(!answers[0].error.message.contains(&id), "nothing about which token was tried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_listed_without_secrets_and_the_bootstrap_token_is_not_revocable() {
    let s = Secured::start(|_| {}).await;
    let viewer = s.token("viewer", "grafana").await;
    assert!(viewer.token.starts_with(&format!("bf_{}_", viewer.view.id)), "{}", viewer.token);
    assert_eq!((viewer.view.role, viewer.view.created_by.as_deref()), (Role::Viewer, Some("bootstrap")));
    let r = s.request(Method::GET, "/v1/tokens", Some(BOOTSTRAP)).send().await.unwrap();
    let text = r.text().await.unwrap();
    let secret = viewer.token.rsplit_once('_').unwrap().1;
    assert!(!text.contains(secret) && !text.contains("sha256"), "{text}");
    let list: TokenList = serde_json::from_str(&text).unwrap();
    assert_eq!(list.tokens, vec![viewer.view.clone()]);
    let (status, body) =
        error_of(s.request(Method::DELETE, "/v1/tokens/bootstrap", Some(BOOTSTRAP)).send().await.unwrap()).await;
    assert_eq!((status.as_u16(), body.error.field.as_deref()), (400, Some("id")), "{body:?}");
    let bad = json!({"role": "root", "name": "x"});
    let (status, body) =
        error_of(s.request(Method::POST, "/v1/tokens", Some(BOOTSTRAP)).json(&bad).send().await.unwrap()).await;
    assert_eq!((status.as_u16(), body.error.field.as_deref()), (400, Some("role")), "{body:?}");
    let blank = json!({"role": "viewer", "name": " "});
    let (status, body) =
        error_of(s.request(Method::POST, "/v1/tokens", Some(BOOTSTRAP)).json(&blank).send().await.unwrap()).await;
    assert_eq!((status.as_u16(), body.error.field.as_deref()), (400, Some("name")), "{body:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_record_the_token_that_made_them() {
    let s = Secured::start(|_| {}).await;
    let editor = s.token("editor", "ci").await;
    let created: JobView = s.create_job("audited", &editor.token, 0).await.json().await.unwrap();
    assert_eq!(
        (created.created_by.as_deref(), created.updated_by.as_deref()),
        (Some(&*editor.view.id), Some(&*editor.view.id))
    );
    let replaced = json!({
        "name": "audited", "schedule": {"every": "2h"}, "paused": true, "target": {"url": "http://8.8.8.8:9/never"},
    });
    let r = s.request(Method::PUT, "/v1/jobs/audited", Some(BOOTSTRAP)).json(&replaced).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let job: JobView =
        s.request(Method::GET, "/v1/jobs/audited", Some(&editor.token)).send().await.unwrap().json().await.unwrap();
    assert_eq!((job.created_by.as_deref(), job.updated_by.as_deref()), (Some(&*editor.view.id), Some("bootstrap")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_from_other_sites_and_bodies_that_are_not_json_are_refused() {
    let s = Secured::start(|_| {}).await;
    let spec =
        json!({"name": "csrf", "schedule": {"every": "1h"}, "paused": true, "target": {"url": "http://8.8.8.8:9/x"}})
            .to_string();
    for content_type in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"] {
        let r = s
            .request(Method::POST, "/v1/jobs", Some(BOOTSTRAP))
            .header("content-type", content_type)
            .body(spec.clone());
        let (status, body) = error_of(r.send().await.unwrap()).await;
        assert_eq!((status.as_u16(), body.error.code.as_str()), (415, "unsupported_media_type"), "{content_type}");
    }
    let r = s.request(Method::POST, "/v1/jobs", Some(BOOTSTRAP)).body(spec.clone()).send().await.unwrap();
    assert_eq!(r.status(), 415, "a body without a Content-Type");
    let evil = s.request(Method::POST, "/v1/jobs", Some(BOOTSTRAP)).header("origin", "http://evil.example");
    let (status, body) = error_of(evil.json(&json!({})).send().await.unwrap()).await;
    assert_eq!((status.as_u16(), body.error.code.as_str()), (403, "forbidden"));
    assert!(body.error.message.contains("http://evil.example"), "{}", body.error.message);
    let jobs: JobList = s.request(Method::GET, "/v1/jobs", Some(BOOTSTRAP)).send().await.unwrap().json().await.unwrap();
    assert!(jobs.jobs.is_empty(), "nothing was created");
    // The node's own origin (the admin page), JSON with a charset, and an empty body pass.
    let own = s.request(Method::POST, "/v1/jobs", Some(BOOTSTRAP)).header("origin", &s.url);
    let r = own.header("content-type", "application/json; charset=utf-8").body(spec).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let r = s.request(Method::POST, "/v1/jobs/csrf/pause", Some(BOOTSTRAP)).send().await.unwrap();
    assert_eq!(r.status(), 200, "no body needs no Content-Type");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_authentication_off_other_sites_are_still_refused() {
    let h = support::Harness::start().await;
    let spec = json!({"name": "csrf", "schedule": {"every": "1h"}, "target": {"url": format!("{}/x", h.sink)}});
    let plain = h.http.post(format!("{}/v1/jobs", h.url)).header("content-type", "text/plain").body(spec.to_string());
    assert_eq!(plain.send().await.unwrap().status(), 415);
    let evil = h.http.post(format!("{}/v1/jobs", h.url)).header("origin", "http://evil.example").json(&spec);
    assert_eq!(evil.send().await.unwrap().status(), 403);
    let r = h.http.get(format!("{}/v1/jobs/csrf", h.url)).send().await.unwrap();
    assert_eq!(r.status(), 404, "nothing was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_the_security_headers() {
    let s = Secured::start(|_| {}).await;
    for (path, token, status) in [
        ("/v1/jobs", Some(BOOTSTRAP), 200),
        ("/v1/jobs", None, 401),
        ("/v1/nope", Some(BOOTSTRAP), 404),
        ("/healthz", None, 200),
        ("/", None, 200),
        ("/jobs/demo", None, 200),
        ("/console/app.js", None, 200),
    ] {
        let r = s.request(Method::GET, path, token).send().await.unwrap();
        assert_eq!(r.status(), status, "{path}");
        let h = r.headers();
        let header = |name: &str| h.get(name).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{path}");
        assert_eq!(header("cache-control"), "no-store", "{path}");
        let csp = header("content-security-policy");
        assert!(csp.starts_with("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        if path == "/" || path == "/jobs/demo" {
            // The console's pages: their own scripts and fetches to this node, nothing inline.
            assert!(csp.contains("script-src 'self';") && csp.contains("connect-src 'self'"), "{csp}");
            assert!(!csp.contains("unsafe") && csp.contains("form-action 'none'"), "{csp}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_the_rate_get_429_with_retry_after() {
    let s = Secured::start(|c| c.rate_limit = RateLimit::new(1, 3)).await;
    let viewer = s.token("viewer", "busy").await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let r = s.request(Method::GET, "/v1/jobs", Some(&viewer.token)).send().await.unwrap();
        if r.status() == 429 {
            let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=2).contains(&retry), "Retry-After {retry}");
            let (_, body) = error_of(r).await;
            assert_eq!(body.error.code, "rate_limited");
            statuses.push(429);
        } else {
            statuses.push(r.status().as_u16());
        }
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429], "a burst of 3, then the rate");
    let r = s.request(Method::GET, "/v1/jobs", Some(BOOTSTRAP)).send().await.unwrap();
    assert_eq!(r.status(), 200, "another token has its own bucket (the bootstrap token used one of 3)");
    // Without a valid token the client address pays: guesses stop at the burst.
    let guesses: Vec<u16> = futures::future::join_all(
        (0..5).map(|i| s.request(Method::GET, "/v1/jobs", Some(&format!("guess-{i}"))).send()),
    )
    .await
    .into_iter()
    .map(|r| r.unwrap().status().as_u16())
    .collect();
    assert_eq!(guesses.iter().filter(|s| **s == 401).count(), 3, "{guesses:?}");
    assert_eq!(guesses.iter().filter(|s| **s == 429).count(), 2, "{guesses:?}");
    let r = s.request(Method::GET, "/healthz", None).send().await.unwrap();
    assert_eq!(r.status(), 200, "open routes are not limited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_cap_and_metrics_auth_apply() {
    let s = Secured::start(|c| {
        c.max_jobs = 2;
        c.metrics_auth = true;
    })
    .await;
    for name in ["one", "two"] {
        assert_eq!(s.create_job(name, BOOTSTRAP, 0).await.status(), 201);
    }
    let (status, body) = error_of(s.create_job("three", BOOTSTRAP, 0).await).await;
    assert_eq!((status.as_u16(), body.error.code.as_str()), (409, "quota_exceeded"), "{body:?}");
    let r = s.request(Method::DELETE, "/v1/jobs/one", Some(BOOTSTRAP)).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(s.create_job("three", BOOTSTRAP, 0).await.status(), 201, "a delete makes room");
    assert_eq!(s.request(Method::GET, "/metrics", None).send().await.unwrap().status(), 401);
    let viewer = s.token("viewer", "prometheus").await;
    assert_eq!(s.request(Method::GET, "/metrics", Some(&viewer.token)).send().await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_stop_at_500_items_and_at_4_mib() {
    let s = Secured::start(|_| {}).await;
    // 520 small jobs, then 80 of 60 KiB: a page of all of them would be about 5 MiB.
    let creates = (0..600).map(|i| {
        let s = &s;
        async move {
            let bytes = if i >= 520 { 60 * 1024 } else { 0 };
            assert_eq!(s.create_job(&format!("j{i:03}"), BOOTSTRAP, bytes).await.status(), 201);
        }
    });
    futures::stream::iter(creates).buffer_unordered(16).collect::<Vec<()>>().await;
    let page = |cursor: Option<String>| {
        let mut path = "/v1/jobs?limit=1000".to_string();
        if let Some(c) = cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        s.request(Method::GET, &path, Some(BOOTSTRAP)).send()
    };
    let first = page(None).await.unwrap();
    let first: JobList = first.json().await.unwrap();
    assert_eq!(first.jobs.len(), 500, "a page holds at most 500 whatever the limit");
    assert_eq!(first.next_cursor.as_deref(), Some("j499"));
    let second = page(first.next_cursor).await.unwrap();
    let bytes = second.content_length().unwrap_or(0) as usize;
    let second: JobList = second.json().await.unwrap();
    assert!(second.jobs.len() < 100 && second.next_cursor.is_some(), "{} jobs", second.jobs.len());
    assert!(bytes <= belfry_node::http::MAX_PAGE_BYTES + 70 * 1024, "{bytes} bytes");
    let mut seen = 500 + second.jobs.len();
    let mut cursor = second.next_cursor;
    while let Some(c) = cursor {
        let next: JobList = page(Some(c)).await.unwrap().json().await.unwrap();
        seen += next.jobs.len();
        cursor = next.next_cursor;
    }
    assert_eq!(seen, 600, "following the cursors reaches every job once");
}
