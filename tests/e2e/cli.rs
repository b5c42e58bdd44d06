//! End to end: the real `stride` binary, as an operator runs it.

use std::io::Read;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;

#[test]
fn serves_sqlite_by_default_and_manages_admins() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Runs from a bare folder, as `cargo run` from a fresh checkout would: no Rocket.toml
    // needed, the database file and its folder created under data/.
    let server = start(dir.path(), None);
    assert!(dir.path().join("data/stride.db").exists());
    let token = register_sam(&server);
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
        ("ROCKET_METRICS", "{token=\"short\"}", "metrics.token"),
        ("ROCKET_LOG_FORMAT", "xml", "log_format"),
        ("ROCKET_LOG_FILTER", "info,=[", "log_filter"),
        (
            "ROCKET_KEEP_ALIVE",
            "soon",
            "\"soon\", expected u32 for key \"keep_alive\"",
        ),
        ("ROCKET_CONNECTIONS", "{max=0}", "connections.max = 0"),
        (
            "ROCKET_CONNECTIONS",
            "{header_timeout=0}",
            "connections.header_timeout = 0",
        ),
        (
            "ROCKET_CONNECTIONS",
            "{body_total=-1}",
            "connections.body_total = -1",
        ),
        (
            "ROCKET_CONNECTIONS",
            "{write_timeout=\"long\"}",
            "\"long\", expected f64 for key \"connections.write_timeout\"",
        ),
        (
            "ROCKET_CONNECTIONS",
            "{max_header_size=\"1 KiB\"}",
            "connections.max_header_size = 1KiB",
        ),
        (
            "ROCKET_CONNECTIONS",
            "{header_timout=3}",
            "unknown field: found `header_timout`",
        ),
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

/// Each module's own section is judged before anything starts, by `check-config` and by every
/// other command, switched on or not, and an error names the key (and the value when its type
/// is wrong). The keys that moved into a module's section are refused where they were.
#[test]
fn module_sections_are_checked_up_front_naming_the_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (key, value, named) in [
        (
            "ROCKET_PICTURES",
            "{max_size=0}",
            "pictures.max_size: must be at least 1 byte (got 0)",
        ),
        (
            "ROCKET_PICTURES",
            "{max_size=\"big\"}",
            "found string \"big\", expected u64 for key \"pictures.max_size\"",
        ),
        (
            "ROCKET_PASSWORD_RESET",
            "{token_ttl=0}",
            "password_reset.token_ttl",
        ),
        (
            "ROCKET_PASSWORD_RESET",
            "{requests_per_client=-1}",
            "password_reset.requests_per_client: must be at least 1 (got -1)",
        ),
        (
            "ROCKET_REGISTRATION",
            "{per_client=0}",
            "registration.per_client",
        ),
        (
            "ROCKET_REGISTRATION",
            "{per_clients=3}",
            "found `per_clients`",
        ),
        (
            "ROCKET_PROFILE_EDIT",
            "{require_current_password=\"yes\"}",
            "\"profile_edit.require_current_password\"",
        ),
        ("ROCKET_SESSIONS", "{ttl=60}", "found `ttl`"),
        // Moved: the old keys stop the start, named, instead of being silently ignored.
        ("ROCKET_TOKENS", "{reset_ttl=60}", "found `reset_ttl`"),
        (
            "ROCKET_PASSWORDS",
            "{require_current=true}",
            "found `require_current`",
        ),
        (
            "ROCKET_THROTTLE",
            "{registrations_per_client=3}",
            "found `registrations_per_client`",
        ),
        (
            "ROCKET_THROTTLE",
            "{reset_requests_per_account=3}",
            "found `reset_requests_per_account`",
        ),
    ] {
        // A module left out of the build has no section to judge.
        if key == "ROCKET_PICTURES" && !cfg!(feature = "pictures") {
            continue;
        }
        for (command, switch) in [("check-config", None), ("migrate", Some("{pictures=false,password_reset=false,registration=false,profile=false,sessions=false,users=false}"))] {
            let mut cmd = stride(dir.path(), None);
            cmd.env(key, value).arg(command);
            if let Some(switch) = switch {
                cmd.env("ROCKET_MODULES", switch);
            }
            let out = run(&mut cmd);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{command} with {key}={value}: {err}");
            assert!(err.to_lowercase().contains(&named.to_lowercase()), "{command} with {key}={value}: {err}");
        }
    }
    let out = run(stride(dir.path(), None)
        .env("ROCKET_PROFILE_EDIT", "{require_current_password=true}")
        .arg("check-config"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("the configuration is valid"));
}

#[test]
fn help_for_every_command() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["migrate", "--help"],
        vec!["check-config", "--help"],
        vec!["users", "list", "--help"],
        vec!["users", "create", "--help"],
        vec!["users", "delete", "--help"],
        vec!["users", "unset-admin", "--help"],
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

