//! A graceful shutdown of the real binary: SIGTERM drains the request in flight, and leaves the
//! outbox consistent while the courier works through a backlog.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{call_ok, start_with, Server, PASSWORD};
use crate::mail::SmtpServer;

fn terminate(server: &Server) {
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

/// Waits for the process to end, at most `limit`.
fn exit_within(server: &mut Server, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = server.child.try_wait().expect("wait") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "stride still runs {limit:?} after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGTERM while a request is in flight: the request gets its whole answer (it needs the
/// database after the signal), and the process exits 0 soon after.
#[cfg(feature = "pictures")] // uses the pictures module
#[test]
fn sigterm_drains_the_request_in_flight_then_exits_cleanly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = start_with(dir.path(), None, |_| {});
    let token = crate::helpers::register_sam(&server);

    // A picture upload whose body arrives slowly, in two halves around the signal.
    let picture = crate::helpers::png(64, 64);
    let body = crate::helpers::file_body("sam.png", &picture);
    let address = server.base.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let head = format!(
        "POST /api/auth/picture HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        crate::helpers::multipart_content_type(),
        body.len()
    );
    let (first, second) = body.split_at(body.len() / 2);
    stream.write_all(head.as_bytes()).expect("head");
    stream.write_all(first).expect("first half");
    std::thread::sleep(Duration::from_millis(300));
    let signalled = Instant::now();
    terminate(&server);
    std::thread::sleep(Duration::from_millis(500));
    stream
        .write_all(second)
        .expect("the server still reads the body");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("the answer");
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(answer.contains("user picture updated"), "{answer}");

    let status = exit_within(&mut server, Duration::from_secs(15));
    assert!(status.success(), "{status}");
    eprintln!("exited {:?} after SIGTERM", signalled.elapsed());
    // Nothing answers any more; the picture was stored.
    assert!(TcpStream::connect(&address).is_err());
    let db = dir.path().join("data/stride.db");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM pictures"), 1);
}

/// The number a query on a SQLite file returns.
fn count(db: &Path, query: &str) -> i64 {
    let url = format!("sqlite://{}", db.display());
    let query = query.to_owned();
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(async move {
            use sqlx::Connection as _;
            let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("open");
            sqlx::query_scalar::<_, i64>(&query)
                .fetch_one(&mut conn)
                .await
                .expect("query")
        })
}

/// SIGTERM while the courier works through a backlog: every message is either sent and
/// recorded so, or still pending and unclaimed; none is lost, and after a restart each has
/// been received exactly once.
#[test]
fn sigterm_leaves_the_outbox_consistent() {
    let Some(smtp) = SmtpServer::start() else {
        return;
    };
    const USERS: usize = 8;
    let dir = tempfile::tempdir().expect("temp dir");
    let configure = |c: &mut Command| {
        c.env("ROCKET_EMAIL", format!("{{url=\"{}\"}}", smtp.url()))
            .env("ROCKET_THROTTLE", "{enabled=false}");
    };
    let mut server = start_with(dir.path(), None, configure);
    for i in 0..USERS {
        let (status, body) = call_ok(
            &server,
            "POST",
            "/api/auth/register",
            None,
            Some(json!({
            "username": format!("user{i}"), "email": format!("user{i}@example.com"),
            "password": PASSWORD, "password_conf": PASSWORD})),
        );
        assert_eq!(status, 201, "{body}");
    }
    for i in 0..USERS {
        let (status, _) = call_ok(
            &server,
            "POST",
            "/api/auth/password/reset-request",
            None,
            Some(json!({"email": format!("user{i}@example.com")})),
        );
        assert_eq!(status, 200);
    }
    terminate(&server);
    assert!(exit_within(&mut server, Duration::from_secs(30)).success());

    let db = dir.path().join("data/stride.db");
    let received = smtp.received().len();
    let rows = count(&db, "SELECT COUNT(*) FROM outbox");
    let sent = count(&db, "SELECT COUNT(*) FROM outbox WHERE sent_at IS NOT NULL");
    let claimed = count(
        &db,
        "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL AND claimed_until IS NOT NULL",
    );
    eprintln!("at exit: {rows} queued, {sent} sent, {received} received");
    assert_eq!(
        rows, USERS as i64,
        "every answered request queued its email"
    );
    assert_eq!(
        sent, received as i64,
        "what left is recorded as sent, and nothing more"
    );
    assert_eq!(claimed, 0, "no message is left claimed");

    let _restarted = start_with(dir.path(), None, configure);
    let all = tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(smtp.wait_for(USERS));
    std::thread::sleep(Duration::from_millis(500));
    let all_now = smtp.received();
    assert_eq!(all_now.len(), USERS, "each message once");
    let mut ids: Vec<_> = all.iter().map(|m| m.message_id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), USERS, "no message twice");
}
