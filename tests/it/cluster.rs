//! Scale-out, end to end: several real `stride serve` processes, each in its own working
//! directory and on its own port, sharing one fresh PostgreSQL database and no configured
//! `tokens.private_key`. What a client does through one instance holds on every other.
//!
//! The checks that need no control over the processes are functions over a [`Deployment`] (a
//! list of base URLs, an admin's credentials, the throttling limit), so that the same checks
//! run here on a local cluster and, as `cluster::acceptance`, against a real deployment:
//!
//! ```sh
//! STRIDE_ACCEPTANCE_URLS=http://a:8000,http://b:8000 \
//! STRIDE_ACCEPTANCE_ADMIN_EMAIL=admin@example.org STRIDE_ACCEPTANCE_ADMIN_PASSWORD=… \
//! STRIDE_ACCEPTANCE_LOGIN_FAILURES=10 \
//!   cargo test --test it cluster::acceptance -- --ignored --nocapture
//! ```
//!
//! These tests run when `STRIDE_TEST_POSTGRES_URL` is set; with `CI` set they fail without it.

use std::collections::{BTreeMap, HashSet};
use std::io::Cursor;
use std::path::Path;
use std::process::Command;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::{Connection, Row};

use crate::cli::{start_with, stride, Server};
use crate::helpers::{file_body, multipart_content_type, Backend, TestDb};
use crate::mail::{required, SmtpServer};

const TOO_MANY: &str = "too many requests, please try again later";
const ALREADY_EXISTS: &str = "sorry, that user already exists";
const PASSWORD: &str = "cluster-horse-1";

// ---------------------------------------------------------------------------------------------
// HTTP, by base URL
// ---------------------------------------------------------------------------------------------

/// An answer, whatever its body.
struct Answer {
    status: u16,
    etag: Option<String>,
    content_type: Option<String>,
    body: Vec<u8>,
}

impl Answer {
    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}, status {}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        // Generous: a loaded CI machine, or a deployment far away. Never a timed assertion.
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .new_agent()
}

#[track_caller]
fn send(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Answer {
    try_send(base, method, path, token, content_type, body).unwrap_or_else(|e| panic!("{e}"))
}

/// A request; an error when no whole answer came back.
fn try_send(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Result<Answer, String> {
    let url = format!("{base}{path}");
    let mut request = ureq::http::Request::builder().method(method).uri(&url);
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    if let Some(content_type) = content_type {
        request = request.header("Content-Type", content_type);
    }
    let mut response = agent()
        .run(request.body(body).expect("a request"))
        .map_err(|e| format!("{method} {url}: no answer: {e}"))?;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (etag, content_type) = (header("etag"), header("content-type"));
    let body = response
        .body_mut()
        .with_config()
        .limit(16 * 1024 * 1024)
        .read_to_vec()
        .map_err(|e| format!("{method} {url}: body: {e}"))?;
    Ok(Answer {
        status: response.status().as_u16(),
        etag,
        content_type,
        body,
    })
}

/// A JSON request (or none with `body: None`); the status and the JSON answer.
#[track_caller]
fn call(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let (content_type, bytes) = match body {
        Some(body) => (Some("application/json"), body.to_string().into_bytes()),
        None => (None, Vec::new()),
    };
    let answer = send(base, method, path, token, content_type, bytes);
    (answer.status, answer.json())
}

#[track_caller]
fn expect(answer: (u16, Value), status: u16, message: &str, context: &str) -> Value {
    let (got, body) = answer;
    assert_eq!(
        (got, body["message"].as_str()),
        (status, Some(message)),
        "{context}: {body}"
    );
    body
}

// ---------------------------------------------------------------------------------------------
// Users made by the checks
// ---------------------------------------------------------------------------------------------

fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).expect("OS randomness");
    buffer.iter().map(|b| format!("{b:02x}")).collect()
}

/// A throwaway account the checks make: `<prefix><random>` (at most 12 characters, as
/// usernames are), at example.com.
struct User {
    name: String,
    email: String,
    password: String,
}

