//! Browser sessions (docs/browser-sessions.md): the session in an HttpOnly cookie, a CSRF
//! header on every request that changes something, the refresh rules, and Bearer requests
//! judged by their token alone.

use rocket_db_pools::Database as _;
use serde_json::{json, Value};

use crate::helpers::{each_backend, sleep, Mail, RawReply, Reply, TestApp, TestDb, PASSWORD};

const PROVIDE: &str = "provide a valid auth token";
const INVALID: &str = "invalid token, please log in again";

/// One `Set-Cookie` line, parsed.
#[derive(Debug, Clone)]
struct SetCookie {
    name: String,
    value: String,
    /// The attributes as sent, e.g. `HttpOnly`, `Path=/`.
    attributes: Vec<String>,
}

impl SetCookie {
    fn has(&self, attribute: &str) -> bool {
        self.attributes
            .iter()
            .any(|a| a.eq_ignore_ascii_case(attribute))
    }

    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.iter().find_map(|a| {
            let (n, v) = a.split_once('=')?;
            n.eq_ignore_ascii_case(name).then_some(v)
        })
    }

    /// A clearing: empty, `Max-Age=0`, expired in 1970.
    fn clears(&self) -> bool {
        self.value.is_empty()
            && self.attribute("Max-Age") == Some("0")
            && self.attribute("Expires") == Some("Thu, 01 Jan 1970 00:00:00 GMT")
    }
}

fn set_cookies(reply: &RawReply) -> Vec<SetCookie> {
    reply
        .header_values("Set-Cookie")
        .into_iter()
        .map(|line| {
            let mut parts = line.split(';').map(str::trim);
            let (name, value) = parts
                .next()
                .and_then(|p| p.split_once('='))
                .unwrap_or_else(|| panic!("a cookie: {line}"));
            SetCookie {
                name: name.into(),
                value: value.into(),
                attributes: parts.map(String::from).collect(),
            }
        })
        .collect()
}

fn cookie<'a>(cookies: &'a [SetCookie], name: &str) -> &'a SetCookie {
    let found: Vec<&SetCookie> = cookies.iter().filter(|c| c.name == name).collect();
    match found[..] {
        [one] => one,
        _ => panic!("one {name} in {cookies:?}"),
    }
}

/// What a browser holds after a login: both cookies, and the JSON token of the same session.
#[derive(Debug, Clone)]
struct Browser {
    access: String,
    csrf: String,
    bearer: String,
}

