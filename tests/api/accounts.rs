//! The account lifecycle's email confirmation (docs/accounts.md), in process: the emails are
//! read from the folder the courier's file transport writes them to (the flows through a real SMTP server and a browser:
//! tests/e2e/confirmation.rs).

use rocket_db_pools::Database as _;
use serde_json::{json, Value};

use crate::helpers::{each_backend, sleep, sorted_keys, Backend, Mail, TestApp, PASSWORD};

const INVALID_TOKEN: &str = "invalid token, please request a new token";

/// A server whose new accounts wait for their emailed link, delivering to `mail`.
async fn confirming(backend: &Backend, mail: &Mail) -> TestApp {
    confirming_with(backend, mail, |f| f).await
}

async fn confirming_with(
    backend: &Backend,
    mail: &Mail,
    tweak: impl FnOnce(rocket::figment::Figment) -> rocket::figment::Figment,
) -> TestApp {
    TestApp::with_mail(backend, mail, |f| {
        tweak(f.merge(("accounts.email_confirmation", true)))
    })
    .await
}

async fn register(app: &TestApp, name: &str, body: Value) -> crate::helpers::Reply {
    let mut body = body;
    body["username"] = name.into();
    body["email"] = format!("{name}@example.com").into();
    app.post("/api/auth/register", body).await
}