impl User {
    fn new(prefix: &str) -> User {
        assert!(prefix.len() <= 4);
        let name = format!("{prefix}{}", random_hex(4));
        User {
            email: format!("{name}@example.com"),
            name,
            password: PASSWORD.to_owned(),
        }
    }

    fn registration(&self) -> Value {
        json!({"username": self.name, "email": self.email,
               "password": self.password, "password_conf": self.password})
    }

    /// Registers through `base`; the session token.
    #[track_caller]
    fn sign_up(&self, base: &str) -> String {
        let body = expect(
            call(
                base,
                "POST",
                "/api/auth/register",
                None,
                Some(self.registration()),
            ),
            201,
            "successfully registered",
            &format!("registering {} through {base}", self.name),
        );
        body["auth_token"].as_str().expect("a token").to_owned()
    }

    #[track_caller]
    fn log_in(&self, base: &str) -> String {
        let body = expect(
            log_in(base, &self.email, &self.password),
            200,
            "successfully logged in",
            &format!("{} logging in through {base}", self.name),
        );
        body["auth_token"].as_str().expect("a token").to_owned()
    }
}

fn log_in(base: &str, email: &str, password: &str) -> (u16, Value) {
    call(
        base,
        "POST",
        "/api/auth/login",
        None,
        Some(json!({"email": email, "password": password})),
    )
}

/// The token reads `user`'s profile through `base`.
#[track_caller]
fn assert_works(base: &str, token: &str, user: &User, context: &str) {
    let (status, body) = call(base, "GET", "/api/auth/profile", Some(token), None);
    assert_eq!(status, 200, "{context}: {base}: {body}");
    assert_eq!(
        body["data"]["username"],
        user.name.as_str(),
        "{context}: {base}"
    );
}

/// The token is refused through `base`, as a session that no longer exists.
#[track_caller]
fn assert_dead(base: &str, token: &str, context: &str) {
    expect(
        call(base, "GET", "/api/auth/profile", Some(token), None),
        401,
        "provide a valid auth token",
        &format!("{context}: {base}"),
    );
}

// ---------------------------------------------------------------------------------------------
// The deployment under test, and the checks shared by CI and acceptance
// ---------------------------------------------------------------------------------------------

/// What the checks need to know about a deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    /// Base URLs of the instances, each reached directly (not through the balancer).
    pub urls: Vec<String>,
    /// An instance admin's email and password: for the configuration check.
    pub admin: Option<(String, String)>,
    /// The failed logins an address without an account gets from one client: the smaller of
    /// the deployment's `throttle.login_failures_per_account_and_client` and
    /// `throttle.login_failures_per_account`. For the throttling check.
    pub login_failures: Option<u32>,
}

