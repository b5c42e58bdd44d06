//! End to end: the real `stride` binary, as an operator runs it.

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{Backend, TestDb, PASSWORD};

const BIN: &str = env!("CARGO_BIN_EXE_stride");

/// A running server, killed when dropped (a failing test leaves no process behind).
struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn stride(dir: &Path, database: Option<&str>) -> Command {
    let mut command = Command::new(BIN);
    command
        .current_dir(dir)
        .env_remove("ROCKET_PROFILE")
        .env("ROCKET_LOG_LEVEL", "off");
    for (key, _) in std::env::vars() {
        if key.starts_with("ROCKET_") && key != "ROCKET_LOG_LEVEL" {
            command.env_remove(key);
        }
    }
    if let Some(url) = database {
        command.env("ROCKET_DATABASES", format!("{{main={{url=\"{url}\"}}}}"));
    }
    command
}

fn run(command: &mut Command) -> Output {
    command.stdin(Stdio::null()).output().expect("stride runs")
}

fn start(dir: &Path, database: Option<&str>) -> Server {
    let port = free_port();
    let child = stride(dir, database)
        .env("ROCKET_PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("stride starts");
    let mut server = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = server.child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = server.child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("stride exited ({status}): {err}");
        }
        if call(&server, "GET", "/api/ping", None, None).is_some() {
            return server;
        }
        assert!(
            Instant::now() < deadline,
            "stride did not answer within 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
}

/// One request; `None` when nothing answers.
fn call(
    server: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Option<(u16, Value)> {
    let url = format!("{}{path}", server.base);
    let mut request = ureq::http::Request::builder().method(method).uri(url);
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let request = request.header("Content-Type", "application/json");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut response = agent().run(request.body(body).expect("request")).ok()?;
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().ok()?;
    Some((
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")),
    ))
}

fn call_ok(
    server: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    call(server, method, path, token, body).expect("the server answers")
}

#[test]
fn serves_sqlite_by_default_and_manages_admins() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Runs from a bare folder, as `cargo run` from a fresh checkout would: no Rocket.toml
    // needed, the database file and its folder created under data/.
    let server = start(dir.path(), None);
    assert!(dir.path().join("data/stride.db").exists());
    let (status, body) = call_ok(
        &server,
        "POST",
        "/api/auth/register",
        None,
        Some(
            json!({"username": "sam", "email": "sam@example.com", "password": PASSWORD, "password_conf": PASSWORD}),
        ),
    );
    assert_eq!(status, 201, "{body}");
    let token = body["auth_token"].as_str().expect("token").to_owned();
    let (status, _) = call_ok(
        &server,
        "PATCH",
        "/api/config",
        Some(&token),
        Some(json!({"max_users": 3})),
    );
    assert_eq!(status, 403);

    let granted = run(stride(dir.path(), None).args(["users", "set-admin", "SAM"]));
    assert!(
        granted.status.success(),
        "{}",
        String::from_utf8_lossy(&granted.stderr)
    );
    let (status, body) = call_ok(
        &server,
        "PATCH",
        "/api/config",
        Some(&token),
        Some(json!({"max_users": 3})),
    );
    assert_eq!(status, 200, "{body}");

    let missing = run(stride(dir.path(), None).args(["users", "set-admin", "nobody"]));
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no user named 'nobody'"));

    let (status, body) = call_ok(&server, "GET", "/api/auth/logout", Some(&token), None);
    assert_eq!(
        (status, body["message"].as_str()),
        (200, Some("successfully logged out"))
    );
}

#[test]
fn bad_configuration_stops_the_start_naming_the_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (key, value, named) in [
        ("ROCKET_TOKENS", "{session_ttl=\"soon\"}", "SESSION_TTL"),
        ("ROCKET_PUBLIC_URL", "fit.example.org", "public_url"),
        ("ROCKET_PASSWORDS", "{min_length=0}", "passwords.min_length"),
        ("ROCKET_MODULES", "{profile=\"off\"}", "modules.profile"),
    ] {
        let out = run(stride(dir.path(), None).env(key, value).arg("migrate"));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{key}={value} was accepted");
        assert!(
            err.to_lowercase().contains(&named.to_lowercase()),
            "{key}={value}: {err}"
        );
    }
}

#[test]
fn help_for_every_command() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["migrate", "--help"],
        vec!["users", "set-admin", "--help"],
    ] {
        let out = Command::new(BIN).args(&args).output().expect("runs");
        assert!(out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{args:?}"
        );
    }
}

#[tokio::test]
async fn migrate_then_serve_on_postgres() {
    let Some(backend @ Backend::Postgres(_)) = Backend::postgres() else {
        eprintln!("STRIDE_TEST_POSTGRES_URL is not set: PostgreSQL run skipped");
        return;
    };
    let db = TestDb::new(&backend).await;
    let url = db.url.clone();
    let dir = tempfile::tempdir().expect("temp dir");
    let migrated = tokio::task::spawn_blocking({
        let (dir, url) = (dir.path().to_owned(), url.clone());
        move || run(stride(&dir, Some(&url)).arg("migrate"))
    })
    .await
    .expect("join");
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    let dir_path = dir.path().to_owned();
    tokio::task::spawn_blocking(move || {
        let server = start(&dir_path, Some(&url));
        let (status, body) = call_ok(&server, "POST", "/api/auth/register", None,
            Some(json!({"username": "sam", "email": "sam@example.com", "password": PASSWORD, "password_conf": PASSWORD})));
        assert_eq!(status, 201, "{body}");
        assert!(!dir_path.join("data/stride.db").exists(), "no SQLite file on a PostgreSQL deployment");
    })
    .await
    .expect("join");
    drop(db);
}
