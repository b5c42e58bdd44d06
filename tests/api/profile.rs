use serde_json::{json, Value};

use crate::helpers::{each_backend, TestApp, PASSWORD};

fn edit(first: Value, last: Value, location: Value, bio: Value, birth: Value) -> Value {
    json!({"first_name": first, "last_name": last, "location": location, "bio": bio, "birth_date": birth})
}

fn is_http_date(value: &Value) -> bool {
    // "Sun, 14 Jul 2019 14:09:58 GMT"
    let Some(s) = value.as_str() else {
        return false;
    };
    let parts: Vec<&str> = s.split(' ').collect();
    parts.len() == 6
        && parts[0].len() == 4
        && parts[0].ends_with(',')
        && parts[1].len() == 2
        && parts[3].len() == 4
        && parts[4].len() == 8
        && parts[5] == "GMT"
}

each_backend! {
    // FitTrackee 0.5's keys; the account lifecycle adds three (tests/api/accounts.rs), cookies
    // on FitTrackee 1.x's (tests/api/shapes.rs).
    async fn a_new_profile_has_every_key(backend) {
        let app = TestApp::with(&backend, |f| {
            f.merge(("modules.accounts", false)).merge(("cookies.enabled", false))
        }).await;
        let token = app.register("sam").await;
        let reply = app.profile(&token).await;
        assert_eq!(reply.status.code, 200);
        assert_eq!(reply.body["status"], "success");
        let data = reply.body["data"].as_object().expect("data object");
        let mut keys: Vec<&str> = data.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["admin", "bio", "birth_date", "created_at", "email", "first_name", "imperial_units",
            "language", "last_name", "location", "nb_sports", "nb_workouts", "picture", "records", "sports_list",
            "timezone", "total_distance", "total_duration", "username", "weekm"]);
        assert!(is_http_date(&data["created_at"]), "{}", data["created_at"]);
        let expected = json!({
            "admin": false, "bio": null, "birth_date": null, "email": "sam@example.com", "first_name": null,
            "imperial_units": false, "language": null, "last_name": null, "location": null, "nb_sports": 0,
            "nb_workouts": 0, "picture": false, "records": [], "sports_list": [], "timezone": "Europe/Paris",
            "total_distance": 0.0, "total_duration": "0:00:00", "username": "sam", "weekm": false,
        });
        for (key, value) in expected.as_object().expect("object") {
            assert_eq!(&data[key], value, "{key}");
        }
        assert!(data["total_distance"].is_f64());
    }

    async fn edit_profile(backend) {
        let app = TestApp::new(&backend).await;
        let token = app.register("sam").await;
        let reply = app.post_auth("/api/auth/profile/edit", &token,
            edit(json!("Sam"), json!("Ré"), json!("Lyon"), json!("runs <b>a lot</b>"), json!("1980-07-14"))).await;
        reply.assert_success(200, "user profile updated");
        let data = &reply.body["data"];
        assert_eq!(data["first_name"], "Sam");
        assert_eq!(data["last_name"], "Ré");
        assert_eq!(data["location"], "Lyon");
        assert_eq!(data["bio"], "runs <b>a lot</b>");
        assert_eq!(data["birth_date"], "Mon, 14 Jul 1980 00:00:00 GMT");
        assert_eq!(app.profile(&token).await.body["data"], *data);
        // null and "" clear.
        let reply = app.post_auth("/api/auth/profile/edit", &token,
            edit(Value::Null, Value::Null, Value::Null, Value::Null, json!(""))).await;
        reply.assert_success(200, "user profile updated");
        for key in ["first_name", "last_name", "location", "bio", "birth_date"] {
            assert_eq!(reply.body["data"][key], Value::Null, "{key}");
        }
    }

    async fn edit_profile_refusals(backend) {
        let app = TestApp::new(&backend).await;
        let token = app.register("sam").await;
        let path = "/api/auth/profile/edit";
        for body in [json!({}), json!({"first_name": "a", "last_name": "b", "location": "c", "bio": "d"}),
                     edit(json!(1), json!("b"), json!("c"), json!("d"), Value::Null),
                     edit(json!("a"), json!("b"), json!("c"), json!(["d"]), Value::Null),
                     edit(json!("a"), json!("b"), json!("c"), json!("d"), json!(19800714))] {
            app.post_auth(path, &token, body).await.assert_error(400, "invalid payload");
        }
        for bad in ["1980-02-30", "14/07/1980", "yesterday"] {
            app.post_auth(path, &token, edit(json!("a"), json!("b"), json!("c"), json!("d"), json!(bad)))
                .await
                .assert_error(400, "birth_date: valid date (YYYY-MM-DD) required\n");
        }
        app.post_auth(path, &token, edit(json!("a".repeat(81)), json!("b"), json!("c"), json!("d".repeat(201)), Value::Null))
            .await
            .assert_error(400, "first_name: 80 characters maximum\nbio: 200 characters maximum\n");
        app.send("POST", path, None, Some("{}")).await.assert_error(401, "provide a valid auth token");
        // Nothing changed.
        assert_eq!(app.profile(&token).await.body["data"]["first_name"], Value::Null);
    }

    async fn password_change_ends_other_sessions(backend) {
        let app = TestApp::new(&backend).await;
        let current = app.register("sam").await;
        let other = app.login("sam@example.com", PASSWORD).await.token();
        let path = "/api/auth/profile/edit";
        let mut body = edit(json!("Sam"), Value::Null, Value::Null, Value::Null, Value::Null);
        body["password"] = json!("new-password");
        body["password_conf"] = json!("new-passwort");
        app.post_auth(path, &current, body.clone()).await
            .assert_error(400, "password: password and password confirmation do not match\n");
        body["password"] = json!("short");
        body["password_conf"] = json!("short");
        app.post_auth(path, &current, body.clone()).await.assert_error(400, "password: 8 characters required\n");
        assert_eq!(app.profile(&other).await.status.code, 200);

        body["password"] = json!("new-password");
        body["password_conf"] = json!("new-password");
        app.post_auth(path, &current, body).await.assert_success(200, "user profile updated");
        assert_eq!(app.profile(&current).await.status.code, 200);
        app.profile(&other).await.assert_error(401, "provide a valid auth token");
        app.login("sam@example.com", PASSWORD).await.assert_error(401, "invalid credentials");
        app.login("sam@example.com", "new-password").await.assert_success(200, "successfully logged in");
    }

    async fn guessable_passwords_are_refused(backend) {
        let app = TestApp::new(&backend).await;
        let token = app.register("sam").await;
        let path = "/api/auth/profile/edit";
        let mut body = edit(json!("Quentin"), json!("Zorbwix"), Value::Null, Value::Null, Value::Null);
        // On the breached-password lists, the account's own names and address, a repeat.
        for weak in ["password123", "12345678", "sam12345", "sam@example.com", "Zorbwix93", "quentinquentin"] {
            body["password"] = json!(weak);
            body["password_conf"] = json!(weak);
            app.post_auth(path, &token, body.clone()).await
                .assert_error(400, "password: this password is too common or too easy to guess\n");
        }
        // Every line at once: a name too long and a guessable password.
        body["last_name"] = json!("x".repeat(81));
        app.post_auth(path, &token, body.clone()).await.assert_error(
            400,
            "last_name: 80 characters maximum\npassword: this password is too common or too easy to guess\n",
        );
        app.login("sam@example.com", PASSWORD).await.assert_success(200, "successfully logged in");
        // The check can be switched off.
        let app = TestApp::with(&backend, |f| f.merge(("passwords.min_strength", 0))).await;
        let token = app.register("sam").await;
        body["last_name"] = Value::Null;
        app.post_auth(path, &token, body).await.assert_success(200, "user profile updated");
        app.login("sam@example.com", "quentinquentin").await.assert_success(200, "successfully logged in");
    }

    async fn the_current_password_when_sent_must_match(backend) {
        let app = TestApp::new(&backend).await;
        let token = app.register("sam").await;
        let path = "/api/auth/profile/edit";
        let mut body = edit(json!("Sam"), Value::Null, Value::Null, Value::Null, Value::Null);
        body["password"] = json!("quokka-zephyr");
        body["password_conf"] = json!("quokka-zephyr");
        body["current_password"] = json!("wrong-horse");
        app.post_auth(path, &token, body.clone()).await.assert_error(401, "invalid credentials");
        body["current_password"] = json!(7);
        app.post_auth(path, &token, body.clone()).await.assert_error(400, "invalid payload");
        // Nothing changed, and the session is still alive.
        assert_eq!(app.profile(&token).await.body["data"]["first_name"], Value::Null);
        body["current_password"] = json!(PASSWORD);
        app.post_auth(path, &token, body).await.assert_success(200, "user profile updated");
        app.login("sam@example.com", "quokka-zephyr").await.assert_success(200, "successfully logged in");
    }

    async fn the_current_password_can_be_required(backend) {
        let app = TestApp::with(&backend, |f| {
            f.merge(("profile_edit.require_current_password", true))
                .merge(("throttle.login_failures_per_account_and_client", 3))
        })
        .await;
        let token = app.register("sam").await;
        let path = "/api/auth/profile/edit";
        let mut body = edit(json!("Sam"), Value::Null, Value::Null, Value::Null, Value::Null);
        // A profile edit without a password change needs no password.
        app.post_auth(path, &token, body.clone()).await.assert_success(200, "user profile updated");
        body["password"] = json!("quokka-zephyr");
        body["password_conf"] = json!("quokka-zephyr");
        app.post_auth(path, &token, body.clone()).await.assert_error(400, "current password is missing");
        // Guessing through a stolen token counts as failed logins of the account.
        for _ in 0..3 {
            body["current_password"] = json!("wrong-horse");
            app.post_auth(path, &token, body.clone()).await.assert_error(401, "invalid credentials");
        }
        body["current_password"] = json!(PASSWORD);
        let reply = app.post_auth(path, &token, body.clone()).await;
        assert_eq!(reply.status.code, 429, "{:?}", reply.body);
        app.login("sam@example.com", PASSWORD).await.assert_error(429, reply.message());
        app.sql("DELETE FROM throttle").await;
        app.post_auth(path, &token, body).await.assert_success(200, "user profile updated");
        app.login("sam@example.com", "quokka-zephyr").await.assert_success(200, "successfully logged in");
    }

    async fn edit_without_password_keeps_sessions(backend) {
        let app = TestApp::new(&backend).await;
        let current = app.register("sam").await;
        let other = app.login("sam@example.com", PASSWORD).await.token();
        let mut body = edit(json!("Sam"), Value::Null, Value::Null, Value::Null, Value::Null);
        body["password"] = json!("");
        body["password_conf"] = json!("");
        app.post_auth("/api/auth/profile/edit", &current, body).await.assert_success(200, "user profile updated");
        assert_eq!(app.profile(&other).await.status.code, 200);
        app.login("sam@example.com", PASSWORD).await.assert_success(200, "successfully logged in");
    }

    async fn preferences(backend) {
        let app = TestApp::new(&backend).await;
        let token = app.register("sam").await;
        let path = "/api/auth/profile/edit/preferences";
        let reply = app.post_auth(path, &token,
            json!({"timezone": "America/New_York", "weekm": true, "language": "fr", "imperial_units": true})).await;
        reply.assert_success(200, "user preferences updated");
        for (key, value) in [("timezone", json!("America/New_York")), ("weekm", json!(true)),
                             ("language", json!("fr")), ("imperial_units", json!(true))] {
            assert_eq!(reply.body["data"][key], value, "{key}");
        }
        assert_eq!(app.profile(&token).await.body["data"], reply.body["data"]);
        let reply = app.post_auth(path, &token,
            json!({"timezone": "Europe/Paris", "weekm": false, "language": null, "imperial_units": false})).await;
        reply.assert_success(200, "user preferences updated");
        assert_eq!(reply.body["data"]["language"], Value::Null);

        for body in [json!({}), json!({"timezone": "Europe/Paris", "weekm": false, "language": "en"}),
                     json!({"timezone": "Europe/Paris", "weekm": "yes", "language": "en", "imperial_units": false}),
                     json!({"timezone": null, "weekm": false, "language": "en", "imperial_units": false}),
                     json!({"timezone": "Europe/Paris", "weekm": false, "language": "en", "imperial_units": 1})] {
            app.post_auth(path, &token, body).await.assert_error(400, "invalid payload");
        }
        app.post_auth(path, &token, json!({"timezone": "", "weekm": false, "language": "en", "imperial_units": false}))
            .await
            .assert_error(400, "timezone: 1 to 50 characters required\n");
    }

    async fn module_off_unmounts_the_profile(backend) {
        let app = TestApp::with(&backend, |f| f.merge(("modules.profile", false))).await;
        let token = app.register("sam").await;
        app.profile(&token).await.assert_error(404, "error, page not found");
        app.post_auth("/api/auth/profile/edit", &token, json!({})).await.assert_error(404, "error, page not found");
        app.get("/api/auth/logout", Some(&token)).await.assert_success(200, "successfully logged out");
    }
}
