//! Whatever a client puts in the headers Stride reads, every route answers a 2xx, 3xx or 4xx,
//! in JSON (HTML for the browser pages), never a 5xx and never a panic. The routes are the ones
//! the server mounts (`rocket.routes()`), so a new route is covered as soon as it exists; the
//! headers are every one Stride or Rocket reads for it. Values are generated (proptest):
//! multi-byte UTF-8 around every byte boundary, C1 controls, bidi and zero-width characters,
//! empty, very long, and near-misses of each header's syntax.
//!
//! Two ways in: Rocket's local client, which hands any text to the server (even characters no
//! HTTP parser would pass), and a real socket, where the values are raw bytes (obs-text
//! 0x80-0xFF, invalid UTF-8) that go through hyper and Rocket's own header handling first.

// Built without the pictures module, the tests that need it are left out, and with them the
// only users of some imports and helpers.
#![cfg_attr(not(feature = "pictures"), allow(unused_imports, dead_code))]

use std::io::{Cursor, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use image::{DynamicImage, ImageFormat};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use rocket::figment::Figment;
use rocket::http::Method;
use rocket::Route;
use serde_json::{json, Value};

use crate::helpers::free_port;
use crate::helpers::{each_backend, figment, Backend, RawReply, TestApp, TestDb, PASSWORD};

/// The proxy header the test servers trust, so that Rocket parses it (`ip_header`).
const IP_HEADER: &str = "X-Forwarded-For";
const METRICS_TOKEN: &str = "metrics-token-for-the-tests";

/// Every request header Stride reads (grep `headers()` in modules/), and those Rocket itself
/// parses before a handler runs.
const HEADERS: &[&str] = &[
    "Accept-Language",
    "Authorization",
    "User-Agent",
    "X-Request-Id",
    "Content-Type",
    "Content-Length",
    "If-None-Match",
    IP_HEADER,
    "Cookie",
    "Accept",
    "Host",
];

/// A request to a mounted route: a concrete path for its template, and a body it takes.
#[derive(Debug, Clone)]
struct Target {
    method: Method,
    path: String,
    content_type: Option<String>,
    body: Option<Vec<u8>>,
}

impl Target {
    fn what(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    fn is_logout(&self) -> bool {
        self.path.ends_with("/logout")
    }
}

/// `/api/users/<username>/picture` → `/api/users/admin/picture`; `?<token>` → `?token=nope`.
fn concrete(route: &Route) -> String {
    let fill = |segment: &str| -> String {
        match segment.trim_start_matches('<').trim_end_matches('>') {
            "username" => "admin".into(),
            "id" => "0".into(),
            "token" => "token=nope".into(),
            name if segment.starts_with('<') => format!("{name}-x"),
            _ => segment.into(),
        }
    };
    let path: Vec<String> = route.uri.path().split('/').map(fill).collect();
    let mut path = path.join("/");
    if let Some(query) = route.uri.query() {
        let query: Vec<String> = query.split('&').map(fill).collect();
        path = format!("{path}?{}", query.join("&"));
    }
    path
}

fn png() -> Vec<u8> {
    let mut out = Vec::new();
    DynamicImage::new_rgba8(2, 2)
        .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
        .expect("encode");
    out
}

/// A body each route takes, so that the request gets past the payload to the handler.
fn target(route: &Route) -> Target {
    let path = concrete(route);
    let json = |value: Value| {
        (
            Some("application/json".to_owned()),
            Some(value.to_string().into_bytes()),
        )
    };
    let (content_type, body) = match (route.method, path.as_str()) {
        (Method::Post, "/api/auth/register") => json(json!({"username": "robust",
            "email": "robust@example.com", "password": PASSWORD, "password_conf": PASSWORD})),
        // An unknown account: after its first failure the answer is a 429, not argon2 work.
        (Method::Post, "/api/auth/login") => {
            json(json!({"email": "nobody@example.com", "password": "wrong-password"}))
        }
        (Method::Post, "/api/auth/profile/edit") => json(json!({"first_name": "Sam",
            "last_name": null, "location": null, "bio": null, "birth_date": "1985-07-14"})),
        (Method::Post, "/api/auth/profile/edit/preferences") => json(json!({
            "timezone": "Europe/Paris", "weekm": true, "language": "fr", "imperial_units": false})),
        (Method::Post, "/api/auth/password/reset-request") => {
            json(json!({"email": "admin@example.com"}))
        }
        (Method::Post, "/api/auth/password/update") => json(json!({"token": "nope",
            "password": PASSWORD, "password_conf": PASSWORD})),
        (Method::Patch, "/api/config") => json(json!({"max_users": 0})),
        (Method::Post, "/password-reset") => (
            Some("application/x-www-form-urlencoded".to_owned()),
            Some(b"token=nope&password=correct-horse&password_conf=correct-horse".to_vec()),
        ),
        (Method::Post, "/api/auth/picture") => (
            Some(crate::helpers::multipart_content_type()),
            Some(crate::helpers::file_body("me.png", &png())),
        ),
        (Method::Get | Method::Head | Method::Delete, _) => (None, None),
        _ => json(json!({})),
    };
    Target {
        method: route.method,
        path,
        content_type,
        body,
    }
}

/// The mounted routes, each as a request.
fn targets(routes: &[&Route]) -> Vec<Target> {
    let targets: Vec<Target> = routes.iter().map(|r| target(r)).collect();
    assert!(targets.len() >= 20, "only {} routes mounted", targets.len());
    targets
}

/// Text a client could put in a header, and some no HTTP parser would let through.
fn header_text() -> BoxedStrategy<String> {
    prop_oneof![
        // Multi-byte characters around every byte boundary ("aé" cut after 2 bytes panicked).
        "[a-zé€😀ß\u{301}]{0,12}",
        "\\PC{0,40}",
        proptest::collection::vec(any::<char>(), 0..40).prop_map(String::from_iter),
        Just(String::new()),
        Just(" ".to_owned()),
        // Control-ish: C1 controls, bidi and zero-width characters, tabs, NUL, DEL.
        "[\u{80}-\u{9f}\u{200b}-\u{200f}\u{202a}-\u{202e}\u{2066}-\u{2069}\u{feff}\u{ad}\t \u{0}\u{7f}]{1,10}",
        // Very long.
        (1usize..4, "[aé😀]").prop_map(|(n, c)| c.repeat(n * 4000)),
        // Near-misses of the headers' own syntax.
        "(fr|en|[a-zé]{1,3})(-[A-Zé]{1,3})?(;q=[0-9.é]{0,5})?(, ?(fr|é|\\*)(;q=[0-9.]{0,4})?){0,3}",
        "Bearer \\PC{0,30}",
        "(Bearer|bearer|Basic|BEARER)( |\t|  )[A-Za-z0-9_=+/.é-]{0,60}",
        "(application|multipart|text)/[a-zé+-]{0,12}(; ?[a-zé]{1,8}=\"?\\PC{0,10}\"?){0,2}",
        "(W/)?\"\\PC{0,12}\"(, ?\\PC{0,8}){0,2}|\\*",
        "[0-9a-fA-F.:]{0,20}(, ?[0-9.é]{0,15})?",
        "[0-9]{0,25}|-[0-9]{1,5}",
        "[a-zé]{1,6}=\\PC{0,10}(; [a-z]{1,6}=\\PC{0,6}){0,2}",
        "[A-Za-z0-9._:é-]{0,70}",
    ]
    .boxed()
}

/// The answer the contract asks for: never a 5xx; an error is the JSON envelope, or an HTML
/// page for the browser routes.
fn check(
    what: &str,
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<(), TestCaseError> {
    let text = String::from_utf8_lossy(body);
    prop_assert!(
        (200..500).contains(&status),
        "{}: {} {}",
        what,
        status,
        text
    );
    let content_type = content_type.unwrap_or_default();
    if content_type.starts_with("application/json") {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| TestCaseError::fail(format!("{what}: invalid JSON ({e}): {text}")))?;
        if status >= 400 {
            prop_assert_eq!(&value["status"], "error", "{}: {}", what, value);
            prop_assert!(value["message"].is_string(), "{}: {}", what, value);
        }
    } else if status >= 400 {
        prop_assert!(
            content_type.starts_with("text/html"),
            "{}: {} {:?} {}",
            what,
            status,
            content_type,
            text
        );
    }
    Ok(())
}

/// The test servers' settings: the proxy header trusted, a metrics token, mail to a folder, and
/// throttling on for an account (a login of the unknown account answers 429 after its first
/// failure, with no more argon2 work; reset requests too) but not per client (thousands of
/// requests come from one).
fn settings(figment: Figment, outbox: &tempfile::TempDir) -> Figment {
    figment
        .merge(("ip_header", IP_HEADER))
        .merge(("metrics.token", METRICS_TOKEN))
        .merge(("email.url", format!("file://{}", outbox.path().display())))
        .merge(("throttle.login_failures_per_account", 1))
        .merge(("throttle.login_failures_per_client", 1_000_000))
        .merge(("password_reset.requests_per_client", 1_000_000))
        .merge(("registration.per_client", 1_000_000))
}

/// A test server with an admin who has a picture.
async fn server(backend: &Backend, outbox: &tempfile::TempDir) -> (TestApp, String) {
    let app = TestApp::with(backend, |f| settings(f, outbox)).await;
    let admin = app.admin("admin").await;
    app.upload_picture(&admin, "me.png", &png())
        .await
        .assert_success(200, "user picture updated");
    (app, admin)
}

/// Values every header gets on every route before the generated ones, so that the shapes that
/// once failed are always tried: multi-byte characters across the bytes a parser may cut at,
/// lone combining marks, C1 and bidi controls, emptiness, length.
fn seeds() -> Vec<Vec<u8>> {
    [
        "aé",
        "😀",
        "a😀;q=0.5",
        "fr\u{301}",
        "\u{301}",
        "\u{85}",
        "\u{202e}fr\u{200b}",
        "Bearer é",
        "",
        " \t",
        ",;=\"",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .chain([
        "é".repeat(6000).into_bytes(),
        "a".repeat(20_000).into_bytes(),
    ])
    .collect()
}

/// Where a value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Seed,
    Generated,
}

/// Sends the seeds, then `cases` generated values, of each header to each target; returns the
/// failures, a generated one with its smallest failing value.
fn each_target_and_header<F>(
    targets: &[Target],
    seeds: &[Vec<u8>],
    cases: u32,
    strategy: BoxedStrategy<Vec<u8>>,
    send: F,
) -> Vec<String>
where
    F: Fn(&Target, &str, &[u8], Origin) -> Result<(), TestCaseError>,
{
    let mut failures = Vec::new();
    for target in targets {
        for header in HEADERS {
            for seed in seeds {
                if let Err(e) = send(target, header, seed, Origin::Seed) {
                    failures.push(format!("{} with {header}: {e}", target.what()));
                }
            }
            let mut runner = TestRunner::new(ProptestConfig {
                cases,
                failure_persistence: None,
                ..ProptestConfig::default()
            });
            if let Err(e) = runner.run(&strategy, |value| {
                send(target, header, &value, Origin::Generated)
            }) {
                failures.push(format!("{} with {header}: {e}", target.what()));
            }
        }
    }
    failures
}

each_backend! {
    #[cfg(feature = "pictures")] // uses the pictures module
    async fn no_header_value_makes_a_server_error(backend) {
        let outbox = tempfile::tempdir().expect("outbox");
        let (app, admin) = server(&backend, &outbox).await;
        let routes: Vec<&Route> = app.client.rocket().routes().collect();
        let targets = targets(&routes);
        let handle = tokio::runtime::Handle::current();
        // A header value with the admin's valid token in it, too.
        let strategy = prop_oneof![
            4 => header_text(),
            1 => "\\PC{0,6}".prop_map({
                let admin = admin.clone();
                move |tail| format!("Bearer {admin}{tail}")
            }),
        ]
        .prop_map(String::into_bytes)
        .boxed();
        let failures = tokio::task::block_in_place(|| {
            each_target_and_header(&targets, &seeds(), 3, strategy, |target, header, value, origin| {
                let mut value = String::from_utf8_lossy(value).into_owned();
                // Logging out would end the token the other requests use: a generated case logs
                // in anew (argon2: not for each seed), a seed goes without a valid token.
                let token = if !target.is_logout() {
                    admin.clone()
                } else if origin == Origin::Generated || value.contains(&admin) {
                    let fresh = handle.block_on(app.login("admin@example.com", PASSWORD)).token();
                    value = value.replace(&admin, &fresh);
                    fresh
                } else {
                    "logged-out".to_owned()
                };
                let bearer = format!("Bearer {token}");
                let mut headers: Vec<(&str, &str)> = vec![("Authorization", &bearer)];
                if let Some(content_type) = &target.content_type {
                    headers.push(("Content-Type", content_type));
                }
                headers.retain(|(name, _)| !name.eq_ignore_ascii_case(header));
                headers.push((header, &value));
                let reply: RawReply = handle.block_on(app.raw(
                    target.method.as_str(), &target.path, &headers, target.body.clone()));
                let content_type = reply.header_values("Content-Type").first().map(|c| c.to_string());
                check(&format!("{} {header}: {value:?}", target.what()), reply.status.code,
                    content_type.as_deref(), &reply.body)
            })
        });
        assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
        // And the server still serves, the token still works.
        assert_eq!(app.profile(&admin).await.body["data"]["username"], "admin");
        assert_eq!(app.get("/api/ping", None).await.status.code, 200);
    }
}

// Over a real socket: raw bytes as header values.

/// Raw header values: obs-text (0x80-0xFF) alone and inside valid UTF-8, invalid UTF-8,
/// overlong forms, and the other bytes a field value may hold (RFC 9110 §5.5).
fn header_bytes() -> BoxedStrategy<Vec<u8>> {
    let field_byte = prop_oneof![Just(b'\t'), 0x20u8..=0x7e, 0x80u8..=0xff,];
    prop_oneof![
        proptest::collection::vec(field_byte, 0..40),
        proptest::collection::vec(0x80u8..=0xff, 1..20),
        Just(b"\xff\xfe".to_vec()),
        Just(b"fr\xc3".to_vec()),
        Just(b"a\xc3\xa9".to_vec()),
        Just(b"\xc0\xaf".to_vec()),
        Just(b"\xed\xa0\x80".to_vec()),
        Just(b"Bearer \xe9t\xe9".to_vec()),
        header_text()
            .prop_map(|t| t.into_bytes())
            .prop_filter("a field value", |bytes| {
                bytes
                    .iter()
                    .all(|b| *b == b'\t' || (0x20..0x7f).contains(b) || *b >= 0x80)
                    && bytes.len() < 8000
            }),
        (1usize..4).prop_map(|n| b"\xc3\xa9".repeat(n * 1500)),
    ]
    .boxed()
}

/// The seeds above, and bytes that are no UTF-8 (Rocket drops such a header; the request must
/// still be answered).
fn raw_seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = seeds()
        .into_iter()
        .filter(|s| {
            s.iter()
                .all(|b| *b == b'\t' || (0x20..0x7f).contains(b) || *b >= 0x80)
        })
        .filter(|s| s.len() < 8000)
        .collect();
    seeds.extend([
        b"\xff".to_vec(),
        b"a\xc3".to_vec(),
        b"\xc3\xa9\xe9".to_vec(),
        b"\x80\x81\xfe\xff".to_vec(),
        b"\xf0\x9f\x98".to_vec(),
    ]);
    seeds
}

/// One request on a fresh connection; the status and the headers and body of the answer.
fn exchange(port: u16, request: &[u8]) -> Result<(u16, Option<String>, Vec<u8>), String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    stream.write_all(request).map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .map_err(|e| format!("reading: {e}"))?;
    let head_end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no answer: {:?}", String::from_utf8_lossy(&answer)))?;
    let head = String::from_utf8_lossy(&answer[..head_end]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status: {head}"))?;
    let content_type = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("content-type")
            .then(|| value.trim().to_owned())
    });
    Ok((status, content_type, answer[head_end + 4..].to_vec()))
}