each_backend! {
    // FitTrackee 0.5's keys and the lifecycle's, exactly: with cookies off (FitTrackee 1.x's
    // keys, which cookies on add, are in tests/api/shapes.rs).
    async fn the_user_object_gains_the_lifecycle_keys(backend) {
        let app = TestApp::with(&backend, |f| {
            f.merge(("registration.per_client", 1000)).merge(("cookies.enabled", false))
        }).await;
        let sam = app.register("sam").await;
        let kim = app.register("kim").await;
        let profile = app.profile(&sam).await.body["data"].clone();
        assert_eq!(profile["is_active"], true);
        assert_eq!(profile["email_to_confirm"], Value::Null);
        assert_eq!(profile["role"], "user");
        assert_eq!(sorted_keys(&profile).len(), 23, "{profile}");
        // Another user sees the role, never the state or the pending address.
        let seen = app.get("/api/users/sam", Some(&kim)).await.body["data"]["users"][0].clone();
        assert_eq!(seen["role"], "user");
        for key in ["email", "is_active", "email_to_confirm"] {
            assert!(seen.get(key).is_none(), "{key} in {seen}");
        }
        assert_eq!(sorted_keys(&seen).len(), 20, "{seen}");
        let config = app.get("/api/config", None).await;
        assert_eq!(config.body["data"]["is_email_sending_enabled"], true);
    }

    async fn switched_off_registration_stays_fittrackee_0_5(backend) {
        let mail = Mail::new();
        let url = mail.url();
        let app = TestApp::with(&backend, |f| f.merge(("email.url", url)).merge(("cookies.enabled", false))).await;
        let reply = app.register_as("sam", "sam@example.com", PASSWORD).await;
        reply.assert_success(201, "successfully registered");
        sleep_ms(300).await;
        assert!(mail.to("sam@example.com").is_empty(), "no email without confirmation");
        // password_conf stays required (with cookies on, FitTrackee 1.x's client leaves it out:
        // tests/api/shapes.rs).
        app.post("/api/auth/register", json!({"username": "kim", "email": "kim@example.com", "password": PASSWORD}))
            .await.assert_error(400, "invalid payload");
    }

    async fn a_confirmed_account_logs_in(backend) {
        let mail = Mail::new();
        // The confirmation's token in JSON is for clients without cookies (a browser gets
        // cookies instead: tests/api/cookies.rs).
        let app = confirming_with(&backend, &mail, |f| f.merge(("cookies.enabled", false))).await;
        let reply = register(&app, "sam", json!({"password": PASSWORD})).await;
        assert_eq!((reply.status.code, reply.body.clone()), (200, json!({"status": "success"})));
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM sessions").await, 0, "no session before confirmation");
        // Pending: the right password fails like a wrong one.
        app.login("sam@example.com", PASSWORD).await.assert_error(401, "invalid credentials");
        let token = mail.token("sam@example.com").await;
        assert!(token.len() >= 43, "{token}");
        let confirmed = app.post("/api/auth/account/confirm", json!({"token": token})).await;
        confirmed.assert_success(200, "account confirmation successful");
        let session = confirmed.token();
        let profile = app.profile(&session).await.body["data"].clone();
        assert_eq!((profile["username"].clone(), profile["is_active"].clone()), (json!("sam"), json!(true)));
        // Once only.
        app.post("/api/auth/account/confirm", json!({"token": token})).await.assert_error(400, INVALID_TOKEN);
        app.login("sam@example.com", PASSWORD).await.assert_success(200, "successfully logged in");
        // Only the token's hash is stored.
        assert_eq!(app.count(&format!("SELECT COUNT(*) AS n FROM account_tokens WHERE token_hash = '{token}'")).await, 0);
    }

    async fn registration_keeps_the_language_and_time_zone_sent(backend) {
        let mail = Mail::new();
        let app = confirming_with(&backend, &mail, |f| f.merge(("cookies.enabled", false))).await;
        register(&app, "sam", json!({"password": PASSWORD, "language": "fr", "timezone": "America/New_York"})).await;
        let texts = mail.wait("sam@example.com", 1).await;
        assert!(texts[0].starts_with("Bonjour sam"), "the link in French: {}", texts[0]);
        let token = mail.token("sam@example.com").await;
        let session = app.post("/api/auth/account/confirm", json!({"token": token})).await.token();
        let profile = app.profile(&session).await.body["data"].clone();
        assert_eq!((profile["language"].clone(), profile["timezone"].clone()), (json!("fr"), json!("America/New_York")));
        // Refused as the preferences refuse them, after the other lines; wrong types are payloads.
        let reply = register(&app, "kim", json!({"password": PASSWORD, "language": "not a tag!", "timezone": ""})).await;
        assert_eq!(reply.status.code, 400);
        assert_eq!(reply.message(), "timezone: 1 to 50 characters required\nlanguage: valid language tag (such as en, fr or fr-CA) required\n");
        register(&app, "kim", json!({"password": PASSWORD, "language": 3})).await.assert_error(400, "invalid payload");
        // Both modes.
        let plain = TestApp::new(&backend).await;
        let reply = plain.post("/api/auth/register", json!({"username": "lea", "email": "lea@example.com", "password": PASSWORD,
            "password_conf": PASSWORD, "language": "de", "timezone": "Europe/Berlin"})).await;
        reply.assert_success(201, "successfully registered");
        let profile = plain.profile(&reply.token()).await.body["data"].clone();
        assert_eq!((profile["language"].clone(), profile["timezone"].clone()), (json!("de"), json!("Europe/Berlin")));
    }

    async fn registration_with_confirmation_tells_nothing_of_addresses(backend) {
        let mail = Mail::new();
        let app = confirming(&backend, &mail).await;
        register(&app, "sam", json!({"password": PASSWORD})).await;
        // password_conf, when sent, must match.
        let mismatch = register(&app, "kim", json!({"password": PASSWORD, "password_conf": "other"})).await;
        assert_eq!(mismatch.status.code, 400);
        assert!(mismatch.message().contains("password: password and password confirmation do not match"), "{}", mismatch.body);
        // A taken username is told; a taken address is not.
        register(&app, "SAM", json!({"password": PASSWORD})).await.assert_error(400, "sorry, that username is already taken");
        let again = app.post("/api/auth/register", json!({"username": "other", "email": "SAM@example.com", "password": PASSWORD})).await;
        assert_eq!((again.status.code, again.body.clone()), (200, json!({"status": "success"})));
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM users").await, 1, "nothing made for a taken address");
        mail.token("sam@example.com").await;
        sleep_ms(300).await;
        assert_eq!(mail.to("sam@example.com").len() + mail.to("SAM@example.com").len(), 1, "nothing sent either");
        // Errors before anything else, in FitTrackee's order.
        for body in ["{}", "[]", r#"{"username": "x", "email": "y"}"#, r#"{"username": 1, "email": "a@b.co", "password": "p"}"#] {
            app.send("POST", "/api/auth/register", None, Some(body)).await.assert_error(400, "invalid payload");
        }
    }

    async fn racing_registrations_of_one_address_make_one_account(backend) {
        let mail = Mail::new();
        let app = confirming(&backend, &mail).await;
        let attempts = (0..6).map(|i| {
            app.post("/api/auth/register", json!({"username": format!("racer{i}"), "email": "race@example.com", "password": PASSWORD}))
        });
        for reply in futures::future::join_all(attempts).await {
            assert_eq!((reply.status.code, reply.body.clone()), (200, json!({"status": "success"})));
        }
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM users").await, 1);
        mail.token("race@example.com").await;
        sleep_ms(300).await;
        assert_eq!(mail.to("race@example.com").len(), 1);
    }

    async fn confirmation_payloads_and_tokens(backend) {
        let mail = Mail::new();
        let app = confirming(&backend, &mail).await;
        register(&app, "sam", json!({"password": PASSWORD})).await;
        for body in ["", "{}", "[]", "\"x\"", r#"{"token": null}"#, r#"{"token": 1}"#, "{bad json"] {
            app.send("POST", "/api/auth/account/confirm", None, Some(body)).await.assert_error(400, "invalid payload");
            app.send("POST", "/api/auth/account/resend-confirmation", None, Some(body)).await.assert_error(400, "invalid payload");
        }
        let session = {
            let kim = TestApp::new(&backend).await;
            kim.register("kim").await
        };
        for token in ["x", "", session.as_str(), &"A".repeat(10_000)] {
            app.post("/api/auth/account/confirm", json!({"token": token})).await.assert_error(400, INVALID_TOKEN);
        }
        // A confirmation token is not a session token.
        let token = mail.token("sam@example.com").await;
        app.get("/api/auth/profile", Some(&token)).await.assert_error(401, "invalid token, please log in again");
        // Nor a reset token.
        let reset = app.post("/api/auth/password/update", json!({"token": token, "password": "n3w-passphrase-ok", "password_conf": "n3w-passphrase-ok"})).await;
        reset.assert_error(401, INVALID_TOKEN);
        // And it still works for its own purpose.
        app.post("/api/auth/account/confirm", json!({"token": token})).await.assert_success(200, "account confirmation successful");
    }

    async fn resend_answers_alike_and_kills_the_previous_link(backend) {
        let mail = Mail::new();
        let app = confirming(&backend, &mail).await;
        register(&app, "sam", json!({"password": PASSWORD})).await;
        let first = mail.token("sam@example.com").await;
        for email in ["sam@example.com", "nobody@example.com", "not an address"] {
            app.post("/api/auth/account/resend-confirmation", json!({"email": email}))
                .await.assert_success(200, "confirmation email resent");
        }
        // The mail is queued after the answer.
        let second = mail.tokens("sam@example.com", 2).await.pop().expect("a second link");
        assert_ne!(second, first, "a new link");
        app.post("/api/auth/account/confirm", json!({"token": first})).await.assert_error(400, INVALID_TOKEN);
        app.post("/api/auth/account/confirm", json!({"token": second})).await.assert_success(200, "account confirmation successful");
        // An active account gets no link.
        app.post("/api/auth/account/resend-confirmation", json!({"email": "SAM@example.com"})).await.assert_success(200, "confirmation email resent");
        sleep_ms(300).await;
        assert_eq!(mail.to("sam@example.com").len(), 2, "no link for an active account");
    }

    async fn resends_are_throttled_for_known_and_unknown_addresses(backend) {
        let mail = Mail::new();
        let app = confirming(&backend, &mail).await;
        register(&app, "sam", json!({"password": PASSWORD})).await;
        for email in ["sam@example.com", "nobody@example.com"] {
            for _ in 0..3 {
                app.post("/api/auth/account/resend-confirmation", json!({"email": email})).await
                    .assert_success(200, "confirmation email resent");
            }
            let refused = app.post("/api/auth/account/resend-confirmation", json!({"email": email})).await;
            assert_eq!(refused.status.code, 429, "{}", refused.body);
        }
    }

    async fn an_inactive_account_neither_logs_in_nor_uses_its_sessions(backend) {
        let mail = Mail::new();
        let url = mail.url();
        let app = TestApp::with(&backend, |f| f.merge(("email.url", url))).await;
        let token = app.register("sam").await;
        app.sql("UPDATE users SET state = 'deactivated'").await;
        app.login("sam@example.com", PASSWORD).await.assert_error(401, "invalid credentials");
        app.profile(&token).await.assert_error(401, "provide a valid auth token");
        // A deactivated account cannot confirm itself back: resend sends nothing.
        app.post("/api/auth/account/resend-confirmation", json!({"email": "sam@example.com"})).await
            .assert_success(200, "confirmation email resent");
        sleep_ms(300).await;
        assert!(mail.to("sam@example.com").is_empty());
        app.sql("UPDATE users SET state = 'active'").await;
        assert_eq!(app.profile(&token).await.status.code, 200, "active again, the session works");
    }

    async fn the_operator_making_an_admin_activates_the_account(backend) {
        let mail = Mail::new();
        let app = confirming(&backend, &mail).await;
        register(&app, "sam", json!({"password": PASSWORD})).await;
        let db = kernel::Db::fetch(app.client.rocket()).expect("database");
        let mut conn = db.acquire().await.expect("connection");
        assert!(kernel::users::set_admin(&mut conn, "sam").await.expect("set admin"));
        drop(conn);
        let session = app.login("sam@example.com", PASSWORD).await;
        session.assert_success(200, "successfully logged in");
        assert_eq!(app.profile(&session.token()).await.body["data"]["role"], "admin");
        // Its link died with the pending state.
        let token = mail.token("sam@example.com").await;
        app.post("/api/auth/account/confirm", json!({"token": token})).await.assert_error(400, INVALID_TOKEN);
    }

    async fn links_expire(backend) {
        let mail = Mail::new();
        let app = confirming_with(&backend, &mail, |f| f.merge(("accounts.confirmation_ttl", 1))).await;
        register(&app, "sam", json!({"password": PASSWORD})).await;
        let token = mail.token("sam@example.com").await;
        sleep(2).await;
        app.post("/api/auth/account/confirm", json!({"token": token})).await.assert_error(400, INVALID_TOKEN);
    }

    async fn unconfirmed_accounts_are_deleted_confirmed_ones_kept(backend) {
        let mail = Mail::new();
        let app = confirming_with(&backend, &mail, |f| {
            f.merge(("accounts.confirmation_ttl", 1)).merge(("accounts.unconfirmed_ttl", 2))
        }).await;
        register(&app, "kept", json!({"password": PASSWORD})).await;
        let token = mail.token("kept@example.com").await;
        app.post("/api/auth/account/confirm", json!({"token": token})).await.assert_success(200, "account confirmation successful");
        register(&app, "stale", json!({"password": PASSWORD})).await;
        // An account that registered pending while the switch was on, and is older than any
        // unconfirmed_ttl, but was confirmed: kept too (the sweep reads the state, not the age).
        app.sql("UPDATE users SET created_at = created_at - 100000 WHERE username = 'kept'").await;
        let mut left = 2;
        for _ in 0..80 {
            left = app.count("SELECT COUNT(*) AS n FROM users").await;
            if left == 1 { break; }
            sleep_ms(100).await;
        }
        assert_eq!(left, 1, "the stale account is deleted within the sweep's period");
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM users WHERE username = 'kept'").await, 1);
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM outbox WHERE recipient = 'stale@example.com' AND sent_at IS NULL").await, 0);
        app.login("kept@example.com", PASSWORD).await.assert_success(200, "successfully logged in");
    }

    async fn the_page_confirms_without_a_session_and_a_get_uses_nothing(backend) {
        let mail = Mail::new();
        let app = confirming(&backend, &mail).await;
        register(&app, "sam", json!({"password": PASSWORD})).await;
        let token = mail.token("sam@example.com").await;
        for _ in 0..2 {
            let page = app.client.get(format!("/account-confirmation?token={token}")).dispatch().await;
            assert_eq!(page.status().code, 200);
            assert_eq!(page.headers().get_one("Referrer-Policy"), Some("no-referrer"));
            assert_eq!(page.headers().get_one("Cache-Control"), Some("no-store"));
            let html = page.into_string().await.expect("html");
            assert!(html.contains(&format!("name=\"token\" value=\"{token}\"")), "{html}");
            assert!(!html.contains("<script"), "no JavaScript");
        }
        app.login("sam@example.com", PASSWORD).await.assert_error(401, "invalid credentials");
        let post = |token: String| {
            app.client.post("/account-confirmation")
                .header(rocket::http::ContentType::Form)
                .body(format!("token={token}"))
                .dispatch()
        };
        let done = post(token.clone()).await;
        assert_eq!(done.status().code, 200);
        assert_eq!(done.headers().get_one("Cache-Control"), Some("no-store"));
        assert!(done.into_string().await.expect("html").contains("id=\"result\""));
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM sessions").await, 0, "the page opens no session");
        app.login("sam@example.com", PASSWORD).await.assert_success(200, "successfully logged in");
        let again = post(token.clone()).await;
        assert_eq!(again.status().code, 400);
        assert!(again.into_string().await.expect("html").contains("id=\"invalid\""));
        for path in ["/account-confirmation", "/account-confirmation?token=", "/account-confirmation?token=nope"] {
            assert_eq!(app.client.get(path).dispatch().await.status().code, 400, "{path}");
        }
    }

    async fn confirmed_through_one_instance_logs_in_on_another(backend) {
        let mail = Mail::new();
        let a = confirming(&backend, &mail).await;
        let url = mail.url();
        let b = TestApp::on(crate::helpers::TestDb::shared(&a.db), |f| {
            f.merge(("accounts.email_confirmation", true)).merge(("email.url", url))
        }).await;
        register(&a, "sam", json!({"password": PASSWORD})).await;
        b.login("sam@example.com", PASSWORD).await.assert_error(401, "invalid credentials");
        let token = mail.token("sam@example.com").await;
        a.post("/api/auth/account/confirm", json!({"token": token})).await.assert_success(200, "account confirmation successful");
        b.login("sam@example.com", PASSWORD).await.assert_success(200, "successfully logged in");
        b.post("/api/auth/account/confirm", json!({"token": token})).await.assert_error(400, INVALID_TOKEN);
    }

    async fn module_off_mounts_nothing(backend) {
        let app = TestApp::with(&backend, |f| {
            f.merge(("modules.accounts", false)).merge(("accounts.email_confirmation", true))
        }).await;
        // Registration is FitTrackee 0.5's: the switch belongs to the module.
        let token = app.register("sam").await;
        assert!(app.profile(&token).await.body["data"].get("is_active").is_none());
        app.post("/api/auth/account/confirm", json!({"token": "x"})).await.assert_error(404, "error, page not found");
        app.post("/api/auth/account/resend-confirmation", json!({"email": "a@b.co"})).await.assert_error(404, "error, page not found");
        assert_eq!(app.client.get("/account-confirmation?token=x").dispatch().await.status().code, 404);
    }
}

async fn sleep_ms(ms: u64) {
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
}
