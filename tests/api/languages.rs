//! The language rule: a preference is null or a language tag, and whatever a browser's
//! `Accept-Language` says picks English or French (what a database already holds, and the
//! emails it makes: tests/e2e/email_languages.rs).

use rocket::http::{ContentType, Header};
use serde_json::{json, Value};

use crate::helpers::{each_backend, TestApp};

const LANGUAGE_INVALID: &str = "language: valid language tag (such as en, fr or fr-CA) required\n";
const PREFERENCES: &str = "/api/auth/profile/edit/preferences";

fn preferences(language: Value) -> Value {
    json!({"timezone": "Europe/Paris", "weekm": false, "language": language, "imperial_units": false})
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