/// Framing headers: a wrong `Content-Length` makes hyper wait for bytes that never come, and
/// a request without its `Host` is not HTTP/1.1. Both are hyper's to judge; the local client
/// above sends them to Stride.
const RAW_SKIPPED: &[&str] = &["Content-Length", "Host"];

fn raw_request(target: &Target, token: &str, header: &str, value: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "{} {} HTTP/1.1\r\nConnection: close\r\n",
        target.method, target.path
    )
    .into_bytes();
    let mut put = |name: &str, value: &[u8]| {
        request.extend_from_slice(name.as_bytes());
        request.extend_from_slice(b": ");
        request.extend_from_slice(value);
        request.extend_from_slice(b"\r\n");
    };
    let body = target.body.clone().unwrap_or_default();
    let defaults = [
        ("Host", "127.0.0.1".to_owned()),
        ("Authorization", format!("Bearer {token}")),
        (
            "Content-Type",
            target.content_type.clone().unwrap_or_default(),
        ),
        ("Content-Length", body.len().to_string()),
    ];
    for (name, default) in &defaults {
        if name.eq_ignore_ascii_case(header) {
            continue;
        }
        if *name == "Content-Type" && target.content_type.is_none() {
            continue;
        }
        put(name, default.as_bytes());
    }
    put(header, value);
    request.extend_from_slice(b"\r\n");
    request.extend_from_slice(&body);
    request
}

