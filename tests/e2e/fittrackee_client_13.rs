//! FitTrackee 1.3.6's own web client in front of Stride, driven in headless Chromium as a user
//! drives it, on its cookie session (docs/browser-sessions.md): sign up, confirm the account
//! from the emailed link, log out and in, profile, preferences, change of address (confirmed
//! from its emailed link) and of password, picture, data export, log out (the old cookie then
//! dead at Stride), and as admin the users list and the instance settings.
//!
//! The client is the built `fittrackee/dist/` of FitTrackee 1.3.6's PyPI wheel
//! (`.ci/fittrackee-client 1.3.6`, pinned by hash; CI exports its folder as
//! STRIDE_TEST_FITTRACKEE_13_DIST); nothing of FitTrackee runs. The front server
//! (fittrackee_front.rs) serves it as FitTrackee 1.3.6 does and forwards `/api/*` to the real
//! `stride` binary, started with `accounts.email_confirmation = true` and emails delivered to a
//! folder (lettre's file transport, tests/support/mail_dir.rs).
//!
//! Every step is checked in the page and through Stride's API, with the browser's own cookies
//! (read over WebDriver, HttpOnly included) or a Bearer login of its own. On failure the test
//! saves a screenshot and the page's HTML, names them in its panic message, and lists the
//! client's `/api/` requests with their statuses.

use std::path::{Path, PathBuf};

use rocket::route::Route;
use serde_json::{json, Value};

use crate::chromium;
use crate::fittrackee_front::Answer;
use crate::fittrackee_front::{check, client_dist, front_server, until, ApiLog, Front, Step, Ui};
use crate::helpers::{
    agent, each_backend, png, run, start_with, stride, Mail, Server, TestDb, PASSWORD,
};
use crate::mail::free_port;

const NEW_PASSWORD: &str = "a brand new passphrase";

// WORKOUT STUBS: FitTrackee 1.3.6's workout-side endpoints, which are not part of the account API
// Stride implements. Each answers what FitTrackee 1.3.6 answers on an instance without any
// workout, sport, equipment or notification (docs/browser-sessions.md, "What FitTrackee
// 1.3.6's client calls outside the account API"), so its dashboard, profile and admin pages
// render.

/// One of the sports every FitTrackee instance is created with, none of them used: with an
/// empty list the dashboard shows its loader forever (it renders only with at least one sport).
#[rocket::get("/api/sports", rank = 1)]
fn sports() -> Answer {
    Answer::json(json!({"status": "success", "data": {"sports": [{
        "id": 1,
        "label": "Cycling (Sport)",
        "is_active": true,
        "is_active_for_user": true,
        "color": null,
        "stopped_speed_threshold": 1.0,
        "pace_speed_display": "speed",
        "default_equipments": [],
        "has_workouts": false,
    }]}}))
}

#[rocket::get("/api/equipments", rank = 1)]
fn equipments() -> Answer {
    Answer::json(json!({"status": "success", "data": {"equipments": []}}))
}

#[rocket::get("/api/equipment-types", rank = 1)]
fn equipment_types() -> Answer {
    Answer::json(json!({"status": "success", "data": {"equipment_types": []}}))
}

#[rocket::get("/api/notifications/unread", rank = 1)]
fn unread_notifications() -> Answer {
    Answer::json(json!({"status": "success", "unread": false}))
}

fn no_workouts() -> Answer {
    Answer::json(json!({
        "status": "success",
        "data": {"workouts": []},
        "pagination": {"has_next": false, "has_prev": false, "page": 1, "pages": 0, "total": 0},
    }))
}

/// `/api/workouts` and everything under it (a trailing segment matches none too).
#[rocket::get("/api/workouts/<_path..>", rank = 1)]
fn workouts(_path: PathBuf) -> Answer {
    no_workouts()
}

#[rocket::get("/api/timeline", rank = 1)]
fn timeline() -> Answer {
    no_workouts()
}

#[rocket::get("/api/records", rank = 1)]
fn records() -> Answer {
    Answer::json(json!({"status": "success", "data": {"records": []}}))
}