/// Resident memory of a process in bytes: (now, peak since the last reset).
#[cfg(all(target_os = "linux", feature = "pictures"))]
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or_else(|| panic!("{name} in {status}"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Streams a picture upload of `size` bytes of zeros, the way a client with a huge file does:
/// from a reader, 64 KiB at a time (nothing of that size is ever in the test's memory either),
/// reading the answer concurrently, as the server may answer and close before the body ends.
/// Returns the raw answer and how many body bytes the server took before it stopped reading.
#[cfg(feature = "pictures")]
fn stream_upload(server: &Server, token: &str, size: u64, chunked: bool) -> (String, u64) {
    use std::io::Write;
    use std::net::{Shutdown, TcpStream};

    let address = server.base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .set_write_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut answer = stream.try_clone().expect("clone");
    answer
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let mut buffer = [0u8; 4096];
        // Until the server closes; a reset after its answer is a close too.
        while let Ok(n @ 1..) = answer.read(&mut buffer) {
            bytes.extend_from_slice(&buffer[..n]);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    });

    let boundary = "stride-big-upload";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.png\"\r\n\
         Content-Type: image/png\r\n\r\n"
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    let length = if chunked {
        "Transfer-Encoding: chunked".to_owned()
    } else {
        format!(
            "Content-Length: {}",
            head.len() as u64 + size + tail.len() as u64
        )
    };
    let request = format!(
        "POST /api/auth/picture HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\n{length}\r\n\r\n"
    );
    let frame = |data: &[u8]| -> Vec<u8> {
        if chunked {
            let mut framed = format!("{:x}\r\n", data.len()).into_bytes();
            framed.extend_from_slice(data);
            framed.extend_from_slice(b"\r\n");
            framed
        } else {
            data.to_vec()
        }
    };
    let mut sent = 0u64;
    let mut send = |stream: &mut TcpStream, data: &[u8]| -> bool {
        let ok = stream.write_all(&frame(data)).is_ok();
        if ok {
            sent += data.len() as u64;
        }
        ok
    };
    let mut file = std::io::repeat(0).take(size);
    let mut buffer = vec![0u8; 64 * 1024];
    let mut open =
        stream.write_all(request.as_bytes()).is_ok() && send(&mut stream, head.as_bytes());
    while open {
        let n = file.read(&mut buffer).expect("zeros");
        if n == 0 {
            break;
        }
        open = send(&mut stream, &buffer[..n]);
    }
    if open && send(&mut stream, tail.as_bytes()) && chunked {
        let _ = stream.write_all(b"0\r\n\r\n");
    }
    let _ = stream.shutdown(Shutdown::Write);
    (reader.join().expect("reader"), sent)
}

#[cfg(target_os = "linux")]
#[cfg(feature = "pictures")] // uses the pictures module
#[test]
fn a_200_mb_picture_is_refused_while_it_streams() {
    const SIZE: u64 = 200 * 1024 * 1024;
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start(dir.path(), None);
    let token = register_sam(&server);
    let pid = server.child.id();
    // Warm up the upload path (buffers, a blocking thread) before measuring.
    let (warm_up, _) = stream_upload(&server, &token, 2 * 1024 * 1024, true);
    assert!(warm_up.starts_with("HTTP/1.1 413"), "{warm_up}");

    // Announced (Content-Length) and unannounced (chunked) alike.
    for chunked in [false, true] {
        // Reset the peak, so that it measures this upload only.
        std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("reset VmHWM");
        let (before, _) = memory(pid);
        let (answer, sent) = stream_upload(&server, &token, SIZE, chunked);
        let (after, peak) = memory(pid);
        let growth = peak.saturating_sub(before);
        eprintln!(
            "200 MB upload (chunked: {chunked}): server RSS {} KiB before, {} KiB after, peak +{} KiB; \
             {} KiB of the body sent before the server stopped reading",
            before / 1024, after / 1024, growth / 1024, sent / 1024
        );
        assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
        let json = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
        let json: Value = serde_json::from_str(json).unwrap_or_else(|_| panic!("JSON: {answer}"));
        assert_eq!(
            json,
            json!({"status": "error",
            "message": "error during picture update: file size exceeds 1.0MB"})
        );
        assert!(
            growth < 32 * 1024 * 1024,
            "the server grew by {} KiB",
            growth / 1024
        );
        assert!(sent < SIZE, "the server read the whole body");
        let (status, body) = call_ok(&server, "GET", "/api/ping", None, None);
        assert_eq!((status, body["message"].as_str()), (200, Some("pong!")));
    }
}

/// `stride users …` with `input` on standard input (none: empty); (exit code, stdout, stderr).
fn users(dir: &std::path::Path, args: &[&str], input: Option<&str>) -> (i32, String, String) {
    use std::io::Write;
    use std::process::Stdio;
    let mut command = stride(dir, None);
    command
        .env(
            "ROCKET_EMAIL",
            format!("{{url=\"file://{}/mail\"}}", dir.display()),
        )
        .arg("users")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("stride runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.unwrap_or("").as_bytes())
        .expect("input written");
    let out = child.wait_with_output().expect("stride ends");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The account commands, with the server's configuration and the API's rules: create (with a
/// password from stdin, or a reset link by email), list, grant and remove admin rights (the
/// only admin keeps theirs), delete (everything of the account; never the only admin). A
/// refusal exits 1, says why, and changes nothing.
#[test]
fn users_are_managed_from_the_command_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let (code, _, err) = users(
        d,
        &["create", "sam", "sam@example.com", "--password-stdin"],
        Some("quokka-zephyr-7\n"),
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("sam created"), "{err}");
    let (long, huge) = ("x".repeat(200), "é".repeat(20_000));
    for (args, input, says) in [
        (
            &["create", "SAM", "other@example.com", "--password-stdin"][..],
            "quokka-zephyr-8",
            "sorry, that user already exists",
        ),
        (
            &["create", "bo", "bo@example.com", "--password-stdin"][..],
            "quokka-zephyr-8",
            "username: 3 to 12 characters required",
        ),
        (
            &["create", "kim", "not-an-address", "--password-stdin"][..],
            "quokka-zephyr-8",
            "email: valid email must be provided",
        ),
        (
            &["create", "kim", "kim@example.com", "--password-stdin"][..],
            "12345678",
            "too common or too easy to guess",
        ),
        (
            &["create", "kim", "kim@example.com", "--password-stdin"][..],
            "short",
            "password: 8 characters required",
        ),
        // Too long: the same refusal as registration's (the command reads no more than a
        // password can be, whatever is piped in).
        (
            &["create", "kim", "kim@example.com", "--password-stdin"][..],
            long.as_str(),
            "password: 128 characters maximum",
        ),
        (
            &["create", "kim", "kim@example.com", "--password-stdin"][..],
            huge.as_str(),
            "password: 128 characters maximum",
        ),
        (&["unset-admin", "nobody"][..], "", "no user named 'nobody'"),
        (&["delete", "nobody"][..], "", "no user named 'nobody'"),
        (&["set-admin", "nobody"][..], "", "no user named 'nobody'"),
    ] {
        let (code, _, err) = users(d, args, Some(input));
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // No password: the account gets a link to set one, queued for the next running courier.
    let (code, _, err) = users(d, &["create", "ann", "ann@example.com"], None);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("a link to set a password is queued for ann@example.com"),
        "{err}"
    );
    let (code, list, _) = users(d, &["list"], None);
    assert_eq!(code, 0);
    let rows: Vec<&str> = list.lines().collect();
    assert_eq!(rows.len(), 3, "{list}");
    assert!(
        rows[1].starts_with("sam ")
            && rows[1].contains("sam@example.com")
            && rows[1].contains(" no "),
        "{list}"
    );
    assert!(rows[2].starts_with("ann "), "{list}");

    assert_eq!(users(d, &["set-admin", "sam"], None).0, 0);
    let (code, _, err) = users(d, &["unset-admin", "sam"], None);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("sam is the only admin"), "{err}");
    let (code, _, err) = users(d, &["delete", "sam"], None);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("sam is the only admin, so it cannot be deleted"),
        "{err}"
    );
    assert_eq!(users(d, &["set-admin", "ann"], None).0, 0);
    assert_eq!(users(d, &["unset-admin", "SAM"], None).0, 0);

    // The server: sam logs in with the password from stdin, and ann's link goes out.
    let server = start_with(d, None, |c| {
        c.env(
            "ROCKET_EMAIL",
            format!("{{url=\"file://{}/mail\"}}", d.display()),
        );
    });
    let (status, body) = call_ok(
        &server,
        "POST",
        "/api/auth/login",
        None,
        Some(json!({"email": "sam@example.com", "password": "quokka-zephyr-7"})),
    );
    assert_eq!(status, 200, "{body}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mail = loop {
        let found = std::fs::read_dir(d.join("mail"))
            .ok()
            .and_then(|mut entries| {
                entries.find_map(|e| {
                    e.ok()
                        .map(|e| e.path())
                        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                })
            });
        if let Some(file) = found {
            break std::fs::read_to_string(file).expect("an email");
        }
        assert!(Instant::now() < deadline, "no email for ann");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        mail.contains("ann@example.com") && mail.contains("password-reset?token="),
        "{mail}"
    );
    let token = body["auth_token"].as_str().expect("a token").to_owned();
    drop(server);

    let (code, _, err) = users(d, &["delete", "sam"], None);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("sam deleted"), "{err}");
    let (_, list, _) = users(d, &["list"], None);
    assert_eq!(list.lines().count(), 2, "{list}");
    let server = start(d, None);
    let (status, body) = call_ok(&server, "GET", "/api/auth/profile", Some(&token), None);
    assert_eq!(
        (status, body["message"].as_str()),
        (401, Some("provide a valid auth token"))
    );
}
