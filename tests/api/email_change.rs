//! Changing the account's address and password (docs/accounts.md): `PATCH
//! /api/auth/profile/edit/account`, `POST /api/auth/email/update` and the page `/email-update`,
//! with the emails as the courier delivers them.

use serde_json::{json, Value};

use crate::helpers::{each_backend, Backend, Mail, TestApp, PASSWORD};

const INVALID_TOKEN: &str = "invalid token, please request a new token";
const NEW_PASSWORD: &str = "another long passphrase";

async fn app(backend: &Backend, mail: &Mail) -> TestApp {
    TestApp::with_mail(backend, mail, |f| f).await
}

async fn edit(app: &TestApp, token: &str, body: Value) -> crate::helpers::Reply {
    app.send(
        "PATCH",
        "/api/auth/profile/edit/account",
        Some(token),
        Some(&body.to_string()),
    )
    .await
}

/// The token of the last email-update link mailed to `to` among its first `count` messages.
async fn update_link(mail: &Mail, to: &str, count: usize) -> String {
    mail.links(to, "/email-update", count)
        .await
        .pop()
        .unwrap_or_else(|| panic!("no email-update link to {to}"))
}

async fn settle() {
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
}

each_backend! {
    async fn a_new_address_takes_effect_once_it_confirms(backend) {
        let mail = Mail::new();
        let app = app(&backend, &mail).await;
        let token = app.register("sam").await;
        let reply = edit(&app, &token, json!({"email": "samuel@example.org", "password": PASSWORD})).await;
        reply.assert_success(200, "user account updated");
        assert_eq!(reply.body["data"]["email"], "sam@example.com", "the old address until confirmed");
        assert_eq!(reply.body["data"]["email_to_confirm"], "samuel@example.org");
        // The old address is told, naming the new one; the new one gets the link.
        let notice = mail.wait("sam@example.com", 1).await;
        assert!(notice[0].contains("samuel@example.org"), "{}", notice[0]);
        assert!(!notice[0].contains("/email-update"), "no change link in the notice: {}", notice[0]);
        assert!(notice[0].contains("/email-revert?token="), "a revert link: {}", notice[0]);
        let link = update_link(&mail, "samuel@example.org", 1).await;
        // Until then the old address logs in.
        app.login("samuel@example.org", PASSWORD).await.assert_error(401, "invalid credentials");
        app.login("sam@example.com", PASSWORD).await.assert_success(200, "successfully logged in");

        app.post("/api/auth/email/update", json!({"token": link})).await.assert_success(200, "email updated");
        app.login("sam@example.com", PASSWORD).await.assert_error(401, "invalid credentials");
        app.login("SAMUEL@example.org", PASSWORD).await.assert_success(200, "successfully logged in");
        let profile = app.profile(&token).await;
        assert_eq!(profile.status.code, 200, "sessions are kept");
        assert_eq!(profile.body["data"]["email"], "samuel@example.org");
        assert_eq!(profile.body["data"]["email_to_confirm"], Value::Null);
        app.post("/api/auth/email/update", json!({"token": link})).await.assert_error(400, INVALID_TOKEN);
    }

    async fn the_emails_speak_the_accounts_language(backend) {
        let mail = Mail::new();
        let app = app(&backend, &mail).await;
        let token = app.register("sam").await;
        app.post_auth("/api/auth/profile/edit/preferences", &token,
            json!({"timezone": "Europe/Paris", "weekm": true, "language": "fr", "imperial_units": false})).await
            .assert_success(200, "user preferences updated");
        edit(&app, &token, json!({"email": "samuel@example.org", "password": PASSWORD})).await.assert_success(200, "user account updated");
        let notice = mail.wait("sam@example.com", 1).await;
        assert!(notice[0].starts_with("Bonjour sam"), "{}", notice[0]);
        let link = mail.wait("samuel@example.org", 1).await;
        assert!(link[0].contains("Ouvrez ce lien pour la confirmer"), "{}", link[0]);
    }

    async fn refusals_in_order_and_nothing_changed(backend) {
        let mail = Mail::new();
        let app = app(&backend, &mail).await;
        let token = app.register("sam").await;
        for body in ["", "{}", "[]", "\"x\"", r#"{"email": 1, "password": "x"}"#, r#"{"email": "a@b.co", "password": 1}"#,
                     r#"{"email": "a@b.co", "password": "x", "new_password": false}"#] {
            app.send("PATCH", "/api/auth/profile/edit/account", Some(&token), Some(body)).await.assert_error(400, "invalid payload");
        }
        for body in [json!({"password": PASSWORD}), json!({"email": null, "password": PASSWORD}), json!({"email": "", "password": PASSWORD})] {
            edit(&app, &token, body).await.assert_error(400, "email is missing");
        }
        for body in [json!({"email": "a@b.co"}), json!({"email": "a@b.co", "password": ""})] {
            edit(&app, &token, body).await.assert_error(400, "current password is missing");
        }
        edit(&app, &token, json!({"email": "a@b.co", "password": "wrong password"})).await.assert_error(401, "invalid credentials");
        let lines = edit(&app, &token, json!({"email": "not an address", "password": PASSWORD, "new_password": "short"})).await;
        assert_eq!(lines.status.code, 400);
        assert_eq!(lines.message(), "email: valid email must be provided\npassword: 8 characters required\n");
        edit(&app, &token, json!({"email": "sam@example.com", "password": PASSWORD, "new_password": "password"})).await
            .assert_error(400, "password: this password is too common or too easy to guess\n");
        edit(&app, &token, json!({"email": "sam@example.com", "password": PASSWORD, "new_password": "x".repeat(129)})).await
            .assert_error(400, "password: 128 characters maximum\n");
        app.login("sam@example.com", PASSWORD).await.assert_success(200, "successfully logged in");
        settle().await;
        assert!(mail.to("sam@example.com").is_empty(), "no mail on any error");
        assert_eq!(app.profile(&token).await.body["data"]["email_to_confirm"], Value::Null);
        // Without a token, the token's refusal.
        app.send("PATCH", "/api/auth/profile/edit/account", None, Some("{}")).await.assert_error(401, "provide a valid auth token");
    }

    async fn wrong_current_passwords_are_throttled(backend) {
        let mail = Mail::new();
        let app = app(&backend, &mail).await;
        let token = app.register("sam").await;
        let mut statuses = Vec::new();
        for _ in 0..12 {
            statuses.push(edit(&app, &token, json!({"email": "sam@example.com", "password": "wrong password"})).await.status.code);
        }
        assert!(statuses.contains(&429), "{statuses:?}");
    }

    async fn the_same_address_changes_nothing(backend) {
        let mail = Mail::new();
        let app = app(&backend, &mail).await;
        let token = app.register("sam").await;
        let reply = edit(&app, &token, json!({"email": "SAM@Example.com", "password": PASSWORD})).await;
        reply.assert_success(200, "user account updated");
        assert_eq!(reply.body["data"]["email_to_confirm"], Value::Null);
        settle().await;
        assert!(mail.to("sam@example.com").is_empty());
    }

    async fn a_new_password_ends_the_other_sessions(backend) {
        let mail = Mail::new();
        let app = app(&backend, &mail).await;
        let token = app.register("sam").await;
        let other = app.login("sam@example.com", PASSWORD).await.token();
        edit(&app, &token, json!({"email": "sam@example.com", "password": PASSWORD, "new_password": NEW_PASSWORD})).await
            .assert_success(200, "user account updated");
        app.profile(&other).await.assert_error(401, "provide a valid auth token");
        assert_eq!(app.profile(&token).await.status.code, 200, "this session stays");
        app.login("sam@example.com", PASSWORD).await.assert_error(401, "invalid credentials");
        app.login("sam@example.com", NEW_PASSWORD).await.assert_success(200, "successfully logged in");
        let notices = mail.wait("sam@example.com", 1).await;
        assert!(notices[0].to_lowercase().contains("password"), "{}", notices[0]);
    }

    async fn links_die_with_a_new_request_or_password_but_not_the_same_request(backend) {
        let mail = Mail::new();
        let app = app(&backend, &mail).await;
        let token = app.register("sam").await;
        edit(&app, &token, json!({"email": "first@example.org", "password": PASSWORD})).await.assert_success(200, "user account updated");
        let first = update_link(&mail, "first@example.org", 1).await;
        edit(&app, &token, json!({"email": "second@example.org", "password": PASSWORD})).await.assert_success(200, "user account updated");
        let second = update_link(&mail, "second@example.org", 1).await;
        app.post("/api/auth/email/update", json!({"token": first})).await.assert_error(400, INVALID_TOKEN);
        // A password change kills the pending change.
        edit(&app, &token, json!({"email": "sam@example.com", "password": PASSWORD, "new_password": NEW_PASSWORD})).await
            .assert_success(200, "user account updated");
        assert_eq!(app.profile(&token).await.body["data"]["email_to_confirm"], Value::Null);
        app.post("/api/auth/email/update", json!({"token": second})).await.assert_error(400, INVALID_TOKEN);
        // Both in one request: the link issued with the new password works.
        edit(&app, &token, json!({"email": "third@example.org", "password": NEW_PASSWORD, "new_password": PASSWORD})).await
            .assert_success(200, "user account updated");
        let third = update_link(&mail, "third@example.org", 1).await;
        app.post("/api/auth/email/update", json!({"token": third})).await.assert_success(200, "email updated");
        app.login("third@example.org", PASSWORD).await.assert_success(200, "successfully logged in");
    }

    async fn another_accounts_address_gets_no_link_and_the_answer_is_the_same(backend) {
        let mail = Mail::new();
        let app = app(&backend, &mail).await;
        let token = app.register("sam").await;
        app.register("kim").await;
        let reply = edit(&app, &token, json!({"email": "KIM@example.com", "password": PASSWORD})).await;
        reply.assert_success(200, "user account updated");
        assert_eq!(reply.body["data"]["email_to_confirm"], "KIM@example.com");
        mail.wait("sam@example.com", 1).await;
        settle().await;
        assert!(mail.to("kim@example.com").is_empty() && mail.to("KIM@example.com").is_empty(), "no link to another account");
    }

    async fn an_address_taken_since_the_request_fails_and_kills_the_link(backend) {
        let mail = Mail::new();
        let app = app(&backend, &mail).await;
        let token = app.register("sam").await;
        edit(&app, &token, json!({"email": "kim@example.com", "password": PASSWORD})).await.assert_success(200, "user account updated");
        let link = update_link(&mail, "kim@example.com", 1).await;
        app.register("kim").await;
        app.post("/api/auth/email/update", json!({"token": link})).await.assert_error(400, "sorry, that user already exists");
        app.post("/api/auth/email/update", json!({"token": link})).await.assert_error(400, INVALID_TOKEN);
        let profile = app.profile(&token).await.body["data"].clone();
        assert_eq!((profile["email"].clone(), profile["email_to_confirm"].clone()), (json!("sam@example.com"), Value::Null));
    }

    async fn reset_links_to_the_old_address_die_with_it(backend) {
        let mail = Mail::new();
        let app = app(&backend, &mail).await;
        let token = app.register("sam").await;
        app.post("/api/auth/password/reset-request", json!({"email": "sam@example.com"})).await
            .assert_success(200, "password reset request processed");
        let reset = mail.links("sam@example.com", "/password-reset", 1).await.pop().expect("a reset link");
        edit(&app, &token, json!({"email": "samuel@example.org", "password": PASSWORD})).await.assert_success(200, "user account updated");
        // The reset link survives the request (the address is not changed yet) …
        let link = update_link(&mail, "samuel@example.org", 1).await;
        app.post("/api/auth/email/update", json!({"token": link})).await.assert_success(200, "email updated");
        // … and dies with the change.
        app.post("/api/auth/password/update", json!({"token": reset, "password": NEW_PASSWORD, "password_conf": NEW_PASSWORD})).await
            .assert_error(401, INVALID_TOKEN);
    }

    async fn link_tokens_keep_to_their_purpose(backend) {
        let mail = Mail::new();
        let app = app(&backend, &mail).await;
        let token = app.register("sam").await;
        edit(&app, &token, json!({"email": "samuel@example.org", "password": PASSWORD})).await;
        let link = update_link(&mail, "samuel@example.org", 1).await;
        app.post("/api/auth/account/confirm", json!({"token": link})).await.assert_error(400, INVALID_TOKEN);
        app.get("/api/auth/profile", Some(&link)).await.assert_error(401, "invalid token, please log in again");
        for bad in ["", "x", token.as_str(), &"a".repeat(5000)] {
            app.post("/api/auth/email/update", json!({"token": bad})).await.assert_error(400, INVALID_TOKEN);
        }
        for body in ["", "{}", "[]", r#"{"token": null}"#, r#"{"token": 7}"#] {
            app.send("POST", "/api/auth/email/update", None, Some(body)).await.assert_error(400, "invalid payload");
        }
        app.post("/api/auth/email/update", json!({"token": link})).await.assert_success(200, "email updated");
    }

    async fn the_page_confirms_and_a_get_uses_nothing(backend) {
        let mail = Mail::new();
        let app = app(&backend, &mail).await;
        let token = app.register("sam").await;
        edit(&app, &token, json!({"email": "samuel@example.org", "password": PASSWORD})).await;
        let link = update_link(&mail, "samuel@example.org", 1).await;
        for _ in 0..2 {
            let page = app.client.get(format!("/email-update?token={link}")).dispatch().await;
            assert_eq!(page.status().code, 200);
            assert_eq!(page.headers().get_one("Referrer-Policy"), Some("no-referrer"));
            assert_eq!(page.headers().get_one("Cache-Control"), Some("no-store"));
            assert!(page.into_string().await.expect("html").contains(&format!("value=\"{link}\"")));
        }
        let submit = || app.client.post("/email-update").header(rocket::http::ContentType::Form).body(format!("token={link}")).dispatch();
        let done = submit().await;
        assert_eq!(done.status().code, 200);
        assert!(done.into_string().await.expect("html").contains("samuel@example.org"));
        app.login("samuel@example.org", PASSWORD).await.assert_success(200, "successfully logged in");
        let again = submit().await;
        assert_eq!(again.status().code, 400);
        assert!(again.into_string().await.expect("html").contains("id=\"invalid\""));
        assert_eq!(app.client.get("/email-update?token=nope").dispatch().await.status().code, 400);
    }
}