each_backend! {
    async fn raw_header_bytes_over_a_socket(backend) {
        let outbox = tempfile::tempdir().expect("outbox");
        let db = TestDb::new(&backend).await;
        let port = free_port();
        let rocket = stride::build(settings(figment(&db).merge(("port", port)), &outbox))
            .ignite().await.expect("ignite");
        let targets = targets(&rocket.routes().collect::<Vec<_>>());
        let shutdown = rocket.shutdown();
        let server = tokio::spawn(rocket.launch());

        let failures = tokio::task::spawn_blocking(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(std::time::Instant::now() < deadline, "stride did not listen");
                std::thread::sleep(Duration::from_millis(50));
            }
            let register = Target {
                method: Method::Post,
                path: "/api/auth/register".into(),
                content_type: Some("application/json".into()),
                body: Some(json!({"username": "admin", "email": "admin@example.com",
                    "password": PASSWORD, "password_conf": PASSWORD}).to_string().into_bytes()),
            };
            let (status, _, body) = exchange(port, &raw_request(&register, "", "User-Agent", b"t"))
                .expect("register");
            assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
            let token = serde_json::from_slice::<Value>(&body).expect("JSON")["auth_token"]
                .as_str().expect("a token").to_owned();
            let login = Target {
                path: "/api/auth/login".into(),
                body: Some(json!({"email": "admin@example.com", "password": PASSWORD}).to_string().into_bytes()),
                ..register.clone()
            };
            each_target_and_header(&targets, &raw_seeds(), 2, header_bytes(), |target, header, value, origin| {
                if RAW_SKIPPED.contains(&header) {
                    return Ok(());
                }
                let token = if !target.is_logout() {
                    token.clone()
                } else if origin == Origin::Generated && header != "Authorization" {
                    let (_, _, body) = exchange(port, &raw_request(&login, "", "User-Agent", b"t"))
                        .map_err(TestCaseError::fail)?;
                    serde_json::from_slice::<Value>(&body).ok()
                        .and_then(|v| v["auth_token"].as_str().map(str::to_owned))
                        .unwrap_or_default()
                } else {
                    "logged-out".to_owned()
                };
                let what = format!("{} {header}: {:?}", target.what(), String::from_utf8_lossy(value));
                let (status, content_type, body) = exchange(port, &raw_request(target, &token, header, value))
                    .map_err(|e| TestCaseError::fail(format!("{what}: {e}")))?;
                // hyper itself refuses some requests (a value over its limits) with an empty
                // 4xx; what reaches Stride gets Stride's answer.
                if body.is_empty() && (400..500).contains(&status) {
                    return Ok(());
                }
                check(&what, status, content_type.as_deref(), &body)
            })
        }).await.expect("join");
        shutdown.notify();
        let _ = server.await;
        assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    }
}

