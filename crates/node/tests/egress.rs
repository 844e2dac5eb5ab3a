//! The egress policy's decisions (every SSRF spelling of the findings, rules, this cluster's
//! API), the delivery client that applies them at send time (DNS, literal addresses,
//! redirects), and delivery signing with several keys and a reload.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use belfry_core::ResultClass;
use belfry_node::delivery::{self, parse_keys, Delivery, Signer};
use belfry_node::egress::{parse_rules, AddressClass, EgressPolicy, EgressSettings, Refusal};
use hmac::{Hmac, Mac};
use reqwest::Url;
use sha2::Sha256;

fn url(s: &str) -> Url {
    Url::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn policy(settings: EgressSettings) -> EgressPolicy {
    EgressPolicy::new(settings).expect("valid settings")
}

fn rules(list: &str) -> Vec<belfry_node::egress::TargetRule> {
    parse_rules(list).expect("valid rules")
}

#[test]
fn the_url_parser_turns_every_ipv4_spelling_into_dotted_form() {
    for (written, read) in [
        ("http://2130706433/", "127.0.0.1"),
        ("http://0x7f.1/", "127.0.0.1"),
        ("http://0177.0.0.1/", "127.0.0.1"),
        ("http://127.1/", "127.0.0.1"),
        ("http://0x7f000001/", "127.0.0.1"),
        ("http://%31%32%37.0.0.1/", "127.0.0.1"),
        ("http://127.0.0.1./", "127.0.0.1"),
        ("http://0/", "0.0.0.0"),
        ("http://2852039166/", "169.254.169.254"),
        ("http://[::ffff:169.254.169.254]/", "[::ffff:a9fe:a9fe]"),
    ] {
        assert_eq!(url(written).host_str(), Some(read), "{written}");
    }
}

/// What a refusal must be.
type Expected = Box<dyn Fn(&Refusal) -> bool>;

#[test]
fn every_ssrf_spelling_is_refused_by_default() {
    let p = EgressPolicy::default();
    let always = |class| move |r: &Refusal| matches!(r, Refusal::AlwaysRefused { class: c, .. } if *c == class);
    let private = |class| move |r: &Refusal| matches!(r, Refusal::Private { class: c, .. } if *c == class);
    let metadata_name = |r: &Refusal| matches!(r, Refusal::MetadataName(_));
    let cases: Vec<(&str, Expected)> = vec![
        ("http://169.254.169.254/latest/meta-data/", Box::new(always(AddressClass::Metadata))),
        ("http://[::ffff:169.254.169.254]/", Box::new(always(AddressClass::Metadata))),
        ("http://2852039166/", Box::new(always(AddressClass::Metadata))),
        ("http://[64:ff9b::a9fe:a9fe]/", Box::new(always(AddressClass::Metadata))),
        ("http://[fd00:ec2::254]/", Box::new(always(AddressClass::Metadata))),
        ("http://100.100.100.200/", Box::new(always(AddressClass::Metadata))),
        ("http://169.254.1.1/", Box::new(always(AddressClass::LinkLocal))),
        ("http://[fe80::1]/", Box::new(always(AddressClass::LinkLocal))),
        ("http://[2002:a9fe:101::]/", Box::new(always(AddressClass::LinkLocal))),
        ("http://metadata.google.internal/computeMetadata/v1/", Box::new(metadata_name)),
        ("http://METADATA.google.internal./", Box::new(metadata_name)),
        ("http://metadata/", Box::new(metadata_name)),
        ("http://instance-data/latest/", Box::new(metadata_name)),
        ("http://0.0.0.0:7101/", Box::new(always(AddressClass::Unspecified))),
        ("http://0/", Box::new(always(AddressClass::Unspecified))),
        ("http://[::]/", Box::new(always(AddressClass::Unspecified))),
        ("http://[::ffff:0.0.0.0]/", Box::new(always(AddressClass::Unspecified))),
        ("http://224.0.0.1/", Box::new(always(AddressClass::Multicast))),
        ("http://[ff02::1]/", Box::new(always(AddressClass::Multicast))),
        ("http://255.255.255.255/", Box::new(always(AddressClass::Reserved))),
        ("http://127.0.0.1:2375/containers/json", Box::new(private(AddressClass::Loopback))),
        ("http://2130706433/", Box::new(private(AddressClass::Loopback))),
        ("http://0x7f.1/", Box::new(private(AddressClass::Loopback))),
        ("http://0177.0.0.1/", Box::new(private(AddressClass::Loopback))),
        ("http://[::1]/", Box::new(private(AddressClass::Loopback))),
        ("http://[::ffff:127.0.0.1]/", Box::new(private(AddressClass::Loopback))),
        ("http://[::127.0.0.1]/", Box::new(private(AddressClass::Loopback))),
        ("http://10.0.0.1/", Box::new(private(AddressClass::Private))),
        ("http://172.16.5.4/", Box::new(private(AddressClass::Private))),
        ("http://172.31.255.255/", Box::new(private(AddressClass::Private))),
        ("http://192.168.1.1/", Box::new(private(AddressClass::Private))),
        ("http://100.64.0.1/", Box::new(private(AddressClass::Private))),
        ("http://[fc00::1]/", Box::new(private(AddressClass::Private))),
        ("http://[fd12:3456::1]/", Box::new(private(AddressClass::Private))),
        ("ftp://example.com/", Box::new(|r: &Refusal| matches!(r, Refusal::Scheme(_)))),
        ("file:///etc/passwd", Box::new(|r: &Refusal| matches!(r, Refusal::Scheme(_)))),
    ];
    for (target, expected) in cases {
        match p.check_url(&url(target)) {
            Err(r) => assert!(expected(&r), "{target}: unexpected refusal {r:?}"),
            Ok(()) => panic!("{target} was admitted"),
        }
    }
    for public in ["http://93.184.215.14/", "https://example.com/hook", "http://172.32.0.1/", "http://[2606:4700::1]/"]
    {
        assert_eq!(p.check_url(&url(public)), Ok(()), "{public}");
    }
}

#[test]
fn refusals_name_the_flag_that_opens_them() {
    let p = EgressPolicy::default();
    let text = p.check_url(&url("http://10.1.2.3/")).unwrap_err().to_string();
    assert!(text.contains("--allow-private-targets") && text.contains("--allow-target"), "{text}");
    let text = p.check_url(&url("http://[::ffff:169.254.169.254]/")).unwrap_err().to_string();
    assert!(text.contains("169.254.169.254") && text.contains("always refused"), "{text}");
    let text = p.check_new_target(&url("http://localhost:8080/")).unwrap_err().to_string();
    assert!(text.contains("localhost") && text.contains("--allow-private-targets"), "{text}");
}

#[test]
fn private_targets_open_with_the_flag_and_metadata_stays_refused() {
    let p = EgressPolicy::allowing_private();
    for ok in ["http://10.0.0.1/", "http://127.0.0.1:2375/", "http://[::1]/", "http://0x7f.1/"] {
        assert_eq!(p.check_url(&url(ok)), Ok(()), "{ok}");
    }
    assert_eq!(p.check_new_target(&url("http://localhost:9/")), Ok(()));
    for refused in ["http://169.254.169.254/", "http://[::ffff:169.254.169.254]/", "http://metadata.google.internal/"] {
        assert!(p.check_url(&url(refused)).is_err(), "{refused}");
    }
}

#[test]
fn allow_rules_open_one_range_and_deny_rules_win() {
    let p = policy(EgressSettings {
        allow_targets: rules("10.1.0.0/16, hooks.internal, *.corp.example, 127.0.0.1:9000, 169.254.169.254"),
        deny_targets: rules("10.1.2.0/24, bad.corp.example"),
        ..EgressSettings::default()
    });
    assert_eq!(p.check_url(&url("http://10.1.7.7/")), Ok(()));
    assert!(matches!(p.check_url(&url("http://10.2.0.1/")), Err(Refusal::Private { .. })));
    assert!(matches!(p.check_url(&url("http://10.1.2.3/")), Err(Refusal::Denied { .. })), "deny wins");
    assert!(matches!(p.check_url(&url("http://[::ffff:10.1.2.3]/")), Err(Refusal::Denied { .. })));
    assert_eq!(p.check_url(&url("http://127.0.0.1:9000/")), Ok(()));
    assert!(matches!(p.check_url(&url("http://127.0.0.1:9001/")), Err(Refusal::Private { .. })), "port rule");
    assert!(matches!(p.check_url(&url("http://169.254.169.254/")), Err(Refusal::AlwaysRefused { .. })));
    // A name an allow rule names admits the private addresses it resolves to, and only it.
    assert_eq!(p.check_name("hooks.internal", 80), Ok(true));
    assert_eq!(p.check_ip("10.9.9.9".parse().expect("ip"), 80, true), Ok(()));
    assert_eq!(p.check_name("a.corp.example", 443), Ok(true));
    assert_eq!(p.check_name("other.example", 443), Ok(false));
    assert!(matches!(p.check_name("bad.corp.example", 443), Err(Refusal::Denied { .. })));
    assert!(p.check_ip("169.254.169.254".parse().expect("ip"), 80, true).is_err(), "a name never opens metadata");
}

#[test]
fn rule_lists_parse_and_a_bad_entry_names_itself() {
    assert_eq!(rules("10.0.0.0/8, fd00::/8,[::1]:80, hooks.internal:8080,*.corp.example, ,").len(), 5);
    assert!(rules("").is_empty());
    for bad in ["10.0.0.0/33", "fd00::/129", "bad host!", "host:0", "host:99999", "[::1", "/8", "*."] {
        let err = parse_rules(&format!("10.0.0.0/8,{bad}")).unwrap_err();
        assert!(err.contains(bad.trim()), "{bad}: {err}");
    }
    assert!(EgressPolicy::new(EgressSettings { follow_redirects: 11, ..Default::default() }).is_err());
}

#[tokio::test]
async fn this_clusters_api_is_refused_unless_an_allow_rule_names_it() {
    let p = EgressPolicy::allowing_private();
    let api = p.cluster_api();
    api.learn(1, &["127.0.0.1:7101".into(), "0.0.0.0:7101".into()]).await;
    api.learn(2, &["node2.internal:7102".into()]).await;
    api.learn(3, &["localhost:7103".into()]).await;
    for target in [
        "http://127.0.0.1:7101/v1/jobs/victim",
        "http://2130706433:7101/v1/jobs/victim",
        "http://[::ffff:127.0.0.1]:7101/",
        "http://[::1]:7101/",
        "http://node2.internal:7102/v1/jobs",
        "http://NODE2.internal.:7102/",
    ] {
        assert!(matches!(p.check_new_target(&url(target)), Err(Refusal::ClusterApi { .. })), "{target}");
    }
    // localhost resolves to loopback: its endpoint's addresses were learned with it.
    assert!(matches!(p.check_ip("127.0.0.1".parse().expect("ip"), 7103, false), Err(Refusal::ClusterApi { .. })));
    assert!(matches!(p.check_new_target(&url("http://localhost:7101/")), Err(Refusal::ClusterApi { .. })));
    // Other ports of the same hosts are targets like any other.
    assert_eq!(p.check_new_target(&url("http://127.0.0.1:7300/hook")), Ok(()));
    assert_eq!(p.check_url(&url("http://node2.internal:7300/")), Ok(()));

    let opened = policy(EgressSettings {
        allow_private_targets: true,
        allow_targets: rules("127.0.0.1:7101"),
        ..Default::default()
    });
    opened.cluster_api().learn(1, &["127.0.0.1:7101".into()]).await;
    assert_eq!(opened.check_url(&url("http://127.0.0.1:7101/v1/jobs")), Ok(()));
    let text = p.check_url(&url("http://127.0.0.1:7101/")).unwrap_err().to_string();
    assert!(text.contains("own API") && text.contains("--allow-target"), "{text}");
}

/// A target that records what reached it: `/hook` answers 200, `/to?url=` redirects there
/// with the given status (`&status=`), anything else 404.
#[derive(Clone, Default)]
struct Target {
    hits: Arc<Mutex<Vec<(String, String, HeaderMap)>>>,
}

impl Target {
    async fn start(&self) -> SocketAddr {
        let seen = self.hits.clone();
        let app = Router::new().fallback(move |req: axum::extract::Request| {
            let seen = seen.clone();
            async move {
                let (parts, _) = req.into_parts();
                let path = parts.uri.path().to_string();
                let query: std::collections::HashMap<String, String> =
                    serde_urlencoded::from_str(parts.uri.query().unwrap_or_default()).unwrap_or_default();
                seen.lock().expect("lock").push((parts.method.to_string(), path.clone(), parts.headers.clone()));
                match (path.as_str(), query.get("url")) {
                    ("/hook", _) => "ok".into_response(),
                    ("/to", Some(to)) => {
                        let status = query.get("status").and_then(|s| s.parse().ok()).unwrap_or(302);
                        let status = StatusCode::from_u16(status).expect("a status");
                        (status, [(axum::http::header::LOCATION, to.clone())]).into_response()
                    }
                    _ => StatusCode::NOT_FOUND.into_response(),
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    fn paths(&self) -> Vec<String> {
        self.hits.lock().expect("lock").iter().map(|(_, p, _)| p.clone()).collect()
    }

    fn last(&self) -> (String, String, HeaderMap) {
        self.hits.lock().expect("lock").last().cloned().expect("a request")
    }
}

fn delivery(url: String) -> Delivery {
    Delivery {
        key: "7:1700000000000".into(),
        attempt: 1,
        job: "egress".into(),
        scheduled_at: chrono::Utc::now(),
        method: "POST".into(),
        url,
        headers: vec![("Authorization".into(), "Bearer s3cret".into()), ("X-Team".into(), "ops".into())],
        body: b"{\"n\":1}".to_vec(),
        timeout: Duration::from_secs(10),
    }
}

fn blocked(a: &belfry_core::Attempt) -> bool {
    a.class == ResultClass::Permanent
        && a.http_status.is_none()
        && a.error.as_deref().is_some_and(|e| e.starts_with("blocked by egress policy"))
}

#[tokio::test]
async fn a_name_that_resolves_to_loopback_is_refused_at_send_time() {
    let target = Target::default();
    let addr = target.start().await;
    let d = delivery(format!("http://localhost:{}/hook", addr.port()));
    // What the create-time check sees of this URL is a name: only the lookup shows loopback.
    assert_eq!(EgressPolicy::default().check_url(&url(&d.url)), Ok(()));
    let a = delivery::client(&EgressPolicy::default(), 8).send(&d, None, 1).await;
    assert!(blocked(&a), "{a:?}");
    assert!(a.error.as_deref().is_some_and(|e| e.contains("localhost resolves to")), "{a:?}");
    assert!(target.paths().is_empty(), "nothing reached the target");
    // The same delivery goes through once private targets are allowed.
    let a = delivery::client(&EgressPolicy::allowing_private(), 8).send(&d, None, 1).await;
    assert_eq!((a.class, a.http_status), (ResultClass::Success, Some(200)), "{a:?}");
    assert_eq!(target.paths(), ["/hook"]);
}

#[tokio::test]
async fn literal_addresses_are_refused_before_connecting() {
    let target = Target::default();
    let port = target.start().await.port();
    let client = delivery::client(&EgressPolicy::default(), 8);
    for host in ["127.0.0.1", "0x7f.1", "2130706433", "[::ffff:127.0.0.1]"] {
        let a = client.send(&delivery(format!("http://{host}:{port}/hook")), None, 1).await;
        assert!(blocked(&a), "{host}: {a:?}");
    }
    assert!(target.paths().is_empty());
}

#[tokio::test]
async fn the_cluster_api_is_refused_at_send_time_through_any_name() {
    let target = Target::default();
    let addr = target.start().await;
    let policy = EgressPolicy::allowing_private();
    policy.cluster_api().learn(1, &[addr.to_string()]).await;
    let client = delivery::client(&policy, 8);
    let a = client.send(&delivery(format!("http://localhost:{}/v1/jobs/victim", addr.port())), None, 1).await;
    assert!(blocked(&a) && a.error.as_deref().is_some_and(|e| e.contains("own API")), "{a:?}");
    assert!(target.paths().is_empty());
}

#[tokio::test]
async fn redirects_are_not_followed_by_default() {
    let target = Target::default();
    let addr = target.start().await;
    let d = delivery(format!("http://{addr}/to?url=/hook"));
    let a = delivery::client(&EgressPolicy::allowing_private(), 8).send(&d, None, 1).await;
    assert_eq!((a.class, a.http_status), (ResultClass::Permanent, Some(302)), "{a:?}");
    assert!(a.error.as_deref().is_some_and(|e| e.contains("not followed")), "{a:?}");
    assert_eq!(target.paths(), ["/to"]);
}

#[tokio::test]
async fn redirects_are_followed_with_the_flag_and_every_hop_is_checked() {
    let target = Target::default();
    let addr = target.start().await;
    let follow = |n| policy(EgressSettings { allow_private_targets: true, follow_redirects: n, ..Default::default() });
    let client = delivery::client(&follow(3), 8);

    let a = client.send(&delivery(format!("http://{addr}/to?url=/hook&status=307")), None, 1).await;
    assert_eq!((a.class, a.http_status), (ResultClass::Success, Some(200)), "{a:?}");
    let (method, path, headers) = target.last();
    assert_eq!((method.as_str(), path.as_str()), ("POST", "/hook"), "307 keeps the method");
    assert_eq!(headers.get("authorization").map(|v| v.to_str().ok()), Some(Some("Bearer s3cret")));

    let a = client.send(&delivery(format!("http://{addr}/to?url=/hook&status=303")), None, 1).await;
    assert_eq!(a.http_status, Some(200), "{a:?}");
    assert_eq!(target.last().0, "GET", "303 turns into a GET");

    // Another origin (a name instead of the address) gets no credentials.
    let elsewhere = format!("http://localhost:{}/hook", addr.port());
    let a = client.send(&delivery(format!("http://{addr}/to?url={elsewhere}&status=307")), None, 1).await;
    assert_eq!(a.http_status, Some(200), "{a:?}");
    let headers = target.last().2;
    assert!(headers.get("authorization").is_none(), "Authorization followed the redirect to another origin");
    assert_eq!(headers.get("x-team").map(|v| v.as_bytes()), Some(&b"ops"[..]));

    for refused in
        ["http://169.254.169.254/latest/meta-data/", "http://%5B::ffff:169.254.169.254%5D/", "ftp://example.com/"]
    {
        let before = target.paths().len();
        let a = client.send(&delivery(format!("http://{addr}/to?url={refused}")), None, 1).await;
        assert!(blocked(&a) && a.error.as_deref().is_some_and(|e| e.contains("redirect 1")), "{refused}: {a:?}");
        assert_eq!(target.paths().len(), before + 1, "only the first hop was sent");
    }

    // A hop to this cluster's API is refused like a first request to it.
    let api = Target::default();
    let api_addr = api.start().await;
    let guarded = follow(3);
    guarded.cluster_api().learn(2, &[api_addr.to_string()]).await;
    let to_api = format!("http://localhost:{}/v1/jobs/victim", api_addr.port());
    let a = delivery::client(&guarded, 8).send(&delivery(format!("http://{addr}/to?url={to_api}")), None, 1).await;
    assert!(blocked(&a), "{a:?}");
    assert!(api.paths().is_empty());

    // More hops than allowed: the last answer is the outcome.
    let chain = format!("http://{addr}/to?url=/to%3Furl%3D/hook");
    let a = delivery::client(&follow(1), 8).send(&delivery(chain), None, 1).await;
    assert_eq!((a.class, a.http_status), (ResultClass::Permanent, Some(302)), "{a:?}");
    assert!(a.error.as_deref().is_some_and(|e| e.contains("more than 1 redirects")), "{a:?}");
}

fn mac(key: &str, unix: i64, body: &[u8]) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
    m.update(format!("{unix}.").as_bytes());
    m.update(body);
    hex::encode(m.finalize().into_bytes())
}

/// The `t` and every `v1` of a `Belfry-Signature` value.
fn parse_signature(header: &str) -> (i64, Vec<String>) {
    let mut t = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = v.parse().ok(),
            Some(("v1", v)) => v1.push(v.to_string()),
            _ => panic!("unexpected part {part:?} in {header:?}"),
        }
    }
    (t.expect("a t="), v1)
}

const OLD_KEY: &str = "old-key-0123456789abcdef";
const NEW_KEY: &str = "new-key-fedcba9876543210";

fn key_file(text: &str) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), text).expect("write");
    file
}