impl Deployment {
    /// From `STRIDE_ACCEPTANCE_URLS` (comma-separated base URLs, at least two),
    /// `STRIDE_ACCEPTANCE_ADMIN_EMAIL` and `…_PASSWORD`, `STRIDE_ACCEPTANCE_LOGIN_FAILURES`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Deployment, String> {
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let urls: Vec<String> = var("STRIDE_ACCEPTANCE_URLS")
            .ok_or("STRIDE_ACCEPTANCE_URLS is not set (e.g. http://a:8000,http://b:8000)")?
            .split(',')
            .map(|u| u.trim().trim_end_matches('/').to_owned())
            .filter(|u| !u.is_empty())
            .collect();
        if urls.len() < 2 {
            return Err(format!(
                "STRIDE_ACCEPTANCE_URLS: at least two instances are needed, got {urls:?}"
            ));
        }
        if let Some(bad) = urls
            .iter()
            .find(|u| !u.starts_with("http://") && !u.starts_with("https://"))
        {
            return Err(format!(
                "STRIDE_ACCEPTANCE_URLS: {bad} is not an http(s) URL"
            ));
        }
        let admin = match (
            var("STRIDE_ACCEPTANCE_ADMIN_EMAIL"),
            var("STRIDE_ACCEPTANCE_ADMIN_PASSWORD"),
        ) {
            (Some(email), Some(password)) => Some((email, password)),
            (None, None) => None,
            _ => {
                return Err(
                    "STRIDE_ACCEPTANCE_ADMIN_EMAIL and STRIDE_ACCEPTANCE_ADMIN_PASSWORD \
                            go together"
                        .into(),
                )
            }
        };
        let login_failures = var("STRIDE_ACCEPTANCE_LOGIN_FAILURES")
            .map(|n| {
                n.trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or(format!(
                        "STRIDE_ACCEPTANCE_LOGIN_FAILURES: {n} is not a limit"
                    ))
            })
            .transpose()?;
        Ok(Deployment {
            urls,
            admin,
            login_failures,
        })
    }

    /// The admin's session token, opened through the first instance.
    fn admin_token(&self) -> Option<String> {
        let (email, password) = self.admin.as_ref()?;
        let body = expect(
            log_in(&self.urls[0], email, password),
            200,
            "successfully logged in",
            "the admin's login (STRIDE_ACCEPTANCE_ADMIN_*)",
        );
        Some(body["auth_token"].as_str().expect("a token").to_owned())
    }

    /// Every check, in order; what was left out (no admin, no throttling limit) is said.
    pub fn check_all(&self) {
        let admin = self.admin_token();
        // The checks register users: open registration for the duration if it is closed.
        let open = admin
            .as_deref()
            .map(|token| RegistrationSwitch::set(&self.urls[0], token, true));
        let registration = config(&self.urls[0])["is_registration_enabled"].as_bool();
        assert_eq!(
            registration,
            Some(true),
            "registration is closed on {}: the checks register throwaway users; give an \
             admin's credentials (STRIDE_ACCEPTANCE_ADMIN_*) to open it while they run",
            self.urls[0]
        );

        let run = |name: &str, check: &dyn Fn()| {
            eprintln!("cluster check: {name}");
            check();
        };
        run("a token minted by one instance works on all", &|| {
            tokens_cross(&self.urls)
        });
        run("a logout on one instance ends the session on all", &|| {
            logout_crosses(&self.urls)
        });
        run(
            "a password change on one ends the other sessions on all",
            &|| password_change_crosses(&self.urls),
        );
        match &admin {
            Some(token) => run("PATCH /api/config on one applies on all", &|| {
                config_crosses(&self.urls, token)
            }),
            None => eprintln!(
                "cluster check: configuration crossing SKIPPED (no STRIDE_ACCEPTANCE_ADMIN_*)"
            ),
        }
        run("a picture uploaded through one is served by all", &|| {
            pictures_cross(&self.urls)
        });
        run(
            "racing registrations of one name: exactly one wins",
            &|| registration_race(&self.urls, 16),
        );
        match self.login_failures {
            Some(limit) => run(
                "throttling counts failures on all instances together",
                &|| throttling_counts_together(&self.urls, limit),
            ),
            None => {
                eprintln!("cluster check: throttling SKIPPED (no STRIDE_ACCEPTANCE_LOGIN_FAILURES)")
            }
        }
        // Registration as it was, then the admin's session ended.
        drop(open);
        if let Some(token) = admin {
            call(
                &self.urls[0],
                "POST",
                "/api/auth/logout",
                Some(&token),
                None,
            );
        }
    }
}

fn config(base: &str) -> Value {
    let (status, body) = call(base, "GET", "/api/config", None, None);
    assert_eq!(status, 200, "GET {base}/api/config: {body}");
    body["data"].clone()
}

/// Sets the registration switch, and puts back what it found when dropped (also when a check
/// fails half-way).
struct RegistrationSwitch {
    base: String,
    token: String,
    found: bool,
}

impl RegistrationSwitch {
    fn set(base: &str, token: &str, on: bool) -> RegistrationSwitch {
        let found = config(base)["is_registration_enabled"]
            .as_bool()
            .expect("is_registration_enabled");
        patch_registration(base, token, on);
        RegistrationSwitch {
            base: base.to_owned(),
            token: token.to_owned(),
            found,
        }
    }
}

