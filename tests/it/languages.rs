//! The language rule: a preference is null or a language tag; what a database already holds,
//! whatever it is, and whatever a browser's `Accept-Language` says, picks English or French and
//! never makes a 500 (a multi-byte value once panicked on a byte slice, so a password change
//! answered 500 and the reset email never left).

use rocket::http::{ContentType, Header};
use rocket_db_pools::Database;
use serde_json::{json, Value};

use crate::helpers::{each_backend, Backend, TestApp, PASSWORD};
use crate::mail::SmtpServer;

const LANGUAGE_INVALID: &str = "language: valid language tag (such as en, fr or fr-CA) required\n";
const PREFERENCES: &str = "/api/auth/profile/edit/preferences";

fn preferences(language: Value) -> Value {
    json!({"timezone": "Europe/Paris", "weekm": false, "language": language, "imperial_units": false})
}

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
    async fn preferences_take_language_tags(backend) {
        let app = TestApp::new(&backend).await;
        let token = app.register("sam").await;
        for tag in ["en", "fr", "FR", "fr-CA", "pt_BR", "zh-Hans", "de-CH-1996", "x-klingon"] {
            let reply = app.post_auth(PREFERENCES, &token, preferences(json!(tag))).await;
            reply.assert_success(200, "user preferences updated");
            assert_eq!(reply.body["data"]["language"], tag);
        }
        app.post_auth(PREFERENCES, &token, preferences(json!("fr"))).await
            .assert_success(200, "user preferences updated");
        let long = "a".repeat(51);
        for bad in ["", " ", "é", "aé", "fr fr", "fr;q=1", "fr,en", "fr-", "français", "\u{200b}fr",
                    "fr\u{202e}", "<script>", "😀", "fr\n", long.as_str()] {
            app.post_auth(PREFERENCES, &token, preferences(json!(bad))).await
                .assert_error(400, LANGUAGE_INVALID);
        }
        // Nothing of that was kept.
        assert_eq!(app.profile(&token).await.body["data"]["language"], "fr");
        // Null is no preference.
        let reply = app.post_auth(PREFERENCES, &token, preferences(Value::Null)).await;
        reply.assert_success(200, "user preferences updated");
        assert_eq!(reply.body["data"]["language"], Value::Null);
        // The lines come in order with the other fields'.
        let mut body = preferences(json!("é"));
        body["timezone"] = json!("");
        app.post_auth(PREFERENCES, &token, body).await
            .assert_error(400, &format!("timezone: 1 to 50 characters required\n{LANGUAGE_INVALID}"));
    }

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

    async fn the_browser_language_is_negotiated(backend) {
        let app = TestApp::new(&backend).await;
        for (header, french) in [
            ("fr", true), ("fr-FR,fr;q=0.9,en;q=0.5", true), ("de, fr;q=0.5", true),
            ("en-US,en;q=0.9,fr;q=0.8", false), ("fr;q=0, en", false), ("fr;q=0", false),
            ("aé", false), ("é", false), ("aé, fr", true), ("😀;q=0.9, fr;q=0.8", true),
            ("fr;q=é", false), ("", false), ("*", false), (&"é".repeat(10_000), false),
            ("\u{85}\u{202e}fr", false),
        ] {
            for path in ["/password-reset?token=nope", "/password-reset"] {
                let page = app.client.get(path)
                    .header(Header::new("Accept-Language", header.to_owned())).dispatch().await;
                assert_eq!(page.status().code, 400, "{header:?}");
                let html = page.into_string().await.expect("html");
                let text = if french { "Ce lien ne fonctionne plus" } else { "This link no longer works" };
                assert!(html.contains(text), "{header:?}: {html}");
            }
            let posted = app.client.post("/password-reset").header(ContentType::Form)
                .header(Header::new("Accept-Language", header.to_owned()))
                .body("token=nope&password=x&password_conf=x").dispatch().await;
            assert_eq!(posted.status().code, 400, "{header:?}");
        }
        // Several header lines are one list.
        let page = app.client.get("/password-reset")
            .header(Header::new("Accept-Language", "de"))
            .header(Header::new("Accept-Language", "fr;q=0.4"))
            .dispatch().await;
        assert!(page.into_string().await.expect("html").contains("Ce lien ne fonctionne plus"));
    }
}
