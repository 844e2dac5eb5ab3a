//! A typed async client for belfry's HTTP API (DESIGN.md, "HTTP API"), used by the CLI, the
//! tests and the benchmark.
//!
//! Bodies are the serde types of [`belfry_core::api`], the same ones the server serializes, so
//! client and server cannot drift. Every call is one HTTP request to the configured endpoint;
//! any node answers (writes are forwarded to the leader by the server), except membership
//! removal, which the server wants sent to the leader (see [`Client::remove_member`]).
//!
//! Errors are typed by who is at fault ([`Error`]). Paging: the `list_*` calls return one page
//! and its cursor; the `*_all` calls follow cursors to the end.
//!
//! Authentication: [`Client::with_token`] sends `Authorization: Bearer <token>` on every
//! request (the CLI takes it from `BELFRY_TOKEN`); the token is marked sensitive, so it never
//! shows in `Debug` output.
//!
//! Left out: retries (a write that timed out has an unknown outcome; retrying it is the
//! caller's decision).

mod error;
pub mod receiver;

use std::time::Duration;

use belfry_core::api::{
    BatchCreated, ClusterView, DeadLetterResult, ExecutionList, ExecutionView, Instants, JobList, JobView, NewToken,
    PreviewRequest, TokenList, TokenRequest,
};
use belfry_core::{DeadLetterSelector, JobSpec, NodeId};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use error::Error;

/// The result of a client call.
pub type Result<T> = std::result::Result<T, Error>;

/// The largest page the server hands out; the `*_all` helpers ask for it.
pub const MAX_PAGE: usize = 500;
/// How long a request may take unless [`Client::with_timeout`] says otherwise. Trigger and
/// requeue wait up to 5 s on the server for the fire to apply; writes wait for a commit.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long establishing a connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A client bound to one node's base URL.
#[derive(Debug, Clone)]
pub struct Client {
    base: reqwest::Url,
    http: reqwest::Client,
    timeout: Duration,
    token: Option<reqwest::header::HeaderValue>,
}

/// Filters and paging of `GET /v1/jobs`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct JobQuery {
    /// Only paused (`true`) or only active (`false`) jobs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// Only jobs whose name starts with this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Only failing (`true`) or only healthy (`false`) jobs (docs/API.md, "Jobs").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing: Option<bool>,
    /// Page size, 1..=1000 (server default 100); a page holds at most 500.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// Filters and paging of `GET /v1/executions` and `GET /v1/dead-letters`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExecutionQuery {
    /// Only this job's fires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// Only fires in this status (`succeeded`, `dead_lettered`, ...); ignored by dead-letters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Page size, 1..=1000 (server default 100); a page holds at most 500.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// `POST /v1/jobs:batch` body.
#[derive(Serialize)]
struct JobBatch<'a> {
    jobs: &'a [JobSpec],
}

/// `POST /v1/cluster/members` body: a node to add as a learner, promoted to voter once caught up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewMember {
    /// Its raft id.
    pub id: NodeId,
    /// Its gRPC address, `host:port`, as the other nodes reach it.
    pub grpc_addr: String,
    /// Its HTTP address, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_addr: Option<String>,
}

/// The answer of `POST /v1/cluster/members`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberAdded {
    /// The new member's id.
    pub id: NodeId,
    /// Its gRPC address.
    pub grpc_addr: String,
}

/// `GET /readyz`: a text checklist, one `ok …` or `fail …` line per check. Not ready (503) is
/// an answer, not an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Readiness {
    /// 200: has a leader and is caught up.
    pub ready: bool,
    /// The HTTP status.
    pub status: u16,
    /// The checklist as the node wrote it.
    pub checklist: String,
}

fn http_client(timeout: Duration, roots: Option<Vec<reqwest::Certificate>>) -> reqwest::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(CONNECT_TIMEOUT.min(timeout))
        .user_agent(concat!("belfry-client/", env!("CARGO_PKG_VERSION")));
    for cert in roots.into_iter().flatten() {
        builder = builder.add_root_certificate(cert);
    }
    builder.build()
}

impl Client {
    /// A client for the node at `endpoint` (`http://host:port`; a bare `host:port` means http).
    pub fn new(endpoint: &str) -> Result<Client> {
        Client::with_timeout(endpoint, DEFAULT_TIMEOUT)
    }

