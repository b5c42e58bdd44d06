//! Second factors (docs/two-factor.md): TOTP enrolment, the login's second step (in the login
//! or with its step token), recovery codes, throttling, removal. TOTP codes are computed by
//! pyotp (Debian's python3-pyotp), an implementation other than the one under test.

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rocket_db_pools::Database as _;
use serde_json::{json, Value};

use crate::helpers::{each_backend, Mail, Reply, TestApp, PASSWORD};

const REQUIRED: &str = "two-factor authentication required";
const INVALID_CODE: &str = "invalid two-factor authentication code";
const INVALID_STEP: &str = "invalid token, please log in again";

fn python() -> String {
    std::env::var("STRIDE_TEST_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".into())
}

/// The code of `secret` `offset` steps (30 s each) from now, by pyotp. Waits for the next step
/// when this one ends within 4 s, so that the server sees the step the test meant.
pub(crate) async fn code(secret: &str, offset: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("time")
        .as_secs();
    if now % 30 >= 26 {
        tokio::time::sleep(Duration::from_secs(31 - now % 30)).await;
    }
    let out = Command::new(python())
        .args([
            "-c",
            "import pyotp, sys, time; print(pyotp.TOTP(sys.argv[1]).at(int(time.time()) + 30 * int(sys.argv[2])))",
            secret,
            &offset.to_string(),
        ])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "pyotp is required (apt-get install python3-pyotp): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

#[track_caller]
fn assert_ok(reply: &Reply) {
    assert_eq!(reply.status.code, 200, "{}", reply.body);
    assert_eq!(reply.body["status"], "success", "{}", reply.body);
}

fn email(name: &str) -> String {
    format!("{name}@example.com")
}

/// Starts an enrolment; returns its answer's data.
async fn enrol(app: &TestApp, token: &str) -> Value {
    let reply = app
        .post_auth(
            "/api/auth/two-factor/totp",
            token,
            json!({"password": PASSWORD}),
        )
        .await;
    reply.assert_success(200, "scan the QR code, then confirm with a code");
    reply.body["data"].clone()
}

/// Starts an enrolment; returns its secret.
pub(crate) async fn enrol_secret(app: &TestApp, token: &str) -> String {
    enrol(app, token).await["secret"]
        .as_str()
        .expect("secret")
        .to_owned()
}

/// Enrols and confirms with the code of the previous step; returns the secret and the
/// recovery codes.
async fn protect(app: &TestApp, token: &str) -> (String, Vec<String>) {
    let data = enrol(app, token).await;
    let secret = data["secret"].as_str().expect("secret").to_owned();
    let reply = app
        .post_auth(
            "/api/auth/two-factor/totp/confirm",
            token,
            json!({"totp_code": code(&secret, -1).await}),
        )
        .await;
    reply.assert_success(200, "two-factor authentication enabled");
    let codes = reply.body["data"]["recovery_codes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c.as_str().expect("a code").to_owned())
        .collect();
    (secret, codes)
}

async fn login_with(app: &TestApp, name: &str, extra: Value) -> Reply {
    let mut body = json!({"email": email(name), "password": PASSWORD});
    for (k, v) in extra.as_object().expect("an object") {
        body[k] = v.clone();
    }
    app.post("/api/auth/login", body).await
}

/// A FitTrackee client's login of a protected account: the step token of its answer.
#[track_caller]
fn step_token(reply: &Reply) -> String {
    reply.assert_error(401, REQUIRED);
    assert!(reply.body.get("auth_token").is_none(), "{}", reply.body);
    reply.body["data"]["step_token"]
        .as_str()
        .expect("a step token")
        .to_owned()
}

each_backend! {
    async fn enrolment_is_active_only_after_a_first_code(backend) {
        let mail = Mail::new();
        let app = TestApp::with_mail(&backend, &mail, |f| f).await;
        let token = app.register("sam").await;
        let other = app.login(&email("sam"), PASSWORD).await.token();
        // A wrong password starts nothing.
        app.post_auth("/api/auth/two-factor/totp", &token, json!({"password": "wrong-horse"}))
            .await
            .assert_error(401, "invalid credentials");
        let data = enrol(&app, &token).await;
        let secret = data["secret"].as_str().expect("secret");
        assert_eq!(secret.len(), 32, "160 bits in base32");
        let uri = data["otpauth_uri"].as_str().expect("uri");
        assert_eq!(
            uri,
            format!("otpauth://totp/Stride:sam?secret={secret}&issuer=Stride&algorithm=SHA1&digits=6&period=30")
        );
        assert!(data["qr_code"].as_str().expect("qr").starts_with("data:image/svg+xml;base64,"));
        let status = app.get("/api/auth/two-factor", Some(&token)).await;
        assert_eq!(status.body["data"], json!({"totp": false, "enrolment_pending": true, "passkeys": 0, "passkeys_available": false, "recovery_codes_left": 0}));
        // Not active yet: the login needs no code.
        app.login(&email("sam"), PASSWORD).await.assert_success(200, "successfully logged in");
        // Codes out of the window (±1 step) and wrong codes do not confirm.
        for offset in [-2, 2] {
            app.post_auth("/api/auth/two-factor/totp/confirm", &token, json!({"totp_code": code(secret, offset).await}))
                .await
                .assert_error(401, INVALID_CODE);
        }
        app.post_auth("/api/auth/two-factor/totp/confirm", &token, json!({"totp_code": "12345"}))
            .await
            .assert_error(401, INVALID_CODE);
        let reply = app
            .post_auth("/api/auth/two-factor/totp/confirm", &token, json!({"totp_code": code(secret, -1).await}))
            .await;
        reply.assert_success(200, "two-factor authentication enabled");
        assert_eq!(reply.body["data"]["recovery_codes"].as_array().expect("codes").len(), 10);
        // The other sessions ended; this one goes on; the user is told.
        app.profile(&other).await.assert_error(401, "provide a valid auth token");
        assert_ok(&app.profile(&token).await);
        let texts = mail.wait(&email("sam"), 1).await;
        assert!(texts.iter().any(|t| t.contains("Two-factor authentication was just turned on")), "{texts:?}");
        let status = app.get("/api/auth/two-factor", Some(&token)).await;
        assert_eq!(status.body["data"], json!({"totp": true, "enrolment_pending": false, "passkeys": 0, "passkeys_available": false, "recovery_codes_left": 10}));
        // An active factor is not replaced by a new enrolment.
        app.post_auth("/api/auth/two-factor/totp", &token, json!({"password": PASSWORD}))
            .await
            .assert_error(400, "two-factor authentication is already enabled");
        // The secret is stored sealed: not its bytes, not its base32.
        let stored = app.count("SELECT COUNT(*) AS n FROM two_factor_totp WHERE confirmed_at IS NOT NULL").await;
        assert_eq!(stored, 1);
    }

    async fn a_fittrackee_client_gets_a_clear_error_and_no_session(backend) {
        let app = TestApp::new(&backend).await;
        let token = app.register("sam").await;
        protect(&app, &token).await;
        let sessions = app.count("SELECT COUNT(*) AS n FROM sessions").await;
        let reply = app
            .raw("POST", "/api/auth/login", &[("Content-Type", "application/json")],
                 Some(json!({"email": email("sam"), "password": PASSWORD}).to_string().into_bytes()))
            .await;
        assert!(reply.header_values("Set-Cookie").is_empty(), "{:?}", reply.headers);
        let json = reply.json();
        step_token(&json);
        assert_eq!(json.body["data"]["methods"], json!(["totp", "recovery_code"]));
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM sessions").await, sessions);
        // A wrong password is still FitTrackee's answer, with no step token.
        let wrong = app.login(&email("sam"), "wrong-horse").await;
        wrong.assert_error(401, "invalid credentials");
        assert!(wrong.body.get("data").is_none());
    }

    async fn a_code_in_the_login_opens_the_session_once(backend) {
        let app = TestApp::new(&backend).await;
        let token = app.register("sam").await;
        let (secret, _) = protect(&app, &token).await;
        login_with(&app, "sam", json!({"totp_code": "000000"})).await.assert_error(401, INVALID_CODE);
        let now = code(&secret, 0).await;
        let reply = login_with(&app, "sam", json!({"totp_code": now})).await;
        reply.assert_success(200, "successfully logged in");
        assert_ok(&app.profile(&reply.token()).await);
        // The same code again: refused, even within its window.
        login_with(&app, "sam", json!({"totp_code": now})).await.assert_error(401, INVALID_CODE);
        // A code of the next step is tolerated (a phone's clock ahead), two steps are not.
        login_with(&app, "sam", json!({"totp_code": code(&secret, 2).await})).await.assert_error(401, INVALID_CODE);
        login_with(&app, "sam", json!({"totp_code": code(&secret, 1).await})).await.assert_success(200, "successfully logged in");
        // After a later step, an earlier one is refused: no code older than the last works.
        login_with(&app, "sam", json!({"totp_code": code(&secret, 0).await})).await.assert_error(401, INVALID_CODE);
        // The enrolment's own code (the previous step) is used up too.
        login_with(&app, "sam", json!({"totp_code": code(&secret, -1).await})).await.assert_error(401, INVALID_CODE);
    }

    async fn the_step_token_completes_a_login_once_and_is_no_session(backend) {
        let app = TestApp::new(&backend).await;
        let token = app.register("sam").await;
        let (secret, _) = protect(&app, &token).await;
        let step = step_token(&app.login(&email("sam"), PASSWORD).await);
        // Not a session, by Bearer or by cookie.
        app.profile(&step).await.assert_error(401, INVALID_STEP);
        let by_cookie = app
            .raw("GET", "/api/auth/profile", &[("Cookie", &format!("access_token_cookie={step}"))], None)
            .await;
        by_cookie.json().assert_error(401, "provide a valid auth token");
        // Nor can it be narrowed into one: it is no Biscuit.
        app.post("/api/auth/two-factor/login", json!({"step_token": step}))
            .await
            .assert_error(400, "invalid payload");
        app.post("/api/auth/two-factor/login", json!({"step_token": step, "totp_code": "000000"}))
            .await
            .assert_error(401, INVALID_CODE);
        // A wrong code leaves the token live.
        let reply = app
            .post("/api/auth/two-factor/login", json!({"step_token": step, "totp_code": code(&secret, 0).await}))
            .await;
        reply.assert_success(200, "successfully logged in");
        assert_ok(&app.profile(&reply.token()).await);
        // Used: refused, whatever the code.
        app.post("/api/auth/two-factor/login", json!({"step_token": step, "totp_code": code(&secret, 1).await}))
            .await
            .assert_error(401, INVALID_STEP);
        // A session token is no step token.
        app.post("/api/auth/two-factor/login", json!({"step_token": token, "totp_code": code(&secret, 1).await}))
            .await
            .assert_error(401, INVALID_STEP);
    }

    async fn a_step_token_expires(backend) {
        let app = TestApp::with(&backend, |f| f.merge(("two_factor.step_ttl", 1))).await;
        let token = app.register("sam").await;
        let (_, codes) = protect(&app, &token).await;
        let step = step_token(&app.login(&email("sam"), PASSWORD).await);
        tokio::time::sleep(Duration::from_millis(2100)).await;
        app.post("/api/auth/two-factor/login", json!({"step_token": step, "recovery_code": codes[0]}))
            .await
            .assert_error(401, INVALID_STEP);
    }

    async fn recovery_codes_work_once_and_can_be_regenerated(backend) {
        let mail = Mail::new();
        let app = TestApp::with_mail(&backend, &mail, |f| f).await;
        let token = app.register("sam").await;
        let (secret, codes) = protect(&app, &token).await;
        login_with(&app, "sam", json!({"recovery_code": codes[0]})).await.assert_success(200, "successfully logged in");
        login_with(&app, "sam", json!({"recovery_code": codes[0]})).await.assert_error(401, INVALID_CODE);
        // Typed loosely: upper case, spaces for dashes.
        let loose = codes[1].to_uppercase().replace('-', " ");
        let step = step_token(&app.login(&email("sam"), PASSWORD).await);
        app.post("/api/auth/two-factor/login", json!({"step_token": step, "recovery_code": loose}))
            .await
            .assert_success(200, "successfully logged in");
        let texts = mail.wait(&email("sam"), 3).await;
        assert!(texts.iter().any(|t| t.contains("Recovery codes left: 8.")), "{texts:?}");
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM two_factor_recovery_codes").await, 8);
        // Stored as digests only.
        let raw = codes[2].replace('-', "");
        assert_eq!(app.count(&format!("SELECT COUNT(*) AS n FROM two_factor_recovery_codes WHERE digest LIKE '%{raw}%'")).await, 0);
        // Regenerating needs the password and a code.
        app.post_auth("/api/auth/two-factor/recovery-codes", &token, json!({"password": PASSWORD}))
            .await
            .assert_error(400, "invalid payload");
        app.post_auth("/api/auth/two-factor/recovery-codes", &token, json!({"password": "wrong-horse", "totp_code": code(&secret, 0).await}))
            .await
            .assert_error(401, "invalid credentials");
        let reply = app
            .post_auth("/api/auth/two-factor/recovery-codes", &token, json!({"password": PASSWORD, "totp_code": code(&secret, 0).await}))
            .await;
        reply.assert_success(200, "recovery codes regenerated");
        let fresh = reply.body["data"]["recovery_codes"].as_array().expect("codes").clone();
        assert_eq!(fresh.len(), 10);
        login_with(&app, "sam", json!({"recovery_code": codes[2]})).await.assert_error(401, INVALID_CODE);
        login_with(&app, "sam", json!({"recovery_code": fresh[0]})).await.assert_success(200, "successfully logged in");
    }

    async fn code_guessing_is_throttled_per_account(backend) {
        let app = TestApp::with(&backend, |f| f.merge(("two_factor.code_failures_per_account", 3))).await;
        let token = app.register("sam").await;
        let (secret, codes) = protect(&app, &token).await;
        // A burst of guesses gets no more answers than the limit.
        let guesses = (0..6).map(|i| login_with(&app, "sam", json!({"totp_code": format!("00000{i}")})));
        let replies = futures::future::join_all(guesses).await;
        let refused = replies.iter().filter(|r| r.status.code == 401).count();
        let throttled = replies.iter().filter(|r| r.status.code == 429).count();
        assert_eq!((refused, throttled), (3, 3), "{:?}", replies.iter().map(|r| &r.body).collect::<Vec<_>>());
        // The right password (which forgets password failures) does not forget code guesses,
        // and the right code waits too, by login or by step token.
        login_with(&app, "sam", json!({"totp_code": code(&secret, 0).await}))
            .await
            .assert_error(429, "too many requests, please try again later");
        let step = step_token(&app.login(&email("sam"), PASSWORD).await);
        app.post("/api/auth/two-factor/login", json!({"step_token": step, "recovery_code": codes[0]}))
            .await
            .assert_error(429, "too many requests, please try again later");
    }

    async fn disabling_needs_the_password_and_a_code(backend) {
        let mail = Mail::new();
        let app = TestApp::with_mail(&backend, &mail, |f| f).await;
        let token = app.register("sam").await;
        let (secret, codes) = protect(&app, &token).await;
        let other = login_with(&app, "sam", json!({"recovery_code": codes[0]})).await.token();
        let disable = |body: Value| app.post_auth("/api/auth/two-factor/disable", &token, body);
        disable(json!({"password": PASSWORD})).await.assert_error(400, "invalid payload");
        disable(json!({"password": "wrong-horse", "totp_code": code(&secret, 0).await})).await.assert_error(401, "invalid credentials");
        disable(json!({"password": PASSWORD, "totp_code": "000000"})).await.assert_error(401, INVALID_CODE);
        disable(json!({"password": PASSWORD, "totp_code": code(&secret, 0).await}))
            .await
            .assert_success(200, "two-factor authentication disabled");
        app.profile(&other).await.assert_error(401, "provide a valid auth token");
        assert_ok(&app.profile(&token).await);
        app.login(&email("sam"), PASSWORD).await.assert_success(200, "successfully logged in");
        disable(json!({"password": PASSWORD, "totp_code": "000000"}))
            .await
            .assert_error(400, "two-factor authentication is not enabled");
        let texts = mail.wait(&email("sam"), 3).await;
        assert!(texts.iter().any(|t| t.contains("Two-factor authentication was just turned off")), "{texts:?}");
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM two_factor_recovery_codes").await, 0);
    }

    async fn a_password_reset_does_not_remove_the_second_factor(backend) {
        let mail = Mail::new();
        let app = TestApp::with_mail(&backend, &mail, |f| f).await;
        let token = app.register("sam").await;
        let (_, codes) = protect(&app, &token).await;
        app.post("/api/auth/password/reset-request", json!({"email": email("sam")}))
            .await
            .assert_success(200, "password reset request processed");
        let reset = mail.links(&email("sam"), "/password-reset", 2).await.pop().expect("a reset link");
        let new_password = "battery-staple";
        app.post("/api/auth/password/update", json!({"token": reset, "password": new_password, "password_conf": new_password}))
            .await
            .assert_success(200, "password updated");
        step_token(&app.login(&email("sam"), new_password).await);
        let body = json!({"email": email("sam"), "password": new_password, "recovery_code": codes[0]});
        app.post("/api/auth/login", body).await.assert_success(200, "successfully logged in");
    }

    async fn a_narrowed_token_cannot_enrol(backend) {
        let app = TestApp::new(&backend).await;
        let token = app.register("sam").await;
        let narrowed = crate::attenuation::narrow_code(&token, "check if operation(\"read\");");
        app.post_auth("/api/auth/two-factor/totp", &narrowed, json!({"password": PASSWORD}))
            .await
            .assert_error(403, "this token does not allow this request");
        assert_ok(&app.get("/api/auth/two-factor", Some(&narrowed)).await);
    }

    async fn the_operator_removes_a_lost_factor(backend) {
        let mail = Mail::new();
        let app = TestApp::with_mail(&backend, &mail, |f| f).await;
        let token = app.register("sam").await;
        protect(&app, &token).await;
        let rocket = app.client.rocket();
        let db = kernel::Db::fetch(rocket).expect("db");
        let mailer = rocket.state::<kernel::Mailer>().expect("mailer");
        assert_eq!(two_factor::remove_factors(db, mailer, "SAM").await, Ok(true));
        assert_eq!(two_factor::remove_factors(db, mailer, "sam").await, Ok(false));
        assert_eq!(two_factor::remove_factors(db, mailer, "nobody").await, Err("no user named 'nobody'".into()));
        app.profile(&token).await.assert_error(401, "provide a valid auth token");
        app.login(&email("sam"), PASSWORD).await.assert_success(200, "successfully logged in");
        let texts = mail.wait(&email("sam"), 2).await;
        assert!(texts.iter().any(|t| t.contains("An administrator just removed the second factor")), "{texts:?}");
    }

    /// The data export tells what the modules hold of the user: the factor's state and the
    /// recovery codes left, the linked identities; never the secret or a code.
    #[cfg(feature = "accounts")]
    async fn the_export_tells_the_factors_and_no_secret(backend) {
        let mail = Mail::new();
        let app = TestApp::with_mail(&backend, &mail, |f| f).await;
        let token = app.register("sam").await;
        let (secret, codes) = protect(&app, &token).await;
        #[cfg(feature = "sso")]
        {
            let db = app.client.rocket().state::<kernel::Db>().expect("database");
            let mut tx = kernel::db::begin_write(db).await.expect("a transaction");
            let identity = sso::Identity {
                subject: "sam-at-idp".into(),
                email: Some(email("sam")),
                email_verified: true,
                preferred_username: None,
            };
            let linked = sso::link_identity(&mut tx, "idp", &identity).await.expect("no database error");
            assert_eq!(linked.map(|u| u.username).ok().as_deref(), Some("sam"));
            tx.commit().await.expect("commit");
        }
        assert_eq!(crate::export::request(&app, &token).await.status.code, 200);
        let done = crate::export::built(&app, &token).await;
        let files = crate::export::download(&app, &token, done["file_name"].as_str().expect("a file")).await;
        let file = |name: &str| -> Value {
            let (_, bytes) = files.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no {name}"));
            serde_json::from_slice(bytes).expect("JSON")
        };
        assert_eq!(file("two_factor.json"), json!({"totp": true, "passkeys": [], "recovery_codes_left": codes.len()}));
        #[cfg(feature = "sso")]
        {
            let identities = file("sso_identities.json");
            assert_eq!(identities.as_array().map(Vec::len), Some(1), "{identities}");
            assert_eq!((&identities[0]["provider"], &identities[0]["subject"]), (&json!("idp"), &json!("sam-at-idp")));
        }
        let everything: String = files.iter().map(|(_, b)| String::from_utf8_lossy(b).into_owned()).collect();
        assert!(!everything.contains(&secret), "the secret in the archive");
        for code in &codes {
            assert!(!everything.contains(code.as_str()), "a recovery code in the archive");
        }
        // Without a factor, no file.
        let kim = app.register("kim").await;
        assert_eq!(crate::export::request(&app, &kim).await.status.code, 200);
        let done = crate::export::built(&app, &kim).await;
        let files = crate::export::download(&app, &kim, done["file_name"].as_str().expect("a file")).await;
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["user_data.json", "user_sessions.json"]);
    }
}
