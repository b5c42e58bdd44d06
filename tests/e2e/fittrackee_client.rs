//! FitTrackee 0.5.7's own web client in front of Stride, driven in headless Chromium as a user
//! drives it: sign up, log in, profile, preferences, picture, log out, password reset from the
//! emailed link, the admin's users list, a user's page, and deleting one's account.
//!
//! The client is the built `fittrackee/dist/` of FitTrackee's PyPI wheel (`.ci/fittrackee-client
//! 0.5.7` fetches it, pinned by hash, and CI exports its folder as STRIDE_TEST_FITTRACKEE_DIST);
//! nothing of FitTrackee runs. The front server (fittrackee_front.rs, shared with the 1.3.6
//! client's test) serves it as FitTrackee 0.5.7 does (`fittrackee/__init__.py`, `catch_all`):
//! files under `/static/` and `/img/` as they are, `/favicon.ico`, `index.html` for every other
//! path, and `/api/*` to Stride, the real binary (its public_url is the front server's, so its
//! emails link to the client's pages).
//!
//! The client also calls workout endpoints (`/api/sports`, `/api/workouts…`, `/api/stats/…`,
//! `/api/records`), which belong to the rest of FitTrackee, not to its account API: the front
//! server answers those itself, as a FitTrackee instance without any workout or sport would
//! (`WORKOUT STUBS` below). Everything else reaches Stride unchanged.
//!
//! On failure the test saves a screenshot and the page's HTML in the test target's temporary
//! folder and names them in its panic message, with the client's `/api/` requests.

use std::path::{Path, PathBuf};

use fantoccini::elements::Element;
use fantoccini::Locator;
use rocket::route::Route;
use rocket::State;
use serde_json::{json, Value};

use crate::chromium;
use crate::fittrackee_front::{
    check, client_dist, forward, front_server, until, Answer, ApiLog, Forwarded, Front, Step,
    StrideBase, Ui,
};
use crate::helpers::{each_backend, png, run, start_with, stride, Server, TestDb, PASSWORD};
use crate::mail::{free_port, SmtpServer};

const NEW_PASSWORD: &str = "a brand new passphrase";

// WORKOUT STUBS: FitTrackee's workout endpoints, which are not part of the account API Stride
// implements. Each answers what FitTrackee 0.5.7 answers on an instance without any workout or
// sport (its `workouts`, `sports` and `stats` blueprints), so the client's dashboard, profile
// and admin pages render.

#[rocket::get("/api/sports", rank = 1)]
fn sports() -> Answer {
    Answer::json(json!({"status": "success", "data": {"sports": []}}))
}

#[rocket::get("/api/workouts/<_path..>", rank = 1)]
fn workouts(_path: PathBuf) -> Answer {
    Answer::json(json!({
        "status": "success",
        "data": {"workouts": []},
        "pagination": {"has_next": false, "has_prev": false, "page": 1, "pages": 0, "total": 0},
    }))
}

#[rocket::get("/api/records", rank = 1)]
fn records() -> Answer {
    Answer::json(json!({"status": "success", "data": {"records": []}}))
}

#[rocket::get("/api/stats/<_user>/<_kind>", rank = 1)]
fn user_stats(_user: &str, _kind: &str) -> Answer {
    Answer::json(json!({"status": "success", "data": {"statistics": {}}}))
}

/// The admin's instance statistics: no workouts, sports or uploads; the number of users is
/// Stride's (its users list's total, asked with the caller's token, so a non-admin gets Stride's
/// refusal).
#[rocket::get("/api/stats/all", rank = 1)]
async fn instance_stats(headers: Forwarded, stride: &State<StrideBase>) -> Answer {
    let (stride, headers) = (stride.0.clone(), headers.0);
    let answer = tokio::task::spawn_blocking(move || {
        forward(
            &stride,
            "GET",
            "/api/users?per_page=1",
            &headers,
            Vec::new(),
        )
    })
    .await
    .expect("join");
    if answer.status != 200 {
        return answer;
    }
    let users: Value = serde_json::from_slice(&answer.body).unwrap_or_default();
    Answer::json(json!({
        "status": "success",
        "data": {
            "users": users["pagination"]["total"],
            "workouts": 0,
            "sports": 0,
            "uploads_dir_size": 0,
        },
    }))
}

