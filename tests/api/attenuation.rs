//! Narrowed tokens: a client narrows its own token offline (appending a Biscuit block of
//! checks) and hands the narrower token on. Stride's authorizer supplies `operation` (what the
//! route does: "read" or "write"), `path` (the request's path in one canonical spelling),
//! `route` (the template of the route that serves it) and `time`. A narrowed token never
//! manages sessions and never changes the password without the current one, so it can never
//! become a broader one.

use std::time::{Duration, SystemTime};

use biscuit_auth::macros::block;
use biscuit_auth::{BlockBuilder, UnverifiedBiscuit};
use rocket::http::{ContentType, Header};
use serde_json::json;

use crate::helpers::{each_backend, sleep, TestApp, PASSWORD};

const NOT_ALLOWED: &str = "this token does not allow this request";
const INVALID: &str = "invalid token, please log in again";

/// What a client does with the biscuit CLI or library: no key needed.
fn narrow(token: &str, block: BlockBuilder) -> String {
    UnverifiedBiscuit::from_base64(token)
        .expect("a biscuit")
        .append(block)
        .expect("appended")
        .to_base64()
        .expect("encoded")
}

pub(crate) fn narrow_code(token: &str, code: &str) -> String {
    narrow(token, BlockBuilder::new().code(code).expect("datalog"))
}

fn edit() -> serde_json::Value {
    json!({"first_name": "Sam", "last_name": null, "location": null, "bio": null, "birth_date": null})
}

/// Every way a narrowed token could manage the account's sessions, and what each answers.
async fn assert_cannot_manage_sessions(app: &TestApp, narrowed: &str) {
    app.get("/api/auth/logout", Some(narrowed))
        .await
        .assert_error(403, NOT_ALLOWED);
    app.send("POST", "/api/auth/logout", Some(narrowed), None)
        .await
        .assert_error(403, NOT_ALLOWED);
    app.get("/api/auth/sessions", Some(narrowed))
        .await
        .assert_error(403, NOT_ALLOWED);
    app.send("DELETE", "/api/auth/sessions", Some(narrowed), None)
        .await
        .assert_error(403, NOT_ALLOWED);
    app.send("DELETE", "/api/auth/sessions/0123", Some(narrowed), None)
        .await
        .assert_error(403, NOT_ALLOWED);
}

