//! Throttling: failed logins per account and per client, reset requests, registrations; 429
//! JSON with Retry-After; counted in the database, so instances count together.

use rocket::http::{ContentType, Header};
use serde_json::json;

use crate::helpers::{each_backend, sleep, Reply, TestApp, TestDb, PASSWORD};

const TOO_MANY: &str = "too many requests, please try again later";

async fn strict(backend: &crate::helpers::Backend, key: &'static str, limit: i64) -> TestApp {
    TestApp::with(backend, move |f| {
        f.merge(("throttle.window", 2))
            .merge((format!("throttle.{key}"), limit))
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

each_backend! {
    async fn failed_logins_per_account(backend) {
        let app = strict(&backend, "login_failures_per_account", 3).await;
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
        let app = strict(&backend, "login_failures_per_account", 3).await;
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
        let app = strict(&backend, "reset_requests_per_account", 2).await;
        let path = "/api/auth/password/reset-request";
        for _ in 0..2 {
            app.post(path, json!({"email": "sam@example.com"})).await.assert_success(200, "password reset request processed");
        }
        assert_throttled(&app.post(path, json!({"email": "Sam@Example.com"})).await);
        app.post(path, json!({"email": "bob@example.com"})).await.assert_success(200, "password reset request processed");
    }

    async fn registrations_per_client(backend) {
        let app = strict(&backend, "registrations_per_client", 2).await;
        // A form with mistakes does not count.
        app.register_as("x", "bad", "1").await;
        app.register("sam").await;
        app.register("bob").await;
        assert_throttled(&app.register_as("eve", "eve@example.com", PASSWORD).await);
        sleep(3).await;
        app.register("eve").await;
    }

    async fn instances_count_together(backend) {
        let a = strict(&backend, "login_failures_per_account", 4).await;
        let b = TestApp::on(TestDb::shared(&a.db), |f| f.merge(("throttle.window", 2))
            .merge(("throttle.login_failures_per_account", 4))).await;
        a.register("sam").await;
        for app in [&a, &b, &a, &b] {
            app.login("sam@example.com", "wrong-password").await.assert_error(401, "invalid credentials");
        }
        assert_throttled(&a.login("sam@example.com", PASSWORD).await);
        assert_throttled(&b.login("sam@example.com", PASSWORD).await);
    }

    async fn throttling_can_be_switched_off(backend) {
        let app = TestApp::with(&backend, |f| f.merge(("throttle.enabled", false))
            .merge(("throttle.login_failures_per_account", 1))).await;
        app.register("sam").await;
        for _ in 0..5 {
            app.login("sam@example.com", "wrong-password").await.assert_error(401, "invalid credentials");
        }
        app.login("sam@example.com", PASSWORD).await.assert_success(200, "successfully logged in");
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM throttle").await, 0);
    }
}
