//! Stored languages, whatever a database holds, never make a 500 and pick the emails'
//! language (a multi-byte value once panicked on a byte slice, so a password change answered 500
//! and the reset email never left).

use rocket::http::ContentType;
use rocket_db_pools::Database;
use serde_json::json;

use crate::helpers::{each_backend, Backend, TestApp, PASSWORD};
use crate::mail::SmtpServer;

/// Writes a user's stored language as a database could hold it from before the rule (or from
/// a hand-made edit): any text.
async fn store_language(app: &TestApp, username: &str, language: &str) {
    let db = kernel::Db::fetch(app.client.rocket()).expect("database");
    sqlx::query("UPDATE users SET language = $1 WHERE username = $2")
        .bind(language)
        .bind(username)
        .execute(&***db)
        .await
        .expect("update the language");
}

async fn app_with_smtp(backend: &Backend, smtp: &SmtpServer) -> TestApp {
    let url = smtp.url();
    TestApp::with(backend, move |f| {
        f.merge(("email.url", url))
            .merge(("throttle.enabled", false))
    })
    .await
}

each_backend! {
    async fn stored_languages_whatever_they_are_never_fail(backend) {
        let Some(smtp) = SmtpServer::start() else { return };
        let app = app_with_smtp(&backend, &smtp).await;
        let token = app.register("sam").await;
        let long = "é".repeat(5000);
        let cases = [
            ("aé", false), ("é", false), ("😀", false), ("fr\u{301}", false), ("f", false),
            ("", false), ("fré", false), ("\u{200b}fr", false), (long.as_str(), false),
            (" fr ", true), ("FR-ca", true), ("fr_BE", true), ("fra", true),
        ];
        let mut received = 0;
        for (i, (stored, french)) in cases.into_iter().enumerate() {
            store_language(&app, "sam", stored).await;
            let what = format!("stored {stored:?}");
            let profile = app.profile(&token).await;
            assert_eq!(profile.status.code, 200, "{what}");
            assert_eq!(profile.body["data"]["language"], stored, "{what}");

            // A password change, and its notice.
            let password = format!("{PASSWORD}-{i}-x");
            let edit = json!({"first_name": null, "last_name": null, "location": null, "bio": null,
                              "birth_date": null, "password": password, "password_conf": password});
            app.post_auth("/api/auth/profile/edit", &token, edit).await
                .assert_success(200, "user profile updated");
            received += 1;
            let notice = smtp.wait_for(received).await.remove(received - 1);
            let subject = if french { "Stride : votre mot de passe a été modifié" } else { "Stride: your password was changed" };
            assert_eq!(notice.subject, subject, "{what}");

            // A reset request, its email, and the pages it links to.
            app.post("/api/auth/password/reset-request", json!({"email": "sam@example.com"})).await
                .assert_success(200, "password reset request processed");
            received += 1;
            let reset = smtp.wait_for(received).await.remove(received - 1);
            let subject = if french { "Stride : réinitialisation de votre mot de passe" } else { "Stride: reset your password" };
            assert_eq!(reset.subject, subject, "{what}");
            let (_, link_token) = reset.link();
            let page = app.client.get(format!("/password-reset?token={link_token}")).dispatch().await;
            assert_eq!(page.status().code, 200, "{what}");
            let html = page.into_string().await.expect("html");
            assert!(html.contains(if french { "lang=\"fr\"" } else { "lang=\"en\"" }), "{what}: {html}");
            let mismatch = app.client.post("/password-reset")
                .header(ContentType::Form)
                .body(format!("token={link_token}&password=one-long-phrase&password_conf=another-phrase"))
                .dispatch().await;
            assert_eq!(mismatch.status().code, 400, "{what}");
            assert!(mismatch.into_string().await.expect("html").contains(if french { "lang=\"fr\"" } else { "lang=\"en\"" }));
        }
    }
}
