//! An admin's actions on accounts through `PATCH /api/users/<name>` with the account lifecycle
//! mounted (docs/accounts.md): `activate`, `reset_password`, `new_email`, `role`, in the order
//! of their refusals, and what each does.

use rocket_db_pools::Database as _;
use serde_json::{json, Value};

use crate::helpers::{each_backend, Backend, Mail, TestApp, PASSWORD};

async fn app(backend: &Backend, mail: &Mail) -> TestApp {
    TestApp::with_mail(backend, mail, |f| f).await
}

async fn patch(app: &TestApp, token: &str, name: &str, body: Value) -> crate::helpers::Reply {
    app.send(
        "PATCH",
        &format!("/api/users/{name}"),
        Some(token),
        Some(&body.to_string()),
    )
    .await
}

fn user(reply: &crate::helpers::Reply) -> Value {
    reply.body["data"]["users"][0].clone()
}

each_backend! {
    async fn refusals_in_their_order(backend) {
        let mail = Mail::new();
        let app = app(&backend, &mail).await;
        let boss = app.admin("boss").await;
        let sam = app.register("sam").await;
        app.register("kim").await;
        // Not an admin: 403 before the body is read.
        patch(&app, &sam, "kim", json!({"activate": false})).await.assert_error(403, "you do not have permissions");
        app.send("PATCH", "/api/users/kim", Some(&sam), Some("not json")).await.assert_error(403, "you do not have permissions");
        for body in ["{}", "[]", r#"{"unknown": 1}"#, r#"{"activate": "yes"}"#, r#"{"reset_password": 1}"#,
                     r#"{"new_email": 5}"#, r#"{"role": true}"#, r#"{"admin": true, "role": "user"}"#,
                     r#"{"admin": false, "role": "admin"}"#, r#"{"activate": null}"#] {
            app.send("PATCH", "/api/users/kim", Some(&boss), Some(body)).await.assert_error(400, "invalid payload");
        }
        patch(&app, &boss, "boss", json!({"activate": false})).await.assert_error(403, "you do not have permissions");
        patch(&app, &boss, "nobody", json!({"activate": true})).await.assert_error(404, "user does not exist");
        patch(&app, &boss, "kim", json!({"role": "moderator"})).await.assert_error(400, "invalid role");
        patch(&app, &boss, "kim", json!({"new_email": "not an address"})).await.assert_error(400, "valid email must be provided");
        patch(&app, &boss, "kim", json!({"new_email": "KIM@example.com"})).await.assert_error(400, "new email must be different than current email");
        patch(&app, &boss, "kim", json!({"new_email": "sam@example.com"})).await.assert_error(400, "sorry, that user already exists");
        // All checks pass before anything applies: a refused new_email leaves the role alone.
        patch(&app, &boss, "kim", json!({"role": "admin", "new_email": "sam@example.com"})).await.assert_error(400, "sorry, that user already exists");
        assert_eq!(user(&app.get("/api/users/kim", Some(&boss)).await)["role"], "user");
        // The last admin keeps their rights, by `role` as by `admin`.
        patch(&app, &boss, "boss", json!({"role": "user"})).await
            .assert_error(403, "you can not remove your admin rights, no other user has admin rights");
    }

    async fn deactivation_ends_everything_activation_restores_login(backend) {
        let mail = Mail::new();
        let app = app(&backend, &mail).await;
        let boss = app.admin("boss").await;
        let sam = app.register("sam").await;
        let reply = patch(&app, &boss, "sam", json!({"activate": false})).await;
        assert_eq!(reply.status.code, 200, "{}", reply.body);
        assert_eq!(user(&reply)["is_active"], false);
        app.profile(&sam).await.assert_error(401, "provide a valid auth token");
        app.login("sam@example.com", PASSWORD).await.assert_error(401, "invalid credentials");
        let reply = patch(&app, &boss, "sam", json!({"activate": true})).await;
        assert_eq!(user(&reply)["is_active"], true);
        app.profile(&sam).await.assert_error(401, "provide a valid auth token");
        app.login("sam@example.com", PASSWORD).await.assert_success(200, "successfully logged in");
    }

    async fn activation_confirms_a_pending_account(backend) {
        let mail = Mail::new();
        let url = mail.url();
        let app = TestApp::with(&backend, |f| {
            f.merge(("email.url", url)).merge(("accounts.email_confirmation", true))
        }).await;
        let db = kernel::Db::fetch(app.client.rocket()).expect("database");
        app.post("/api/auth/register", json!({"username": "boss", "email": "boss@example.com", "password": PASSWORD})).await;
        {
            let mut conn = db.acquire().await.expect("connection");
            kernel::users::set_admin(&mut conn, "boss").await.expect("admin");
        }
        let boss = app.login("boss@example.com", PASSWORD).await.token();
        app.post("/api/auth/register", json!({"username": "sam", "email": "sam@example.com", "password": PASSWORD})).await;
        let link = mail.links("sam@example.com", "/account-confirmation", 1).await.pop().expect("a link");
        let reply = patch(&app, &boss, "sam", json!({"activate": true})).await;
        assert_eq!(user(&reply)["is_active"], true);
        app.login("sam@example.com", PASSWORD).await.assert_success(200, "successfully logged in");
        app.post("/api/auth/account/confirm", json!({"token": link})).await
            .assert_error(400, "invalid token, please request a new token");
    }

    async fn reset_password_locks_the_account_and_mails_a_link(backend) {
        let mail = Mail::new();
        let app = app(&backend, &mail).await;
        let boss = app.admin("boss").await;
        let sam = app.register("sam").await;
        let reply = patch(&app, &boss, "sam", json!({"reset_password": true})).await;
        assert_eq!(reply.status.code, 200, "{}", reply.body);
        app.profile(&sam).await.assert_error(401, "provide a valid auth token");
        app.login("sam@example.com", PASSWORD).await.assert_error(401, "invalid credentials");
        let reset = mail.links("sam@example.com", "/password-reset", 2).await.pop().expect("a reset link");
        app.post("/api/auth/password/update", json!({"token": reset, "password": "a fresh passphrase", "password_conf": "a fresh passphrase"})).await
            .assert_success(200, "password updated");
        app.login("sam@example.com", "a fresh passphrase").await.assert_success(200, "successfully logged in");
    }

    async fn new_email_is_confirmed_by_the_new_address(backend) {
        let mail = Mail::new();
        let app = app(&backend, &mail).await;
        let boss = app.admin("boss").await;
        app.register("sam").await;
        let reply = patch(&app, &boss, "sam", json!({"new_email": "samuel@example.org"})).await;
        assert_eq!(user(&reply)["email"], "sam@example.com");
        assert_eq!(user(&reply)["email_to_confirm"], "samuel@example.org");
        let notice = mail.wait("sam@example.com", 1).await;
        assert!(notice[0].contains("samuel@example.org") && !notice[0].contains("token="), "{}", notice[0]);
        let link = mail.links("samuel@example.org", "/email-update", 1).await.pop().expect("a link");
        app.post("/api/auth/email/update", json!({"token": link})).await.assert_success(200, "email updated");
        app.login("samuel@example.org", PASSWORD).await.assert_success(200, "successfully logged in");
    }

    async fn role_admin_grants_and_activates(backend) {
        let mail = Mail::new();
        let app = app(&backend, &mail).await;
        let boss = app.admin("boss").await;
        let sam = app.register("sam").await;
        app.sql("UPDATE users SET state = 'deactivated' WHERE username = 'sam'").await;
        let reply = patch(&app, &boss, "sam", json!({"role": "admin"})).await;
        assert_eq!((user(&reply)["role"].clone(), user(&reply)["admin"].clone(), user(&reply)["is_active"].clone()),
                   (json!("admin"), json!(true), json!(true)));
        let sam_again = app.login("sam@example.com", PASSWORD).await.token();
        assert_eq!(app.profile(&sam_again).await.body["data"]["role"], "admin");
        let reply = patch(&app, &sam_again, "boss", json!({"role": "user"})).await;
        assert_eq!(user(&reply)["role"], "user");
        drop(sam);
    }
}
