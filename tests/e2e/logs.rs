//! No password, session token, reset token or reset link ever reaches a log line, even at
//! debug level, where Rocket prints request lines with their query strings and headers; in
//! text and in JSON alike. Every line a request causes carries its id.

use std::fs::File;

use serde_json::{json, Value};

use crate::helpers::{agent, call_ok, start_with};
use crate::mail::SmtpServer;

/// What a full flow logged (stdout, then stderr), and its secrets.
struct Flow {
    stdout: String,
    stderr: String,
    secrets: Vec<String>,
}

#[test]
fn no_secret_reaches_the_logs() {
    let Some(flow) = run_flow("text") else { return };
    let output = flow.stdout.clone() + &flow.stderr;
    // The logs did record the flow (so this test can fail)...
    assert!(
        output.contains("GET /password-reset?token=[redacted]"),
        "{output}"
    );
    assert!(
        output.contains("Bearer [redacted]"),
        "debug level logs the Authorization header"
    );
    // ...and none of its secrets.
    for secret in &flow.secrets {
        let leak = output.lines().find(|line| line.contains(secret.as_str()));
        assert!(leak.is_none(), "a secret is in the logs: {leak:?}");
    }
    // One access line per request, with the route's template, never the path asked for.
    let access: Vec<&str> = flow
        .stdout
        .lines()
        .filter(|l| l.contains(" stride::access: "))
        .collect();
    assert!(
        access.iter().any(
            |l| l.contains("method=GET route=/password-reset?<token> status=200")
                && l.contains("latency_ms=")
        ),
        "{access:?}"
    );
    // Every line of the login request carries its id.
    let login = access
        .iter()
        .find(|l| l.contains("route=/api/auth/login status=200"))
        .expect("the login's access line");
    let id = login
        .split(" request_id=")
        .nth(1)
        .expect("a request id")
        .trim();
    let lines: Vec<&str> = flow
        .stdout
        .lines()
        .filter(|l| l.ends_with(&format!("request_id={id}")))
        .collect();
    assert!(
        lines.iter().any(|l| l.contains("POST /api/auth/login")),
        "Rocket's request line: {lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("Response succeeded")),
        "{lines:?}"
    );
}

#[test]
fn json_logs_are_one_object_per_line_without_secrets() {
    let Some(flow) = run_flow("json") else { return };
    let lines: Vec<Value> = flow
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for line in &lines {
        for key in ["timestamp", "level", "target", "message"] {
            assert!(line[key].is_string(), "{key} in {line}");
        }
        let text = line.to_string();
        for secret in &flow.secrets {
            assert!(
                !text.contains(secret.as_str()),
                "a secret is in the logs: {text}"
            );
        }
        // Every line Rocket logs for a request carries the request's id (its debug dump of
        // the raw request comes before the request has one).
        let message = line["message"].as_str().unwrap_or_default();
        if line["target"] == "rocket::server" && !message.starts_with("received request") {
            assert!(line["request_id"].is_string(), "{line}");
        }
    }
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "GET /password-reset?token=[redacted]:"),
        "{}",
        flow.stdout
    );
    let access: Vec<&Value> = lines
        .iter()
        .filter(|l| l["target"] == "stride::access")
        .collect();
    let login = access
        .iter()
        .find(|l| l["route"] == "/api/auth/login" && l["status"] == 200)
        .expect("the login's access line");
    assert_eq!(login["method"], "POST");
    assert!(login["latency_ms"].is_number(), "{login}");
    let id = login["request_id"].as_str().expect("a request id");
    let of_login = lines.iter().filter(|l| l["request_id"] == id).count();
    assert!(
        of_login >= 4,
        "request line, match, outcome, access, response: {of_login}"
    );
    let ids: std::collections::BTreeSet<&str> = access
        .iter()
        .filter_map(|l| l["request_id"].as_str())
        .collect();
    assert_eq!(ids.len(), access.len(), "one id per request");
}

