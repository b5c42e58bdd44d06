//! Attenuated tokens: a client narrows its own token offline (appending a Biscuit block with
//! checks) and hands the narrower token on. Stride's authorizer supplies `operation("read")`
//! for GET/HEAD and `operation("write")` otherwise, `path(…)` and `time(…)`.

use std::time::{Duration, SystemTime};

use biscuit_auth::macros::block;
use biscuit_auth::{BlockBuilder, UnverifiedBiscuit};
use serde_json::json;

use crate::helpers::{each_backend, sleep, TestApp};

const NOT_ALLOWED: &str = "this token does not allow this request";

/// What a client does with the biscuit CLI or library: no key needed.
fn narrow(token: &str, block: BlockBuilder) -> String {
    UnverifiedBiscuit::from_base64(token)
        .expect("a biscuit")
        .append(block)
        .expect("appended")
        .to_base64()
        .expect("encoded")
}

fn edit() -> serde_json::Value {
    json!({"first_name": "Sam", "last_name": null, "location": null, "bio": null, "birth_date": null})
}

each_backend! {
    async fn a_read_only_token_reads_but_cannot_write(backend) {
        let app = TestApp::new(&backend).await;
        let token = app.register("sam").await;
        let read_only = narrow(&token, block!(r#"check if operation("read");"#));
        assert_eq!(app.profile(&read_only).await.body["data"]["username"], "sam");
        app.post_auth("/api/auth/profile/edit", &read_only, edit()).await.assert_error(403, NOT_ALLOWED);
        app.get("/api/auth/logout", Some(&read_only)).await.assert_success(200, "successfully logged out");
        // It shares its session with the token it came from: that logout ended both.
        app.profile(&token).await.assert_error(401, "provide a valid auth token");
    }

    async fn a_token_narrowed_to_one_path(backend) {
        let app = TestApp::new(&backend).await;
        let token = app.register("sam").await;
        let profile_only = narrow(&token, block!(r#"check if path("/api/auth/profile");"#));
        assert_eq!(app.profile(&profile_only).await.status.code, 200);
        app.get("/api/auth/sessions", Some(&profile_only)).await.assert_error(403, NOT_ALLOWED);
        // The original token is as wide as before.
        assert_eq!(app.get("/api/auth/sessions", Some(&token)).await.status.code, 200);
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

    async fn appended_facts_do_not_change_who_you_are(backend) {
        let app = TestApp::new(&backend).await;
        let admin = app.admin("admin").await;
        let token = app.register("sam").await;
        let admin_id = app.count("SELECT id AS n FROM users WHERE username = 'admin'").await;
        let forged = narrow(&token, block!(r#"user({id});"#, id = admin_id));
        assert_eq!(app.profile(&forged).await.body["data"]["username"], "sam");
        app.send("PATCH", "/api/config", Some(&forged), Some(r#"{"max_users": 1}"#)).await
            .assert_error(403, "you do not have permissions");
        assert_eq!(app.profile(&admin).await.body["data"]["admin"], true);
    }
}
