//! FitTrackee's users API (docs/users-api.md): the list, one user, admin rights, deleting an
//! account, with Stride's stronger rules (addresses seen by their owner and admins only, every
//! trace of a deleted account gone in one transaction, the last admin kept, bad queries a 400).

use futures::future::join_all;
use serde_json::{json, Value};

use crate::helpers::{
    each_backend, sorted_keys, Backend, Reply, TestApp, TestDb, PASSWORD, USER_KEYS_05,
};

const NO_USER: &str = "user does not exist";
const NO_PERMISSION: &str = "you do not have permissions";
const LAST_ADMIN_DELETE: &str = "you can not delete your account, no other user has admin rights";
const LAST_ADMIN_DEMOTE: &str =
    "you can not remove your admin rights, no other user has admin rights";
const PROVIDE_TOKEN: &str = "provide a valid auth token";

/// A server whose one client may make as many accounts as a test needs.
/// The users API as docs/users-api.md gives it: without the account lifecycle, whose keys the
/// user object gains when it is mounted (tests/api/accounts.rs).
async fn app(backend: &Backend) -> TestApp {
    TestApp::with(backend, |f| {
        f.merge(("registration.per_client", 1000))
            .merge(("modules.accounts", false))
    })
    .await
}

/// Adds users straight into the database (no argon2 per user): `names` in this order, each
/// registered one second after the previous, with sam's password hash.
async fn seed(app: &TestApp, names: &[&str]) {
    for (i, name) in names.iter().enumerate() {
        app.sql(&format!(
            "INSERT INTO users (username, email, email_key, password_hash, created_at, password_changed_at) \
             SELECT '{name}', '{lower}@example.com', '{lower}@example.com', password_hash, {at}, {at} \
             FROM users WHERE username = 'sam'",
            lower = name.to_ascii_lowercase(),
            at = 1_700_000_000 + i,
        ))
        .await;
    }
}

fn names(reply: &Reply) -> Vec<String> {
    reply.body["data"]["users"]
        .as_array()
        .unwrap_or_else(|| panic!("a list: {}", reply.body))
        .iter()
        .map(|u| u["username"].as_str().expect("a username").to_owned())
        .collect()
}

async fn list(app: &TestApp, token: &str, query: &str) -> Reply {
    let reply = app.get(&format!("/api/users{query}"), Some(token)).await;
    assert_eq!(reply.status.code, 200, "{query}: {}", reply.body);
    reply
}