/// Runs register, login, profile, a password change, a reset by email and through the
/// browser form, and a logout, on the real binary at debug level with `log_format`.
fn run_flow(format: &str) -> Option<Flow> {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let smtp = SmtpServer::start()?;
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("stride.log");
    let server = {
        let (out, err) = (
            File::create(&log).expect("log"),
            File::create(dir.path().join("stride.err")).expect("err"),
        );
        let email = format!("{{url=\"{}\"}}", smtp.url());
        start_with(dir.path(), None, move |c| {
            c.env("ROCKET_LOG_LEVEL", "debug")
                .env("ROCKET_LOG_FORMAT", format)
                .env("ROCKET_EMAIL", email)
                .stdout(out)
                .stderr(err);
        })
    };
    let (first, second, third) = ("first-Secret-1", "second-Secret-2", "third-Secret-3");

    let (_, body) = call_ok(
        &server,
        "POST",
        "/api/auth/register",
        None,
        Some(
            json!({"username": "sam", "email": "sam@example.com", "password": first, "password_conf": first}),
        ),
    );
    let registered = body["auth_token"].as_str().expect("token").to_owned();
    let (_, body) = call_ok(
        &server,
        "POST",
        "/api/auth/login",
        None,
        Some(json!({"email": "sam@example.com", "password": first})),
    );
    let logged_in = body["auth_token"].as_str().expect("token").to_owned();
    assert_eq!(
        call_ok(&server, "GET", "/api/auth/profile", Some(&logged_in), None).0,
        200
    );
    let edit = json!({"first_name": null, "last_name": null, "location": null, "bio": null, "birth_date": null,
                      "password": second, "password_conf": second});
    assert_eq!(
        call_ok(
            &server,
            "POST",
            "/api/auth/profile/edit",
            Some(&logged_in),
            Some(edit)
        )
        .0,
        200
    );
    assert_eq!(
        call_ok(
            &server,
            "POST",
            "/api/auth/password/reset-request",
            None,
            Some(json!({"email": "sam@example.com"}))
        )
        .0,
        200
    );
    let (link, reset) = runtime
        .block_on(smtp.wait_for(2))
        .iter()
        .find(|m| m.subject.contains("reset"))
        .expect("the reset email")
        .link();

    // A browser opens the link and submits the form.
    let page = format!("{}/password-reset?token={reset}", server.base);
    assert_eq!(
        agent().get(&page).call().expect("page").status().as_u16(),
        200
    );
    let form = format!("token={reset}&password={third}&password_conf={third}");
    let done = agent()
        .post(format!("{}/password-reset", server.base))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(form)
        .expect("form");
    assert_eq!(done.status().as_u16(), 200);
    let (_, body) = call_ok(
        &server,
        "POST",
        "/api/auth/login",
        None,
        Some(json!({"email": "sam@example.com", "password": third})),
    );
    let last = body["auth_token"].as_str().expect("token").to_owned();
    assert_eq!(
        call_ok(&server, "GET", "/api/auth/logout", Some(&last), None).0,
        200
    );
    drop(server);

    let stdout = std::fs::read_to_string(&log).expect("log");
    let stderr = std::fs::read_to_string(dir.path().join("stride.err")).expect("err");
    let secrets = [
        first,
        second,
        third,
        &registered,
        &logged_in,
        &last,
        &reset,
        &link,
    ]
    .map(str::to_owned)
    .to_vec();
    Some(Flow {
        stdout,
        stderr,
        secrets,
    })
}

/// Each admin action on an account is one `audit` line: the action, the admin and the user
/// (the address for a new email, the role for a role); never a password or a token.
#[cfg(all(feature = "users", feature = "accounts", feature = "password_reset"))]
#[test]
fn admin_actions_are_audited_without_secrets() {
    use crate::helpers::{run, stride};
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("stride.log");
    let server = {
        let out = File::create(&log).expect("log");
        start_with(dir.path(), None, move |c| {
            c.env("ROCKET_LOG_LEVEL", "normal")
                .env("ROCKET_LOG_FORMAT", "json")
                .stdout(out);
        })
    };
    let password = "audit-Secret-1";
    let mut tokens = Vec::new();
    for name in ["boss", "sam"] {
        let (status, body) = call_ok(
            &server,
            "POST",
            "/api/auth/register",
            None,
            Some(
                json!({"username": name, "email": format!("{name}@example.com"), "password": password, "password_conf": password}),
            ),
        );
        assert_eq!(status, 201, "{body}");
        tokens.push(body["auth_token"].as_str().expect("token").to_owned());
    }
    assert!(
        run(stride(dir.path(), None).args(["users", "set-admin", "boss"]))
            .status
            .success()
    );
    for body in [
        json!({"activate": false}),
        json!({"activate": true}),
        json!({"reset_password": true}),
        json!({"new_email": "samuel@example.org"}),
        json!({"role": "admin"}),
    ] {
        let (status, reply) = call_ok(
            &server,
            "PATCH",
            "/api/users/sam",
            Some(&tokens[0]),
            Some(body.clone()),
        );
        assert_eq!(status, 200, "{body}: {reply}");
    }
    drop(server);
    let text = std::fs::read_to_string(&log).expect("the log");
    let audits: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["message"].as_str().is_some_and(|m| m.contains("audit")))
        .collect();
    let actions: Vec<&str> = audits
        .iter()
        .map(|l| l["action"].as_str().expect("an action"))
        .collect();
    assert_eq!(
        actions,
        [
            "deactivate",
            "activate",
            "reset_password",
            "new_email",
            "role"
        ],
        "{audits:?}"
    );
    for line in &audits {
        assert_eq!(
            (line["admin"].as_str(), line["user"].as_str()),
            (Some("boss"), Some("sam")),
            "{line}"
        );
    }
    assert_eq!(audits[3]["detail"], "samuel@example.org");
    assert_eq!(audits[4]["detail"], "admin");
    for secret in tokens.iter().map(String::as_str).chain([password]) {
        assert!(!text.contains(secret), "a secret is in the logs");
    }
}