#[rocket::get("/api/stats/<_user>/<_kind>", rank = 1)]
fn user_stats(_user: &str, _kind: &str) -> Answer {
    Answer::json(json!({"status": "success", "data": {"statistics": {}}}))
}

fn workout_stubs() -> Vec<Route> {
    rocket::routes![
        sports,
        equipments,
        equipment_types,
        unread_notifications,
        workouts,
        timeline,
        records,
        user_stats
    ]
}

// ---- Stride's API, beside the client -------------------------------------------------------

/// The browser's cookies for the front server's origin: the `Cookie` header it sends, and the
/// CSRF value its client copies into `X-CSRF-TOKEN`.
async fn browser_cookies(ui: &Ui) -> Step<(String, Option<String>)> {
    let cookies = ui
        .browser
        .get_all_cookies()
        .await
        .map_err(|e| format!("the browser's cookies: {e}"))?;
    let header = cookies
        .iter()
        .map(|c| format!("{}={}", c.name(), c.value()))
        .collect::<Vec<_>>()
        .join("; ");
    let csrf = cookies
        .iter()
        .find(|c| c.name() == "csrf_access_token")
        .map(|c| c.value().to_owned());
    Ok((header, csrf))
}

/// One call to Stride directly: with `Cookie: cookies` (and `X-CSRF-TOKEN: csrf`) when given,
/// else with `Authorization: Bearer token` when given.
fn api(
    stride: &Server,
    method: &str,
    path: &str,
    auth: &Auth,
    body: Option<Value>,
) -> (u16, Value) {
    tokio::task::block_in_place(|| {
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", stride.base))
            .header("Content-Type", "application/json");
        match auth {
            Auth::None => {}
            Auth::Bearer(token) => {
                request = request.header("Authorization", format!("Bearer {token}"));
            }
            Auth::Cookies(cookies, csrf) => {
                request = request.header("Cookie", cookies);
                if let Some(csrf) = csrf {
                    request = request.header("X-CSRF-TOKEN", csrf);
                }
            }
        }
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut response = agent()
            .run(request.body(body).expect("request"))
            .expect("Stride answers");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    })
}

enum Auth {
    None,
    Bearer(String),
    Cookies(String, Option<String>),
}

/// The profile Stride gives for the browser's current session.
async fn session_profile(ui: &Ui, stride: &Server) -> Step<Value> {
    let (cookies, csrf) = browser_cookies(ui).await?;
    let (status, body) = api(
        stride,
        "GET",
        "/api/auth/profile",
        &Auth::Cookies(cookies.clone(), csrf),
        None,
    );
    check(
        status == 200,
        format!("GET /api/auth/profile with the browser's cookies ({cookies}): {status} {body}"),
    )?;
    Ok(body["data"].clone())
}

/// A Bearer login of the test's own, beside the browser's.
fn bearer_login(stride: &Server, email: &str, password: &str) -> (u16, Option<String>) {
    let (status, body) = api(
        stride,
        "POST",
        "/api/auth/login",
        &Auth::None,
        Some(json!({"email": email, "password": password})),
    );
    (status, body["auth_token"].as_str().map(String::from))
}

/// The link to `page` (`/account-confirmation`, `/email-update`…) in the `nth` email (from 1)
/// delivered to `to`, waiting for it.
async fn emailed_link(mail: &Mail, ui: &Ui, to: &str, page: &str, nth: usize) -> Step<String> {
    let marker = format!("{}{page}?token=", ui.base);
    let texts = until(&format!("email {nth} to {to}"), || async {
        let texts = mail.to(to);
        Ok((texts.len() >= nth).then_some(texts))
    })
    .await?;
    let text = &texts[nth - 1];
    let (_, rest) = text
        .split_once(&marker)
        .ok_or_else(|| format!("no {marker} link in the email to {to}: {text}"))?;
    let token: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
    Ok(format!("{marker}{token}"))
}

// ---- The client, as a user works it --------------------------------------------------------

async fn log_in(ui: &Ui, email: &str, password: &str) -> Step<()> {
    ui.open("/login").await?;
    ui.type_into("#user-auth-form #email", email).await?;
    ui.type_into("#user-auth-form #password", password).await?;
    ui.click("#user-auth-form button[type=submit]").await
}