#[tokio::test]
async fn a_delivery_carries_one_verifiable_signature_per_key() {
    let file = key_file(&format!("# newest first\n{NEW_KEY}\n\n  {OLD_KEY}  \n"));
    let signer = Signer::from_file(file.path()).expect("keys load");
    assert_eq!(signer.key_ids().len(), 2);
    let target = Target::default();
    let addr = target.start().await;
    let d = delivery(format!("http://{addr}/hook"));
    let a = delivery::client(&EgressPolicy::allowing_private(), 8).send(&d, Some(&signer), 1).await;
    assert_eq!(a.http_status, Some(200), "{a:?}");
    let header = target.last().2.get("belfry-signature").and_then(|v| v.to_str().ok()).map(str::to_string);
    let (t, v1) = parse_signature(&header.expect("a Belfry-Signature"));
    assert_eq!(v1, [mac(NEW_KEY, t, &d.body), mac(OLD_KEY, t, &d.body)], "new key first, then the old one");
    assert!((t - a.started_at.timestamp()).abs() <= 1);
}

#[test]
fn a_reload_takes_the_new_file_and_a_bad_file_keeps_the_keys() {
    let file = key_file(&format!("{OLD_KEY}\n"));
    let signer = Signer::from_file(file.path()).expect("keys load");
    let (_, v1) = parse_signature(&signer.sign(1_700_000_000, b"x"));
    assert_eq!(v1, [mac(OLD_KEY, 1_700_000_000, b"x")]);

    std::fs::write(file.path(), format!("{NEW_KEY}\n{OLD_KEY}\n")).expect("rewrite");
    let ids = signer.reload().expect("reloads");
    assert_eq!(ids.len(), 2);
    let shared = signer.clone();
    let (_, v1) = parse_signature(&shared.sign(1_700_000_000, b"x"));
    assert_eq!(v1, [mac(NEW_KEY, 1_700_000_000, b"x"), mac(OLD_KEY, 1_700_000_000, b"x")], "clones see the reload");

    std::fs::write(file.path(), "short\n").expect("rewrite");
    let err = signer.reload().unwrap_err().to_string();
    assert!(err.contains("line 1") && !err.contains("short"), "names the line, not the key: {err}");
    assert_eq!(signer.key_ids(), ids, "the keys in use stay");
    assert!(!format!("{signer:?}").contains(OLD_KEY), "Debug shows key ids only");
}