    /// A client whose every request gives up after `timeout`.
    pub fn with_timeout(endpoint: &str, timeout: Duration) -> Result<Client> {
        let invalid = |reason: &str| Error::InvalidEndpoint { endpoint: endpoint.to_string(), reason: reason.into() };
        let with_scheme = if endpoint.contains("://") { endpoint.to_string() } else { format!("http://{endpoint}") };
        let mut base = reqwest::Url::parse(&with_scheme).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid("must be an http:// or https:// URL"));
        }
        if base.host_str().is_none_or(str::is_empty) {
            return Err(invalid("has no host"));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(invalid("must not have a query or fragment"));
        }
        // Paths are appended segment by segment; a trailing slash would add an empty one.
        let trimmed = base.path().trim_end_matches('/').to_string();
        base.set_path(&trimmed);
        let http = http_client(timeout, None).map_err(|e| invalid(&e.to_string()))?;
        Ok(Client { base, http, timeout, token: None })
    }

    /// The same client, trusting the CA certificates of the PEM `ca` for `https://`
    /// endpoints (besides the usual public roots); `None` changes nothing.
    pub fn with_ca_cert(mut self, ca: Option<&[u8]>) -> Result<Client> {
        let Some(pem) = ca else { return Ok(self) };
        let invalid = |reason: String| Error::InvalidEndpoint { endpoint: self.base.to_string(), reason };
        let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| invalid(format!("CA certificate: {e}")))?;
        if certs.is_empty() {
            return Err(invalid("CA certificate: no PEM certificate in it".into()));
        }
        self.http = http_client(self.timeout, Some(certs)).map_err(|e| invalid(e.to_string()))?;
        Ok(self)
    }

    /// The same client, sending `token` as `Authorization: Bearer` on every request (none when
    /// `None` or empty). A token that cannot be a header value is refused.
    pub fn with_token(mut self, token: Option<&str>) -> Result<Client> {
        self.token = match token.map(str::trim).filter(|t| !t.is_empty()) {
            None => None,
            Some(t) => {
                let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {t}")).map_err(|_| {
                    Error::InvalidEndpoint {
                        endpoint: self.base.to_string(),
                        reason: "the API token has characters a header cannot carry".into(),
                    }
                })?;
                value.set_sensitive(true);
                Some(value)
            }
        };
        Ok(self)
    }

    /// The base URL requests go to.
    pub fn endpoint(&self) -> &str {
        self.base.as_str()
    }

    // ---- jobs ----

    /// `POST /v1/jobs`: creates a job.
    pub async fn create_job(&self, spec: &JobSpec) -> Result<JobView> {
        self.json(self.request(Method::POST, &["v1", "jobs"]).json(spec)).await
    }

    /// `POST /v1/jobs:batch`: creates every job of `specs` (1 to
    /// [`belfry_core::command::MAX_BATCH_JOBS`], at most [`belfry_core::api::MAX_BATCH_BYTES`] as
    /// JSON) in one committed entry, or none. A refusal is an [`Error::Api`] whose `errors` name
    /// each refused spec by its index in `specs`.
    pub async fn create_jobs(&self, specs: &[JobSpec]) -> Result<BatchCreated> {
        self.json(self.request(Method::POST, &["v1", "jobs:batch"]).json(&JobBatch { jobs: specs })).await
    }

    /// `GET /v1/jobs/{name}`.
    pub async fn get_job(&self, name: &str) -> Result<JobView> {
        self.json(self.request(Method::GET, &["v1", "jobs", name])).await
    }

    /// `GET /v1/jobs`: one page of jobs in name order.
    pub async fn list_jobs(&self, query: &JobQuery) -> Result<JobList> {
        self.json(self.request(Method::GET, &["v1", "jobs"]).query(query)).await
    }

    /// Every job (following cursors), optionally only paused or only active ones.
    pub async fn list_all_jobs(&self, paused: Option<bool>) -> Result<JobList> {
        let mut query = JobQuery { paused, limit: Some(MAX_PAGE), ..JobQuery::default() };
        let mut all = JobList { jobs: Vec::new(), next_cursor: None, total: 0, matching: 0 };
        loop {
            let page = self.list_jobs(&query).await?;
            all.jobs.extend(page.jobs);
            (all.total, all.matching) = (page.total, page.matching);
            match self.advance(query.cursor.as_deref(), page.next_cursor, "/v1/jobs")? {
                Some(next) => query.cursor = Some(next),
                None => return Ok(all),
            }
        }
    }

    /// `PUT /v1/jobs/{name}`: replaces a job; with `if_version`, only if it is still at that
    /// version (409 `version_mismatch` otherwise).
    pub async fn replace_job(&self, spec: &JobSpec, if_version: Option<u64>) -> Result<JobView> {
        let mut request = self.request(Method::PUT, &["v1", "jobs", &spec.name]).json(spec);
        if let Some(v) = if_version {
            request = request.header(reqwest::header::IF_MATCH, v.to_string());
        }
        self.json(request).await
    }

    /// `DELETE /v1/jobs/{name}`; fires already in flight finish.
    pub async fn delete_job(&self, name: &str) -> Result<()> {
        self.empty(self.request(Method::DELETE, &["v1", "jobs", name])).await
    }

    /// `POST /v1/jobs/{name}/pause`.
    pub async fn pause_job(&self, name: &str) -> Result<JobView> {
        self.json(self.request(Method::POST, &["v1", "jobs", name, "pause"])).await
    }

    /// `POST /v1/jobs/{name}/resume`.
    pub async fn resume_job(&self, name: &str) -> Result<JobView> {
        self.json(self.request(Method::POST, &["v1", "jobs", name, "resume"])).await
    }

    /// `POST /v1/jobs/{name}/trigger`: fires now, with a key of its own; returns the fire.
    pub async fn trigger_job(&self, name: &str) -> Result<ExecutionView> {
        self.json(self.request(Method::POST, &["v1", "jobs", name, "trigger"])).await
    }

    /// `GET /v1/jobs/{name}/upcoming?count=`: the job's next fire instants.
    pub async fn upcoming(&self, name: &str, count: Option<usize>) -> Result<Instants> {
        let request = self.request(Method::GET, &["v1", "jobs", name, "upcoming"]);
        self.json(match count {
            Some(c) => request.query(&[("count", c)]),
            None => request,
        })
        .await
    }

    /// `POST /v1/schedule/preview`: instants of a schedule, no job needed.
    pub async fn preview(&self, request: &PreviewRequest) -> Result<Instants> {
        self.json(self.request(Method::POST, &["v1", "schedule", "preview"]).json(request)).await
    }

    // ---- executions and dead letters ----

    /// `GET /v1/executions`: one page of fires, newest first.
    pub async fn list_executions(&self, query: &ExecutionQuery) -> Result<ExecutionList> {
        self.json(self.request(Method::GET, &["v1", "executions"]).query(query)).await
    }

    /// Every fire matching `query` (its cursor is the starting point), following cursors.
    pub async fn list_all_executions(&self, query: &ExecutionQuery) -> Result<Vec<ExecutionView>> {
        self.all_fires(query, false).await
    }

    /// `GET /v1/executions/{key}`: one fire with every attempt.
    pub async fn get_execution(&self, key: &str) -> Result<ExecutionView> {
        self.json(self.request(Method::GET, &["v1", "executions", key])).await
    }

    /// `GET /v1/dead-letters`: one page of dead-lettered fires, newest first.
    pub async fn list_dead_letters(&self, query: &ExecutionQuery) -> Result<ExecutionList> {
        self.json(self.request(Method::GET, &["v1", "dead-letters"]).query(query)).await
    }

    /// Every dead-lettered fire matching `query`, following cursors.
    pub async fn list_all_dead_letters(&self, query: &ExecutionQuery) -> Result<Vec<ExecutionView>> {
        self.all_fires(query, true).await
    }

    /// `POST /v1/dead-letters/{key}/requeue`: delivers a dead letter again, same key.
    pub async fn requeue(&self, key: &str) -> Result<ExecutionView> {
        self.json(self.request(Method::POST, &["v1", "dead-letters", key, "requeue"])).await
    }

    /// `POST /v1/dead-letters/requeue`: requeues the selected dead letters (each keeps its key),
    /// all or none.
    pub async fn requeue_dead_letters(&self, select: &DeadLetterSelector) -> Result<DeadLetterResult> {
        self.json(self.request(Method::POST, &["v1", "dead-letters", "requeue"]).json(select)).await
    }

    /// `POST /v1/dead-letters/purge`: forgets the selected dead letters, all or none.
    pub async fn purge_dead_letters(&self, select: &DeadLetterSelector) -> Result<DeadLetterResult> {
        self.json(self.request(Method::POST, &["v1", "dead-letters", "purge"]).json(select)).await
    }

    /// `DELETE /v1/dead-letters/{key}`: forgets one dead letter.
    pub async fn purge_dead_letter(&self, key: &str) -> Result<()> {
        self.empty(self.request(Method::DELETE, &["v1", "dead-letters", key])).await
    }

    // ---- cluster ----

    /// `GET /v1/cluster`: the answering node's view, with every member probed.
    pub async fn cluster(&self) -> Result<ClusterView> {
        self.json(self.request(Method::GET, &["v1", "cluster"])).await
    }

    /// `POST /v1/cluster/members`: adds a learner, promoted to voter once caught up.
    pub async fn add_member(&self, member: &NewMember) -> Result<MemberAdded> {
        self.json(self.request(Method::POST, &["v1", "cluster", "members"]).json(member)).await
    }

    /// `DELETE /v1/cluster/members/{id}`, with `force=true` when asked. The server answers
    /// 503 `not_leader` unless this client's endpoint is the leader.
    pub async fn remove_member(&self, id: NodeId, force: bool) -> Result<()> {
        let request = self.request(Method::DELETE, &["v1", "cluster", "members", &id.to_string()]);
        self.empty(if force { request.query(&[("force", "true")]) } else { request }).await
    }

    /// `POST /v1/cluster/transfer-leadership` `{"to": id}`: the view after the transfer.
    pub async fn transfer_leadership(&self, to: NodeId) -> Result<ClusterView> {
        let body = serde_json::json!({ "to": to });
        self.json(self.request(Method::POST, &["v1", "cluster", "transfer-leadership"]).json(&body)).await
    }

    // ---- tokens ----

    /// `POST /v1/tokens`: a new token; the answer is the only time its secret is shown.
    pub async fn create_token(&self, request: &TokenRequest) -> Result<NewToken> {
        self.json(self.request(Method::POST, &["v1", "tokens"]).json(request)).await
    }

    /// `GET /v1/tokens`: every replicated token (never secrets).
    pub async fn list_tokens(&self) -> Result<TokenList> {
        self.json(self.request(Method::GET, &["v1", "tokens"])).await
    }

    /// `DELETE /v1/tokens/{id}`: revokes a token.
    pub async fn revoke_token(&self, id: &str) -> Result<()> {
        self.empty(self.request(Method::DELETE, &["v1", "tokens", id])).await
    }

    /// `GET /healthz`: the liveness answer's text.
    pub async fn healthz(&self) -> Result<String> {
        self.text(self.request(Method::GET, &["healthz"])).await
    }

    /// `GET /readyz`: the readiness checklist; 503 is "not ready", not an error.
    pub async fn readyz(&self) -> Result<Readiness> {
        let (url, response) = self.send(self.request(Method::GET, &["readyz"])).await?;
        let status = response.status();
        if status != StatusCode::OK && status != StatusCode::SERVICE_UNAVAILABLE {
            return Err(error_answer(&url, response).await);
        }
        let checklist = response.text().await.map_err(|e| Error::transport(&url, e))?;
        Ok(Readiness { ready: status == StatusCode::OK, status: status.as_u16(), checklist })
    }

    /// `GET /metrics`: Prometheus text.
    pub async fn metrics(&self) -> Result<String> {
        self.text(self.request(Method::GET, &["metrics"])).await
    }

    // ---- plumbing ----

    fn request(&self, method: Method, segments: &[&str]) -> RequestBuilder {
        let mut url = self.base.clone();
        // Percent-encodes each segment: a name or key with `/` or `?` stays one segment.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        let request = self.http.request(method, url);
        match &self.token {
            Some(token) => request.header(reqwest::header::AUTHORIZATION, token.clone()),
            None => request,
        }
    }

    async fn send(&self, request: RequestBuilder) -> Result<(String, reqwest::Response)> {
        let (client, request) = request.build_split();
        let request = request.map_err(|e| Error::transport(self.base.as_str(), e))?;
        let url = request.url().to_string();
        let response = client.execute(request).await.map_err(|e| Error::transport(&url, e))?;
        Ok((url, response))
    }

    async fn checked(&self, request: RequestBuilder) -> Result<(String, reqwest::Response)> {
        let (url, response) = self.send(request).await?;
        if response.status().is_success() {
            Ok((url, response))
        } else {
            Err(error_answer(&url, response).await)
        }
    }

    async fn json<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T> {
        let (url, response) = self.checked(request).await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| Error::transport(&url, e))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Unexpected {
            url,
            status: Some(status),
            reason: format!("body does not decode: {e}"),
        })
    }

    async fn text(&self, request: RequestBuilder) -> Result<String> {
        let (url, response) = self.checked(request).await?;
        response.text().await.map_err(|e| Error::transport(&url, e))
    }

    async fn empty(&self, request: RequestBuilder) -> Result<()> {
        self.checked(request).await.map(drop)
    }

    async fn all_fires(&self, query: &ExecutionQuery, dead_letters: bool) -> Result<Vec<ExecutionView>> {
        let mut query = ExecutionQuery { limit: Some(MAX_PAGE), ..query.clone() };
        let mut fires = Vec::new();
        loop {
            let list =
                if dead_letters { self.list_dead_letters(&query).await? } else { self.list_executions(&query).await? };
            fires.extend(list.executions);
            match self.advance(query.cursor.as_deref(), list.next_cursor, "/v1/executions")? {
                Some(next) => query.cursor = Some(next),
                None => return Ok(fires),
            }
        }
    }

    /// The cursor of the next page, refusing one that does not move (which would loop forever).
    fn advance(&self, current: Option<&str>, next: Option<String>, path: &str) -> Result<Option<String>> {
        match next {
            Some(n) if Some(n.as_str()) == current => Err(Error::Unexpected {
                url: format!("{}{path}", self.base.as_str().trim_end_matches('/')),
                status: None,
                reason: format!("the server returned the same cursor {n:?} twice"),
            }),
            other => Ok(other),
        }
    }
}