/// The navigation's log-out button and its confirmation; the client goes to `/login`.
async fn log_out(ui: &Ui) -> Step<()> {
    ui.click("#nav .logout-button").await?;
    ui.click("#modal #confirm-button").await?;
    ui.at("/login").await
}

/// Every flow, in the order a new user and then an admin would go through them.
async fn flows(ui: &Ui, server: &Server, mail: &Mail, dir: &Path, db_url: &str) -> Step<()> {
    // Sign up: the account awaits its confirmation; no session yet.
    ui.open("/register").await?;
    ui.type_into("#user-auth-form #username", "sam").await?;
    ui.type_into("#user-auth-form #email", "sam@example.com")
        .await?;
    ui.type_into("#user-auth-form #password", PASSWORD).await?;
    ui.click("#user-auth-form #accepted_policy").await?;
    ui.click("#user-auth-form button[type=submit]").await?;
    ui.at("/login").await?;
    ui.find("#user-auth-form .success-message").await?;
    check(
        bearer_login(server, "sam@example.com", PASSWORD).0 == 401,
        "an account not confirmed yet logs in",
    )?;

    // The emailed link, opened in the client's page, confirms the account and opens a cookie
    // session: the client shows the dashboard.
    let link = emailed_link(mail, ui, "sam@example.com", "/account-confirmation", 1).await?;
    ui.browser
        .goto(&link)
        .await
        .map_err(|e| format!("open {link}: {e}"))?;
    ui.at("/").await?;
    ui.find("#dashboard").await?;
    let profile = session_profile(ui, server).await?;
    check(
        profile["username"] == "sam",
        format!("the confirmation's session is not sam's: {profile}"),
    )?;

    // Log out, then in: a wrong password shows the client's message; the old cookie is dead.
    let (old_cookies, _) = browser_cookies(ui).await?;
    log_out(ui).await?;
    let (status, body) = api(
        server,
        "GET",
        "/api/auth/profile",
        &Auth::Cookies(old_cookies, None),
        None,
    );
    check(
        status == 401,
        format!("the logged-out confirmation session answers {status} {body}"),
    )?;
    log_in(ui, "sam@example.com", "not the password").await?;
    ui.shows("#user-auth-form .error-message", &["Invalid credentials."])
        .await?;
    log_in(ui, "sam@example.com", PASSWORD).await?;
    ui.at("/").await?;
    ui.find("#dashboard").await?;
    session_profile(ui, server).await?;

    // Edit the profile; after a reload the profile page shows what was saved.
    ui.open("/profile/edit").await?;
    ui.type_into("#first_name", "Samuel").await?;
    ui.type_into("#last_name", "Vimes").await?;
    ui.type_into("#location", "Ankh-Morpork").await?;
    ui.type_into("#bio", "Commander of the City Watch").await?;
    // A date field takes keys in the browser's order (en-US: month, day, year): 4 May 1990.
    ui.type_into("#birth_date", "05041990").await?;
    ui.click("#user-infos-edition button[type=submit]").await?;
    ui.at("/profile").await?;
    ui.browser
        .refresh()
        .await
        .map_err(|e| format!("reload: {e}"))?;
    ui.shows(
        "#user-infos",
        &[
            "Samuel",
            "Vimes",
            "Ankh-Morpork",
            "Commander of the City Watch",
        ],
    )
    .await?;
    let saved = session_profile(ui, server).await?;
    check(
        saved["first_name"] == "Samuel"
            && saved["location"] == "Ankh-Morpork"
            && saved["birth_date"]
                .as_str()
                .is_some_and(|d| d.contains("04 May 1990")),
        format!("the profile Stride holds: {saved}"),
    )?;

    // Preferences: Paris, dates as yyyy-MM-dd, the dark theme.
    ui.open("/profile/edit/preferences").await?;
    // The time zone field is no v-model: WebDriver's clear leaves the client's value, typing over
    // a selection replaces it.
    ui.find("#timezone").await?;
    ui.js("const field = document.querySelector('#timezone'); field.focus(); field.select();")
        .await?;
    ui.find("#timezone")
        .await?
        .send_keys("Europe/Par")
        .await
        .map_err(|e| format!("type into #timezone: {e}"))?;
    ui.click(".tz-dropdown-item").await?;
    ui.select("#date_format", "yyyy-MM-dd").await?;
    ui.select("#use_dark_mode", "true").await?;
    ui.click("#user-preferences-edition button[type=submit]")
        .await?;
    ui.at("/profile/preferences").await?;
    ui.browser
        .refresh()
        .await
        .map_err(|e| format!("reload: {e}"))?;
    ui.shows("#user-preferences", &["Europe/Paris"]).await?;
    let saved = session_profile(ui, server).await?;
    check(
        saved["timezone"] == "Europe/Paris"
            && saved["date_format"] == "yyyy-MM-dd"
            && saved["use_dark_mode"] == true,
        format!("the preferences Stride holds: {saved}"),
    )?;

    // A new address from the account page: confirmed from the link emailed to it, opened in
    // the client's page.
    ui.open("/profile/edit/account").await?;
    ui.type_into("#user-account-edition #email", "samuel@example.org")
        .await?;
    ui.type_into("#user-account-edition #password-field", PASSWORD)
        .await?;
    ui.click("#user-account-edition button.confirm[type=submit]")
        .await?;
    ui.find("#user-account-edition .success-message").await?;
    let saved = session_profile(ui, server).await?;
    check(
        saved["email"] == "sam@example.com" && saved["email_to_confirm"] == "samuel@example.org",
        format!("the change of address Stride holds: {saved}"),
    )?;
    let link = emailed_link(mail, ui, "samuel@example.org", "/email-update", 1).await?;
    ui.browser
        .goto(&link)
        .await
        .map_err(|e| format!("open {link}: {e}"))?;
    ui.at("/profile/edit/account").await?;
    until("the new address in the account form", || async {
        let value = ui
            .find("#user-account-edition #email")
            .await?
            .prop("value")
            .await
            .map_err(|e| e.to_string())?;
        Ok((value.as_deref() == Some("samuel@example.org")).then_some(()))
    })
    .await?;
    let saved = session_profile(ui, server).await?;
    check(
        saved["email"] == "samuel@example.org",
        format!("the address Stride holds after the link: {saved}"),
    )?;

    // A new password from the account page: the old one no longer logs in, the new one does.
    ui.open("/profile/edit/account").await?;
    ui.type_into("#user-account-edition #password-field", PASSWORD)
        .await?;
    ui.type_into("#user-account-edition #new-password-field", NEW_PASSWORD)
        .await?;
    ui.click("#user-account-edition button.confirm[type=submit]")
        .await?;
    ui.find("#user-account-edition .success-message").await?;
    check(
        bearer_login(server, "samuel@example.org", PASSWORD).0 == 401,
        "the old password still logs in",
    )?;
    let (status, token) = bearer_login(server, "samuel@example.org", NEW_PASSWORD);
    check(status == 200, format!("the new password logs in: {status}"))?;
    let token = token.ok_or("no auth_token in the login's answer")?;
    session_profile(ui, server).await?;

    // Upload a picture: the client shows it, fetched from Stride.
    let picture = dir.join("picture.png");
    std::fs::write(&picture, png(64, 48)).map_err(|e| e.to_string())?;
    ui.open("/profile/edit/picture").await?;
    ui.find("#user-picture-edition input[type=file]")
        .await?
        .send_keys(&picture.display().to_string())
        .await
        .map_err(|e| format!("choose the picture: {e}"))?;
    ui.click("#user-picture-edition button[type=submit]")
        .await?;
    ui.at("/profile").await?;
    let width = until("the uploaded picture shown", || async {
        let width = ui
            .js(
                "const img = document.querySelector('#user img.profile-user-img, \
                 img.profile-user-img'); \
                 return img && img.complete ? img.naturalWidth : 0",
            )
            .await?;
        Ok(width.as_u64().filter(|w| *w > 0))
    })
    .await?;
    check(
        width == 64,
        format!("the picture shown is {width} pixels wide, not 64"),
    )?;
    check(
        session_profile(ui, server).await?["picture"] == true,
        "Stride has no picture after the upload",
    )?;

    // A data export from the account page: the client shows the request, Stride holds it.
    ui.open("/profile/edit/account").await?;
    ui.click("#user-account-edition .form-buttons button.confirm:not([type=submit])")
        .await?;
    ui.find("#user-account-edition .data-export").await?;
    let (status, body) = api(
        server,
        "GET",
        "/api/auth/account/export",
        &Auth::Bearer(token.clone()),
        None,
    );
    check(
        status == 200 && body["request"].is_object(),
        format!("the export request Stride holds: {status} {body}"),
    )?;

    // Log out: the client calls Stride, which ends the session; its cookie is dead.
    let (old_cookies, old_csrf) = browser_cookies(ui).await?;
    log_out(ui).await?;
    let (status, body) = api(
        server,
        "GET",
        "/api/auth/profile",
        &Auth::Cookies(old_cookies.clone(), old_csrf.clone()),
        None,
    );
    check(
        status == 401,
        format!("the logged-out session's cookie answers {status} {body}"),
    )?;
    let (cookies, _) = browser_cookies(ui).await?;
    check(
        !cookies.contains("access_token_cookie="),
        format!("the browser kept a session cookie after logging out: {cookies}"),
    )?;

    // The operator makes sam an admin (the CLI, on the server's database); bob signs up.
    let granted = tokio::task::block_in_place(|| {
        run(stride(dir, Some(db_url)).args(["users", "set-admin", "sam"]))
    });
    check(
        granted.status.success(),
        format!(
            "stride users set-admin: {}",
            String::from_utf8_lossy(&granted.stderr)
        ),
    )?;

    // As admin: the users list, then the instance settings.
    log_in(ui, "samuel@example.org", NEW_PASSWORD).await?;
    ui.at("/").await?;
    ui.open("/admin/users").await?;
    ui.shows("#admin-users", &["sam"]).await?;
    ui.open("/admin/application/edit").await?;
    ui.type_into("#admin-app #max_users", "42").await?;
    ui.click("#admin-app button[type=submit]").await?;
    ui.at("/admin/application").await?;
    let (status, body) = api(server, "GET", "/api/config", &Auth::None, None);
    check(
        status == 200 && body["data"]["max_users"] == 42,
        format!("the instance settings Stride holds: {status} {body}"),
    )?;
    Ok(())
}