/// The stubs above, for the front server.
fn workout_stubs() -> Vec<Route> {
    rocket::routes![sports, workouts, records, user_stats, instance_stats]
}

// ---- The browser, as a user works it -------------------------------------------------------

impl Ui {
    /// The session token the client keeps (FitTrackee 0.5.7 stores it in localStorage).
    async fn token(&self) -> Step<Option<String>> {
        Ok(self
            .js("return window.localStorage.getItem('authToken')")
            .await?
            .as_str()
            .map(String::from))
    }

    async fn log_in(&self, email: &str, password: &str) -> Step<()> {
        self.open("/login").await?;
        self.type_into("#email", email).await?;
        self.type_into("#password", password).await?;
        self.click("#user-auth-form button[type=submit]").await
    }

    async fn log_out(&self) -> Step<()> {
        self.click(".nav-items-user-menu .nav-link").await?;
        self.at("/login").await?;
        check(
            self.token().await?.is_none(),
            "the client kept its token after logging out",
        )
    }

    /// The admin users table's row of `username`.
    async fn user_row(&self, username: &str) -> Step<Element> {
        until(&format!("{username}'s row in the users table"), || async {
            let rows = self
                .browser
                .find_all(Locator::Css("#admin-users tbody tr"))
                .await
                .map_err(|e| e.to_string())?;
            for row in rows {
                let name = row
                    .find(Locator::Css("a[href^='/users/']"))
                    .await
                    .map_err(|e| e.to_string())?;
                if name.text().await.map_err(|e| e.to_string())? == username {
                    return Ok(Some(row));
                }
            }
            Ok(None)
        })
        .await
    }

    /// Waits until `username`'s row shows the admin mark (`fa-check-square-o`) or its absence.
    async fn row_admin(&self, username: &str, admin: bool) -> Step<()> {
        let mark = if admin {
            "fa-check-square-o"
        } else {
            "fa-square-o"
        };
        until(&format!("{username}'s row marked {mark}"), || async {
            let row = self.user_row(username).await?;
            Ok(row
                .find(Locator::Css(&format!("i.{mark}")))
                .await
                .is_ok()
                .then_some(()))
        })
        .await
    }
}

/// One call to Stride's API, directly (not through the client).
fn api(
    stride: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    tokio::task::block_in_place(|| crate::helpers::call_ok(stride, method, path, token, body))
}

fn profile(stride: &Server, token: &str) -> Step<Value> {
    let (status, body) = api(stride, "GET", "/api/auth/profile", Some(token), None);
    check(
        status == 200,
        format!("GET /api/auth/profile: {status} {body}"),
    )?;
    Ok(body["data"].clone())
}

