//! Crash safety, end to end: the real `stride` binary takes a burst of concurrent registrations
//! and profile edits and is killed in the middle of it (SIGKILL: no shutdown, nothing flushed).
//! Started again on the same database, it has every write it acknowledged; a write that got no
//! answer may or may not be there, and nothing here assumes either. On SQLite the file the
//! crash left passes `PRAGMA integrity_check`.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sqlx::Connection;

use crate::helpers::{call_ok, start_with, Server};
use crate::helpers::{each_backend, Backend, TestDb, PASSWORD};

/// Client threads, and rounds each makes: a registration, then an edit of that new profile.
const CLIENTS: usize = 4;
const ROUNDS: usize = 25;
/// Acknowledged writes before the kill: well into the burst, far from its end.
const KILL_AFTER: usize = 60;

/// A registration the server acknowledged, and the profile edit it acknowledged after it.
#[derive(Debug)]
struct Registered {
    username: String,
    email: String,
    token: String,
    edit: Option<Value>,
}

#[derive(Debug, Default)]
struct ClientLog {
    registered: Vec<Registered>,
    /// Answers other than success from a server still alive: none is expected.
    unexpected: Vec<String>,
}

/// Throttling would refuse a burst from one address: not what is under test.
fn no_throttling(command: &mut Command) {
    command.env("ROCKET_THROTTLE", "{enabled=false}");
}

/// One request on a client's own connection; `None` when no whole answer came back.
fn send(
    agent: &ureq::Agent,
    base: &str,
    path: &str,
    token: Option<&str>,
    body: &Value,
) -> Option<(u16, Value)> {
    let mut request = ureq::http::Request::builder()
        .method("POST")
        .uri(format!("{base}{path}"))
        .header("Content-Type", "application/json");
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let request = request.body(body.to_string()).expect("a request");
    let mut response = agent.run(request).ok()?;
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().ok()?;
    Some((status, serde_json::from_str(&text).ok()?))
}

fn client(base: &str, id: usize, acknowledged: &AtomicUsize) -> ClientLog {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut log = ClientLog::default();
    for round in 0..ROUNDS {
        let username = format!("c{id}r{round}");
        let email = format!("{username}@example.com");
        let registration = json!({"username": username, "email": email,
                                  "password": PASSWORD, "password_conf": PASSWORD});
        let token = match send(&agent, base, "/api/auth/register", None, &registration) {
            Some((201, body)) => body["auth_token"].as_str().unwrap_or_default().to_owned(),
            Some((status, body)) => {
                log.unexpected
                    .push(format!("register {username}: {status} {body}"));
                continue;
            }
            // The server is gone.
            None => break,
        };
        acknowledged.fetch_add(1, Ordering::SeqCst);
        log.registered.push(Registered {
            username: username.clone(),
            email,
            token: token.clone(),
            edit: None,
        });
        let edit = json!({"first_name": format!("First {id}.{round}"), "last_name": null,
                          "location": format!("Town {id}.{round}"),
                          "bio": format!("Bio {id}.{round}"), "birth_date": "1985-07-14"});
        match send(&agent, base, "/api/auth/profile/edit", Some(&token), &edit) {
            Some((200, _)) => {
                acknowledged.fetch_add(1, Ordering::SeqCst);
                if let Some(last) = log.registered.last_mut() {
                    last.edit = Some(edit);
                }
            }
            Some((status, body)) => log
                .unexpected
                .push(format!("edit {username}: {status} {body}")),
            None => break,
        }
    }
    log
}

/// Starts Stride, fires the burst, kills Stride in the middle of it; returns what was
/// acknowledged.
fn burst_then_kill(dir: &Path, url: &str) -> Vec<Registered> {
    let mut server = start_with(dir, Some(url), no_throttling);
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let (base, acknowledged) = (server.base.clone(), Arc::clone(&acknowledged));
            std::thread::spawn(move || client(&base, id, &acknowledged))
        })
        .collect();
    while acknowledged.load(Ordering::SeqCst) < KILL_AFTER
        && !clients.iter().all(|c| c.is_finished())
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    // SIGKILL on Unix.
    server.child.kill().expect("kill stride");
    server.child.wait().expect("stride ends");
    let logs: Vec<ClientLog> = clients
        .into_iter()
        .map(|c| c.join().expect("a client thread"))
        .collect();
    let unexpected: Vec<&String> = logs.iter().flat_map(|l| &l.unexpected).collect();
    assert!(unexpected.is_empty(), "before the kill: {unexpected:#?}");
    let registered: Vec<Registered> = logs.into_iter().flat_map(|l| l.registered).collect();
    let edits = registered.iter().filter(|r| r.edit.is_some()).count();
    let writes = registered.len() + edits;
    eprintln!(
        "killed after {} registrations and {edits} profile edits were acknowledged",
        registered.len()
    );
    assert!(writes >= KILL_AFTER, "only {writes} writes acknowledged");
    assert!(
        writes < CLIENTS * ROUNDS * 2,
        "the burst ended before the kill"
    );
    registered
}

/// Every acknowledged registration logs in, its session lives on, and its acknowledged edit
/// is in its profile.
fn check_acknowledged(server: &Server, registered: &[Registered]) {
    for user in registered {
        let (status, body) = call_ok(
            server,
            "POST",
            "/api/auth/login",
            None,
            Some(json!({"email": user.email, "password": PASSWORD})),
        );
        assert_eq!(
            status, 200,
            "{}: registered, then lost: {body}",
            user.username
        );
        let (status, profile) =
            call_ok(server, "GET", "/api/auth/profile", Some(&user.token), None);
        assert_eq!(status, 200, "{}: session lost: {profile}", user.username);
        let data = &profile["data"];
        assert_eq!(data["username"], user.username.as_str());
        if let Some(edit) = &user.edit {
            for key in ["first_name", "last_name", "location", "bio"] {
                assert_eq!(data[key], edit[key], "{}: edit lost: {data}", user.username);
            }
            assert_eq!(data["birth_date"], "Sun, 14 Jul 1985 00:00:00 GMT");
        }
    }
}

/// `PRAGMA integrity_check` and `foreign_key_check` on the file as the crash left it.
async fn check_sqlite_file(url: &str) {
    let path = url
        .strip_prefix("sqlite://")
        .and_then(|rest| rest.split('?').next())
        .expect("a SQLite file URL");
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .expect("open the database file");
    let integrity: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut conn)
        .await
        .expect("integrity check");
    assert_eq!(integrity, ["ok"]);
    let orphans = sqlx::query("PRAGMA foreign_key_check")
        .fetch_all(&mut conn)
        .await
        .expect("foreign key check");
    assert!(
        orphans.is_empty(),
        "{} rows break a foreign key",
        orphans.len()
    );
    conn.close().await.expect("close");
}

each_backend! {
    async fn acknowledged_writes_survive_a_kill(backend) {
        let db = TestDb::new(&backend).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let (path, url) = (dir.path().to_owned(), db.url.clone());
        let registered = tokio::task::spawn_blocking(move || burst_then_kill(&path, &url))
            .await
            .expect("the burst");
        if matches!(backend, Backend::Sqlite) {
            check_sqlite_file(&db.url).await;
        }
        let (path, url) = (dir.path().to_owned(), db.url.clone());
        tokio::task::spawn_blocking(move || {
            let server = start_with(&path, Some(&url), no_throttling);
            check_acknowledged(&server, &registered);
        })
        .await
        .expect("the restart");
    }
}