impl Drop for RegistrationSwitch {
    fn drop(&mut self) {
        // Never a panic while a failed check unwinds: that would abort the whole test run.
        let restored = try_send(
            &self.base,
            "PATCH",
            "/api/config",
            Some(&self.token),
            Some("application/json"),
            json!({"is_registration_enabled": self.found})
                .to_string()
                .into_bytes(),
        );
        match restored {
            Ok(answer) if answer.status == 200 => {}
            outcome => {
                let why = outcome.map_or_else(
                    |e| e,
                    |a| format!("{} {}", a.status, String::from_utf8_lossy(&a.body)),
                );
                let message = format!(
                    "could not restore is_registration_enabled={} through {}: {why}",
                    self.found, self.base
                );
                if std::thread::panicking() {
                    eprintln!("{message}");
                } else {
                    panic!("{message}");
                }
            }
        }
    }
}

#[track_caller]
fn patch_registration(base: &str, token: &str, on: bool) {
    let (status, body) = call(
        base,
        "PATCH",
        "/api/config",
        Some(token),
        Some(json!({"is_registration_enabled": on})),
    );
    assert_eq!(status, 200, "PATCH {base}/api/config (admin): {body}");
    assert_eq!(body["data"]["is_registration_enabled"], on, "{body}");
}

/// A session opened through any instance works through every instance: the token's key is
/// the deployment's, and the session row is in the shared database.
pub fn tokens_cross(urls: &[String]) {
    let user = User::new("tok");
    let signed_up = user.sign_up(&urls[0]);
    for base in urls {
        assert_works(base, &signed_up, &user, "the sign-up token");
    }
    for minted_by in urls {
        let token = user.log_in(minted_by);
        for base in urls {
            assert_works(
                base,
                &token,
                &user,
                &format!("a token minted by {minted_by}"),
            );
        }
    }
}

/// A logout through one instance is refused by every instance at once (no cache anywhere).
pub fn logout_crosses(urls: &[String]) {
    let user = User::new("out");
    user.sign_up(&urls[0]);
    for (i, through) in urls.iter().enumerate() {
        let token = user.log_in(&urls[(i + 1) % urls.len()]);
        let other = user.log_in(through);
        for base in urls {
            assert_works(base, &token, &user, "before the logout");
        }
        expect(
            call(through, "POST", "/api/auth/logout", Some(&token), None),
            200,
            "successfully logged out",
            &format!("logout through {through}"),
        );
        for base in urls {
            assert_dead(base, &token, &format!("after a logout through {through}"));
            // Only that session ended.
            assert_works(base, &other, &user, "another session of the user");
        }
    }
}

/// A password change through one instance ends the user's other sessions on every instance,
/// keeps the session that made it, and only the new password logs in.
pub fn password_change_crosses(urls: &[String]) {
    let user = User::new("pwd");
    user.sign_up(&urls[0]);
    let others: Vec<String> = urls.iter().map(|base| user.log_in(base)).collect();
    let changer = &urls[1];
    let current = user.log_in(changer);
    let new_password = "cluster-horse-2";
    expect(
        call(
            changer,
            "POST",
            "/api/auth/profile/edit",
            Some(&current),
            Some(
                json!({"first_name": "Sam", "last_name": "Cluster", "location": null,
                        "bio": null, "birth_date": null,
                        "password": new_password, "password_conf": new_password}),
            ),
        ),
        200,
        "user profile updated",
        &format!("password change through {changer}"),
    );
    for base in urls {
        for (minted_by, token) in urls.iter().zip(&others) {
            assert_dead(
                base,
                token,
                &format!("a session opened through {minted_by}, after a password change through {changer}"),
            );
        }
        assert_works(
            base,
            &current,
            &user,
            "the session that changed the password",
        );
    }
    expect(
        log_in(&urls[0], &user.email, &user.password),
        401,
        "invalid credentials",
        "the old password",
    );
    let changed = User {
        password: new_password.to_owned(),
        ..user
    };
    for base in urls {
        changed.log_in(base);
    }
}