/// Every flow, in the order a new user and then an admin would go through them.
async fn flows(ui: &Ui, server: &Server, smtp: &SmtpServer, dir: &Path, db_url: &str) -> Step<()> {
    // Sign up: the client stores the token Stride gives and shows the dashboard.
    ui.open("/register").await?;
    ui.type_into("#username", "sam").await?;
    ui.type_into("#email", "sam@example.com").await?;
    ui.type_into("#password", PASSWORD).await?;
    ui.type_into("#confirm-password", PASSWORD).await?;
    ui.click("#user-auth-form button[type=submit]").await?;
    ui.at("/").await?;
    ui.shows(".nav-items-user-menu a[href='/profile']", &["sam"])
        .await?;
    let token = ui
        .token()
        .await?
        .ok_or("no token stored after signing up")?;
    check(
        profile(server, &token)?["username"] == "sam",
        "the stored token is not sam's session",
    )?;

    // Log out (FitTrackee 0.5.7's client forgets its token; it never calls /api/auth/logout),
    // then log in: a wrong password shows the client's message for Stride's answer.
    ui.log_out().await?;
    ui.log_in("sam@example.com", "not the password").await?;
    ui.shows("#user-auth-form .error-message", &["Invalid credentials."])
        .await?;
    ui.log_in("sam@example.com", PASSWORD).await?;
    ui.at("/").await?;
    let token = ui
        .token()
        .await?
        .ok_or("no token stored after logging in")?;

    // Edit the profile; after a reload the profile page shows what was saved.
    ui.open("/profile/edit").await?;
    until("the edit form filled from the profile", || async {
        let email = ui
            .find("#email")
            .await?
            .prop("value")
            .await
            .map_err(|e| e.to_string())?;
        Ok((email.as_deref() == Some("sam@example.com")).then_some(()))
    })
    .await?;
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
            "04/05/1990",
        ],
    )
    .await?;
    let saved = profile(server, &token)?;
    check(
        saved["first_name"] == "Samuel"
            && saved["location"] == "Ankh-Morpork"
            && saved["birth_date"]
                .as_str()
                .is_some_and(|d| d.contains("04 May 1990")),
        format!("the profile Stride holds: {saved}"),
    )?;

    // Preferences: French, Paris, weeks from Monday, imperial units; the client then speaks
    // French.
    ui.open("/profile/edit/preferences").await?;
    ui.select("#language", "fr").await?;
    ui.type_into("#timezone", "Europe/Par").await?;
    ui.click(".tz-dropdown-item").await?;
    ui.select("#weekm", "true").await?;
    ui.select("#imperial_units", "true").await?;
    ui.click("#user-preferences-edition button[type=submit]")
        .await?;
    ui.at("/profile/preferences").await?;
    ui.browser
        .refresh()
        .await
        .map_err(|e| format!("reload: {e}"))?;
    ui.shows(
        "#user-preferences",
        &["Français", "Europe/Paris", "Lundi", "impérial"],
    )
    .await?;
    ui.shows("#nav", &["Se déconnecter"]).await?;
    let saved = profile(server, &token)?;
    check(
        saved["language"] == "fr"
            && saved["timezone"] == "Europe/Paris"
            && saved["weekm"] == true
            && saved["imperial_units"] == true,
        format!("the preferences Stride holds: {saved}"),
    )?;

    // Upload a picture: the client shows it, fetched from Stride; then remove it.
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
                "const img = document.querySelector('.user-header img.profile-user-img'); \
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
        profile(server, &token)?["picture"] == true,
        "Stride has no picture after the upload",
    )?;
    ui.open("/profile/edit/picture").await?;
    ui.click("#user-picture-edition button.danger").await?;
    ui.at("/profile").await?;
    ui.find(".user-header .no-picture").await?;
    check(
        profile(server, &token)?["picture"] == false,
        "Stride kept the picture after its removal",
    )?;

    // Log out; ask for a reset; follow the emailed link (French, as sam prefers) to the
    // client's page; the old password no longer works, the new one does.
    ui.log_out().await?;
    ui.open("/password-reset/request").await?;
    ui.type_into("#email", "sam@example.com").await?;
    ui.click("#user-auth-form button[type=submit]").await?;
    ui.at("/password-reset/sent").await?;
    let email = smtp.wait_for(1).await.remove(0);
    check(
        email.to.contains("sam@example.com") && email.subject.contains("réinitialisation"),
        format!(
            "the reset email: to {}, subject {}",
            email.to, email.subject
        ),
    )?;
    let (link, _) = email.link();
    check(
        link.starts_with(&format!("{}/password-reset?token=", ui.base)),
        format!("the reset link {link} does not lead to the client's page"),
    )?;
    ui.browser
        .goto(&link)
        .await
        .map_err(|e| format!("open the link: {e}"))?;
    ui.type_into("#password", NEW_PASSWORD).await?;
    ui.type_into("#confirm-password", NEW_PASSWORD).await?;
    ui.click("#user-auth-form button[type=submit]").await?;
    ui.at("/password-reset/password-updated").await?;
    ui.log_in("sam@example.com", PASSWORD).await?;
    ui.shows("#user-auth-form .error-message", &["Invalid credentials."])
        .await?;
    ui.log_in("sam@example.com", NEW_PASSWORD).await?;
    ui.at("/").await?;
    let (status, _) = api(server, "GET", "/api/auth/profile", Some(&token), None);
    check(
        status == 401,
        format!("a session from before the reset answers {status}"),
    )?;
    let token = ui
        .token()
        .await?
        .ok_or("no token stored after logging in")?;

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
    let (status, body) = api(
        server,
        "POST",
        "/api/auth/register",
        None,
        Some(
            json!({"username": "bob", "email": "bob@example.com", "password": PASSWORD, "password_conf": PASSWORD}),
        ),
    );
    check(status == 201, format!("bob's sign-up: {status} {body}"))?;

    // As admin: the users list, make bob admin and take it back, bob's page.
    ui.open("/admin/users").await?;
    ui.row_admin("sam", true).await?;
    ui.row_admin("bob", false).await?;
    let own = ui
        .user_row("sam")
        .await?
        .find(Locator::Css("button"))
        .await
        .map_err(|e| e.to_string())?;
    check(
        own.attr("disabled")
            .await
            .map_err(|e| e.to_string())?
            .is_some(),
        "the admin can take away their own rights from the list",
    )?;
    let bob_admin = |expected: bool| {
        let (status, body) = api(server, "GET", "/api/users/bob", Some(&token), None);
        check(
            status == 200 && body["data"]["users"][0]["admin"] == expected,
            format!("bob's admin flag should be {expected}: {status} {body}"),
        )
    };
    for admin in [true, false] {
        ui.user_row("bob")
            .await?
            .find(Locator::Css("button"))
            .await
            .map_err(|e| e.to_string())?
            .click()
            .await
            .map_err(|e| format!("click bob's button: {e}"))?;
        ui.row_admin("bob", admin).await?;
        bob_admin(admin)?;
    }
    ui.open("/users/bob").await?;
    ui.shows("#user .user-name", &["bob"]).await?;
    ui.open("/admin").await?;
    ui.shows("#admin-menu .stat-huge", &["2"]).await?;

    // As bob: delete the account from the profile form; the client logs out; the account and
    // its session are gone.
    ui.log_out().await?;
    ui.log_in("bob@example.com", PASSWORD).await?;
    ui.at("/").await?;
    let bob_token = ui.token().await?.ok_or("no token stored for bob")?;
    ui.open("/profile/edit").await?;
    ui.click("#user-infos-edition button.danger").await?;
    ui.click("#modal button.confirm").await?;
    ui.at("/login").await?;
    check(ui.token().await?.is_none(), "the client kept bob's token")?;
    let (status, _) = api(server, "GET", "/api/auth/profile", Some(&bob_token), None);
    check(
        status == 401,
        format!("bob's session after the deletion answers {status}"),
    )?;
    let (status, _) = api(server, "GET", "/api/users/bob", Some(&token), None);
    check(
        status == 404,
        format!("bob's account after the deletion answers {status}"),
    )?;
    ui.log_in("bob@example.com", PASSWORD).await?;
    ui.shows("#user-auth-form .error-message", &["Invalid credentials."])
        .await?;
    Ok(())
}

