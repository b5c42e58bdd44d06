use serde_json::json;

use crate::helpers::{each_backend, TestApp, PASSWORD};

const USERNAME_LENGTH: &str = "username: 3 to 12 characters required\n";
const USERNAME_CHARS: &str =
    "username: only alphanumeric characters and the underscore character \"_\" allowed\n";
const EMAIL: &str = "email: valid email must be provided\n";
const MISMATCH: &str = "password: password and password confirmation do not match\n";
const SHORT: &str = "password: 8 characters required\n";

fn form(username: &str, email: &str, password: &str, confirmation: &str) -> serde_json::Value {
    json!({"username": username, "email": email, "password": password, "password_conf": confirmation})
}

each_backend! {
    async fn registers_and_returns_a_working_token(backend) {
        let app = TestApp::new(&backend).await;
        let reply = app.post("/api/auth/register", form("sam_1", "sam@example.com", PASSWORD, PASSWORD)).await;
        reply.assert_success(201, "successfully registered");
        let profile = app.profile(&reply.token()).await;
        assert_eq!(profile.status.code, 200);
        assert_eq!(profile.body["data"]["username"], "sam_1");
        assert_eq!(profile.body["data"]["email"], "sam@example.com");
    }

    async fn validation_lines_in_order(backend) {
        let app = TestApp::new(&backend).await;
        let cases = [
            (form("ab", "a@b.co", PASSWORD, PASSWORD), USERNAME_LENGTH.to_owned()),
            (form("thirteen_char", "a@b.co", PASSWORD, PASSWORD), USERNAME_LENGTH.to_owned()),
            (form("sam!", "a@b.co", PASSWORD, PASSWORD), USERNAME_CHARS.to_owned()),
            (form("sam", "not-an-email", PASSWORD, PASSWORD), EMAIL.to_owned()),
            (form("sam", "a@b.co", PASSWORD, "other-horse"), MISMATCH.to_owned()),
            (form("sam", "a@b.co", "short", "short"), SHORT.to_owned()),
            (form("", "", "1", "2"), format!("{USERNAME_LENGTH}{USERNAME_CHARS}{EMAIL}{MISMATCH}{SHORT}")),
            (form("a b", "x@y", "1234567", "1234567"), format!("{USERNAME_CHARS}{EMAIL}{SHORT}")),
        ];
        for (body, expected) in cases {
            app.post("/api/auth/register", body.clone()).await.assert_error(400, &expected);
        }
        let long = "p".repeat(129);
        app.post("/api/auth/register", form("sam", "a@b.co", &long, &long))
            .await
            .assert_error(400, "password: 128 characters maximum\n");
        // A guessable password is one more line, with the others.
        let guessable = "password: this password is too common or too easy to guess\n";
        for weak in ["password123", "azertyuiop", "sam@example.com", "samsamsam"] {
            app.post("/api/auth/register", form("sam", "sam@example.com", weak, weak))
                .await
                .assert_error(400, guessable);
        }
        app.post("/api/auth/register", form("sam!", "a@b.co", "12345678", "12345678"))
            .await
            .assert_error(400, &format!("{USERNAME_CHARS}{guessable}"));
        // Nothing was created by any of these.
        app.login("a@b.co", PASSWORD).await.assert_error(401, "invalid credentials");
        app.login("sam@example.com", "password123").await.assert_error(401, "invalid credentials");
    }

    async fn minimum_password_length_is_configurable(backend) {
        let app = TestApp::with(&backend, |f| f.merge(("passwords.min_length", 12))).await;
        app.post("/api/auth/register", form("sam", "a@b.co", "elevenchars", "elevenchars"))
            .await
            .assert_error(400, "password: 12 characters required\n");
        app.post("/api/auth/register", form("sam", "a@b.co", "twelve-chars", "twelve-chars"))
            .await
            .assert_success(201, "successfully registered");
    }

    // FitTrackee 0.5's: with cookies on, `password_conf` may be left out (tests/api/shapes.rs).
    async fn invalid_payloads(backend) {
        let app = TestApp::with(&backend, |f| f.merge(("cookies.enabled", false))).await;
        let bodies = [
            "",
            "not json",
            "[]",
            r#"["sam", "sam@example.com", "correct-horse", "correct-horse"]"#,
            "\"sam\"",
            "{}",
            r#"{"username": "sam", "email": "sam@example.com", "password": "correct-horse"}"#,
            r#"{"username": null, "email": "sam@example.com", "password": "correct-horse", "password_conf": "correct-horse"}"#,
            r#"{"username": 12345, "email": "sam@example.com", "password": "correct-horse", "password_conf": "correct-horse"}"#,
            r#"{"username": "sam", "email": ["sam@example.com"], "password": "correct-horse", "password_conf": "correct-horse"}"#,
            r#"{"username": "sam", "username": "bob", "email": "sam@example.com", "password": "correct-horse", "password_conf": "correct-horse"}"#,
        ];
        for body in bodies {
            app.send("POST", "/api/auth/register", None, Some(body)).await.assert_error(400, "invalid payload");
        }
        let huge = json!({"username": "sam", "email": "sam@example.com", "password": PASSWORD,
                          "password_conf": PASSWORD, "bio": "x".repeat(100_000)});
        app.post("/api/auth/register", huge).await.assert_error(413, "error, payload too large");
    }

    async fn duplicates_are_refused_case_insensitively(backend) {
        let app = TestApp::new(&backend).await;
        app.register("Sam").await;
        for (username, email) in [("sam", "other@example.com"), ("SAM", "other@example.com"), ("bob", "SAM@EXAMPLE.COM")] {
            app.register_as(username, email, PASSWORD).await.assert_error(400, "sorry, that user already exists");
        }
    }

    async fn racing_duplicates_make_exactly_one_account(backend) {
        let app = TestApp::new(&backend).await;
        let emails: Vec<String> = (0..8).map(|i| format!("racer{i}@example.com")).collect();
        let attempts = emails.iter().map(|email| app.register_as("racer", email, PASSWORD));
        let replies = futures::future::join_all(attempts).await;
        let created = replies.iter().filter(|r| r.status.code == 201).count();
        assert_eq!(created, 1, "{:?}", replies.iter().map(|r| r.body.to_string()).collect::<Vec<_>>());
        for reply in replies.iter().filter(|r| r.status.code != 201) {
            reply.assert_error(400, "sorry, that user already exists");
        }
    }

    async fn admin_switch_closes_registration_first(backend) {
        let app = TestApp::new(&backend).await;
        let admin = app.admin("admin").await;
        app.send("PATCH", "/api/config", Some(&admin), Some(r#"{"is_registration_enabled": false}"#))
            .await;
        // Checked before the payload: even an invalid body gets the 403.
        app.send("POST", "/api/auth/register", None, Some("{}")).await.assert_error(403, "error, registration is disabled");
        app.register_as("bob", "bob@example.com", PASSWORD).await.assert_error(403, "error, registration is disabled");
        app.send("PATCH", "/api/config", Some(&admin), Some(r#"{"is_registration_enabled": true}"#)).await;
        app.register("bob").await;
    }

    async fn max_users_closes_registration(backend) {
        let app = TestApp::new(&backend).await;
        let admin = app.admin("admin").await;
        app.send("PATCH", "/api/config", Some(&admin), Some(r#"{"max_users": 2}"#)).await;
        app.register("bob").await;
        app.register_as("eve", "eve@example.com", PASSWORD).await.assert_error(403, "error, registration is disabled");
        let config = app.get("/api/config", None).await;
        assert_eq!(config.body["data"]["is_registration_enabled"], false);
        app.send("PATCH", "/api/config", Some(&admin), Some(r#"{"max_users": 0}"#)).await;
        app.register("eve").await;
    }

    async fn module_off_answers_only_the_403(backend) {
        let app = TestApp::with(&backend, |f| f.merge(("modules.registration", false))).await;
        app.register_as("sam", "sam@example.com", PASSWORD).await.assert_error(403, "error, registration is disabled");
        app.send("POST", "/api/auth/register", None, Some("nonsense")).await.assert_error(403, "error, registration is disabled");
        // The rest of the server is there.
        app.login("sam@example.com", PASSWORD).await.assert_error(401, "invalid credentials");
    }

    // Registrations racing for the last places below max_users: never more users than the
    // limit, however many arrive at once (on one instance or two sharing the database), and
    // every loser gets the 403, never a 500.
    async fn max_users_holds_under_a_burst(backend) {
        let a = TestApp::with(&backend, |f| f.merge(("registration.per_client", 100))).await;
        let b = TestApp::on(crate::helpers::TestDb::shared(&a.db),
            |f| f.merge(("registration.per_client", 100))).await;
        let admin = a.admin("admin").await;
        assert_eq!(a.send("PATCH", "/api/config", Some(&admin), Some(r#"{"max_users": 3}"#)).await
            .status.code, 200);
        let names: Vec<(String, String)> = (0..20)
            .map(|i| (format!("user{i}"), format!("user{i}@example.com"))).collect();
        let answers = futures::future::join_all(names.iter().enumerate().map(|(i, (name, email))| {
            let app = if i % 2 == 0 { &a } else { &b };
            app.register_as(name, email, PASSWORD)
        })).await;
        let created = answers.iter().filter(|r| r.status.code == 201).count();
        assert_eq!(created, 2, "the admin plus two: {:?}", answers.iter().map(|r| r.status.code).collect::<Vec<_>>());
        for refused in answers.iter().filter(|r| r.status.code != 201) {
            refused.assert_error(403, "error, registration is disabled");
        }
        assert_eq!(a.count("SELECT COUNT(*) AS n FROM users").await, 3);
    }
}