/// An admin's `PATCH /api/config` through one instance is what every instance applies at its
/// next request: registration switched off through one is refused by the others.
pub fn config_crosses(urls: &[String], admin_token: &str) {
    let before = config(&urls[0]);
    let switch = RegistrationSwitch::set(&urls[0], admin_token, false);
    let user = User::new("cfg");
    for base in urls {
        assert_eq!(
            config(base)["is_registration_enabled"],
            false,
            "{base} after PATCH through {}",
            urls[0]
        );
        expect(
            call(
                base,
                "POST",
                "/api/auth/register",
                None,
                Some(user.registration()),
            ),
            403,
            "error, registration is disabled",
            &format!(
                "registering through {base} after it was closed through {}",
                urls[0]
            ),
        );
    }
    // And back, through another instance.
    patch_registration(&urls[1], admin_token, true);
    for base in urls {
        assert_eq!(config(base)["is_registration_enabled"], true, "{base}");
    }
    drop(switch);
    assert_eq!(config(&urls[1]), before, "the configuration is as it was");
}

fn png(seed: u8) -> Vec<u8> {
    let image = image::RgbImage::from_fn(24, 16, |x, y| {
        image::Rgb([(x * 10) as u8 ^ seed, (y * 15) as u8, seed])
    });
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(image)
        .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
        .expect("png");
    out
}

#[track_caller]
fn upload(base: &str, token: &str, content: &[u8]) {
    let answer = send(
        base,
        "POST",
        "/api/auth/picture",
        Some(token),
        Some(&multipart_content_type()),
        file_body("me.png", content),
    );
    let body = answer.json();
    assert_eq!(
        (answer.status, body["message"].as_str()),
        (200, Some("user picture updated")),
        "upload through {base}: {body}"
    );
}

/// Every instance serves the same picture (bytes and ETag); returns them.
#[track_caller]
fn served_everywhere(urls: &[String], user: &User) -> (Vec<u8>, String) {
    let path = format!("/api/users/{}/picture", user.name);
    let first = send(&urls[0], "GET", &path, None, None, Vec::new());
    assert_eq!(first.status, 200, "{}{path}", urls[0]);
    assert_eq!(first.content_type.as_deref(), Some("image/png"));
    let etag = first.etag.clone().expect("an ETag");
    for base in &urls[1..] {
        let answer = send(base, "GET", &path, None, None, Vec::new());
        assert_eq!(answer.status, 200, "{base}{path}");
        assert_eq!(answer.etag.as_deref(), Some(etag.as_str()), "{base}{path}");
        assert!(answer.body == first.body, "{base}{path}: other bytes");
    }
    (first.body, etag)
}

/// A picture uploaded through one instance is served by every other, the same bytes under the
/// same ETag; a replacement through another instance replaces it everywhere.
pub fn pictures_cross(urls: &[String]) {
    let user = User::new("pic");
    let token = user.sign_up(&urls[0]);
    upload(&urls[0], &token, &png(1));
    let (bytes, etag) = served_everywhere(urls, &user);
    let decoded = image::load_from_memory(&bytes).expect("a picture");
    assert_eq!((decoded.width(), decoded.height()), (24, 16));

    upload(&urls[1], &token, &png(2));
    let (replaced, new_etag) = served_everywhere(urls, &user);
    assert_ne!(new_etag, etag, "a new picture, a new ETag");
    assert!(replaced != bytes);
}

