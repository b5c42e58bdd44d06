//! Single sign-on's API in process (docs/sso.md): the trusted header from an allowed and a
//! refused address, the one-time code (used twice, expired), linked identities and the rule
//! that the last way in stays, and the SSO-only switch. The OpenID Connect flow against a real
//! provider is in tests/e2e/sso.rs.

use std::net::SocketAddr;

use rocket::http::Header;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::helpers::{each_backend, Reply, TestApp, PASSWORD};

const PROXY: &str = "10.1.2.3:40000";
const ELSEWHERE: &str = "192.0.2.9:40000";

/// A server believing `Remote-User` (a username) from 10.1.2.0/24, behind a proxy whose
/// `X-Real-IP` names clients.
async fn behind_proxy(backend: &crate::helpers::Backend) -> TestApp {
    TestApp::with(backend, |f| {
        f.merge(("ip_header", "X-Real-IP")).merge((
            "sso",
            json!({
                "trusted_header": {
                    "header": "Remote-User",
                    "identifies": "username",
                    "proxies": ["10.1.2.0/24", "fd00::1"],
                },
            }),
        ))
    })
    .await
}

async fn header_login(app: &TestApp, peer: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = app
        .client
        .post("/api/auth/sso/header/login")
        .remote(peer.parse::<SocketAddr>().expect("an address"));
    for (name, value) in headers {
        request = request.header(Header::new(name.to_string(), value.to_string()));
    }
    crate::helpers::reply(request.dispatch().await).await
}

/// A one-time code as the callback stores it (its SHA-256), for `user`, expiring in `ttl` s.
async fn plant_code(app: &TestApp, username: &str, code: &str, ttl: i64) {
    let hash = hex::encode(Sha256::digest(code.as_bytes()));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs() as i64;
    app.sql(&format!(
        "INSERT INTO sso_codes (code_hash, user_id, expires_at) \
         SELECT '{hash}', id, {} FROM users WHERE username = '{username}'",
        now + ttl
    ))
    .await;
}

async fn plant_identity(app: &TestApp, username: &str, provider: &str, subject: &str) {
    app.sql(&format!(
        "INSERT INTO sso_identities (user_id, provider, subject, email, created_at, last_login_at) \
         SELECT id, '{provider}', '{subject}', email, 1, 1 FROM users WHERE username = '{username}'"
    ))
    .await;
}

fn identity_ids(reply: &Reply) -> Vec<i64> {
    reply.body["data"]["identities"]
        .as_array()
        .expect("identities")
        .iter()
        .map(|i| i["id"].as_i64().expect("an id"))
        .collect()
}