#[test]
fn key_files_are_checked_line_by_line() {
    assert_eq!(parse_keys(&format!("{NEW_KEY}\r\n{OLD_KEY}\n")).expect("two keys").len(), 2);
    for (text, expected) in [
        ("", "no keys"),
        ("# only a comment\n\n", "no keys"),
        ("0123456789abcdef\ntoo-short\n", "line 2"),
        (&format!("{NEW_KEY}\n{NEW_KEY}\n"), "twice"),
        (&(0..9).map(|i| format!("key-number-{i}-0123456789\n")).collect::<String>(), "at most 8"),
    ] {
        let err = parse_keys(text).unwrap_err();
        assert!(err.contains(expected), "{text:?}: {err}");
    }
}

#[cfg(unix)]
#[tokio::test]
async fn sighup_reloads_the_key_file() {
    let file = key_file(&format!("{OLD_KEY}\n"));
    let signer = Signer::from_file(file.path()).expect("keys load");
    let before = signer.key_ids();
    signer.reload_on_sighup();
    std::fs::write(file.path(), format!("{NEW_KEY}\n{OLD_KEY}\n")).expect("rewrite");
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .expect("running kill");
    assert!(status.success());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while signer.key_ids() == before {
        assert!(tokio::time::Instant::now() < deadline, "no reload within 10 s of SIGHUP");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(signer.key_ids().len(), 2);
}