each_backend! {
    async fn fittrackee_0_5_7_web_client_runs_every_account_flow(backend) {
        let Some(dist) = client_dist("STRIDE_TEST_FITTRACKEE_DIST", "0.5.7") else { return };
        let Some(smtp) = SmtpServer::start() else { return };
        let Some(chromium) = chromium::start(1280, 1000).await else { return };
        let db = TestDb::new(&backend).await;
        let dir = tempfile::tempdir().expect("temp dir");

        let front_port = free_port();
        let front_base = format!("http://127.0.0.1:{front_port}");
        let (path, url, public_url, email) = (
            dir.path().to_owned(),
            db.url.clone(),
            front_base.clone(),
            format!("{{url=\"{}\"}}", smtp.url()),
        );
        let stride = tokio::task::spawn_blocking(move || {
            start_with(&path, Some(&url), |command| {
                command.env("ROCKET_PUBLIC_URL", public_url).env("ROCKET_EMAIL", email);
            })
        })
        .await
        .expect("join");
        let log = ApiLog::default();
        let front = Front::launch(front_server(&dist, front_port, &stride.base, workout_stubs(), log.clone()), front_port).await;

        let ui = Ui { browser: chromium.client.clone(), base: front_base };
        let outcome = flows(&ui, &stride, &smtp, dir.path(), &db.url).await;
        if let Err(failure) = outcome {
            let name = format!("fittrackee-0.5.7-{}", if matches!(backend, crate::helpers::Backend::Sqlite) { "sqlite" } else { "postgres" });
            ui.fail(&name, &failure, &log).await;
        }
        ui.browser.clone().close().await.expect("close the browser");
        front.stop().await;
    }
}
