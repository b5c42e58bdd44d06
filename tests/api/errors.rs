//! Every error is the JSON envelope, the framework's own included.

use crate::helpers::{each_backend, TestApp};

each_backend! {
    async fn framework_errors_are_json(backend) {
        let app = TestApp::new(&backend).await;
        app.get("/api/nowhere", None).await.assert_error(404, "error, page not found");
        app.get("/", None).await.assert_error(404, "error, page not found");
        // Rocket 0.5 has no 405: a wrong method is a JSON 404.
        app.send("PUT", "/api/auth/login", None, Some("{}")).await.assert_error(404, "error, page not found");
        app.send("DELETE", "/api/config", None, None).await.assert_error(404, "error, page not found");
        // Malformed bodies on every JSON endpoint.
        let token = app.register("sam").await;
        for path in ["/api/auth/register", "/api/auth/login", "/api/auth/profile/edit",
                     "/api/auth/profile/edit/preferences"] {
            let reply = app.send("POST", path, Some(&token), Some("{\"unterminated")).await;
            reply.assert_error(400, "invalid payload");
        }
        let reply = app.send("PATCH", "/api/config", Some(&token), Some("{\"unterminated")).await;
        assert!(matches!(reply.status.code, 400 | 403), "{}", reply.body);
        assert_eq!(reply.body["status"], "error");
    }

    // PostgreSQL refuses text holding a NUL character: such input is a 400 (a 404 for a name in
    // a path) on both backends, never a 500 on one of them.
    #[cfg(feature = "pictures")] // uses the pictures module
    async fn nul_characters_are_refused(backend) {
        let app = TestApp::new(&backend).await;
        let token = app.admin("sam").await;
        let nul = r"a\u0000b"; // JSON text for "a", NUL, "b"
        for (path, body) in [
            ("/api/auth/register", format!(r#"{{"username": "nul", "email": "{nul}@example.com", "password": "correct-horse", "password_conf": "correct-horse"}}"#)),
            ("/api/auth/login", format!(r#"{{"email": "{nul}", "password": "x"}}"#)),
            ("/api/auth/profile/edit", format!(r#"{{"first_name": "{nul}", "last_name": null, "location": null, "bio": null, "birth_date": null}}"#)),
            ("/api/auth/profile/edit/preferences", format!(r#"{{"timezone": "{nul}", "weekm": true, "language": null, "imperial_units": false}}"#)),
            ("/api/auth/password/reset-request", format!(r#"{{"email": "{nul}"}}"#)),
            ("/api/auth/password/update", format!(r#"{{"token": "{nul}", "password": "correct-horse", "password_conf": "correct-horse"}}"#)),
        ] {
            let reply = app.send("POST", path, Some(&token), Some(&body)).await;
            assert_eq!((path, reply.status.code), (path, 400), "{}", reply.body);
            assert_eq!(reply.message(), "invalid payload");
        }
        let reply = app.send("PATCH", "/api/config", Some(&token), Some(r#"{"max_users": 1, "x": "\u0000"}"#)).await;
        reply.assert_error(400, "invalid payload");
        app.picture("a%00b", &[]).await.json().assert_error(404, "user does not exist");
        // The profile is as it was.
        assert_eq!(app.profile(&token).await.body["data"]["first_name"], serde_json::Value::Null);
    }
}

mod headers {
    use crate::helpers::{Backend, TestApp};

    #[tokio::test]
    async fn security_headers_on_every_response() {
        let app = TestApp::new(&Backend::Sqlite).await;
        for path in ["/api/ping", "/api/nowhere"] {
            let response = app.client.get(path).dispatch().await;
            let headers = response.headers();
            assert_eq!(
                headers.get_one("X-Content-Type-Options"),
                Some("nosniff"),
                "{path}"
            );
            assert_eq!(headers.get_one("X-Frame-Options"), Some("DENY"), "{path}");
            assert_eq!(
                headers.get_one("Referrer-Policy"),
                Some("no-referrer"),
                "{path}"
            );
            assert_eq!(
                headers.get_one("Strict-Transport-Security"),
                None,
                "no HSTS over http"
            );
        }
    }

    #[tokio::test]
    async fn hsts_when_served_over_https() {
        let app = TestApp::with(&Backend::Sqlite, |f| {
            f.merge(("public_url", "https://fit.example.org"))
        })
        .await;
        let response = app.client.get("/api/ping").dispatch().await;
        let hsts = response
            .headers()
            .get_one("Strict-Transport-Security")
            .expect("HSTS")
            .to_owned();
        assert!(hsts.starts_with("max-age=31536000"), "{hsts}");
    }
}
