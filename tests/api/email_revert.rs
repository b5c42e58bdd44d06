//! Reverting a change of address from the old address (docs/accounts.md, "Reverting a
//! change"): `POST /api/auth/email/revert`, the page `/email-revert`, and the reservation of the
//! old address while a revert can still restore it.

use serde_json::{json, Value};

use crate::helpers::{each_backend, Backend, Mail, TestApp, PASSWORD};

const INVALID_TOKEN: &str = "invalid token, please request a new token";
const NEW_PASSWORD: &str = "another long passphrase";

async fn app(backend: &Backend, mail: &Mail) -> TestApp {
    TestApp::with_mail(backend, mail, |f| f).await
}

async fn change(app: &TestApp, token: &str, email: &str, password: &str) {
    let reply = app
        .send(
            "PATCH",
            "/api/auth/profile/edit/account",
            Some(token),
            Some(&json!({"email": email, "password": password}).to_string()),
        )
        .await;
    reply.assert_success(200, "user account updated");
}

/// The token of the `nth` (from 1) revert link mailed to `to`.
async fn revert_link(mail: &Mail, to: &str, nth: usize) -> String {
    mail.links(to, "/email-revert", nth).await[nth - 1].clone()
}

async fn update_link(mail: &Mail, to: &str) -> String {
    mail.links(to, "/email-update", 1)
        .await
        .pop()
        .expect("a link")
}

