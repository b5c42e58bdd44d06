//! The policy of second factors (docs/two-factor.md, "Policy"): `two_factor.required` for
//! admins or everyone, the grace period of an account, the login past it (no session, an
//! enrolment token that allows the TOTP enrolment only), what lifts the requirement.

use std::time::Duration;

use rocket_db_pools::Database as _;
use serde_json::json;

use crate::helpers::{each_backend, Mail, Reply, TestApp, PASSWORD};
use crate::two_factor::code;

const ENROLMENT_REQUIRED: &str = "two-factor enrolment required";
const REQUIRED_BY: &str = "two_factor_enrolment_required_by";
const INVALID_STEP: &str = "invalid token, please log in again";
const WEEK: i64 = 7 * 24 * 3600;

fn email(name: &str) -> String {
    format!("{name}@example.com")
}

/// A login past its grace period: no session, the enrolment token of its answer.
#[track_caller]
fn enrol_token(reply: &Reply) -> String {
    reply.assert_error(401, ENROLMENT_REQUIRED);
    assert!(reply.body.get("auth_token").is_none(), "{}", reply.body);
    assert_eq!(
        reply.body["data"]["methods"],
        json!(["totp"]),
        "{}",
        reply.body
    );
    reply.body["data"]["enrol_token"]
        .as_str()
        .expect("an enrolment token")
        .to_owned()
}

/// The deadline a login within its grace period announces.
#[track_caller]
fn required_by(reply: &Reply) -> String {
    reply.assert_success(200, "successfully logged in");
    reply.body[REQUIRED_BY]
        .as_str()
        .unwrap_or_else(|| panic!("no {REQUIRED_BY}: {}", reply.body))
        .to_owned()
}

#[track_caller]
fn unrequired(reply: &Reply) {
    reply.assert_success(200, "successfully logged in");
    assert!(reply.body.get(REQUIRED_BY).is_none(), "{}", reply.body);
}

fn reminders(texts: &[String]) -> usize {
    texts
        .iter()
        .filter(|t| t.contains("requires two-factor authentication for your account"))
        .count()
}

fn policy(required: &'static str) -> impl FnOnce(figment::Figment) -> figment::Figment {
    move |f| f.merge(("two_factor.required", required))
}

