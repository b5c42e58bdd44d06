//! Password reset without a mail server: what the endpoints refuse, and the module switched
//! off (the flows with their emails: tests/e2e/email_reset.rs).

use serde_json::json;

use crate::helpers::{each_backend, TestApp};

fn update(token: &str, password: &str, confirmation: &str) -> serde_json::Value {
    json!({"token": token, "password": password, "password_conf": confirmation})
}

each_backend! {
    // FitTrackee 0.5's: with cookies on, `password_conf` may be left out (tests/api/shapes.rs).
    async fn invalid_payloads(backend) {
        let app = TestApp::with(&backend, |f| f.merge(("cookies.enabled", false))).await;
        for body in ["", "{}", "[]", r#"{"email": null}"#, r#"{"email": 42}"#] {
            app.send("POST", "/api/auth/password/reset-request", None, Some(body)).await.assert_error(400, "invalid payload");
        }
        for body in ["", "{}", r#"{"token": "x", "password": "12345678"}"#,
                     r#"{"token": 1, "password": "12345678", "password_conf": "12345678"}"#] {
            app.send("POST", "/api/auth/password/update", None, Some(body)).await.assert_error(400, "invalid payload");
        }
    }

    async fn module_off_mounts_nothing(backend) {
        let app = TestApp::with(&backend, |f| f.merge(("modules.password_reset", false))).await;
        app.post("/api/auth/password/reset-request", json!({"email": "a@b.co"})).await.assert_error(404, "error, page not found");
        app.post("/api/auth/password/update", update("x", "y", "z")).await.assert_error(404, "error, page not found");
        let page = app.client.get("/password-reset?token=x").dispatch().await;
        assert_eq!(page.status().code, 404);
    }
}