each_backend! {
    async fn reverting_a_pending_change_drops_it_and_locks_the_account(backend) {
        let mail = Mail::new();
        let app = app(&backend, &mail).await;
        let token = app.register("sam").await;
        change(&app, &token, "thief@example.org", PASSWORD).await;
        let revert = revert_link(&mail, "sam@example.com", 1).await;
        let update = update_link(&mail, "thief@example.org").await;
        app.post("/api/auth/email/revert", json!({"token": revert})).await.assert_success(200, "email change reverted");
        app.profile(&token).await.assert_error(401, "provide a valid auth token");
        app.login("sam@example.com", PASSWORD).await.assert_error(401, "invalid credentials");
        app.post("/api/auth/email/update", json!({"token": update})).await.assert_error(400, INVALID_TOKEN);
        app.post("/api/auth/email/revert", json!({"token": revert})).await.assert_error(400, INVALID_TOKEN);
        // A reset link goes to the account's address; it sets a password that works.
        let reset = mail.links("sam@example.com", "/password-reset", 2).await.pop().expect("a reset link");
        app.post("/api/auth/password/update", json!({"token": reset, "password": NEW_PASSWORD, "password_conf": NEW_PASSWORD})).await
            .assert_success(200, "password updated");
        let again = app.login("sam@example.com", NEW_PASSWORD).await;
        again.assert_success(200, "successfully logged in");
        assert_eq!(app.profile(&again.token()).await.body["data"]["email_to_confirm"], Value::Null);
    }

    async fn reverting_a_confirmed_change_restores_the_old_address(backend) {
        let mail = Mail::new();
        let app = app(&backend, &mail).await;
        let token = app.register("sam").await;
        change(&app, &token, "thief@example.org", PASSWORD).await;
        let revert = revert_link(&mail, "sam@example.com", 1).await;
        app.post("/api/auth/email/update", json!({"token": update_link(&mail, "thief@example.org").await})).await
            .assert_success(200, "email updated");
        // The thief changes the password too: the revert link survives it.
        app.send("PATCH", "/api/auth/profile/edit/account", Some(&token),
                 Some(&json!({"email": "thief@example.org", "password": PASSWORD, "new_password": NEW_PASSWORD}).to_string())).await
            .assert_success(200, "user account updated");
        app.post("/api/auth/email/revert", json!({"token": revert})).await.assert_success(200, "email change reverted");
        app.login("thief@example.org", NEW_PASSWORD).await.assert_error(401, "invalid credentials");
        app.login("sam@example.com", NEW_PASSWORD).await.assert_error(401, "invalid credentials");
        let reset = mail.links("sam@example.com", "/password-reset", 2).await.pop().expect("a reset link");
        app.post("/api/auth/password/update", json!({"token": reset, "password": "the owner's passphrase", "password_conf": "the owner's passphrase"})).await
            .assert_success(200, "password updated");
        let owner = app.login("sam@example.com", "the owner's passphrase").await;
        owner.assert_success(200, "successfully logged in");
        assert_eq!(app.profile(&owner.token()).await.body["data"]["email"], "sam@example.com");
    }

    async fn the_old_address_stays_reserved_while_it_can_be_restored(backend) {
        let mail = Mail::new();
        let app = TestApp::with_mail(&backend, &mail, |f| f.merge(("accounts.revert_ttl", 3))).await;
        let token = app.register("sam").await;
        let kim = app.register("kim").await;
        change(&app, &token, "samuel@example.org", PASSWORD).await;
        app.post("/api/auth/email/update", json!({"token": update_link(&mail, "samuel@example.org").await})).await
            .assert_success(200, "email updated");
        // Registering with it, or moving another account to it, finds it taken.
        app.register_as("newcomer", "SAM@example.com", PASSWORD).await.assert_error(400, "sorry, that user already exists");
        app.send("PATCH", "/api/auth/profile/edit/account", Some(&kim),
                 Some(&json!({"email": "sam@example.com", "password": PASSWORD}).to_string())).await
            .assert_success(200, "user account updated");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(mail.links("sam@example.com", "/email-update", 0).await.is_empty(), "no link to a reserved address");
        // Once the revert link expires, the address is free.
        tokio::time::sleep(std::time::Duration::from_secs(4)).await;
        app.register_as("newcomer", "sam@example.com", PASSWORD).await.assert_success(201, "successfully registered");
    }

    async fn a_revert_kills_the_later_ones_and_keeps_the_earlier(backend) {
        let mail = Mail::new();
        let app = app(&backend, &mail).await;
        let token = app.register("sam").await;
        change(&app, &token, "first@example.org", PASSWORD).await;
        let first = revert_link(&mail, "sam@example.com", 1).await;
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        change(&app, &token, "second@example.org", PASSWORD).await;
        let second = revert_link(&mail, "sam@example.com", 2).await;
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        change(&app, &token, "third@example.org", PASSWORD).await;
        let third = revert_link(&mail, "sam@example.com", 3).await;
        app.post("/api/auth/email/revert", json!({"token": second})).await.assert_success(200, "email change reverted");
        app.post("/api/auth/email/revert", json!({"token": third})).await.assert_error(400, INVALID_TOKEN);
        app.post("/api/auth/email/revert", json!({"token": first})).await.assert_success(200, "email change reverted");
    }

    async fn an_admins_change_cannot_be_reverted_from_the_old_address(backend) {
        let mail = Mail::new();
        let app = app(&backend, &mail).await;
        let boss = app.admin("boss").await;
        app.register("sam").await;
        app.send("PATCH", "/api/users/sam", Some(&boss), Some(r#"{"new_email": "samuel@example.org"}"#)).await;
        let notice = mail.wait("sam@example.com", 1).await;
        assert!(!notice[0].contains("token="), "no revert link: {}", notice[0]);
    }

    async fn revert_payloads_tokens_and_page(backend) {
        let mail = Mail::new();
        let app = app(&backend, &mail).await;
        let token = app.register("sam").await;
        for body in ["", "{}", "[]", r#"{"token": null}"#, r#"{"token": 3}"#] {
            app.send("POST", "/api/auth/email/revert", None, Some(body)).await.assert_error(400, "invalid payload");
        }
        change(&app, &token, "samuel@example.org", PASSWORD).await;
        let revert = revert_link(&mail, "sam@example.com", 1).await;
        let update = update_link(&mail, "samuel@example.org").await;
        for bad in ["nope", update.as_str(), token.as_str()] {
            app.post("/api/auth/email/revert", json!({"token": bad})).await.assert_error(400, INVALID_TOKEN);
        }
        app.post("/api/auth/email/update", json!({"token": revert})).await.assert_error(400, INVALID_TOKEN);
        for _ in 0..2 {
            let page = app.client.get(format!("/email-revert?token={revert}")).dispatch().await;
            assert_eq!(page.status().code, 200);
            assert_eq!(page.headers().get_one("Referrer-Policy"), Some("no-referrer"));
            assert_eq!(page.headers().get_one("Cache-Control"), Some("no-store"));
        }
        assert_eq!(app.profile(&token).await.status.code, 200, "a GET uses nothing");
        let done = app.client.post("/email-revert").header(rocket::http::ContentType::Form)
            .body(format!("token={revert}")).dispatch().await;
        assert_eq!(done.status().code, 200);
        assert!(done.into_string().await.expect("html").contains("sam@example.com"));
        app.profile(&token).await.assert_error(401, "provide a valid auth token");
        assert_eq!(app.client.get("/email-revert?token=nope").dispatch().await.status().code, 400);
    }
}
