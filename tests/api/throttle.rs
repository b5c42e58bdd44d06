//! Throttling: failed logins per account and per client, reset requests, registrations; 429
//! JSON with Retry-After; counted in the database, so instances count together.

use rocket::http::{ContentType, Header};
use serde_json::json;

use futures::future::join_all;

use crate::helpers::{each_backend, sleep, Reply, TestApp, TestDb, PASSWORD};

const TOO_MANY: &str = "too many requests, please try again later";

/// A server whose counters last 2 s, with one limit (a full key: `throttle.…` or a module's)
/// set to `limit`.
async fn strict(backend: &crate::helpers::Backend, key: &'static str, limit: i64) -> TestApp {
    let key = if key.contains('.') {
        key.to_owned()
    } else {
        format!("throttle.{key}")
    };
    TestApp::with(backend, move |f| {
        f.merge(("throttle.window", 2)).merge((key, limit))
    })
    .await
}

#[track_caller]
fn assert_throttled(reply: &Reply) {
    reply.assert_error(429, TOO_MANY);
}

async fn login_from(app: &TestApp, ip: &str, email: &str, password: &str) -> (u16, Option<String>) {
    let response = app
        .client
        .post("/api/auth/login")
        .header(ContentType::JSON)
        .header(Header::new("X-Real-IP", ip.to_owned()))
        .body(json!({"email": email, "password": password}).to_string())
        .dispatch()
        .await;
    (
        response.status().code,
        response.headers().get_one("Retry-After").map(str::to_owned),
    )
}

/// A reset token for `username`, as the emailed link would carry it (what the reset module
/// stores: its SHA-256).
async fn reset_token(app: &TestApp, username: &str) -> String {
    use sha2::Digest as _;
    let token = format!("test-reset-token-for-{username}-0123456789");
    let digest = hex::encode(sha2::Sha256::digest(token.as_bytes()));
    app.sql(&format!(
        "INSERT INTO password_reset_tokens (token_hash, user_id, password_version, created_at, expires_at) \
         SELECT '{digest}', id, password_version, 0, 9999999999 FROM users WHERE username = '{username}'"
    )).await;
    token
}