each_backend! {
    async fn fittrackee_1_3_6_web_client_runs_every_account_flow(backend) {
        let Some(dist) = client_dist("STRIDE_TEST_FITTRACKEE_13_DIST", "1.3.6") else { return };
        let Some(chromium) = chromium::start(1280, 1000).await else { return };
        let db = TestDb::new(&backend).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let mail = Mail::new();

        let front_port = free_port();
        let front_base = format!("http://127.0.0.1:{front_port}");
        let (path, url, public_url, email) = (
            dir.path().to_owned(),
            db.url.clone(),
            front_base.clone(),
            format!("{{url=\"{}\"}}", mail.url()),
        );
        let stride = tokio::task::spawn_blocking(move || {
            start_with(&path, Some(&url), |command| {
                command
                    .env("ROCKET_PUBLIC_URL", public_url)
                    .env("ROCKET_EMAIL", email)
                    .env("ROCKET_ACCOUNTS", "{email_confirmation=true}");
            })
        })
        .await
        .expect("join");
        let log = ApiLog::default();
        let front = Front::launch(front_server(&dist, front_port, &stride.base, workout_stubs(), log.clone()), front_port).await;

        let ui = Ui { browser: chromium.client.clone(), base: front_base };
        let outcome = flows(&ui, &stride, &mail, dir.path(), &db.url).await;
        if let Err(failure) = outcome {
            let name = format!("fittrackee-1.3.6-{}", if matches!(backend, crate::helpers::Backend::Sqlite) { "sqlite" } else { "postgres" });
            ui.fail(&name, &failure, &log).await;
        }
        ui.browser.clone().close().await.expect("close the browser");
        front.stop().await;
    }
}