each_backend! {
    #[cfg(feature = "pictures")] // uses the pictures module
    async fn a_read_only_token_reads_but_cannot_write(backend) {
        let app = TestApp::new(&backend).await;
        let token = app.register("sam").await;
        let read_only = narrow(&token, block!(r#"check if operation("read");"#));
        assert_eq!(app.profile(&read_only).await.body["data"]["username"], "sam");
        app.post_auth("/api/auth/profile/edit", &read_only, edit()).await.assert_error(403, NOT_ALLOWED);
        let preferences = json!({"timezone": "UTC", "weekm": true, "language": "en", "imperial_units": false});
        app.post_auth("/api/auth/profile/edit/preferences", &read_only, preferences).await
            .assert_error(403, NOT_ALLOWED);
        app.send("DELETE", "/api/auth/picture", Some(&read_only), None).await.assert_error(403, NOT_ALLOWED);
        // A GET logout is no read: it ends the session.
        assert_cannot_manage_sessions(&app, &read_only).await;
        assert_eq!(app.profile(&token).await.status.code, 200);
        assert_eq!(app.profile(&read_only).await.status.code, 200);
        // Logging out with the token as minted ends both: they share the session.
        app.get("/api/auth/logout", Some(&token)).await.assert_success(200, "successfully logged out");
        app.profile(&read_only).await.assert_error(401, "provide a valid auth token");
    }

    #[cfg(feature = "accounts")] // the account lifecycle's routes
    async fn the_lifecycle_routes_refuse_narrowed_and_logged_out_tokens(backend) {
        let app = TestApp::new(&backend).await;
        let token = app.register("sam").await;
        let change = json!({"email": "samuel@example.org", "password": PASSWORD}).to_string();
        // A change of address or password is a change of credentials: never from a narrowed
        // token, however broad.
        let broad = narrow_code(&token, r#"check if operation("write") or operation("read");"#);
        app.send("PATCH", "/api/auth/profile/edit/account", Some(&broad), Some(&change)).await
            .assert_error(403, NOT_ALLOWED);
        // A read-only token reads the export's state but does not ask for one.
        let read_only = narrow(&token, block!(r#"check if operation("read");"#));
        app.send("POST", "/api/auth/account/export/request", Some(&read_only), None).await
            .assert_error(403, NOT_ALLOWED);
        assert_eq!(app.get("/api/auth/account/export", Some(&read_only)).await.status.code, 200);
        assert_eq!(app.profile(&token).await.body["data"]["email_to_confirm"], serde_json::Value::Null);
        // Logged out, the token (and its narrowed forms) is refused by every one of them.
        app.get("/api/auth/logout", Some(&token)).await.assert_success(200, "successfully logged out");
        for narrowed in [&token, &broad, &read_only] {
            for (method, path) in [("PATCH", "/api/auth/profile/edit/account"), ("POST", "/api/auth/account/export/request"),
                                   ("GET", "/api/auth/account/export"), ("GET", "/api/auth/account/export/archive_x.zip")] {
                app.send(method, path, Some(narrowed), Some(&change)).await.assert_error(401, "provide a valid auth token");
            }
        }
    }

    async fn a_narrowed_token_never_manages_sessions(backend) {
        let app = TestApp::new(&backend).await;
        let token = app.register("sam").await;
        let other = app.login("sam@example.com", PASSWORD).await.token();
        // Narrowed in ways that still allow writes: only in time, or to the session routes.
        let later = SystemTime::now() + Duration::from_secs(3600);
        let shapes = [
            narrow(&token, block!(r#"check if time($t), $t <= {later};"#, later = later)),
            narrow_code(&token, r#"check if operation("write") or operation("read");"#),
            narrow_code(&token, r#"check if path($p), $p.starts_with("/api/auth");"#),
            narrow_code(&token, r#"check if route($r), $r.starts_with("/api/auth/");"#),
        ];
        for narrowed in &shapes {
            assert_eq!(app.profile(narrowed).await.status.code, 200);
            assert_cannot_manage_sessions(&app, narrowed).await;
        }
        // Nothing was ended.
        assert_eq!(app.profile(&token).await.status.code, 200);
        assert_eq!(app.profile(&other).await.status.code, 200);
        assert_eq!(app.get("/api/auth/sessions", Some(&token)).await.body["data"]["sessions"]
            .as_array().map(Vec::len), Some(2));
    }

    async fn a_narrowed_token_changes_the_password_only_with_the_current_one(backend) {
        let app = TestApp::new(&backend).await;
        let token = app.register("sam").await;
        let edit_only = narrow_code(&token, r#"check if path("/api/auth/profile/edit");"#);
        let path = "/api/auth/profile/edit";
        // A profile edit without a password change is what it allows.
        app.post_auth(path, &edit_only, edit()).await.assert_success(200, "user profile updated");
        let mut body = edit();
        body["password"] = json!("quokka-zephyr-2");
        body["password_conf"] = json!("quokka-zephyr-2");
        app.post_auth(path, &edit_only, body.clone()).await.assert_error(400, "current password is missing");
        body["current_password"] = json!("wrong-horse");
        app.post_auth(path, &edit_only, body.clone()).await.assert_error(401, "invalid credentials");
        // The password did not change: a login for a fresh, broad token needs the old one.
        app.login("sam@example.com", "quokka-zephyr-2").await.assert_error(401, "invalid credentials");
        app.login("sam@example.com", PASSWORD).await.assert_success(200, "successfully logged in");
        body["current_password"] = json!(PASSWORD);
        app.post_auth(path, &edit_only, body).await.assert_success(200, "user profile updated");
        // The token as minted still needs no current password (FitTrackee's clients).
        let mut plain = edit();
        plain["password"] = json!("quokka-zephyr-3");
        plain["password_conf"] = json!("quokka-zephyr-3");
        app.post_auth(path, &token, plain).await.assert_success(200, "user profile updated");
    }

    async fn a_token_narrowed_to_one_path(backend) {
        let app = TestApp::new(&backend).await;
        let token = app.register("sam").await;
        let profile_only = narrow(&token, block!(r#"check if path("/api/auth/profile");"#));
        assert_eq!(app.profile(&profile_only).await.status.code, 200);
        app.post_auth("/api/auth/profile/edit", &profile_only, edit()).await.assert_error(403, NOT_ALLOWED);
        // The original token is as wide as before.
        assert_eq!(app.get("/api/auth/sessions", Some(&token)).await.status.code, 200);
        // A route template names every path it serves.
        let by_route = narrow_code(&token, r#"check if route("/api/auth/profile");"#);
        assert_eq!(app.profile(&by_route).await.status.code, 200);
        app.post_auth("/api/auth/profile/edit", &by_route, edit()).await.assert_error(403, NOT_ALLOWED);
    }

    async fn other_spellings_of_a_path_are_the_same_path(backend) {
        let app = TestApp::new(&backend).await;
        let token = app.register("sam").await;
        let deny_path = narrow_code(&token, r#"check if path($p), $p != "/api/auth/profile/edit";"#);
        let deny_route = narrow_code(&token, r#"check if route($r), $r != "/api/auth/profile/edit";"#);
        let spellings = [
            "/api/auth/profile/edit",
            "/api/auth/profile/edit/",
            "/api/auth//profile/edit",
            "/api/auth/profile//edit//",
            "/api/auth/%70rofile/edit",
            "/api/auth/profile/%65%64%69%74",
            "/api/%61uth/profile/edit",
        ];
        for narrowed in [&deny_path, &deny_route] {
            for spelling in spellings {
                let mut body = edit();
                body["bio"] = json!(spelling);
                let reply = app.post_auth(spelling, narrowed, body).await;
                assert!(matches!(reply.status.code, 403 | 404), "{spelling}: {:?}", reply.body);
            }
        }
        // None of them went through.
        assert_eq!(app.profile(&token).await.body["data"]["bio"], serde_json::Value::Null);
        // And a spelling that reaches the profile is the profile, for an allow-list too.
        let profile_only = narrow_code(&token, r#"check if path("/api/auth/profile");"#);
        for spelling in ["/api/auth/profile", "/api/auth/%70rofile", "/api//auth/profile"] {
            let reply = app.get(spelling, Some(&profile_only)).await;
            assert!(matches!(reply.status.code, 200 | 404), "{spelling}: {:?}", reply.body);
        }
    }

    async fn a_form_field_does_not_change_the_method(backend) {
        let app = TestApp::new(&backend).await;
        let token = app.register("sam").await;
        let other = app.login("sam@example.com", PASSWORD).await.token();
        let bearer = format!("Bearer {token}");
        let form = |body: &'static str, path: &'static str| {
            app.client.post(path)
                .header(ContentType::Form)
                .header(Header::new("Authorization", bearer.clone()))
                .body(body)
                .dispatch()
        };
        // `_method=DELETE` on a POST to the sessions would end the other sessions: it is a
        // POST, which that path does not serve.
        for body in ["_method=DELETE", "_method=delete&x=1"] {
            let response = form(body, "/api/auth/sessions").await;
            assert_eq!(response.status().code, 404, "{body}");
        }
        assert_eq!(app.profile(&other).await.status.code, 200);
        // `_method=HEAD` on a logout: an answer with its body, like any POST logout.
        let response = form("_method=HEAD", "/api/auth/logout").await;
        assert_eq!(response.status().code, 200);
        let body = response.into_string().await.unwrap_or_default();
        assert!(body.contains("successfully logged out"), "{body}");
        // A narrowed, read-only token cannot turn a POST into a GET either.
        let read_only = narrow_code(&other, r#"check if operation("read");"#);
        let response = app.client.post("/api/auth/profile/edit")
            .header(ContentType::Form)
            .header(Header::new("Authorization", format!("Bearer {read_only}")))
            .body("_method=GET")
            .dispatch().await;
        assert!(matches!(response.status().code, 400 | 403 | 404), "{}", response.status());
    }

    async fn a_token_narrowed_to_expire_soon_dies(backend) {
        let app = TestApp::new(&backend).await;
        let token = app.register("sam").await;
        let soon = SystemTime::now() + Duration::from_secs(1);
        let short = narrow(&token, block!(r#"check if time($t), $t <= {soon};"#, soon = soon));
        assert_eq!(app.profile(&short).await.status.code, 200);
        sleep(2).await;
        app.profile(&short).await.assert_error(401, "signature expired, please log in again");
        assert_eq!(app.profile(&token).await.status.code, 200);
    }

    async fn appended_facts_are_refused(backend) {
        let app = TestApp::new(&backend).await;
        let admin = app.admin("admin").await;
        let token = app.register("sam").await;
        let admin_id = app.count("SELECT id AS n FROM users WHERE username = 'admin'").await;
        // A narrowing holds checks only: a block with facts is not a token Stride accepts.
        let forged = narrow(&token, block!(r#"user({id});"#, id = admin_id));
        app.profile(&forged).await.assert_error(401, INVALID);
        app.send("PATCH", "/api/config", Some(&forged), Some(r#"{"max_users": 1}"#)).await
            .assert_error(401, INVALID);
        assert_eq!(app.profile(&admin).await.body["data"]["admin"], true);
        assert_eq!(app.profile(&token).await.body["data"]["username"], "sam");
    }

    // The cost of judging a token is bounded whatever was appended: the shapes that made it
    // unbounded are refused before they run, and a logged-out or expired token is refused
    // before its holder's Datalog is looked at. (`tokens::tests` covers every shape; here, the
    // HTTP answers.)
    async fn costly_narrowings_are_refused_unrun(backend) {
        let app = TestApp::new(&backend).await;
        let token = app.register("sam").await;
        let facts: String = (0..200).map(|i| format!("n({i});")).collect();
        let join = narrow_code(&token, &format!(
            "{facts} check if n($a), n($b), n($c), n($d), $a + $b + $c + $d < 0;"));
        let rules = narrow_code(&token, "m($x, $y) <- n($x), n($y); check if m($a, $b), m($c, $d);");
        let regex = narrow_code(&token, r#"check if path($p), $p.matches("^(a|a)*$");"#);
        for costly in [&join, &rules, &regex] {
            app.profile(costly).await.assert_error(401, INVALID);
        }
        let mut deep = token.clone();
        for _ in 0..8 {
            deep = narrow_code(&deep, r#"check if operation("read");"#);
        }
        app.profile(&deep).await.assert_error(401, INVALID);
        let long = format!("{token}{}", "A".repeat(5000));
        app.profile(&long).await.assert_error(401, INVALID);
        // Logged out, a narrowed token is refused for its session, costly block or not.
        let narrowed = narrow_code(&token, r#"check if operation("read");"#);
        app.get("/api/auth/logout", Some(&token)).await.assert_success(200, "successfully logged out");
        app.profile(&narrowed).await.assert_error(401, "provide a valid auth token");
    }
}