each_backend! {
    async fn every_route_needs_a_token(backend) {
        let app = app(&backend).await;
        app.register("sam").await;
        for (method, path, body) in [("GET", "/api/users", None), ("GET", "/api/users/sam", None),
                                     ("PATCH", "/api/users/sam", Some(r#"{"admin": true}"#)),
                                     ("DELETE", "/api/users/sam", None)] {
            app.send(method, path, None, body).await.assert_error(401, PROVIDE_TOKEN);
            app.send(method, path, Some("not-a-token"), body).await.assert_error(401, "invalid token, please log in again");
        }
    }

    async fn pages_and_their_pagination(backend) {
        let app = app(&backend).await;
        let token = app.register("sam").await;
        seed(&app, &["u01", "u02", "u03", "u04", "u05", "u06", "u07", "u08", "u09", "u10"]).await;
        let first = list(&app, &token, "").await;
        assert_eq!(names(&first).len(), 10);
        assert_eq!(names(&first)[0], "sam", "registration order, oldest first");
        assert_eq!(first.body["pagination"], json!({"has_next": true, "has_prev": false, "page": 1, "pages": 2, "total": 11}));
        assert_eq!(sorted_keys(&first.body).len(), 3, "status, data, pagination: {}", first.body);
        let second = list(&app, &token, "?page=2").await;
        assert_eq!(names(&second), ["u10"]);
        assert_eq!(second.body["pagination"], json!({"has_next": false, "has_prev": true, "page": 2, "pages": 2, "total": 11}));
        let past = list(&app, &token, "?page=7").await;
        assert!(names(&past).is_empty());
        assert_eq!(past.body["pagination"], json!({"has_next": false, "has_prev": true, "page": 7, "pages": 2, "total": 11}));
        let largest = list(&app, &token, "?page=9223372036854775807&per_page=9223372036854775807").await;
        assert!(names(&largest).is_empty(), "no overflow: {}", largest.body);
        let three = list(&app, &token, "?per_page=3&page=4").await;
        assert_eq!(names(&three), ["u09", "u10"]);
        assert_eq!(three.body["pagination"]["pages"], 4);
        // At most 50 a page (FitTrackee's client offers 100).
        let names_60: Vec<String> = (0..60).map(|i| format!("v{i:02}")).collect();
        seed(&app, &names_60.iter().map(String::as_str).collect::<Vec<_>>()).await;
        let capped = list(&app, &token, "?per_page=100").await;
        assert_eq!(names(&capped).len(), 50);
        assert_eq!(capped.body["pagination"]["pages"], 2);
        // Unknown parameters are ignored; a parameter given twice counts as first given.
        assert_eq!(names(&list(&app, &token, "?per_page=2&per_page=x&colour=blue").await).len(), 2);
    }

    /// The page's `total` is the counter row the database's triggers keep: right after one
    /// statement inserting many users and one deleting many (or none). On PostgreSQL the
    /// triggers run once per statement: row by row, a statement inserting n users updated the
    /// counter n times in one transaction, each update dearer than the last (a 1,000,000-user
    /// insert did not finish in 15 minutes).
    async fn the_total_follows_statements_of_many_rows(backend) {
        let app = app(&backend).await;
        let token = app.register("sam").await;
        let rows: Vec<String> = (0..300)
            .map(|i| format!("('bulk{i}', 'bulk{i}@example.com', 'bulk{i}@example.com', 'x', 1, 1)"))
            .collect();
        app.sql(&format!(
            "INSERT INTO users (username, email, email_key, password_hash, created_at, \
             password_changed_at) VALUES {}",
            rows.join(", ")
        ))
        .await;
        let total = |reply: &Reply| reply.body["pagination"]["total"].clone();
        assert_eq!(total(&list(&app, &token, "").await), 301);
        app.sql("DELETE FROM users WHERE username LIKE 'bulk1%'").await;
        assert_eq!(total(&list(&app, &token, "").await), 190, "111 names start with bulk1");
        app.sql("DELETE FROM users WHERE username = 'nobody'").await;
        assert_eq!(total(&list(&app, &token, "").await), 190);
        assert_eq!(
            app.count("SELECT COUNT(*) AS n FROM users").await,
            190,
            "the counter is the table's count"
        );
        if matches!(backend, Backend::Postgres(_)) {
            // tgtype's bit 0 is FOR EACH ROW.
            let row_triggers = app
                .count(
                    "SELECT COUNT(*) AS n FROM pg_trigger WHERE tgrelid = 'users'::regclass \
                     AND NOT tgisinternal AND tgtype & 1 = 1",
                )
                .await;
            assert_eq!(row_triggers, 0, "the users table has statement triggers only");
        }
    }

    async fn bad_numbers_are_a_400_never_a_500(backend) {
        let app = app(&backend).await;
        let token = app.register("sam").await;
        for bad in ["0", "-1", "abc", "1.5", "1e2", "", "+1", "%201", "9223372036854775808", "99999999999999999999"] {
            for name in ["page", "per_page"] {
                app.get(&format!("/api/users?{name}={bad}"), Some(&token)).await
                    .assert_error(400, "invalid payload");
            }
        }
        // And with no token, the token is what is refused first.
        app.get("/api/users?page=abc", None).await.assert_error(401, PROVIDE_TOKEN);
    }

    async fn the_search_is_a_literal_substring_ignoring_case(backend) {
        let app = app(&backend).await;
        let token = app.register("sam").await;
        seed(&app, &["Samantha", "xSAMx", "bob", "bo_b", "boxb", "b_ob"]).await;
        assert_eq!(names(&list(&app, &token, "?q=sAm").await), ["sam", "Samantha", "xSAMx"]);
        let underscore = list(&app, &token, "?q=o_b").await;
        assert_eq!(names(&underscore), ["bo_b"], "`_` is itself, not any one character");
        assert_eq!(underscore.body["pagination"], json!({"has_next": false, "has_prev": false, "page": 1, "pages": 1, "total": 1}));
        for nobody in ["%25", "b%25b", "%5C", "%00", "%C3%A9", "sam%20", "%27%20OR%201%3D1"] {
            let none = list(&app, &token, &format!("?q={nobody}")).await;
            assert!(names(&none).is_empty(), "q={nobody}: {}", none.body);
            assert_eq!(none.body["pagination"], json!({"has_next": false, "has_prev": false, "page": 1, "pages": 0, "total": 0}));
        }
        assert_eq!(names(&list(&app, &token, "?q=").await).len(), 7, "an empty q filters nothing");
        assert_eq!(names(&list(&app, &token, "?q=b&per_page=2&page=2").await), ["boxb", "b_ob"]);
    }

    async fn orders(backend) {
        let app = app(&backend).await;
        let token = app.register("sam").await;
        seed(&app, &["zed", "Abe", "9lives", "_under", "mid_1"]).await;
        let order = |query: &'static str| { let (app, token) = (&app, &token); async move { names(&list(app, token, query).await) } };
        // Lower-cased names byte by byte: digits < `_` < letters.
        assert_eq!(order("?order_by=username").await, ["9lives", "_under", "Abe", "mid_1", "sam", "zed"]);
        assert_eq!(order("?order_by=username&order=desc").await, ["zed", "sam", "mid_1", "Abe", "_under", "9lives"]);
        let registration = ["sam", "zed", "Abe", "9lives", "_under", "mid_1"];
        for query in ["", "?order_by=email", "?order_by=USERNAME", "?order_by=", "?order_by=username&order=DESC",
                      "?order_by=username&order=up", "?order_by=workouts_count", "?order_by=workouts_count&order=desc",
                      "?order=desc"] {
            assert_eq!(order(query).await, registration, "{query}");
        }
        // Equal instants: registration order ascending, its exact reverse descending.
        app.sql("UPDATE users SET created_at = 1600000000").await;
        assert_eq!(order("?order_by=created_at").await, registration);
        let mut reversed = registration.to_vec();
        reversed.reverse();
        assert_eq!(order("?order_by=created_at&order=desc").await, reversed);
        app.sql("UPDATE users SET admin = TRUE WHERE username IN ('Abe', 'mid_1')").await;
        assert_eq!(order("?order_by=admin").await, ["sam", "zed", "9lives", "_under", "Abe", "mid_1"]);
        assert_eq!(order("?order_by=admin&order=desc").await, ["Abe", "mid_1", "sam", "zed", "9lives", "_under"]);
    }

    async fn one_user_by_name_ignoring_case(backend) {
        let app = app(&backend).await;
        let token = app.register("sam").await;
        app.register("Kim").await;
        let reply = app.get("/api/users/KIM", Some(&token)).await;
        assert_eq!(reply.status.code, 200, "{}", reply.body);
        let users = reply.body["data"]["users"].as_array().expect("a list");
        assert_eq!(users.len(), 1);
        assert_eq!(users[0]["username"], "Kim", "the stored spelling");
        assert_eq!(users[0]["nb_workouts"], 0);
        assert_eq!(users[0]["total_duration"], "0:00:00");
        for nobody in ["nobody", "k%25m", "K_m", "%25", "ki%00m", "a".repeat(300).as_str(), "%E2%80%8Bkim"] {
            app.get(&format!("/api/users/{nobody}"), Some(&token)).await.assert_error(404, NO_USER);
        }
    }

    // Rule (a): a user's email is shown only to that user and to admins, by the caller's rights
    // at the time of the request.
    async fn addresses_are_for_their_owner_and_admins(backend) {
        // The exact 0.5 keys: cookies off (cookies on add FitTrackee 1.x's, tests/api/shapes.rs).
        let app = TestApp::with(&backend, |f| {
            f.merge(("registration.per_client", 1000))
                .merge(("modules.accounts", false))
                .merge(("cookies.enabled", false))
        })
        .await;
        let admin = app.admin("boss").await;
        let sam = app.register("sam").await;
        app.register("kim").await;
        let mine = app.get("/api/users/sam", Some(&sam)).await;
        assert_eq!(sorted_keys(&mine.body["data"]["users"][0]), USER_KEYS_05);
        assert_eq!(mine.body["data"]["users"][0]["email"], "sam@example.com");
        assert_eq!(mine.body["data"]["users"][0], app.profile(&sam).await.body["data"], "the profile's object");
        let other = app.get("/api/users/kim", Some(&sam)).await;
        assert_eq!(sorted_keys(&other.body["data"]["users"][0]).len(), 19);
        assert!(!other.body.to_string().contains("kim@example.com"), "{}", other.body);
        let listed = list(&app, &sam, "").await;
        for user in listed.body["data"]["users"].as_array().expect("users") {
            assert_eq!(user.get("email").is_some(), user["username"] == "sam", "{user}");
        }
        assert!(!listed.body.to_string().contains("kim@example.com") && !listed.body.to_string().contains("boss@example.com"));
        let seen = list(&app, &admin, "").await;
        assert!(seen.body["data"]["users"].as_array().expect("users").iter().all(|u| u["email"].is_string()));
        // Made admin: sees addresses at the next request, with the token already held.
        app.send("PATCH", "/api/users/sam", Some(&admin), Some(r#"{"admin": true}"#)).await;
        assert_eq!(app.get("/api/users/kim", Some(&sam)).await.body["data"]["users"][0]["email"], "kim@example.com");
        app.send("PATCH", "/api/users/sam", Some(&admin), Some(r#"{"admin": false}"#)).await;
        assert!(app.get("/api/users/kim", Some(&sam)).await.body["data"]["users"][0].get("email").is_none());
    }

    async fn admin_rights_are_granted_and_removed_by_admins(backend) {
        let app = app(&backend).await;
        let admin = app.admin("boss").await;
        let sam = app.register("sam").await;
        // A non-admin: 403 before the body and before the lookup.
        for (path, body) in [("/api/users/boss", r#"{"admin": false}"#), ("/api/users/nobody", r#"{"admin": true}"#),
                             ("/api/users/sam", "not json"), ("/api/users/sam", "[]")] {
            app.send("PATCH", path, Some(&sam), Some(body)).await.assert_error(403, NO_PERMISSION);
        }
        // An admin: the body before the lookup.
        for body in ["", "not json", "[]", "true", "{}", r#"{"admin": null}"#, r#"{"admin": "yes"}"#, r#"{"admin": ""}"#,
                     r#"{"admin": 1}"#, r#"{"admin": 0}"#, r#"{"admin": []}"#, r#"{"admin": {}}"#, r#"{"is_admin": true}"#] {
            app.send("PATCH", "/api/users/nobody", Some(&admin), Some(body)).await.assert_error(400, "invalid payload");
        }
        app.send("PATCH", "/api/users/nobody", Some(&admin), Some(r#"{"admin": true}"#)).await.assert_error(404, NO_USER);
        let granted = app.send("PATCH", "/api/users/SAM", Some(&admin), Some(r#"{"admin": true, "username": "x", "email": "x@y.z"}"#)).await;
        assert_eq!(granted.status.code, 200, "{}", granted.body);
        let user = &granted.body["data"]["users"][0];
        assert_eq!((user["username"].as_str(), user["admin"].as_bool(), user["email"].as_str()),
                   (Some("sam"), Some(true), Some("sam@example.com")), "other keys ignored");
        // The rights apply from sam's next request, with the token sam already has.
        assert_eq!(app.send("PATCH", "/api/config", Some(&sam), Some(r#"{"max_users": 0}"#)).await.status.code, 200);
        // Setting what is already set changes nothing and succeeds.
        assert_eq!(app.send("PATCH", "/api/users/sam", Some(&admin), Some(r#"{"admin": true}"#)).await.status.code, 200);
        let removed = app.send("PATCH", "/api/users/sam", Some(&sam), Some(r#"{"admin": false}"#)).await;
        assert_eq!(removed.body["data"]["users"][0]["admin"], false, "{}", removed.body);
        app.send("PATCH", "/api/config", Some(&sam), Some(r#"{"max_users": 0}"#)).await.assert_error(403, NO_PERMISSION);
        // Rule (c): the last admin keeps their rights.
        app.send("PATCH", "/api/users/boss", Some(&admin), Some(r#"{"admin": false}"#)).await.assert_error(403, LAST_ADMIN_DEMOTE);
        assert_eq!(app.get("/api/users/boss", Some(&admin)).await.body["data"]["users"][0]["admin"], true);
    }

    // Two admins removing each other's rights at once: exactly one succeeds, one admin remains.
    async fn two_admins_cannot_demote_each_other_at_once(backend) {
        let app = app(&backend).await;
        let other = TestApp::on(TestDb::shared(&app.db), |f| f).await;
        for round in 0..4 {
            let (a, b) = (format!("ann{round}"), format!("ben{round}"));
            let (ta, tb) = (app.admin(&a).await, app.admin(&b).await);
            // Every other admin of earlier rounds steps down first, so these two are the last.
            app.sql(&format!("UPDATE users SET admin = FALSE WHERE username NOT IN ('{a}', '{b}')")).await;
            let body = Some(r#"{"admin": false}"#);
            let answers = join_all([
                app.send("PATCH", &format!("/api/users/{b}"), Some(&ta), body),
                other.send("PATCH", &format!("/api/users/{a}"), Some(&tb), body),
            ]).await;
            let codes: Vec<u16> = answers.iter().map(|r| r.status.code).collect();
            assert_eq!(codes.iter().filter(|c| **c == 200).count(), 1, "round {round}: {codes:?}");
            for refused in answers.iter().filter(|r| r.status.code != 200) {
                assert_eq!(refused.status.code, 403);
                assert!([NO_PERMISSION, LAST_ADMIN_DEMOTE].contains(&refused.message()), "{}", refused.body);
            }
            assert_eq!(app.count("SELECT COUNT(*) AS n FROM users WHERE admin = TRUE").await, 1, "round {round}");
        }
    }

    async fn a_user_deletes_their_own_account(backend) {
        let app = app(&backend).await;
        app.admin("boss").await;
        let sam = app.register("sam").await;
        let second = app.login("sam@example.com", PASSWORD).await.token();
        let kim = app.register("kim").await;
        app.send("DELETE", "/api/users/nobody", Some(&kim), None).await.assert_error(404, NO_USER);
        app.send("DELETE", "/api/users/sam", Some(&kim), None).await.assert_error(403, NO_PERMISSION);
        let deleted = app.send("DELETE", "/api/users/SAM", Some(&sam), None).await;
        assert_eq!(deleted.status.code, 204);
        assert_eq!(deleted.body, Value::Null, "no body");
        // Every session of the account is dead at once.
        for token in [&sam, &second] {
            app.profile(token).await.assert_error(401, PROVIDE_TOKEN);
        }
        app.get("/api/users/sam", Some(&kim)).await.assert_error(404, NO_USER);
        let listed = list(&app, &kim, "").await;
        assert_eq!(names(&listed), ["boss", "kim"]);
        assert_eq!(listed.body["pagination"]["total"], 2);
        app.login("sam@example.com", PASSWORD).await.assert_error(401, "invalid credentials");
        // The name and the address are free again, for an account that starts clean.
        let again = app.register("Sam").await;
        assert_eq!(app.profile(&again).await.body["data"]["picture"], false);
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM sessions").await, 3, "boss, kim and the new sam");
    }

    async fn an_admin_deletes_others_but_the_last_admin_stays(backend) {
        let app = app(&backend).await;
        let boss = app.admin("boss").await;
        app.register("sam").await;
        assert_eq!(app.send("DELETE", "/api/users/sam", Some(&boss), None).await.status.code, 204);
        app.send("DELETE", "/api/users/boss", Some(&boss), None).await.assert_error(403, LAST_ADMIN_DELETE);
        let deputy = app.admin("deputy").await;
        assert_eq!(app.send("DELETE", "/api/users/boss", Some(&boss), None).await.status.code, 204);
        app.send("DELETE", "/api/users/deputy", Some(&deputy), None).await.assert_error(403, LAST_ADMIN_DELETE);
    }

    // Two last admins deleting themselves at once, on two instances: exactly one 204.
    async fn two_admins_cannot_both_leave_at_once(backend) {
        let app = app(&backend).await;
        let other = TestApp::on(TestDb::shared(&app.db), |f| f).await;
        for round in 0..4 {
            let (a, b) = (format!("ann{round}"), format!("ben{round}"));
            let (ta, tb) = (app.admin(&a).await, app.admin(&b).await);
            let answers = join_all([
                app.send("DELETE", &format!("/api/users/{a}"), Some(&ta), None),
                other.send("DELETE", &format!("/api/users/{b}"), Some(&tb), None),
            ]).await;
            let codes: Vec<u16> = answers.iter().map(|r| r.status.code).collect();
            assert_eq!(codes.iter().filter(|c| **c == 204).count(), 1, "round {round}: {codes:?}");
            assert!(answers.iter().any(|r| r.status.code == 403 && r.message() == LAST_ADMIN_DELETE), "{codes:?}");
            assert_eq!(app.count("SELECT COUNT(*) AS n FROM users WHERE admin = TRUE").await, 1);
            // The survivor steps down for the next round (another admin is made first).
            app.sql("UPDATE users SET admin = FALSE").await;
        }
    }

    // Rule (b): the deletion takes every trace of the account with it, in the same
    // transaction: reset links, queued emails, throttle counters, known clients, sessions.
    async fn a_deletion_leaves_no_trace(backend) {
        // An SMTP server that is never there: the reset email stays queued.
        let app = TestApp::with(&backend, |f| f.merge(("email.url", "smtp://127.0.0.1:9"))
            .merge(("registration.per_client", 1000))).await;
        let sam = app.register("sam").await;
        app.post("/api/auth/password/reset-request", json!({"email": "sam@example.com"})).await
            .assert_success(200, "password reset request processed");
        app.login("sam@example.com", "wrong-password").await.assert_error(401, "invalid credentials");
        for _ in 0..100 {
            if app.count("SELECT COUNT(*) AS n FROM password_reset_tokens").await == 1 { break; }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let count = |table: &'static str| { let app = &app; async move { app.count(&format!("SELECT COUNT(*) AS n FROM {table}")).await } };
        assert_eq!(count("password_reset_tokens").await, 1);
        assert!(app.count("SELECT COUNT(*) AS n FROM outbox WHERE recipient = 'sam@example.com' AND sent_at IS NULL").await >= 1);
        assert!(app.count("SELECT COUNT(*) AS n FROM throttle WHERE subject IS NOT NULL").await >= 1);
        assert!(count("known_clients").await >= 1, "the client that registered sam");
        assert_eq!(app.send("DELETE", "/api/users/sam", Some(&sam), None).await.status.code, 204);
        for table in ["password_reset_tokens", "sessions", "known_clients"] {
            assert_eq!(count(table).await, 0, "{table}");
        }
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM outbox WHERE recipient = 'sam@example.com'").await, 0, "queued emails dropped");
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM throttle WHERE subject IS NOT NULL").await, 0, "the account's counters");
    }

    // A deletion through one instance is a 401 through another at once: no cache outlives it.
    async fn a_deletion_on_one_instance_is_seen_by_another_at_once(backend) {
        let a = app(&backend).await;
        let b = TestApp::on(TestDb::shared(&a.db), |f| f).await;
        let token = a.register("sam").await;
        assert_eq!(b.profile(&token).await.status.code, 200, "the token works on b, remembered there");
        assert_eq!(a.send("DELETE", "/api/users/sam", Some(&token), None).await.status.code, 204);
        b.profile(&token).await.assert_error(401, PROVIDE_TOKEN);
        b.get("/api/users", Some(&token)).await.assert_error(401, PROVIDE_TOKEN);
    }

    // A narrowed token can read the list but neither delete an account nor change rights.
    async fn a_narrowed_token_cannot_delete_or_grant(backend) {
        let app = app(&backend).await;
        let admin = app.admin("boss").await;
        app.register("sam").await;
        let narrowed = crate::attenuation::narrow_code(&admin, "check if time($t), $t < 2100-01-01T00:00:00Z;");
        assert_eq!(app.get("/api/users", Some(&narrowed)).await.status.code, 200);
        for (method, body) in [("DELETE", None), ("PATCH", Some(r#"{"admin": true}"#))] {
            let refused = app.send(method, "/api/users/sam", Some(&narrowed), body).await;
            assert_eq!(refused.status.code, 403, "{method}: {}", refused.body);
        }
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM users").await, 2);
    }

    async fn the_module_switched_off_mounts_nothing(backend) {
        let app = TestApp::with(&backend, |f| f.merge(("modules.users", false))).await;
        let token = app.register("sam").await;
        for (method, path) in [("GET", "/api/users"), ("GET", "/api/users/sam"), ("PATCH", "/api/users/sam"), ("DELETE", "/api/users/sam")] {
            app.send(method, path, Some(&token), Some("{}")).await.assert_error(404, "error, page not found");
        }
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM users").await, 1);
    }

    // /api/config in the same compatibility pass: registration reported off when its module is
    // off, and FitTrackee 0.5's map attribution.
    async fn the_config_tells_what_the_server_offers(backend) {
        let app = TestApp::new(&backend).await;
        let data = app.get("/api/config", None).await.body["data"].clone();
        assert_eq!(data["is_registration_enabled"], true);
        assert!(data["map_attribution"].as_str().is_some_and(|a| a.contains("OpenStreetMap")), "{data}");
        let off = TestApp::with(&backend, |f| f.merge(("modules.registration", false))
            .merge(("map_attribution", "© Example tiles"))).await;
        let data = off.get("/api/config", None).await.body["data"].clone();
        assert_eq!(data["is_registration_enabled"], false, "registration answers 403 while off");
        assert_eq!(data["map_attribution"], "© Example tiles");
    }
}
