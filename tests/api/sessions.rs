use serde_json::json;

use crate::helpers::{each_backend, sleep, TestApp, PASSWORD};

const PROVIDE: &str = "provide a valid auth token";
const INVALID: &str = "invalid token, please log in again";
const EXPIRED: &str = "signature expired, please log in again";

each_backend! {
    async fn login_with_any_case_of_the_email(backend) {
        let app = TestApp::new(&backend).await;
        app.register_as("sam", "Sam@Example.com", PASSWORD).await.assert_success(201, "successfully registered");
        for email in ["Sam@Example.com", "sam@example.com", "SAM@EXAMPLE.COM"] {
            let reply = app.login(email, PASSWORD).await;
            reply.assert_success(200, "successfully logged in");
            assert_eq!(app.profile(&reply.token()).await.body["data"]["username"], "sam");
        }
    }

    async fn wrong_password_and_unknown_email_answer_alike(backend) {
        let app = TestApp::new(&backend).await;
        app.register("sam").await;
        let wrong = app.login("sam@example.com", "not-the-password").await;
        let unknown = app.login("nobody@example.com", PASSWORD).await;
        wrong.assert_error(401, "invalid credentials");
        assert_eq!(wrong.body, unknown.body);
        app.login("sam@example.com", &"x".repeat(10_000)).await.assert_error(401, "invalid credentials");
    }

    async fn login_invalid_payloads(backend) {
        let app = TestApp::new(&backend).await;
        for body in ["", "{}", "[]", r#"{"email": "a@b.co"}"#, r#"{"email": "a@b.co", "password": 12345678}"#,
                     r#"{"email": null, "password": "x"}"#] {
            app.send("POST", "/api/auth/login", None, Some(body)).await.assert_error(400, "invalid payload");
        }
    }

    async fn logout_kills_that_token_only(backend) {
        let app = TestApp::new(&backend).await;
        let first = app.register("sam").await;
        let second = app.login("sam@example.com", PASSWORD).await.token();
        app.get("/api/auth/logout", Some(&first)).await.assert_success(200, "successfully logged out");
        app.profile(&first).await.assert_error(401, PROVIDE);
        app.get("/api/auth/logout", Some(&first)).await.assert_error(401, PROVIDE);
        assert_eq!(app.profile(&second).await.status.code, 200);
        // POST works too.
        app.send("POST", "/api/auth/logout", Some(&second), None).await.assert_success(200, "successfully logged out");
        app.profile(&second).await.assert_error(401, PROVIDE);
    }

    async fn bearer_failures(backend) {
        let app = TestApp::new(&backend).await;
        let token = app.register("sam").await;
        app.get("/api/auth/logout", None).await.assert_error(401, PROVIDE);
        app.get("/api/auth/profile", None).await.assert_error(401, PROVIDE);
        app.get("/api/auth/profile", Some("garbage")).await.assert_error(401, INVALID);
        // A token with one character changed fails its signature.
        let mut tampered = token.clone().into_bytes();
        let i = tampered.len() / 2;
        tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
        app.get("/api/auth/profile", Some(&String::from_utf8(tampered).expect("ascii"))).await.assert_error(401, INVALID);
        // Only the Bearer scheme is read.
        let request = app.client.get("/api/auth/profile")
            .header(rocket::http::Header::new("Authorization", format!("Token {token}")));
        let response = request.dispatch().await;
        assert_eq!(response.status().code, 401);
        // A token from another deployment (another root key) is invalid here.
        let other = TestApp::new(&backend).await;
        let foreign = other.register("sam").await;
        app.profile(&foreign).await.assert_error(401, INVALID);
    }

    async fn deleted_user_token_is_refused(backend) {
        let app = TestApp::new(&backend).await;
        let token = app.register("sam").await;
        app.sql("DELETE FROM users WHERE username = 'sam'").await;
        app.profile(&token).await.assert_error(401, PROVIDE);
    }

    async fn tokens_expire(backend) {
        let app = TestApp::with(&backend, |f| f.merge(("tokens.session_ttl", 1))).await;
        let token = app.register("sam").await;
        assert_eq!(app.profile(&token).await.status.code, 200);
        sleep(2).await;
        app.profile(&token).await.assert_error(401, EXPIRED);
        // Logging in again gives a fresh token, and the expired session is gone.
        let token = app.login("sam@example.com", PASSWORD).await.token();
        assert_eq!(app.profile(&token).await.status.code, 200);
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM sessions").await, 1);
    }

    async fn tokens_survive_a_restart_with_the_stored_key(backend) {
        let app = TestApp::new(&backend).await;
        let token = app.register("sam").await;
        let TestApp { client, db } = app;
        drop(client);
        let restarted = TestApp::on(db, |f| f).await;
        assert_eq!(restarted.profile(&token).await.status.code, 200);
    }

    async fn configured_private_key_is_used(backend) {
        let key = "1d5ef0da4bbda6e6ab1b4f2c4b1d3aa5e5a4d4ea3d1d5d5bfa4b2bbdf2a1c3d4";
        let app = TestApp::with(&backend, |f| f.merge(("tokens.private_key", key))).await;
        let token = app.register("sam").await;
        let keys = kernel::TokenKeys::from_hex(key).expect("key");
        let verified = keys.verify(&token).await.expect("signed with the configured key");
        assert!(matches!(verified, kernel::tokens::Verified::Plain(claims) if claims.user_id > 0));
    }

    async fn module_off_unmounts_login_and_logout(backend) {
        let app = TestApp::with(&backend, |f| f.merge(("modules.sessions", false))).await;
        let token = app.register("sam").await;
        app.login("sam@example.com", PASSWORD).await.assert_error(404, "error, page not found");
        app.get("/api/auth/logout", Some(&token)).await.assert_error(404, "error, page not found");
        assert_eq!(app.profile(&token).await.status.code, 200);
    }

    async fn login_refused_for_oversized_json(backend) {
        let app = TestApp::new(&backend).await;
        let body = json!({"email": "a@b.co", "password": "x".repeat(70_000)});
        app.post("/api/auth/login", body).await.assert_error(413, "error, payload too large");
    }

    async fn users_list_and_end_their_sessions(backend) {
        let app = TestApp::new(&backend).await;
        let first = app.register("sam").await;
        let request = app.client.post("/api/auth/login")
            .header(rocket::http::ContentType::JSON)
            .header(rocket::http::Header::new("User-Agent", "FitTrackee-app/1.0"))
            .body(json!({"email": "sam@example.com", "password": PASSWORD}).to_string());
        let second: serde_json::Value = serde_json::from_str(&request.dispatch().await.into_string().await.expect("body")).expect("json");
        let second = second["auth_token"].as_str().expect("token").to_owned();
        let third = app.login("sam@example.com", PASSWORD).await.token();
        let other_user = app.register("bob").await;

        let reply = app.get("/api/auth/sessions", Some(&second)).await;
        assert_eq!(reply.status.code, 200, "{}", reply.body);
        let sessions = reply.body["data"]["sessions"].as_array().expect("a list").clone();
        assert_eq!(sessions.len(), 3);
        let current: Vec<_> = sessions.iter().filter(|s| s["current"] == true).collect();
        assert_eq!(current.len(), 1);
        assert_eq!(current[0]["user_agent"], "FitTrackee-app/1.0");
        for session in &sessions {
            for key in ["created_at", "last_used_at", "expires_at"] {
                assert!(session[key].as_str().is_some_and(|d| d.ends_with(" GMT")), "{key}: {session}");
            }
        }

        // End one: the first token dies, the others live.
        let first_id = sessions.iter().find(|s| s["current"] == false && s["user_agent"] != "FitTrackee-app/1.0")
            .and_then(|s| s["id"].as_str()).expect("an id").to_owned();
        let ended = app.send("DELETE", &format!("/api/auth/sessions/{first_id}"), Some(&second), None).await;
        assert_eq!(ended.status.code, 204);
        let alive = [app.profile(&first).await.status.code, app.profile(&third).await.status.code];
        assert!(alive.contains(&200) && alive.contains(&401), "{alive:?}");
        // Unknown ids, and other users' sessions, are not found.
        app.send("DELETE", "/api/auth/sessions/nope", Some(&second), None).await.assert_error(404, "session not found");
        let bobs = app.get("/api/auth/sessions", Some(&other_user)).await.body["data"]["sessions"][0]["id"]
            .as_str().expect("bob's session").to_owned();
        app.send("DELETE", &format!("/api/auth/sessions/{bobs}"), Some(&second), None).await.assert_error(404, "session not found");
        assert_eq!(app.profile(&other_user).await.status.code, 200);

        // End all the others: only the current one is left.
        let reply = app.send("DELETE", "/api/auth/sessions", Some(&second), None).await;
        reply.assert_success(200, "other sessions ended");
        assert_eq!(reply.body["data"]["ended"], 1);
        assert_eq!(app.get("/api/auth/sessions", Some(&second)).await.body["data"]["sessions"].as_array().map(Vec::len), Some(1));
        app.profile(&third).await.assert_error(401, "provide a valid auth token");
        assert_eq!(app.profile(&second).await.status.code, 200);
        app.get("/api/auth/sessions", None).await.assert_error(401, "provide a valid auth token");
    }

    async fn passwords_are_unicode_and_never_truncated(backend) {
        let app = TestApp::new(&backend).await;
        // Spaces, accents and emoji are kept as typed (NIST SP 800-63B 5.1.1.2).
        let unicode = "pâsse mot 🔑 clé";
        app.register_as("sam", "sam@example.com", unicode).await.assert_success(201, "successfully registered");
        app.login("sam@example.com", unicode).await.assert_success(200, "successfully logged in");
        app.login("sam@example.com", "passe mot 🔑 clé").await.assert_error(401, "invalid credentials");
        // All 128 characters count: one that differs only at the end does not log in.
        let random = "ZO5c+DYaUxhgMObr2oLupbq5AE8f1wwUl4nN0JODj9gX19w5lWgfYtIl53TieYZw1CwBNfWaKIbKEdQ/RZl0ZraXwFhpgm93DjtaZ23RVLFTu2vfMykz6XNrFmZsfGR";
        assert_eq!(random.len(), 127);
        let long = format!("{random}a");
        let almost = format!("{random}b");
        app.register_as("bob", "bob@example.com", &long).await.assert_success(201, "successfully registered");
        app.login("bob@example.com", &almost).await.assert_error(401, "invalid credentials");
        app.login("bob@example.com", &long).await.assert_success(200, "successfully logged in");
    }

    /// Requests checked together (on PostgreSQL the guard answers many in one query,
    /// kernel/src/db.rs `Batched`) each get their own session's answer: every user their own
    /// profile, and a session ended, expired or of a deactivated account refused, beside live
    /// ones and beside the same token sent many times at once.
    async fn sessions_checked_together_are_judged_each_on_its_own(backend) {
        let app = TestApp::new(&backend).await;
        let names = ["ann", "bob", "cat", "dan", "eve", "fay"];
        let mut tokens = Vec::new();
        for name in names {
            tokens.push(app.register(name).await);
        }
        let (ended, expired, deactivated) = (&tokens[1], &tokens[3], &tokens[5]);
        app.get("/api/auth/logout", Some(ended)).await.assert_success(200, "successfully logged out");
        app.sql("UPDATE sessions SET expires_at = 0 WHERE user_id = (SELECT id FROM users WHERE username = 'dan')").await;
        app.sql("UPDATE users SET state = 'deactivated' WHERE username = 'fay'").await;
        for _ in 0..5 {
            let asked: Vec<(usize, &String)> = (0..4).flat_map(|_| tokens.iter().enumerate()).collect();
            let replies = futures::future::join_all(asked.iter().map(|(_, t)| app.profile(t))).await;
            for ((i, token), reply) in asked.iter().zip(replies) {
                if [ended, expired, deactivated].contains(token) {
                    reply.assert_error(401, PROVIDE);
                } else {
                    assert_eq!(reply.status.code, 200, "{}: {:?}", names[*i], reply.body);
                    assert_eq!(reply.body["data"]["username"], names[*i]);
                }
            }
        }
        // An ended session stays refused while the others go on.
        let live = &tokens[0];
        let replies = futures::future::join_all((0..16).map(|i| app.profile(if i % 2 == 0 { live } else { ended }))).await;
        for (i, reply) in replies.into_iter().enumerate() {
            assert_eq!(reply.status.code, if i % 2 == 0 { 200 } else { 401 }, "{:?}", reply.body);
        }
    }

    /// The session check never waits for a connection of the shared pool: with every one of
    /// them lent out (to a flood of logins, say), one of them inside a transaction that wrote
    /// the session's row and has not committed, authenticated requests are still answered, from
    /// what is committed; a logout, once the pool is free again, is refused at once. (The pool
    /// gives up after `connect_timeout`, 1 s here: a check queued on it failed.)
    async fn the_session_check_does_not_queue_for_the_shared_pool(backend) {
        let app = TestApp::with(&backend, |f| {
            f.merge(("databases.main.max_connections", 2)).merge(("databases.main.connect_timeout", 1))
        })
        .await;
        let token = app.register("ann").await;
        let other = app.register("bob").await;
        let db = <kernel::Db as rocket_db_pools::Database>::fetch(app.client.rocket()).expect("database");
        let mut writing = db.begin().await.expect("a transaction");
        sqlx::query("UPDATE sessions SET last_used_at = last_used_at + 1").execute(&mut *writing).await.expect("an update");
        let held = db.acquire().await.expect("the pool's second connection");
        assert!(db.try_acquire().is_none(), "the pool has a third connection");
        for round in 0..3 {
            let replies = futures::future::join_all((0..8).map(|i| app.profile(if i % 2 == 0 { &token } else { &other }))).await;
            for (i, reply) in replies.into_iter().enumerate() {
                assert_eq!(reply.status.code, 200, "round {round}, request {i}: {:?}", reply.body);
                assert_eq!(reply.body["data"]["username"], if i % 2 == 0 { "ann" } else { "bob" });
            }
        }
        drop(held);
        writing.rollback().await.expect("rollback");
        app.get("/api/auth/logout", Some(&token)).await.assert_success(200, "successfully logged out");
        app.profile(&token).await.assert_error(401, PROVIDE);
        assert_eq!(app.profile(&other).await.status.code, 200);
    }

    /// A hash of other parameters (the previous version's one lane) is replaced at the next
    /// login by one of this version's, of the same password. A failed login leaves it; nothing
    /// else of the account changes: its sessions live on and its password is no newer.
    async fn a_login_rehashes_a_hash_of_other_parameters(backend) {
        let app = TestApp::new(&backend).await;
        let token = app.register("sam").await;
        let of_sam = |what: &str| format!("SELECT {what} AS n FROM users WHERE username = 'sam'");
        let (changed, version) = (app.count(&of_sam("password_changed_at")).await, app.count(&of_sam("password_version")).await);
        for legacy in [hash_of(PASSWORD, 7 * 1024, 5, 1), hash_of(PASSWORD, 7 * 1024, 5, 2), hash_of(PASSWORD, 19 * 1024, 2, 1)] {
            app.sql(&format!("UPDATE users SET password_hash = '{legacy}' WHERE username = 'sam'")).await;
            let kept = format!("SELECT COUNT(*) AS n FROM users WHERE username = 'sam' AND password_hash = '{legacy}'");
            app.login("sam@example.com", "not-the-password").await.assert_error(401, "invalid credentials");
            assert_eq!(app.count(&kept).await, 1, "a failed login replaced the hash");
            app.login("sam@example.com", PASSWORD).await.assert_success(200, "successfully logged in");
            assert_eq!(app.count(&kept).await, 0, "the hash of other parameters stayed");
            let ours = "SELECT COUNT(*) AS n FROM users WHERE username = 'sam' \
                        AND password_hash LIKE '$argon2id$v=19$m=7168,t=5,p=4$%'";
            assert_eq!(app.count(ours).await, 1);
            app.login("sam@example.com", PASSWORD).await.assert_success(200, "successfully logged in");
            assert_eq!(app.count(&of_sam("password_changed_at")).await, changed);
            assert_eq!(app.count(&of_sam("password_version")).await, version);
            assert_eq!(app.profile(&token).await.status.code, 200, "the rehash ended a session");
        }
    }
}

/// An argon2id PHC string of `password` with the given parameters (a random salt).
fn hash_of(password: &str, memory_kib: u32, passes: u32, lanes: u32) -> String {
    use argon2::password_hash::PasswordHasher as _;
    let params = argon2::Params::new(memory_kib, passes, lanes, None).expect("params");
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(password.as_bytes())
        .expect("hash")
        .to_string()
}