// What a header leaves behind: the user agent kept with a session.

each_backend! {
    async fn user_agents_are_kept_without_control_characters(backend) {
        let app = TestApp::new(&backend).await;
        app.register("sam").await;
        let long = "é".repeat(300);
        for (agent, kept) in [
            // A NUL was a 500 on PostgreSQL (no text holds it).
            ("curl/8.0\u{0}", "curl/8.0"),
            ("a\u{1}b\u{7f}c\u{85}d\te", "abcde"),
            ("Mozilla/5.0 (X11; Linux) Firefox/128.0", "Mozilla/5.0 (X11; Linux) Firefox/128.0"),
            ("aé😀\u{202e}", "aé😀\u{202e}"),
            (long.as_str(), &long[..512]),
        ] {
            let body = json!({"email": "sam@example.com", "password": PASSWORD}).to_string();
            let reply = app.raw("POST", "/api/auth/login",
                &[("Content-Type", "application/json"), ("User-Agent", agent)], Some(body.into_bytes())).await.json();
            reply.assert_success(200, "successfully logged in");
            let sessions = app.get("/api/auth/sessions", Some(&reply.token())).await;
            let current = sessions.body["data"]["sessions"].as_array().expect("sessions").iter()
                .find(|s| s["current"] == true).cloned().expect("the current session");
            assert_eq!(current["user_agent"], kept, "{agent:?}");
        }
    }
}
