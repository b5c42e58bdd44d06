//! No password, session token, reset token or reset link ever reaches a log line, even at
//! debug level, where Rocket prints request lines with their query strings and headers.

use std::fs::File;

use serde_json::json;

use crate::cli::{agent, call_ok, start_with};
use crate::mail::SmtpServer;

#[test]
fn no_secret_reaches_the_logs() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let Some(smtp) = SmtpServer::start() else {
        return;
    };
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

    let output = std::fs::read_to_string(&log).expect("log")
        + &std::fs::read_to_string(dir.path().join("stride.err")).expect("err");
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
    for secret in [
        first,
        second,
        third,
        &registered,
        &logged_in,
        &last,
        &reset,
        &link,
    ] {
        let leak = output.lines().find(|line| line.contains(secret));
        assert!(leak.is_none(), "a secret is in the logs: {leak:?}");
    }
}