/// `attempts` concurrent registrations of one name and address (in varying case), spread over
/// the instances: exactly one 201, every other a 400 "sorry, that user already exists", no 5xx.
pub fn registration_race(urls: &[String], attempts: usize) {
    let user = User::new("race");
    let barrier = Barrier::new(attempts);
    // (instance, name sent, status, answer)
    let answers: Vec<(String, String, u16, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..attempts)
            .map(|i| {
                let base = &urls[i % urls.len()];
                let (barrier, user) = (&barrier, &user);
                scope.spawn(move || {
                    let (name, email) = if i % 3 == 1 {
                        (user.name.to_uppercase(), user.email.to_uppercase())
                    } else {
                        (user.name.clone(), user.email.clone())
                    };
                    let body = json!({"username": name, "email": email,
                        "password": user.password, "password_conf": user.password});
                    barrier.wait();
                    let (status, body) = call(base, "POST", "/api/auth/register", None, Some(body));
                    (base.clone(), name, status, body)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a client thread"))
            .collect()
    });
    let winners: Vec<_> = answers.iter().filter(|(_, _, s, _)| *s == 201).collect();
    let losers: Vec<_> = answers.iter().filter(|(_, _, s, _)| *s != 201).collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one registration wins: {answers:?}"
    );
    // A loser is told the user exists, or, when the burst from this one client is larger
    // than `registration.per_client`, that it must wait: attempts in flight count.
    for (base, _, status, body) in &losers {
        let answer = (*status, body["message"].as_str());
        assert!(
            answer == (400, Some(ALREADY_EXISTS)) || answer == (429, Some(TOO_MANY)),
            "a racing duplicate through {base}: {body}"
        );
    }
    // The account is as the winner spelled it; logins match the address in any case.
    let (_, name, _, body) = winners[0];
    let winner = User {
        name: name.clone(),
        ..user
    };
    let token = body["auth_token"].as_str().expect("a token");
    for base in urls {
        assert_works(base, token, &winner, "the winner's token");
    }
    winner.log_in(&urls[urls.len() - 1]);
}

/// Failed logins through all instances count together: with `limit` failures per account,
/// spread over the instances, the next attempt is refused by every instance.
pub fn throttling_counts_together(urls: &[String], limit: u32) {
    // An address with no account: counted the same way, and nobody is locked out.
    let email = format!("nobody{}@example.com", random_hex(6));
    for i in 0..limit as usize {
        let base = &urls[i % urls.len()];
        expect(
            log_in(base, &email, "wrong-password"),
            401,
            "invalid credentials",
            &format!("failure {} of {limit}, through {base}", i + 1),
        );
    }
    for base in urls {
        expect(
            log_in(base, &email, "wrong-password"),
            429,
            TOO_MANY,
            &format!("after {limit} failures in total, through {base}"),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// A local cluster on a fresh PostgreSQL database
// ---------------------------------------------------------------------------------------------

/// The PostgreSQL server to test against; `None` (the test skips) without one, except in CI.
fn postgres() -> Option<Backend> {
    let backend = Backend::postgres();
    if backend.is_none() {
        assert!(
            !required(),
            "STRIDE_TEST_POSTGRES_URL is required in CI: the cluster tests need PostgreSQL"
        );
        eprintln!("STRIDE_TEST_POSTGRES_URL is not set: cluster test skipped");
    }
    backend
}

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(future)
}

/// Instances on one database; dropped in order: processes, their folders, the database.
struct Cluster {
    servers: Vec<Server>,
    dirs: Vec<tempfile::TempDir>,
    db: TestDb,
}

impl Cluster {
    /// `n` instances of `stride serve`, started at the same moment on a fresh (empty)
    /// database, each in its own empty working directory; `configure` adds to each one's
    /// environment.
    fn start(backend: &Backend, n: usize, configure: impl Fn(&mut Command) + Sync) -> Cluster {
        let db = block_on(TestDb::new(backend));
        let dirs: Vec<_> = (0..n)
            .map(|_| tempfile::tempdir().expect("a working directory"))
            .collect();
        let barrier = Barrier::new(n);
        let servers = std::thread::scope(|scope| {
            let handles: Vec<_> = dirs
                .iter()
                .map(|dir| {
                    let (barrier, url, configure) = (&barrier, &db.url, &configure);
                    scope.spawn(move || {
                        barrier.wait();
                        start_with(dir.path(), Some(url), configure)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("an instance started"))
                .collect()
        });
        Cluster { servers, dirs, db }
    }

    fn urls(&self) -> Vec<String> {
        self.servers.iter().map(|s| s.base.clone()).collect()
    }

    /// `stride users set-admin NAME`, the CLI as an operator runs it, from instance 0's folder.
    fn set_admin(&self, name: &str) {
        let out = stride(self.dirs[0].path(), Some(&self.db.url))
            .args(["users", "set-admin", name])
            .output()
            .expect("stride runs");
        assert!(
            out.status.success(),
            "set-admin: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The integer `n` a query returns, read straight from the database.
    fn count(&self, query: &str) -> i64 {
        block_on(async {
            let mut conn = sqlx::PgConnection::connect(&self.db.url)
                .await
                .expect("the test database");
            let row = sqlx::query(query)
                .fetch_one(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{query}: {e}"));
            row.try_get::<i64, _>("n").expect("a column n")
        })
    }
}

fn throttle(limit: u32) -> impl Fn(&mut Command) + Sync {
    move |command: &mut Command| {
        command.env(
            "ROCKET_THROTTLE",
            format!("{{login_failures_per_account={limit}}}"),
        );
    }
}

/// The acceptance checks, on two local instances: tokens, logouts and password changes
/// cross, an admin's configuration applies everywhere, pictures are served by all, a
/// registration race has one winner, and throttling counts across instances.
#[test]
fn a_local_cluster_passes_the_acceptance_checks() {
    let Some(backend) = postgres() else { return };
    const LIMIT: u32 = 4;
    let cluster = Cluster::start(&backend, 2, throttle(LIMIT));
    let urls = cluster.urls();
    let admin = User::new("adm");
    admin.sign_up(&urls[1]);
    cluster.set_admin(&admin.name);
    Deployment {
        urls,
        admin: Some((admin.email.clone(), admin.password.clone())),
        login_failures: Some(LIMIT),
    }
    .check_all();
}

/// The signing key is shared through the database: three instances started together on an
/// empty database all come up (their migrations race, under sqlx's advisory lock), exactly
/// one key is stored, and tokens cross between all of them.
#[test]
fn instances_starting_together_agree_on_one_key() {
    let Some(backend) = postgres() else { return };
    let cluster = Cluster::start(&backend, 3, |_| {});
    assert_eq!(
        cluster.count("SELECT COUNT(*) AS n FROM instance_secrets WHERE name = 'biscuit_root_key'"),
        1,
        "one signing key, stored in the database"
    );
    let migrations =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres"))
            .expect("migrations")
            .count();
    assert_eq!(
        cluster.count("SELECT COUNT(*) AS n FROM _sqlx_migrations WHERE success"),
        i64::try_from(migrations).expect("a count"),
        "each migration applied once"
    );
    let urls = cluster.urls();
    // A user signed up on each instance; each token works on all three.
    for (i, base) in urls.iter().enumerate() {
        let user = User::new(&format!("k{i}"));
        let token = user.sign_up(base);
        for other in &urls {
            assert_works(other, &token, &user, &format!("a token minted by {base}"));
        }
    }
    tokens_cross(&urls);
}

/// The outbox on two instances whose couriers share one SMTP server: a burst of reset
/// requests spread over both, and every email goes out exactly once.
#[test]
fn each_email_goes_out_once_from_two_couriers() {
    let Some(backend) = postgres() else { return };
    let Some(smtp) = SmtpServer::start() else {
        return;
    };
    let smtp_url = smtp.url();
    let cluster = Cluster::start(&backend, 2, |command| {
        command
            .env("ROCKET_EMAIL", format!("{{url=\"{smtp_url}\"}}"))
            .env("ROCKET_THROTTLE", "{enabled=false}");
    });
    let urls = cluster.urls();
    const USERS: usize = 6;
    const REQUESTS_EACH: usize = 3;
    let users: Vec<User> = (0..USERS).map(|_| User::new("mail")).collect();
    for (i, user) in users.iter().enumerate() {
        user.sign_up(&urls[i % urls.len()]);
    }
    // Every request at once, alternating between the instances.
    let barrier = Barrier::new(USERS * REQUESTS_EACH);
    std::thread::scope(|scope| {
        for (i, user) in users.iter().cycle().take(USERS * REQUESTS_EACH).enumerate() {
            let (barrier, base) = (&barrier, &urls[i % urls.len()]);
            scope.spawn(move || {
                barrier.wait();
                expect(
                    call(
                        base,
                        "POST",
                        "/api/auth/password/reset-request",
                        None,
                        Some(json!({"email": user.email})),
                    ),
                    200,
                    "password reset request processed",
                    base,
                );
            });
        }
    });
    let expected = USERS * REQUESTS_EACH;
    // Wait (generously) until the outbox holds every message and all of them are sent.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let queued = cluster.count("SELECT COUNT(*) AS n FROM outbox");
        let sent = cluster.count("SELECT COUNT(*) AS n FROM outbox WHERE sent_at IS NOT NULL");
        if queued == expected as i64 && sent == queued && smtp.received().len() >= expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{sent} of {queued} queued emails sent ({expected} expected), {} received",
            smtp.received().len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Both couriers keep polling (every second): give a duplicate time to show.
    std::thread::sleep(Duration::from_secs(3));
    let received = smtp.received();
    let mut per_recipient: BTreeMap<String, usize> = BTreeMap::new();
    for message in &received {
        *per_recipient.entry(message.to.clone()).or_default() += 1;
    }
    let wanted: BTreeMap<String, usize> = users
        .iter()
        .map(|u| (u.email.clone(), REQUESTS_EACH))
        .collect();
    assert_eq!(per_recipient, wanted, "messages per recipient");
    let ids: HashSet<_> = received
        .iter()
        .filter_map(|m| m.message_id.clone())
        .collect();
    assert_eq!(ids.len(), expected, "one Message-ID per message");
    assert_eq!(
        cluster.count("SELECT COUNT(*) AS n FROM outbox WHERE attempts <> 1"),
        0,
        "each message sent at the first attempt"
    );
}

/// The acceptance of a real deployment: the checks above against the instances named by
/// `STRIDE_ACCEPTANCE_URLS` (see the module's documentation and docs/deploy.md).
#[test]
#[ignore = "runs against a deployment: set STRIDE_ACCEPTANCE_URLS and pass --ignored"]
fn acceptance() {
    let deployment =
        Deployment::from_vars(|name| std::env::var(name).ok()).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("acceptance of {:?}", deployment.urls);
    deployment.check_all();
}

#[test]
fn acceptance_settings_come_from_the_environment() {
    let vars = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    };
    assert_eq!(
        Deployment::from_vars(vars(&[
            ("STRIDE_ACCEPTANCE_URLS", " http://a:8000/, https://b.lan ,"),
            ("STRIDE_ACCEPTANCE_ADMIN_EMAIL", "root@example.org"),
            ("STRIDE_ACCEPTANCE_ADMIN_PASSWORD", "secret secret"),
            ("STRIDE_ACCEPTANCE_LOGIN_FAILURES", "10"),
        ])),
        Ok(Deployment {
            urls: vec!["http://a:8000".into(), "https://b.lan".into()],
            admin: Some(("root@example.org".into(), "secret secret".into())),
            login_failures: Some(10),
        })
    );
    assert_eq!(
        Deployment::from_vars(vars(&[(
            "STRIDE_ACCEPTANCE_URLS",
            "http://a:8000,http://b:8000"
        )])),
        Ok(Deployment {
            urls: vec!["http://a:8000".into(), "http://b:8000".into()],
            admin: None,
            login_failures: None,
        })
    );
    for (pairs, error) in [
        (&[][..], "is not set"),
        (
            &[("STRIDE_ACCEPTANCE_URLS", "http://a:8000")][..],
            "at least two",
        ),
        (
            &[("STRIDE_ACCEPTANCE_URLS", "http://a,b:8000")][..],
            "b:8000 is not an http(s) URL",
        ),
        (
            &[
                ("STRIDE_ACCEPTANCE_URLS", "http://a,http://b"),
                ("STRIDE_ACCEPTANCE_ADMIN_EMAIL", "root@example.org"),
            ][..],
            "go together",
        ),
        (
            &[
                ("STRIDE_ACCEPTANCE_URLS", "http://a,http://b"),
                ("STRIDE_ACCEPTANCE_LOGIN_FAILURES", "0"),
            ][..],
            "is not a limit",
        ),
    ] {
        let found = Deployment::from_vars(vars(pairs));
        assert!(
            found.as_ref().is_err_and(|e| e.contains(error)),
            "{pairs:?}: {found:?}"
        );
    }
}