impl Browser {
    fn from(reply: &RawReply) -> Browser {
        let cookies = set_cookies(reply);
        Browser {
            access: cookie(&cookies, "access_token_cookie").value.clone(),
            csrf: cookie(&cookies, "csrf_access_token").value.clone(),
            bearer: reply.json().body["auth_token"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        }
    }

    fn header(&self) -> String {
        format!(
            "access_token_cookie={}; csrf_access_token={}",
            self.access, self.csrf
        )
    }

    /// The browser after a response: cookies set replace, cookies cleared go.
    fn after(&self, reply: &RawReply) -> Browser {
        let mut next = self.clone();
        for c in set_cookies(reply) {
            let value = if c.clears() { String::new() } else { c.value };
            match c.name.as_str() {
                "access_token_cookie" => next.access = value,
                "csrf_access_token" => next.csrf = value,
                _ => {}
            }
        }
        next
    }
}

async fn login(app: &TestApp, email: &str) -> (Browser, RawReply) {
    let body = json!({"email": email, "password": PASSWORD}).to_string();
    let reply = app
        .raw(
            "POST",
            "/api/auth/login",
            &[("Content-Type", "application/json")],
            Some(body.into_bytes()),
        )
        .await;
    assert_eq!(
        reply.status.code,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    (Browser::from(&reply), reply)
}

/// A request as the browser makes it: its cookies, the CSRF header when `csrf` is given, a
/// JSON body when `body` is.
async fn by_cookie(
    app: &TestApp,
    method: &str,
    path: &str,
    browser: &Browser,
    csrf: Option<&str>,
    body: Option<Value>,
) -> RawReply {
    let cookies = browser.header();
    let mut headers = vec![("Cookie", cookies.as_str())];
    if let Some(csrf) = csrf {
        headers.push(("X-CSRF-TOKEN", csrf));
    }
    if body.is_some() {
        headers.push(("Content-Type", "application/json"));
    }
    app.raw(
        method,
        path,
        &headers,
        body.map(|b| b.to_string().into_bytes()),
    )
    .await
}

/// A `profile/edit` body (its five keys are required).
fn edit_body(first_name: &str, bio: &str) -> Value {
    let or_null = |s: &str| if s.is_empty() { Value::Null } else { s.into() };
    json!({"first_name": or_null(first_name), "last_name": null, "location": null, "bio": or_null(bio), "birth_date": null})
}

#[track_caller]
fn refused(reply: &RawReply) -> Reply {
    let json = reply.json();
    json.assert_error(401, PROVIDE);
    json
}

/// The current session's id, as its user's list names it.
async fn session_id(app: &TestApp, bearer: &str) -> String {
    let list = app.get("/api/auth/sessions", Some(bearer)).await;
    list.body["data"]["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .find(|s| s["current"] == true)
        .and_then(|s| s["id"].as_str())
        .expect("a current session")
        .to_owned()
}

each_backend! {
    async fn login_sets_both_cookies_with_their_attributes(backend) {
        let app = TestApp::new(&backend).await;
        app.register("sam").await;
        let (browser, reply) = login(&app, "sam@example.com").await;
        // The 0.5 body, token included.
        reply.json().assert_success(200, "successfully logged in");
        assert!(!browser.bearer.is_empty());
        let cookies = set_cookies(&reply);
        assert_eq!(cookies.len(), 2, "{cookies:?}");
        let access = cookie(&cookies, "access_token_cookie");
        let csrf = cookie(&cookies, "csrf_access_token");
        assert!(access.has("HttpOnly"), "{access:?}");
        assert!(!csrf.has("HttpOnly"), "the client reads it: {csrf:?}");
        for c in [access, csrf] {
            assert_eq!(c.attribute("Path"), Some("/"), "{c:?}");
            assert_eq!(c.attribute("SameSite"), Some("Lax"), "{c:?}");
            // http://127.0.0.1 in public_url: not Secure; session cookies; host-only.
            assert!(!c.has("Secure"), "{c:?}");
            for absent in ["Max-Age", "Expires", "Domain"] {
                assert_eq!(c.attribute(absent), None, "{c:?}");
            }
        }
        assert_eq!(csrf.value.len(), 43);
        assert_ne!(access.value, browser.bearer, "the cookie holds its own token");
        assert_eq!(reply.header("Cache-Control"), "no-store");
        // The cookie works on its own.
        let profile = by_cookie(&app, "GET", "/api/auth/profile", &browser, None, None).await;
        assert_eq!(profile.json().body["data"]["username"], "sam");
    }

    async fn https_makes_them_secure_and_same_site_is_configurable(backend) {
        let app = TestApp::with(&backend, |f| {
            f.merge(("public_url", "https://fit.example.org")).merge(("cookies.same_site", "strict"))
        })
        .await;
        app.register("sam").await;
        let (_, reply) = login(&app, "sam@example.com").await;
        let cookies = set_cookies(&reply);
        for name in ["access_token_cookie", "csrf_access_token"] {
            let c = cookie(&cookies, name);
            assert!(c.has("Secure"), "{c:?}");
            assert_eq!(c.attribute("SameSite"), Some("Strict"), "{c:?}");
        }
    }

    async fn a_registration_that_opens_a_session_sets_them(backend) {
        let app = TestApp::new(&backend).await;
        let body = json!({"username": "sam", "email": "sam@example.com", "password": PASSWORD, "password_conf": PASSWORD});
        let reply = app
            .raw("POST", "/api/auth/register", &[("Content-Type", "application/json")], Some(body.to_string().into_bytes()))
            .await;
        reply.json().assert_success(201, "successfully registered");
        let browser = Browser::from(&reply);
        assert!(!browser.bearer.is_empty(), "0.5's body keeps its token");
        let profile = by_cookie(&app, "GET", "/api/auth/profile", &browser, None, None).await;
        assert_eq!(profile.status.code, 200);
        // One session, both transports.
        let list = by_cookie(&app, "GET", "/api/auth/sessions", &browser, None, None).await.json();
        let sessions = list.body["data"]["sessions"].as_array().expect("sessions").clone();
        assert_eq!(sessions.len(), 1, "{sessions:?}");
        assert_eq!(sessions[0]["current"], true);
        assert_eq!(sessions[0]["id"].as_str(), Some(session_id(&app, &browser.bearer).await.as_str()));
    }

    async fn a_confirmation_sets_them_and_gives_no_token_in_json(backend) {
        let mail = Mail::new();
        let app = TestApp::with_mail(&backend, &mail, |f| f.merge(("accounts.email_confirmation", true))).await;
        app.post("/api/auth/register", json!({"username": "sam", "email": "sam@example.com", "password": PASSWORD}))
            .await;
        let token = mail.token("sam@example.com").await;
        let body = json!({"token": token}).to_string();
        let reply = app
            .raw("POST", "/api/auth/account/confirm", &[("Content-Type", "application/json")], Some(body.into_bytes()))
            .await;
        let json = reply.json();
        json.assert_success(200, "account confirmation successful");
        assert_eq!(json.body, json!({"status": "success", "message": "account confirmation successful"}));
        let browser = Browser::from(&reply);
        let profile = by_cookie(&app, "GET", "/api/auth/profile", &browser, None, None).await;
        assert_eq!(profile.json().body["data"]["username"], "sam");
    }

    async fn with_cookies_off_a_confirmation_keeps_its_token(backend) {
        let mail = Mail::new();
        let app = TestApp::with_mail(&backend, &mail, |f| {
            f.merge(("accounts.email_confirmation", true)).merge(("cookies.enabled", false))
        })
        .await;
        app.post("/api/auth/register", json!({"username": "sam", "email": "sam@example.com", "password": PASSWORD, "password_conf": PASSWORD}))
            .await;
        let token = mail.token("sam@example.com").await;
        let body = json!({"token": token}).to_string();
        let reply = app
            .raw("POST", "/api/auth/account/confirm", &[("Content-Type", "application/json")], Some(body.into_bytes()))
            .await;
        assert!(reply.header_values("Set-Cookie").is_empty());
        let token = reply.json().token();
        assert_eq!(app.profile(&token).await.status.code, 200);
    }

    async fn with_cookies_off_none_is_set_or_read(backend) {
        let on = TestApp::new(&backend).await;
        on.register("sam").await;
        let (browser, _) = login(&on, "sam@example.com").await;
        let off = TestApp::on(TestDb::shared(&on.db), |f| f.merge(("cookies.enabled", false))).await;
        let body = json!({"email": "sam@example.com", "password": PASSWORD}).to_string();
        let reply = off
            .raw("POST", "/api/auth/login", &[("Content-Type", "application/json")], Some(body.into_bytes()))
            .await;
        assert_eq!(reply.status.code, 200);
        assert!(reply.header_values("Set-Cookie").is_empty());
        // The other instance's valid cookie means nothing here.
        let profile = by_cookie(&off, "GET", "/api/auth/profile", &browser, None, None).await;
        refused(&profile);
        assert!(profile.header_values("Set-Cookie").is_empty());
        let edit = by_cookie(&off, "POST", "/api/auth/profile/edit", &browser, Some(&browser.csrf), Some(edit_body("S", ""))).await;
        refused(&edit);
    }

    async fn a_request_with_an_authorization_header_gets_no_cookie(backend) {
        let app = TestApp::new(&backend).await;
        let bearer = app.register("sam").await;
        // Even a login: a Bearer client never gets a cookie.
        let body = json!({"email": "sam@example.com", "password": PASSWORD}).to_string();
        let auth = format!("Bearer {bearer}");
        let reply = app
            .raw("POST", "/api/auth/login", &[("Content-Type", "application/json"), ("Authorization", &auth)], Some(body.into_bytes()))
            .await;
        assert_eq!(reply.status.code, 200);
        assert!(reply.header_values("Set-Cookie").is_empty());
        let reply = app.raw("GET", "/api/auth/profile", &[("Authorization", &auth)], None).await;
        assert_eq!(reply.status.code, 200);
        assert!(reply.header_values("Set-Cookie").is_empty());
    }

    async fn reads_need_no_csrf_header_and_refresh_the_cookie(backend) {
        let app = TestApp::new(&backend).await;
        app.register("sam").await;
        let (browser, _) = login(&app, "sam@example.com").await;
        sleep(1).await;
        let reply = by_cookie(&app, "GET", "/api/auth/profile", &browser, None, None).await;
        assert_eq!(reply.status.code, 200);
        let cookies = set_cookies(&reply);
        let access = cookie(&cookies, "access_token_cookie");
        let csrf = cookie(&cookies, "csrf_access_token");
        assert!(access.has("HttpOnly") && !access.value.is_empty());
        assert_ne!(access.value, browser.access, "a new cookie token");
        assert_eq!(csrf.value, browser.csrf, "the CSRF value lives as long as the session");
        assert_eq!(reply.header("Cache-Control"), "no-store");
        // The earlier cookie token stays valid until its own expiry, as FitTrackee's.
        let again = by_cookie(&app, "GET", "/api/auth/profile", &browser, None, None).await;
        assert_eq!(again.status.code, 200);
        let next = browser.after(&reply);
        assert_eq!(by_cookie(&app, "GET", "/api/auth/profile", &next, None, None).await.status.code, 200);
        // A route's own refusal refreshes too, whatever its status.
        let bad = by_cookie(&app, "POST", "/api/auth/profile/edit/preferences", &browser, Some(&browser.csrf), Some(json!({"timezone": 3}))).await;
        assert_eq!(bad.status.code, 400);
        assert_eq!(set_cookies(&bad).len(), 2);
        // Routes without authentication refresh nothing.
        let config = by_cookie(&app, "GET", "/api/config", &browser, None, None).await;
        assert!(config.header_values("Set-Cookie").is_empty());
    }

    async fn every_changing_route_refuses_a_cookie_without_its_csrf_header(backend) {
        let app = TestApp::new(&backend).await;
        let admin = app.admin("sam").await;
        let kim = app.register("kim").await;
        let (browser, _) = login(&app, "sam@example.com").await;
        let (other, _) = login(&app, "kim@example.com").await;
        let before_profile = app.profile(&admin).await.body;
        let before_config = app.get("/api/config", None).await.body;
        let sessions = app.count("SELECT COUNT(*) AS n FROM sessions").await;
        let routes: Vec<(String, String)> = app
            .client
            .rocket()
            .routes()
            .map(|r| (r.method.as_str().to_owned(), r.uri.origin.path().as_str().to_owned()))
            .collect();
        let mut guarded = Vec::new();
        for (method, template) in routes {
            let changing = !matches!(method.as_str(), "GET" | "HEAD" | "OPTIONS") || template == "/api/auth/logout";
            if !changing {
                continue;
            }
            let path: String = template
                .split('/')
                .map(|s| if s.starts_with('<') { if s.contains("name") { "kim" } else { "x" } } else { s })
                .collect::<Vec<_>>()
                .join("/");
            // An authenticated route answers 401 to a request without credentials.
            let bare = app.raw(&method, &path, &[], None).await;
            let bare_json = (bare.status.code == 401).then(|| bare.json());
            if bare_json.as_ref().is_none_or(|j| j.message() != PROVIDE) {
                continue;
            }
            let mut wrong_one = browser.csrf.clone().into_bytes();
            wrong_one[0] = if wrong_one[0] == b'A' { b'B' } else { b'A' };
            let wrong_one = String::from_utf8(wrong_one).expect("ascii");
            let longer = format!("{}A", browser.csrf);
            for csrf in [None, Some(""), Some(other.csrf.as_str()), Some(&wrong_one), Some(&browser.csrf[..42]), Some(longer.as_str()), Some(browser.bearer.as_str())] {
                let reply = by_cookie(&app, &method, &path, &browser, csrf, Some(json!({}))).await;
                refused(&reply);
                // A forged request logs nobody out: the cookies are untouched.
                assert!(reply.header_values("Set-Cookie").is_empty(), "{method} {path} {csrf:?}");
            }
            guarded.push(format!("{method} {template}"));
        }
        // At least these, from each module built in.
        let expected = [
            "POST /api/auth/logout", "GET /api/auth/logout", "POST /api/auth/profile/edit",
            "POST /api/auth/profile/edit/preferences",
            #[cfg(feature = "accounts")]
            "PATCH /api/auth/profile/edit/account",
            #[cfg(feature = "accounts")]
            "POST /api/auth/account/export/request",
            #[cfg(feature = "pictures")]
            "POST /api/auth/picture",
            #[cfg(feature = "pictures")]
            "DELETE /api/auth/picture",
            "DELETE /api/auth/sessions", "DELETE /api/auth/sessions/<id>", "PATCH /api/users/<user_name>",
            "DELETE /api/users/<user_name>", "PATCH /api/config",
        ];
        for expected in expected {
            assert!(guarded.iter().any(|g| g == expected), "{expected} not among {guarded:?}");
        }
        // Nothing changed, nothing ended.
        assert_eq!(app.profile(&admin).await.body, before_profile);
        assert_eq!(app.get("/api/config", None).await.body, before_config);
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM sessions").await, sessions);
        assert_eq!(app.profile(&kim).await.status.code, 200);
        assert_eq!(by_cookie(&app, "GET", "/api/auth/profile", &browser, None, None).await.status.code, 200);
        // With the header, the same requests go through.
        let edit = by_cookie(&app, "POST", "/api/auth/profile/edit", &browser, Some(&browser.csrf), Some(edit_body("Sam", ""))).await;
        assert_eq!(edit.json().body["data"]["first_name"], "Sam");
        assert_eq!(set_cookies(&edit).len(), 2, "refreshed");
        let config = by_cookie(&app, "PATCH", "/api/config", &browser, Some(&browser.csrf), Some(json!({"max_users": 7}))).await;
        assert_eq!(config.json().body["data"]["max_users"], 7);
    }

    async fn logout_by_cookie_revokes_everywhere_and_clears_both(backend) {
        let app = TestApp::new(&backend).await;
        app.register("sam").await;
        let (browser, _) = login(&app, "sam@example.com").await;
        let second = TestApp::on(TestDb::shared(&app.db), |f| f).await;
        assert_eq!(by_cookie(&second, "GET", "/api/auth/profile", &browser, None, None).await.status.code, 200);
        let reply = by_cookie(&app, "POST", "/api/auth/logout", &browser, Some(&browser.csrf), None).await;
        reply.json().assert_success(200, "successfully logged out");
        let cookies = set_cookies(&reply);
        assert_eq!(cookies.len(), 2, "{cookies:?}");
        for name in ["access_token_cookie", "csrf_access_token"] {
            let c = cookie(&cookies, name);
            assert!(c.clears(), "{c:?}");
            assert_eq!(c.attribute("Path"), Some("/"));
            assert_eq!(c.attribute("SameSite"), Some("Lax"));
        }
        assert!(cookie(&cookies, "access_token_cookie").has("HttpOnly"));
        assert_eq!(reply.header("Cache-Control"), "no-store");
        // Dead at once on both instances, by cookie and by the login's JSON token.
        for server in [&app, &second] {
            let again = by_cookie(server, "GET", "/api/auth/profile", &browser, None, None).await;
            refused(&again);
            let cleared = set_cookies(&again);
            assert!(cleared.iter().all(SetCookie::clears) && cleared.len() == 2, "{cleared:?}");
            server.profile(&browser.bearer).await.assert_error(401, PROVIDE);
        }
        // GET works too, with the header.
        let (browser, _) = login(&app, "sam@example.com").await;
        refused(&by_cookie(&app, "GET", "/api/auth/logout", &browser, None, None).await);
        let reply = by_cookie(&app, "GET", "/api/auth/logout", &browser, Some(&browser.csrf), None).await;
        reply.json().assert_success(200, "successfully logged out");
        assert!(set_cookies(&reply).iter().all(SetCookie::clears));
        // A Bearer logout touches no cookie.
        let bearer = app.login("sam@example.com", PASSWORD).await.token();
        let auth = format!("Bearer {bearer}");
        let reply = app.raw("POST", "/api/auth/logout", &[("Authorization", &auth)], None).await;
        assert_eq!(reply.status.code, 200);
        assert!(reply.header_values("Set-Cookie").is_empty());
    }

    async fn ending_ones_own_session_otherwise_clears_too(backend) {
        let app = TestApp::new(&backend).await;
        app.register("sam").await;
        // Ending one's own session from the list.
        let (browser, _) = login(&app, "sam@example.com").await;
        let id = session_id(&app, &browser.bearer).await;
        let reply = by_cookie(&app, "DELETE", &format!("/api/auth/sessions/{id}"), &browser, Some(&browser.csrf), None).await;
        assert_eq!(reply.status.code, 204);
        let cookies = set_cookies(&reply);
        assert!(cookies.len() == 2 && cookies.iter().all(SetCookie::clears), "{cookies:?}");
        // Ending the others keeps this one, refreshed.
        let (browser, _) = login(&app, "sam@example.com").await;
        let reply = by_cookie(&app, "DELETE", "/api/auth/sessions", &browser, Some(&browser.csrf), None).await;
        assert_eq!(reply.status.code, 200);
        let cookies = set_cookies(&reply);
        assert!(cookies.len() == 2 && !cookies.iter().any(SetCookie::clears), "{cookies:?}");
        // Deleting one's account.
        let reply = by_cookie(&app, "DELETE", "/api/users/sam", &browser, Some(&browser.csrf), None).await;
        assert_eq!(reply.status.code, 204);
        let cookies = set_cookies(&reply);
        assert!(cookies.len() == 2 && cookies.iter().all(SetCookie::clears), "{cookies:?}");
    }

    async fn the_refresh_never_outlives_the_session(backend) {
        let app = TestApp::new(&backend).await;
        app.register("sam").await;
        let (browser, _) = login(&app, "sam@example.com").await;
        let id = session_id(&app, &browser.bearer).await;
        let db = kernel::Db::fetch(app.client.rocket()).expect("db");
        let expires = || async {
            let row: (i64, i64) = sqlx::query_as("SELECT created_at, expires_at FROM sessions WHERE id = $1")
                .bind(&id)
                .fetch_one(&***db)
                .await
                .expect("the session");
            row
        };
        let before = expires().await;
        let mut current = browser.clone();
        for _ in 0..3 {
            let reply = by_cookie(&app, "GET", "/api/auth/profile", &current, None, None).await;
            assert_eq!(reply.status.code, 200);
            current = current.after(&reply);
        }
        assert_eq!(expires().await, before, "refreshing changes neither created nor expires");
        // The session's end comes: every cookie token of it dies with it, refreshed or not.
        app.sql(&format!("UPDATE sessions SET expires_at = {} WHERE id = '{id}'", kernel::db::now() - 1)).await;
        for held in [&browser, &current] {
            let reply = by_cookie(&app, "GET", "/api/auth/profile", held, None, None).await;
            refused(&reply);
            assert!(set_cookies(&reply).iter().all(SetCookie::clears));
        }
    }

    async fn an_idle_cookie_expires_while_its_session_lives(backend) {
        let app = TestApp::with(&backend, |f| f.merge(("cookies.ttl", 1))).await;
        app.register("sam").await;
        let (browser, _) = login(&app, "sam@example.com").await;
        sleep(3).await;
        let reply = by_cookie(&app, "GET", "/api/auth/profile", &browser, None, None).await;
        refused(&reply);
        let cookies = set_cookies(&reply);
        assert!(cookies.len() == 2 && cookies.iter().all(SetCookie::clears), "{cookies:?}");
        // The session itself lives on: its Bearer token works; a new login gives new cookies.
        assert_eq!(app.profile(&browser.bearer).await.status.code, 200);
    }

    async fn a_revoked_or_deactivated_session_is_refused_and_cleared(backend) {
        let app = TestApp::new(&backend).await;
        let admin = app.admin("ada").await;
        app.register("sam").await;
        let (browser, _) = login(&app, "sam@example.com").await;
        // Revoked from another session.
        let other = app.login("sam@example.com", PASSWORD).await.token();
        let id = session_id(&app, &browser.bearer).await;
        let end = app.send("DELETE", &format!("/api/auth/sessions/{id}"), Some(&other), None).await;
        assert_eq!(end.status.code, 204);
        let reply = by_cookie(&app, "GET", "/api/auth/profile", &browser, None, None).await;
        refused(&reply);
        assert!(set_cookies(&reply).iter().all(SetCookie::clears));
        // With a revoked session, a changing request with the right header changes nothing.
        let edit = by_cookie(&app, "POST", "/api/auth/profile/edit", &browser, Some(&browser.csrf), Some(edit_body("X", ""))).await;
        refused(&edit);
        assert_eq!(app.profile(&other).await.body["data"]["first_name"], Value::Null);
        // Deactivated by an admin.
        let (browser, _) = login(&app, "sam@example.com").await;
        let deactivate = app.send("PATCH", "/api/users/sam", Some(&admin), Some(&json!({"activate": false}).to_string())).await;
        assert_eq!(deactivate.status.code, 200, "{}", deactivate.body);
        let reply = by_cookie(&app, "GET", "/api/auth/profile", &browser, None, None).await;
        refused(&reply);
        assert!(set_cookies(&reply).iter().all(SetCookie::clears));
    }

    async fn what_is_not_a_cookie_token_is_refused_and_cleared(backend) {
        let app = TestApp::new(&backend).await;
        app.register("sam").await;
        let (browser, _) = login(&app, "sam@example.com").await;
        let narrowed = {
            use biscuit_auth::Biscuit;
            let keys = app.client.rocket().state::<kernel::TokenKeys>().expect("keys");
            Biscuit::from_base64(&browser.access, keys.public_key())
                .expect("parse")
                .append(biscuit_auth::macros::block!(r#"check if operation("read");"#))
                .expect("append")
                .to_base64()
                .expect("b64")
        };
        let mut tampered = browser.access.clone().into_bytes();
        let i = tampered.len() / 2;
        tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).expect("ascii");
        for value in [browser.bearer.clone(), narrowed, tampered, "garbage".into(), "A".repeat(5000)] {
            let held = Browser { access: value.clone(), ..browser.clone() };
            let reply = by_cookie(&app, "GET", "/api/auth/profile", &held, None, None).await;
            refused(&reply);
            let cookies = set_cookies(&reply);
            assert!(cookies.len() == 2 && cookies.iter().all(SetCookie::clears), "{value:.20}: {cookies:?}");
        }
        // The cookie token is no Bearer token.
        app.profile(&browser.access).await.assert_error(401, INVALID);
        // Only the CSRF cookie: refused, and that cookie cleared.
        let reply = app.raw("GET", "/api/auth/profile", &[("Cookie", &format!("csrf_access_token={}", browser.csrf))], None).await;
        refused(&reply);
        let cookies = set_cookies(&reply);
        assert_eq!(cookies.len(), 1, "{cookies:?}");
        assert!(cookie(&cookies, "csrf_access_token").clears());
        // No cookie at all: refused, nothing set.
        let reply = app.raw("GET", "/api/auth/profile", &[], None).await;
        refused(&reply);
        assert!(reply.header_values("Set-Cookie").is_empty());
    }

    async fn a_bearer_request_is_judged_by_its_token_alone(backend) {
        let app = TestApp::new(&backend).await;
        app.register("sam").await;
        let (browser, _) = login(&app, "sam@example.com").await;
        let cookies = browser.header();
        // A valid Bearer token with a stale cookie: fine, no cookie touched, no CSRF asked.
        let fresh = app.login("sam@example.com", PASSWORD).await.token();
        let auth = format!("Bearer {fresh}");
        let stale = "access_token_cookie=garbage; csrf_access_token=nope";
        for cookie_header in [stale, cookies.as_str()] {
            let reply = app
                .raw("POST", "/api/auth/profile/edit", &[("Authorization", &auth), ("Cookie", cookie_header), ("Content-Type", "application/json")], Some(edit_body("Sam", "").to_string().into_bytes()))
                .await;
            assert_eq!(reply.status.code, 200);
            assert!(reply.header_values("Set-Cookie").is_empty());
        }
        // A dead Bearer token is not rescued by a valid cookie; another scheme neither.
        app.send("POST", "/api/auth/logout", Some(&fresh), None).await.assert_success(200, "successfully logged out");
        for (authorization, message) in [(auth.clone(), PROVIDE), ("Bearer garbage".into(), INVALID), ("Basic c2FtOng=".into(), PROVIDE)] {
            let reply = app
                .raw("GET", "/api/auth/profile", &[("Authorization", &authorization), ("Cookie", &cookies), ("X-CSRF-TOKEN", &browser.csrf)], None)
                .await;
            reply.json().assert_error(401, message);
            assert!(reply.header_values("Set-Cookie").is_empty(), "{authorization}");
        }
        // A narrowed Bearer token stays narrowed beside a full cookie.
        let bearer = app.login("sam@example.com", PASSWORD).await.token();
        let read_only = {
            use biscuit_auth::Biscuit;
            let keys = app.client.rocket().state::<kernel::TokenKeys>().expect("keys");
            Biscuit::from_base64(&bearer, keys.public_key())
                .expect("parse")
                .append(biscuit_auth::macros::block!(r#"check if operation("read");"#))
                .expect("append")
                .to_base64()
                .expect("b64")
        };
        let auth = format!("Bearer {read_only}");
        let reply = app
            .raw("POST", "/api/auth/profile/edit", &[("Authorization", &auth), ("Cookie", &cookies), ("X-CSRF-TOKEN", &browser.csrf), ("Content-Type", "application/json")], Some(edit_body("X", "").to_string().into_bytes()))
            .await;
        assert_eq!(reply.status.code, 403);
        assert!(reply.header_values("Set-Cookie").is_empty());
    }

    async fn the_csrf_value_is_the_sessions_on_every_instance(backend) {
        let app = TestApp::new(&backend).await;
        app.register("sam").await;
        let (browser, _) = login(&app, "sam@example.com").await;
        let second = TestApp::on(TestDb::shared(&app.db), |f| f).await;
        let edit = by_cookie(&second, "POST", "/api/auth/profile/edit", &browser, Some(&browser.csrf), Some(edit_body("", "from two"))).await;
        assert_eq!(edit.json().body["data"]["bio"], "from two");
        assert_eq!(cookie(&set_cookies(&edit), "csrf_access_token").value, browser.csrf);
        // Another session's value fails, and a second login has its own.
        let (other, _) = login(&app, "sam@example.com").await;
        assert_ne!(other.csrf, browser.csrf);
        refused(&by_cookie(&second, "POST", "/api/auth/profile/edit", &browser, Some(&other.csrf), Some(edit_body("", "x"))).await);
    }

    async fn the_sessions_list_marks_the_cookies_session_current(backend) {
        let app = TestApp::new(&backend).await;
        app.register("sam").await;
        let (browser, _) = login(&app, "sam@example.com").await;
        let id = session_id(&app, &browser.bearer).await;
        let list = by_cookie(&app, "GET", "/api/auth/sessions", &browser, None, None).await.json();
        let sessions = list.body["data"]["sessions"].as_array().expect("sessions").clone();
        assert_eq!(sessions.len(), 2, "the registration's and the login's");
        let current: Vec<&Value> = sessions.iter().filter(|s| s["current"] == true).collect();
        assert_eq!(current.len(), 1);
        assert_eq!(current[0]["id"].as_str(), Some(id.as_str()));
    }
}