each_backend! {
    async fn failed_logins_per_account_and_client(backend) {
        let app = strict(&backend, "login_failures_per_account_and_client", 3).await;
        app.register("sam").await;
        app.register("bob").await;
        for _ in 0..3 {
            app.login("sam@example.com", "wrong-password").await.assert_error(401, "invalid credentials");
        }
        // Past the limit, even the right password waits.
        let blocked = app.login("SAM@example.com", PASSWORD).await;
        assert_throttled(&blocked);
        let response = app.client.post("/api/auth/login").header(ContentType::JSON)
            .body(json!({"email": "sam@example.com", "password": PASSWORD}).to_string()).dispatch().await;
        let retry: u64 = response.headers().get_one("Retry-After").expect("Retry-After").parse().expect("seconds");
        assert!((1..=2).contains(&retry), "{retry}");
        // An address with no account is throttled the same way, with the same answer.
        for _ in 0..3 {
            app.login("nobody@example.com", "wrong-password").await.assert_error(401, "invalid credentials");
        }
        assert_eq!(app.login("nobody@example.com", PASSWORD).await.body, blocked.body);
        // Other accounts are not affected.
        app.login("bob@example.com", PASSWORD).await.assert_success(200, "successfully logged in");
        // The window passes.
        sleep(3).await;
        app.login("sam@example.com", PASSWORD).await.assert_success(200, "successfully logged in");
    }

    async fn a_successful_login_clears_the_account_failures(backend) {
        let app = strict(&backend, "login_failures_per_account_and_client", 3).await;
        app.register("sam").await;
        for _ in 0..2 {
            app.login("sam@example.com", "wrong-password").await;
        }
        app.login("sam@example.com", PASSWORD).await.assert_success(200, "successfully logged in");
        for _ in 0..2 {
            app.login("sam@example.com", "wrong-password").await.assert_error(401, "invalid credentials");
        }
        app.login("sam@example.com", PASSWORD).await.assert_success(200, "successfully logged in");
    }

    async fn failed_logins_per_client(backend) {
        let app = strict(&backend, "login_failures_per_client", 4).await;
        for i in 0..4 {
            app.login(&format!("user{i}@example.com"), "wrong-password").await.assert_error(401, "invalid credentials");
        }
        assert_throttled(&app.login("user9@example.com", "wrong-password").await);
    }

    async fn forged_client_addresses_are_ignored_by_default(backend) {
        let app = strict(&backend, "login_failures_per_client", 3).await;
        for i in 0..3 {
            let (status, _) = login_from(&app, &format!("10.0.0.{i}"), &format!("u{i}@example.com"), "x").await;
            assert_eq!(status, 401);
        }
        let (status, retry) = login_from(&app, "10.0.0.99", "u9@example.com", "x").await;
        assert_eq!((status, retry.is_some()), (429, true));
    }

    async fn behind_a_proxy_its_header_names_the_client(backend) {
        let app = TestApp::with(&backend, |f| f.merge(("throttle.login_failures_per_client", 3))
            .merge(("ip_header", "X-Real-IP"))).await;
        for _ in 0..3 {
            assert_eq!(login_from(&app, "192.0.2.1", "a@example.com", "x").await.0, 401);
        }
        assert_eq!(login_from(&app, "192.0.2.1", "b@example.com", "x").await.0, 429);
        assert_eq!(login_from(&app, "192.0.2.2", "b@example.com", "x").await.0, 401);
    }

    async fn reset_requests_per_address(backend) {
        let app = strict(&backend, "password_reset.requests_per_account", 2).await;
        let path = "/api/auth/password/reset-request";
        for _ in 0..2 {
            app.post(path, json!({"email": "sam@example.com"})).await.assert_success(200, "password reset request processed");
        }
        assert_throttled(&app.post(path, json!({"email": "Sam@Example.com"})).await);
        app.post(path, json!({"email": "bob@example.com"})).await.assert_success(200, "password reset request processed");
    }

    async fn registrations_per_client(backend) {
        let app = strict(&backend, "registration.per_client", 2).await;
        // A form with mistakes does not count.
        app.register_as("x", "bad", "1").await;
        app.register("sam").await;
        app.register("bob").await;
        assert_throttled(&app.register_as("eve", "eve@example.com", PASSWORD).await);
        sleep(3).await;
        app.register("eve").await;
    }

    async fn instances_count_together(backend) {
        let a = strict(&backend, "login_failures_per_account_and_client", 4).await;
        let b = TestApp::on(TestDb::shared(&a.db), |f| f.merge(("throttle.window", 2))
            .merge(("throttle.login_failures_per_account_and_client", 4))).await;
        a.register("sam").await;
        for app in [&a, &b, &a, &b] {
            app.login("sam@example.com", "wrong-password").await.assert_error(401, "invalid credentials");
        }
        assert_throttled(&a.login("sam@example.com", PASSWORD).await);
        assert_throttled(&b.login("sam@example.com", PASSWORD).await);
    }

    async fn throttling_can_be_switched_off(backend) {
        let app = TestApp::with(&backend, |f| f.merge(("throttle.enabled", false))
            .merge(("throttle.login_failures_per_account_and_client", 1))
            .merge(("throttle.login_failures_per_account", 1))).await;
        app.register("sam").await;
        for _ in 0..5 {
            app.login("sam@example.com", "wrong-password").await.assert_error(401, "invalid credentials");
        }
        app.login("sam@example.com", PASSWORD).await.assert_success(200, "successfully logged in");
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM throttle").await, 0);
    }

    // Guessing spread over many clients is bounded per account too, but never keeps the owner
    // out: the clients the account knows are not subject to that bound, and a completed reset
    // forgets the failures and makes its client known.
    async fn an_attacker_cannot_lock_the_owner_out(backend) {
        let app = TestApp::with(&backend, |f| f.merge(("ip_header", "X-Real-IP"))
            .merge(("throttle.login_failures_per_account", 4))
            .merge(("throttle.login_failures_per_account_and_client", 2))).await;
        app.register("sam").await;
        // The owner signs in from home once: a known client from then on.
        assert_eq!(login_from(&app, "192.0.2.10", "sam@example.com", PASSWORD).await.0, 200);
        // An attacker on one address is stopped at its own counter; the owner is not affected.
        for _ in 0..2 {
            assert_eq!(login_from(&app, "198.51.100.1", "sam@example.com", "guess").await.0, 401);
        }
        assert_eq!(login_from(&app, "198.51.100.1", "sam@example.com", PASSWORD).await.0, 429);
        assert_eq!(login_from(&app, "192.0.2.10", "sam@example.com", PASSWORD).await.0, 200);
        // Spread over many addresses, the account-wide bound stops the guessing (the owner's
        // sign-in just now forgot the earlier failures)...
        for i in 2..=5 {
            assert_eq!(login_from(&app, &format!("198.51.100.{i}"), "sam@example.com", "guess").await.0, 401);
        }
        let (status, retry) = login_from(&app, "198.51.100.9", "sam@example.com", PASSWORD).await;
        assert_eq!((status, retry.is_some()), (429, true));
        // ...but not the owner at home (whose sign-in forgets the failures again),
        assert_eq!(login_from(&app, "192.0.2.10", "sam@example.com", PASSWORD).await.0, 200);
        // and not the owner elsewhere once a reset is completed there.
        for i in 4..=7 {
            login_from(&app, &format!("198.51.100.{i}"), "sam@example.com", "guess").await;
        }
        assert_eq!(login_from(&app, "203.0.113.7", "sam@example.com", PASSWORD).await.0, 429);
        let reset = app.client.post("/api/auth/password/update").header(ContentType::JSON)
            .header(Header::new("X-Real-IP", "203.0.113.7"))
            .body(json!({"token": reset_token(&app, "sam").await, "password": "quokka-zephyr-9",
                "password_conf": "quokka-zephyr-9"}).to_string())
            .dispatch().await;
        assert_eq!(reset.status().code, 200);
        assert_eq!(login_from(&app, "203.0.113.7", "sam@example.com", "quokka-zephyr-9").await.0, 200);
        // The reset forgot the failures of every client.
        assert_eq!(login_from(&app, "198.51.100.9", "sam@example.com", "quokka-zephyr-9").await.0, 200);
    }

    // Count first, then decide: a burst of concurrent attempts gets no more answers than the
    // limit, for each kind of counter.
    async fn a_burst_gets_no_more_than_the_limit(backend) {
        let app = TestApp::with(&backend, |f| f
            .merge(("throttle.login_failures_per_account_and_client", 10))
            .merge(("password_reset.requests_per_account", 3))
            .merge(("registration.per_client", 5))).await;
        app.register("sam").await;
        let guesses = join_all((0..100).map(|_| app.login("sam@example.com", "wrong-password"))).await;
        let answered = guesses.iter().filter(|r| r.status.code == 401).count();
        let refused = guesses.iter().filter(|r| r.status.code == 429).count();
        assert_eq!((answered, refused), (10, 90));
        assert_throttled(&app.login("sam@example.com", PASSWORD).await);

        let path = "/api/auth/password/reset-request";
        let requests = join_all((0..30).map(|_| app.post(path, json!({"email": "bob@example.com"})))).await;
        assert_eq!(requests.iter().filter(|r| r.status.code == 200).count(), 3);
        assert_eq!(requests.iter().filter(|r| r.status.code == 429).count(), 27);

        // One registration was counted already (sam).
        let names: Vec<(String, String)> = (0..20)
            .map(|i| (format!("user{i}"), format!("user{i}@example.com"))).collect();
        let registrations = join_all(names.iter()
            .map(|(name, email)| app.register_as(name, email, PASSWORD))).await;
        assert_eq!(registrations.iter().filter(|r| r.status.code == 201).count(), 4);
        assert_eq!(registrations.iter().filter(|r| r.status.code == 429).count(), 16);
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM users").await, 5);
    }

    async fn a_burst_over_two_instances_gets_no_more_than_the_limit(backend) {
        let limit = ("throttle.login_failures_per_account_and_client", 6);
        let a = TestApp::with(&backend, |f| f.merge(limit)).await;
        let b = TestApp::on(TestDb::shared(&a.db), |f| f.merge(limit)).await;
        a.register("sam").await;
        let guesses = join_all((0..40).map(|i| {
            let app = if i % 2 == 0 { &a } else { &b };
            app.login("sam@example.com", "wrong-password")
        })).await;
        assert_eq!(guesses.iter().filter(|r| r.status.code == 401).count(), 6);
        assert_eq!(guesses.iter().filter(|r| r.status.code == 429).count(), 34);
    }
}