each_backend! {
    async fn the_trusted_header_logs_in_from_a_proxy(backend) {
        let app = behind_proxy(&backend).await;
        app.register("sam").await;
        let reply = header_login(&app, PROXY, &[("Remote-User", "sam")]).await;
        reply.assert_success(200, "successfully logged in");
        let token = reply.token();
        assert_eq!(app.profile(&token).await.body["data"]["username"], "sam");
        // An ordinary session: listed, and ended by a logout.
        let sessions = app.get("/api/auth/sessions", Some(&token)).await;
        assert_eq!(sessions.body["data"]["sessions"].as_array().map(Vec::len), Some(2));
        app.get("/api/auth/logout", Some(&token)).await
            .assert_success(200, "successfully logged out");
        app.profile(&token).await.assert_error(401, "provide a valid auth token");
        // IPv6 peers are matched too (an exact address is a /128).
        header_login(&app, "[fd00::1]:1", &[("Remote-User", "sam")]).await
            .assert_success(200, "successfully logged in");
        // The proxy names nobody, or an unknown user.
        header_login(&app, PROXY, &[]).await
            .assert_error(401, "no identity from a trusted proxy");
        header_login(&app, PROXY, &[("Remote-User", "nobody")]).await
            .assert_error(401, "no account for this identity");
    }

    async fn the_trusted_header_is_ignored_from_elsewhere(backend) {
        let app = behind_proxy(&backend).await;
        app.register("sam").await;
        let before = app.count("SELECT COUNT(*) AS n FROM sessions").await;
        header_login(&app, ELSEWHERE, &[("Remote-User", "sam")]).await
            .assert_error(401, "no identity from a trusted proxy");
        // Claiming to be the proxy's client through `ip_header` does not make one the proxy.
        header_login(&app, ELSEWHERE, &[("Remote-User", "sam"), ("X-Real-IP", "10.1.2.3")]).await
            .assert_error(401, "no identity from a trusted proxy");
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM sessions").await, before);
    }

    async fn no_trusted_header_no_route(backend) {
        let app = TestApp::new(&backend).await;
        app.register("sam").await;
        let reply = header_login(&app, PROXY, &[("Remote-User", "sam")]).await;
        assert_eq!(reply.status.code, 404, "{}", reply.body);
    }

    async fn a_one_time_code_opens_one_session(backend) {
        let app = TestApp::new(&backend).await;
        app.register("sam").await;
        plant_code(&app, "sam", "the-code", 60).await;
        let reply = app.post("/api/auth/sso/exchange", json!({"code": "the-code"})).await;
        reply.assert_success(200, "successfully logged in");
        assert_eq!(app.profile(&reply.token()).await.body["data"]["username"], "sam");
        app.post("/api/auth/sso/exchange", json!({"code": "the-code"})).await
            .assert_error(401, "invalid code, please log in again");
        app.post("/api/auth/sso/exchange", json!({"code": "never-issued"})).await
            .assert_error(401, "invalid code, please log in again");
        app.post("/api/auth/sso/exchange", json!({"code": 1})).await
            .assert_error(400, "invalid payload");
    }

    async fn a_session_from_a_code_is_narrowable_and_revocable(backend) {
        let app = TestApp::new(&backend).await;
        app.register("sam").await;
        plant_code(&app, "sam", "to-narrow", 60).await;
        let token = app.post("/api/auth/sso/exchange", json!({"code": "to-narrow"})).await.token();
        let read_only = crate::attenuation::narrow_code(&token, r#"check if operation("read");"#);
        assert_eq!(app.profile(&read_only).await.status.code, 200);
        let listed = app.get("/api/auth/sso/identities", Some(&read_only)).await;
        assert_eq!(listed.status.code, 200, "{}", listed.body);
        let edit = json!({"first_name": "Sam", "last_name": null, "location": null, "bio": null, "birth_date": null});
        let refused = app.post_auth("/api/auth/profile/edit", &read_only, edit).await;
        assert_eq!(refused.status.code, 403, "{}", refused.body);
        // Removing an identity needs a token as minted.
        let removed = app.send("DELETE", "/api/auth/sso/identities/1", Some(&read_only), None).await;
        assert_eq!(removed.status.code, 403, "{}", removed.body);
        // Ending the session from the list ends its narrowed descendants too.
        let sessions = app.get("/api/auth/sessions", Some(&token)).await;
        let current = sessions.body["data"]["sessions"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["current"] == true))
            .and_then(|s| s["id"].as_str())
            .expect("the current session")
            .to_owned();
        let ended = app.send("DELETE", &format!("/api/auth/sessions/{current}"), Some(&token), None).await;
        assert_eq!(ended.status.code, 204);
        app.profile(&read_only).await.assert_error(401, "provide a valid auth token");
    }

    async fn a_browser_completes_with_its_code_cookie(backend) {
        let app = TestApp::new(&backend).await;
        app.register("sam").await;
        plant_code(&app, "sam", "cookie-code", 60).await;
        let raw = app.raw("GET", "/api/auth/sso/complete", &[("Cookie", "stride_sso_code=cookie-code")], None).await;
        assert_eq!(raw.status.code, 303);
        assert_eq!(raw.header("Location"), "http://127.0.0.1:8000/");
        let cookies = raw.header_values("Set-Cookie").join("; ");
        assert!(cookies.contains("access_token_cookie="), "{cookies}");
        // Spent: a second time is a page, and so is a request without the cookie.
        let again = app.raw("GET", "/api/auth/sso/complete", &[("Cookie", "stride_sso_code=cookie-code")], None).await;
        assert_eq!(again.status.code, 400);
        assert!(String::from_utf8_lossy(&again.body).contains(r#"data-reason="code""#));
        let none = app.raw("GET", "/api/auth/sso/complete?code=cookie-code", &[], None).await;
        assert_eq!(none.status.code, 400);
        // An app (with Authorization) gets no cookie and spends no code.
        plant_code(&app, "sam", "app-code", 60).await;
        let app_request = app.raw("GET", "/api/auth/sso/complete", &[
            ("Cookie", "stride_sso_code=app-code"), ("Authorization", "Bearer x"),
        ], None).await;
        assert_eq!(app_request.status.code, 400);
        app.post("/api/auth/sso/exchange", json!({"code": "app-code"})).await
            .assert_success(200, "successfully logged in");
    }

    async fn no_cookies_no_complete_route(backend) {
        let app = TestApp::with(&backend, |f| f.merge(("cookies.enabled", false))).await;
        app.get("/api/auth/sso/complete", None).await.assert_error(404, "error, page not found");
    }

    async fn an_expired_code_opens_nothing(backend) {
        let app = TestApp::new(&backend).await;
        app.register("sam").await;
        plant_code(&app, "sam", "old-code", -1).await;
        app.post("/api/auth/sso/exchange", json!({"code": "old-code"})).await
            .assert_error(401, "invalid code, please log in again");
        // Spent all the same.
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM sso_codes").await, 0);
    }

    async fn a_code_exchanged_twice_at_once_opens_one_session(backend) {
        let app = TestApp::new(&backend).await;
        app.register("sam").await;
        plant_code(&app, "sam", "raced", 60).await;
        let replies = futures::future::join_all((0..8).map(|_| {
            app.post("/api/auth/sso/exchange", json!({"code": "raced"}))
        }))
        .await;
        let opened = replies.iter().filter(|r| r.status.code == 200).count();
        assert_eq!(opened, 1, "{:?}", replies.iter().map(|r| r.status.code).collect::<Vec<_>>());
    }

    async fn a_browser_gets_cookies_from_the_exchange(backend) {
        let app = TestApp::new(&backend).await;
        app.register("sam").await;
        plant_code(&app, "sam", "browser-code", 60).await;
        let raw = app.raw(
            "POST",
            "/api/auth/sso/exchange",
            &[("Content-Type", "application/json")],
            Some(br#"{"code":"browser-code"}"#.to_vec()),
        ).await;
        assert_eq!(raw.status.code, 200);
        let cookies = raw.header_values("Set-Cookie").join("; ");
        assert!(cookies.contains("access_token_cookie="), "{cookies}");
    }

    async fn identities_are_listed_and_the_last_way_in_stays(backend) {
        let app = TestApp::new(&backend).await;
        let token = app.register("sam").await;
        let other = app.register("alex").await;
        plant_identity(&app, "sam", "idp", "sub-1").await;
        plant_identity(&app, "sam", "other", "sub-2").await;
        plant_identity(&app, "alex", "idp", "sub-3").await;
        let listed = app.get("/api/auth/sso/identities", Some(&token)).await;
        assert_eq!(listed.status.code, 200, "{}", listed.body);
        assert_eq!(listed.body["data"]["has_password"], true);
        let ids = identity_ids(&listed);
        assert_eq!(ids.len(), 2);
        // Another user's identity is not found.
        let alex = identity_ids(&app.get("/api/auth/sso/identities", Some(&other)).await);
        app.send("DELETE", &format!("/api/auth/sso/identities/{}", alex[0]), Some(&token), None)
            .await.assert_error(404, "identity not found");
        // Without a password, the last identity is the only way in and stays.
        app.sql("UPDATE users SET password_hash = '!sso-no-password' WHERE username = 'sam'").await;
        let removed = app.send("DELETE", &format!("/api/auth/sso/identities/{}", ids[0]), Some(&token), None).await;
        assert_eq!(removed.status.code, 204, "{}", removed.body);
        app.send("DELETE", &format!("/api/auth/sso/identities/{}", ids[1]), Some(&token), None)
            .await.assert_error(400, "this identity is the account's only way to log in: set a password first");
        let listed = app.get("/api/auth/sso/identities", Some(&token)).await;
        assert_eq!(listed.body["data"]["has_password"], false);
        assert_eq!(identity_ids(&listed), vec![ids[1]]);
        // With a password again, it may go.
        let alex_hash = "(SELECT password_hash FROM users WHERE username = 'alex')";
        app.sql(&format!("UPDATE users SET password_hash = {alex_hash} WHERE username = 'sam'")).await;
        let removed = app.send("DELETE", &format!("/api/auth/sso/identities/{}", ids[1]), Some(&token), None).await;
        assert_eq!(removed.status.code, 204, "{}", removed.body);
    }

    async fn sso_only_closes_password_login_and_registration(backend) {
        let app = TestApp::with(&backend, |f| f.merge((
            "sso",
            json!({"providers": [{
                "id": "idp", "issuer": "http://127.0.0.1:9/", "client_id": "stride",
            }]}),
        ))).await;
        let admin = app.admin("admin").await;
        let user = app.register("sam").await;
        app.send("PATCH", "/api/auth/sso/settings", Some(&user), Some(r#"{"only_sso": true}"#))
            .await.assert_error(403, "you do not have permissions");
        let set = app.send("PATCH", "/api/auth/sso/settings", Some(&admin), Some(r#"{"only_sso": true}"#)).await;
        assert_eq!(set.body["data"]["only_sso"], true, "{}", set.body);
        app.login("sam@example.com", PASSWORD).await
            .assert_error(403, "error, password login is disabled: log in with single sign-on");
        app.register_as("alex", "alex@example.com", PASSWORD).await
            .assert_error(403, "error, registration is disabled: log in with single sign-on");
        let providers = app.get("/api/auth/sso/providers", None).await;
        assert_eq!(providers.body["data"]["only_sso"], true);
        assert_eq!(providers.body["data"]["providers"][0]["id"], "idp");
        // Sessions already open go on.
        app.profile(&user).await;
        assert_eq!(app.profile(&user).await.status.code, 200);
        app.send("PATCH", "/api/auth/sso/settings", Some(&admin), Some(r#"{"only_sso": false}"#)).await;
        app.login("sam@example.com", PASSWORD).await.assert_success(200, "successfully logged in");
    }

    async fn sso_only_needs_a_way_of_single_sign_on(backend) {
        let app = TestApp::new(&backend).await;
        let admin = app.admin("admin").await;
        app.send("PATCH", "/api/auth/sso/settings", Some(&admin), Some(r#"{"only_sso": true}"#))
            .await.assert_error(400, "no single sign-on is configured: password login must stay on");
        app.login("admin@example.com", PASSWORD).await.assert_success(200, "successfully logged in");
    }

    async fn a_callback_with_an_unknown_state_is_refused_with_a_page(backend) {
        let app = TestApp::with(&backend, |f| f.merge((
            "sso",
            json!({"providers": [{
                "id": "idp", "display_name": "Our IdP", "issuer": "http://127.0.0.1:9/", "client_id": "stride",
            }]}),
        ))).await;
        let raw = app.raw("GET", "/api/auth/sso/idp/callback?code=c&state=forged", &[], None).await;
        assert_eq!(raw.status.code, 400);
        assert_eq!(raw.header("Cache-Control"), "no-store");
        assert_eq!(raw.header("Referrer-Policy"), "no-referrer");
        assert!(raw.header("Content-Security-Policy").contains("default-src 'none'"));
        let html = String::from_utf8_lossy(&raw.body);
        assert!(html.contains(r#"data-reason="state""#) && html.contains("Our IdP"), "{html}");
        let raw = app.raw("GET", "/api/auth/sso/idp/callback?state=forged", &[("Accept-Language", "fr")], None).await;
        assert!(String::from_utf8_lossy(&raw.body).contains("n'a pas abouti"));
        let unknown = app.get("/api/auth/sso/nope/start", None).await;
        unknown.assert_error(404, "unknown provider");
        // A provider that cannot be reached is a page too, not a 500.
        let raw = app.raw("GET", "/api/auth/sso/idp/start", &[], None).await;
        assert_eq!(raw.status.code, 502);
    }

    async fn the_section_is_checked(backend) {
        let db = crate::helpers::TestDb::new(&backend).await;
        let figment = crate::helpers::figment(&db).merge((
            "sso",
            json!({"trusted_header": {"header": "Remote-User", "proxies": ["not-a-net"]}}),
        ));
        let error = stride::check_config(&figment).expect_err("a bad CIDR");
        assert!(error.to_string().contains("sso.trusted_header.proxies[0]"), "{error}");
        let figment = crate::helpers::figment(&db).merge((
            "sso",
            json!({"trusted_header": {"header": "Remote-User"}}),
        ));
        let error = stride::check_config(&figment).expect_err("no proxies");
        assert!(error.to_string().contains("sso.trusted_header.proxies"), "{error}");
    }
}

/// An identity as a provider would vouch for it.
fn identity(
    subject: &str,
    email: Option<&str>,
    verified: bool,
    preferred: Option<&str>,
) -> sso::Identity {
    sso::Identity {
        subject: subject.to_owned(),
        email: email.map(str::to_owned),
        email_verified: verified,
        preferred_username: preferred.map(str::to_owned),
    }
}

/// The linking rules, committed as the callback commits them.
async fn link(app: &TestApp, identity: &sso::Identity) -> Result<String, sso::Refusal> {
    let db = app.client.rocket().state::<kernel::Db>().expect("database");
    let mut tx = kernel::db::begin_write(db).await.expect("a transaction");
    let found = sso::link_identity(&mut tx, "idp", identity)
        .await
        .expect("no database error");
    tx.commit().await.expect("commit");
    found.map(|user| user.username)
}

each_backend! {
    async fn linking_rules(backend) {
        let app = TestApp::new(&backend).await;
        app.register("sam").await;
        // An unverified email links nothing and makes nothing, whoever's it is.
        let mallory = identity("m", Some("SAM@example.com"), false, Some("mallory"));
        assert_eq!(link(&app, &mallory).await, Err(sso::Refusal::Unverified));
        assert_eq!(link(&app, &identity("n", None, true, None)).await, Err(sso::Refusal::Unverified));
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM sso_identities").await, 0);
        // A verified one links sam's account (compared as registration compares addresses).
        let sam = identity("s", Some("SAM@example.com"), true, Some("samuel"));
        assert_eq!(link(&app, &sam).await.as_deref(), Ok("sam"));
        // The link then opens the account, whatever the provider says of the email now.
        let changed = identity("s", Some("other@example.com"), false, None);
        assert_eq!(link(&app, &changed).await.as_deref(), Ok("sam"));
        // A new verified address makes an account; taken usernames get a number.
        let twin = identity("t", Some("sam@elsewhere.example"), true, Some("sam"));
        assert_eq!(link(&app, &twin).await.as_deref(), Ok("sam2"));
        let triplet = identity("u", Some("sam@third.example"), true, Some("Sam"));
        assert_eq!(link(&app, &triplet).await.as_deref(), Ok("Sam3"));
        let dotted = identity("v", Some("jean.dupont@example.com"), true, None);
        assert_eq!(link(&app, &dotted).await.as_deref(), Ok("jean_dupont"));
        // No password: the account logs in only through its provider.
        app.login("sam@elsewhere.example", PASSWORD).await.assert_error(401, "invalid credentials");
        // An address kept for another account's way back makes no account.
        app.sql("INSERT INTO email_reservations (email_key, user_id, until) \
                 SELECT 'kept@example.com', id, 99999999999 FROM users WHERE username = 'sam'").await;
        let kept = identity("w", Some("kept@example.com"), true, None);
        assert_eq!(link(&app, &kept).await, Err(sso::Refusal::Reserved));
        // A deactivated account opens nothing.
        app.sql("UPDATE users SET state = 'deactivated' WHERE username = 'sam'").await;
        assert_eq!(link(&app, &sam).await, Err(sso::Refusal::Inactive));
    }

    async fn first_logins_of_one_identity_at_once_make_one_account(backend) {
        let app = TestApp::new(&backend).await;
        let new = identity("racer", Some("racer@example.com"), true, Some("racer"));
        let existing = {
            app.register("kim").await;
            identity("kim-at-idp", Some("kim@example.com"), true, None)
        };
        for who in [new, existing] {
            let logins = (0..6).map(|_| link(&app, &who));
            let found = futures::future::join_all(logins).await;
            let first = found[0].clone().expect("an account");
            assert!(found.iter().all(|f| f.as_ref() == Ok(&first)), "{found:?}");
            let sql = format!("SELECT COUNT(*) AS n FROM sso_identities WHERE subject = '{}'", who.subject);
            assert_eq!(app.count(&sql).await, 1);
        }
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM users").await, 2);
    }

    async fn closed_registration_makes_no_account(backend) {
        let app = TestApp::new(&backend).await;
        let admin = app.admin("admin").await;
        app.send("PATCH", "/api/config", Some(&admin), Some(r#"{"is_registration_enabled": false}"#)).await;
        let new = identity("x", Some("new@example.com"), true, None);
        assert_eq!(link(&app, &new).await, Err(sso::Refusal::Closed));
        // An existing account is still linked.
        let known = identity("y", Some("admin@example.com"), true, None);
        assert_eq!(link(&app, &known).await.as_deref(), Ok("admin"));
    }

    async fn logins_begun_are_counted_per_client(backend) {
        let app = TestApp::with(&backend, |f| f.merge((
            "sso",
            json!({"starts_per_client": 2, "providers": [{
                "id": "idp", "issuer": "http://127.0.0.1:9/", "client_id": "stride",
            }]}),
        ))).await;
        let replies = futures::future::join_all(
            (0..4).map(|_| app.raw("GET", "/api/auth/sso/idp/start", &[], None)),
        )
        .await;
        let limited = replies.iter().filter(|r| r.status.code == 429).count();
        assert_eq!(limited, 2, "{:?}", replies.iter().map(|r| r.status.code).collect::<Vec<_>>());
    }
}