/// Longest body excerpt quoted in an [`Error::Unexpected`].
const EXCERPT: usize = 200;

/// The error for a non-success answer: belfry's error body when it has one.
async fn error_answer(url: &str, response: reqwest::Response) -> Error {
    let status = response.status();
    let body = match response.bytes().await {
        Ok(b) => b,
        Err(e) => return Error::transport(url, e),
    };
    match serde_json::from_slice::<belfry_core::api::ErrorBody>(&body) {
        Ok(b) => Error::Api {
            status: status.as_u16(),
            code: b.error.code,
            message: b.error.message,
            field: b.error.field,
            errors: b.errors,
        },
        Err(_) => {
            let text = String::from_utf8_lossy(&body);
            let excerpt: String = text.trim().chars().take(EXCERPT).collect();
            let reason =
                if excerpt.is_empty() { format!("HTTP {status}") } else { format!("HTTP {status}: {excerpt}") };
            Error::Unexpected { url: url.to_string(), status: Some(status.as_u16()), reason: reason.replace('\n', " ") }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_without_a_scheme_mean_http_and_lose_a_trailing_slash() {
        let c = Client::new("127.0.0.1:7101").unwrap();
        assert_eq!(c.endpoint(), "http://127.0.0.1:7101/");
        let c = Client::new("https://belfry.example/api/").unwrap();
        let url = c.request(Method::GET, &["v1", "jobs", "a/b"]).build().unwrap().url().to_string();
        assert_eq!(url, "https://belfry.example/api/v1/jobs/a%2Fb");
    }

    #[test]
    fn a_token_goes_on_every_request_and_stays_out_of_debug_output() {
        let c = Client::new("127.0.0.1:7101").unwrap().with_token(Some("bf_abc_secret")).unwrap();
        let request = c.request(Method::GET, &["v1", "jobs"]).build().unwrap();
        assert_eq!(request.headers()[reqwest::header::AUTHORIZATION], "Bearer bf_abc_secret");
        assert!(!format!("{c:?}").contains("secret"), "{c:?}");
        let none = Client::new("127.0.0.1:7101").unwrap().with_token(Some("  ")).unwrap();
        assert!(none.request(Method::GET, &["v1"]).build().unwrap().headers().get("authorization").is_none());
        assert!(Client::new("127.0.0.1:7101").unwrap().with_token(Some("a\nb")).is_err());
    }

    #[test]
    fn the_batch_route_keeps_its_colon() {
        let c = Client::new("127.0.0.1:7101").unwrap();
        let url = c.request(Method::POST, &["v1", "jobs:batch"]).build().unwrap().url().to_string();
        assert_eq!(url, "http://127.0.0.1:7101/v1/jobs:batch");
    }

    #[test]
    fn endpoints_that_are_not_http_urls_are_refused() {
        for bad in ["ftp://x:1", "http://", "http://h:1/?q=1"] {
            assert!(matches!(Client::new(bad), Err(Error::InvalidEndpoint { .. })), "{bad} was accepted");
        }
    }
}