each_backend! {
    async fn off_by_default(backend) {
        let app = TestApp::new(&backend).await;
        app.admin("ada").await;
        unrequired(&app.login(&email("ada"), PASSWORD).await);
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM two_factor_grace").await, 0);
    }

    async fn admins_get_a_grace_period_and_are_told_once(backend) {
        let mail = Mail::new();
        let app = TestApp::with_mail(&backend, &mail, policy("admins")).await;
        app.admin("ada").await;
        app.register("sam").await;
        // A non-admin is not concerned.
        unrequired(&app.login(&email("sam"), PASSWORD).await);
        // The admin's grace starts at their first login under the policy, and stays put.
        let by = required_by(&app.login(&email("ada"), PASSWORD).await);
        let started = app.count("SELECT started_at AS n FROM two_factor_grace").await;
        assert_eq!(by, kernel::dates::http_date_from_unix(started + WEEK));
        assert_eq!(required_by(&app.login(&email("ada"), PASSWORD).await), by);
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM two_factor_grace").await, 1);
        // One reminder, naming the deadline.
        let texts = mail.wait(&email("ada"), 1).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let texts = mail.wait(&email("ada"), texts.len()).await;
        assert_eq!(reminders(&texts), 1, "{texts:?}");
        assert!(texts.iter().any(|t| t.contains(&by)), "{texts:?}");
        assert_eq!(reminders(&mail.to(&email("sam"))), 0);
        // The admin rights removed, the requirement goes with its grace period.
        app.sql("UPDATE users SET admin = FALSE WHERE username = 'ada'").await;
        unrequired(&app.login(&email("ada"), PASSWORD).await);
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM two_factor_grace").await, 0);
        // Made admin again: a grace period of its own, from then.
        app.sql("UPDATE users SET admin = TRUE WHERE username = 'ada'").await;
        required_by(&app.login(&email("ada"), PASSWORD).await);
    }

    async fn everyone_past_the_grace_period_must_enrol(backend) {
        let mail = Mail::new();
        let app = TestApp::with_mail(&backend, &mail, policy("everyone")).await;
        let session = app.register("sam").await;
        required_by(&app.login(&email("sam"), PASSWORD).await);
        app.sql(&format!("UPDATE two_factor_grace SET started_at = started_at - {WEEK}")).await;
        let sessions = app.count("SELECT COUNT(*) AS n FROM sessions").await;
        let reply = app
            .raw("POST", "/api/auth/login", &[("Content-Type", "application/json")],
                 Some(json!({"email": email("sam"), "password": PASSWORD}).to_string().into_bytes()))
            .await;
        assert!(reply.header_values("Set-Cookie").is_empty(), "{:?}", reply.headers);
        let json = reply.json();
        let token = enrol_token(&json);
        assert_eq!(json.body["data"]["expires_in"], 900);
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM sessions").await, sessions);
        // Not a session, by Bearer or by cookie, not a login's step token, and no way into the
        // enrolment routes of a session.
        app.profile(&token).await.assert_error(401, INVALID_STEP);
        let by_cookie = app
            .raw("GET", "/api/auth/profile", &[("Cookie", &format!("access_token_cookie={token}"))], None)
            .await;
        by_cookie.json().assert_error(401, "provide a valid auth token");
        app.post_auth("/api/auth/two-factor/totp", &token, json!({"password": PASSWORD}))
            .await
            .assert_error(401, INVALID_STEP);
        app.post("/api/auth/two-factor/login", json!({"step_token": token, "totp_code": "000000"}))
            .await
            .assert_error(401, INVALID_STEP);
        // Nor is a session token an enrolment token.
        app.post("/api/auth/two-factor/enrol/start", json!({"enrol_token": session}))
            .await
            .assert_error(401, INVALID_STEP);
        // Confirming before starting: nothing to confirm.
        app.post("/api/auth/two-factor/enrol/confirm", json!({"enrol_token": token, "totp_code": "000000"}))
            .await
            .assert_error(400, "no two-factor authentication enrolment in progress");
        let start = app.post("/api/auth/two-factor/enrol/start", json!({"enrol_token": token})).await;
        start.assert_success(200, "scan the QR code, then confirm with a code");
        let secret = start.body["data"]["secret"].as_str().expect("a secret").to_owned();
        app.post("/api/auth/two-factor/enrol/confirm", json!({"enrol_token": token}))
            .await
            .assert_error(400, "invalid payload");
        // A wrong code leaves the token live.
        app.post("/api/auth/two-factor/enrol/confirm", json!({"enrol_token": token, "totp_code": "000000"}))
            .await
            .assert_error(401, "invalid two-factor authentication code");
        let body = json!({"enrol_token": token, "totp_code": code(&secret, 0).await});
        let reply = app
            .raw("POST", "/api/auth/two-factor/enrol/confirm", &[("Content-Type", "application/json")],
                 Some(body.to_string().into_bytes()))
            .await;
        let cookies = reply.header_values("Set-Cookie").join("; ");
        assert!(cookies.contains("access_token_cookie="), "{cookies}");
        let confirmed = reply.json();
        confirmed.assert_success(200, "two-factor authentication enabled");
        assert_eq!(confirmed.body["data"]["recovery_codes"].as_array().expect("codes").len(), 10);
        let fresh = confirmed.token();
        assert_eq!(app.profile(&fresh).await.status.code, 200);
        // The sessions from before end, as with every enrolment; the user is told.
        app.profile(&session).await.assert_error(401, "provide a valid auth token");
        let texts = mail.wait(&email("sam"), 2).await;
        assert!(texts.iter().any(|t| t.contains("Two-factor authentication was just turned on")), "{texts:?}");
        // Used up.
        app.post("/api/auth/two-factor/enrol/start", json!({"enrol_token": token}))
            .await
            .assert_error(401, INVALID_STEP);
        app.post("/api/auth/two-factor/enrol/confirm", json!({"enrol_token": token, "totp_code": code(&secret, 1).await}))
            .await
            .assert_error(401, INVALID_STEP);
        // From now on the login asks for a code, as any protected account's.
        app.login(&email("sam"), PASSWORD).await.assert_error(401, "two-factor authentication required");
    }

    async fn the_policy_switched_off_lifts_the_requirement(backend) {
        let app = TestApp::with(&backend, policy("everyone")).await;
        app.register("sam").await;
        required_by(&app.login(&email("sam"), PASSWORD).await);
        app.sql(&format!("UPDATE two_factor_grace SET started_at = started_at - {WEEK}")).await;
        enrol_token(&app.login(&email("sam"), PASSWORD).await);
        // The same database, the policy off: the login opens the session and forgets the grace.
        let off = TestApp::on(crate::helpers::TestDb::shared(&app.db), |f| f).await;
        unrequired(&off.login(&email("sam"), PASSWORD).await);
        assert_eq!(off.count("SELECT COUNT(*) AS n FROM two_factor_grace").await, 0);
        // On again: a grace period from this login.
        let on = TestApp::on(crate::helpers::TestDb::shared(&app.db), policy("everyone")).await;
        required_by(&on.login(&email("sam"), PASSWORD).await);
    }

    async fn disabling_one_s_own_factor_restarts_no_grace_period(backend) {
        let app = TestApp::with(&backend, policy("admins")).await;
        let session = app.admin("ada").await;
        let by = required_by(&app.login(&email("ada"), PASSWORD).await);
        let data = app
            .post_auth("/api/auth/two-factor/totp", &session, json!({"password": PASSWORD}))
            .await
            .body["data"]
            .clone();
        let secret = data["secret"].as_str().expect("a secret");
        app.post_auth("/api/auth/two-factor/totp/confirm", &session, json!({"totp_code": code(secret, -1).await}))
            .await
            .assert_success(200, "two-factor authentication enabled");
        app.post_auth("/api/auth/two-factor/disable", &session, json!({"password": PASSWORD, "totp_code": code(secret, 0).await}))
            .await
            .assert_success(200, "two-factor authentication disabled");
        // Within the grace period still, with the same deadline; past it, enrolment again.
        assert_eq!(required_by(&app.login(&email("ada"), PASSWORD).await), by);
        app.sql(&format!("UPDATE two_factor_grace SET started_at = started_at - {WEEK}")).await;
        enrol_token(&app.login(&email("ada"), PASSWORD).await);
    }

    async fn an_enrolment_token_expires(backend) {
        let config = |f: figment::Figment| {
            f.merge(("two_factor.required", "everyone"))
                .merge(("two_factor.grace_period", 0))
                .merge(("two_factor.enrol_ttl", 1))
        };
        let app = TestApp::with(&backend, config).await;
        app.register("sam").await;
        let token = enrol_token(&app.login(&email("sam"), PASSWORD).await);
        app.post("/api/auth/two-factor/enrol/start", json!({"enrol_token": token}))
            .await
            .assert_success(200, "scan the QR code, then confirm with a code");
        tokio::time::sleep(Duration::from_millis(2100)).await;
        app.post("/api/auth/two-factor/enrol/start", json!({"enrol_token": token}))
            .await
            .assert_error(401, INVALID_STEP);
    }

    async fn the_operator_restarts_a_lost_factor_s_grace_period(backend) {
        let app = TestApp::with(&backend, policy("admins")).await;
        let session = app.admin("ada").await;
        required_by(&app.login(&email("ada"), PASSWORD).await);
        let data = app
            .post_auth("/api/auth/two-factor/totp", &session, json!({"password": PASSWORD}))
            .await
            .body["data"]
            .clone();
        let secret = data["secret"].as_str().expect("a secret");
        app.post_auth("/api/auth/two-factor/totp/confirm", &session, json!({"totp_code": code(secret, 0).await}))
            .await
            .assert_success(200, "two-factor authentication enabled");
        // Enrolled, the grace period is over long ago: the login asks for a code as usual.
        app.sql(&format!("UPDATE two_factor_grace SET started_at = started_at - {WEEK}")).await;
        app.login(&email("ada"), PASSWORD).await.assert_error(401, "two-factor authentication required");
        let rocket = app.client.rocket();
        let db = kernel::Db::fetch(rocket).expect("db");
        let mailer = rocket.state::<kernel::Mailer>().expect("mailer");
        assert_eq!(two_factor::remove_factors(db, mailer, "ada").await, Ok(true));
        // A new grace period, from the login after the removal.
        required_by(&app.login(&email("ada"), PASSWORD).await);
    }

    async fn the_policy_is_checked_at_start(backend) {
        let db = crate::helpers::TestDb::new(&backend).await;
        for (key, value) in [
            ("two_factor.required", json!("sometimes")),
            ("two_factor.grace_period", json!(366 * 24 * 3600)),
            ("two_factor.grace_period", json!("a week")),
            ("two_factor.enrol_ttl", json!(0)),
        ] {
            let figment = crate::helpers::figment(&db).merge((key, value.clone()));
            let error = stride::check_config(&figment).expect_err("refused").to_string();
            assert!(error.contains(key), "{key} = {value}: {error}");
        }
        for value in ["off", "admins", "everyone"] {
            let figment = crate::helpers::figment(&db).merge(("two_factor.required", value));
            assert!(stride::check_config(&figment).is_ok(), "{value}");
        }
    }
}
