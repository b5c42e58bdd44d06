//! FitTrackee 0.5.7's own web client in front of Stride, driven in headless Chromium as a user
//! drives it: sign up, log in, profile, preferences, picture, log out, password reset from the
//! emailed link, the admin's users list, a user's page, and deleting one's account.
//!
//! The client is the built `fittrackee/dist/` of FitTrackee's PyPI wheel (`.ci/fittrackee-client
//! 0.5.7` fetches it, pinned by hash, and CI exports its folder as STRIDE_TEST_FITTRACKEE_DIST);
//! nothing of FitTrackee runs. The test's front server serves it as FitTrackee 0.5.7 does
//! (`fittrackee/__init__.py`, `catch_all`): files under `/static/` and `/img/` as they are,
//! `/favicon.ico`, `index.html` for every other path, and `/api/*` to Stride, the real binary
//! (its public_url is the front server's, so its emails link to the client's pages).
//!
//! The client also calls workout endpoints (`/api/sports`, `/api/workouts…`, `/api/stats/…`,
//! `/api/records`), which belong to the rest of FitTrackee, not to its account API: the front
//! server answers those itself, as a FitTrackee instance without any workout or sport would
//! (`WORKOUT STUBS` below). Everything else reaches Stride unchanged.
//!
//! On failure the test saves a screenshot and the page's HTML in the test target's temporary
//! folder and names them in its panic message.

use std::future::Future;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, Locator};
use rocket::data::ToByteUnit;
use rocket::fs::{FileServer, NamedFile, Options};
use rocket::http::{Method, Status};
use rocket::request::{self, FromRequest};
use rocket::response::{self, Responder, Response};
use rocket::route::{Handler, Outcome, Route};
use rocket::{Data, Request, State};
use serde_json::{json, Value};

use crate::chromium::{self, save_screenshot, wait_for_port};
use crate::helpers::{agent, each_backend, png, run, start_with, stride, Server, TestDb, PASSWORD};
use crate::mail::{free_port, required, SmtpServer};

const NEW_PASSWORD: &str = "a brand new passphrase";
/// How long one step may take to show in the page.
const STEP: Duration = Duration::from_secs(15);

/// The client's `dist/` folder, or `None` (the test skips) outside CI when it is not there.
fn client_dist() -> Option<PathBuf> {
    let dist = std::env::var_os("STRIDE_TEST_FITTRACKEE_DIST").map(PathBuf::from);
    match dist {
        Some(dist) if dist.join("index.html").is_file() => Some(dist),
        _ => {
            assert!(
                !required(),
                "STRIDE_TEST_FITTRACKEE_DIST must name FitTrackee 0.5.7's dist/ folder in CI \
                 (.ci/fittrackee-client 0.5.7 prints it)"
            );
            eprintln!(
                "STRIDE_TEST_FITTRACKEE_DIST is not set: FitTrackee web client test skipped \
                 (export STRIDE_TEST_FITTRACKEE_DIST=$(.ci/fittrackee-client 0.5.7))"
            );
            None
        }
    }
}

// ---- The front server ----------------------------------------------------------------------

/// One answer, as Stride (or a stub) gave it.
struct Answer {
    status: u16,
    content_type: Option<String>,
    body: Vec<u8>,
}

impl Answer {
    fn json(body: Value) -> Answer {
        Answer {
            status: 200,
            content_type: Some("application/json".into()),
            body: body.to_string().into_bytes(),
        }
    }
}

impl<'r> Responder<'r, 'static> for Answer {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let mut response = Response::build();
        response.status(Status::new(self.status));
        if let Some(content_type) = self.content_type {
            response.raw_header("Content-Type", content_type);
        }
        response.sized_body(self.body.len(), Cursor::new(self.body));
        response.ok()
    }
}

/// The request headers a FitTrackee client's calls depend on.
const FORWARDED: [&str; 3] = ["Authorization", "Content-Type", "Accept-Language"];

/// Sends one request to Stride and returns its answer (blocking: run it off the runtime).
fn forward(
    stride: &str,
    method: &str,
    uri: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> Answer {
    let mut request = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{stride}{uri}"));
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let request = request.body(body).expect("a request");
    match agent().run(request) {
        Ok(mut response) => Answer {
            status: response.status().as_u16(),
            content_type: response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .map(String::from),
            body: response
                .body_mut()
                .with_config()
                .limit(64 << 20)
                .read_to_vec()
                .unwrap_or_default(),
        },
        Err(e) => Answer {
            status: 502,
            content_type: Some("text/plain".into()),
            body: format!("Stride did not answer: {e}").into_bytes(),
        },
    }
}

fn forwarded_headers(request: &Request<'_>) -> Vec<(String, String)> {
    FORWARDED
        .iter()
        .filter_map(|name| {
            request
                .headers()
                .get_one(name)
                .map(|v| (name.to_string(), v.to_string()))
        })
        .collect()
}

/// The request's [`FORWARDED`] headers, as a route's guard.
struct Forwarded(Vec<(String, String)>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Forwarded {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> request::Outcome<Self, Self::Error> {
        request::Outcome::Success(Forwarded(forwarded_headers(request)))
    }
}

/// `/api/*` to Stride: method, path, query, the headers above and the body, unchanged.
#[derive(Clone)]
struct ToStride(String);

#[rocket::async_trait]
impl Handler for ToStride {
    async fn handle<'r>(&self, request: &'r Request<'_>, data: Data<'r>) -> Outcome<'r> {
        let body = match data.open(16.mebibytes()).into_bytes().await {
            Ok(body) if body.is_complete() => body.into_inner(),
            _ => return Outcome::Error(Status::PayloadTooLarge),
        };
        let (stride, method) = (self.0.clone(), request.method().as_str().to_owned());
        let (uri, headers) = (request.uri().to_string(), forwarded_headers(request));
        let answer =
            tokio::task::spawn_blocking(move || forward(&stride, &method, &uri, &headers, body))
                .await
                .expect("join");
        Outcome::from(request, answer)
    }
}

struct Dist(PathBuf);
struct StrideBase(String);

/// `index.html` for every path nothing else serves, as FitTrackee's `catch_all` does (the
/// client's router takes it from there).
#[rocket::get("/<_path..>", rank = 20)]
async fn index(_path: PathBuf, dist: &State<Dist>) -> Option<NamedFile> {
    NamedFile::open(dist.0.join("index.html")).await.ok()
}

#[rocket::get("/favicon.ico")]
async fn favicon(dist: &State<Dist>) -> Option<NamedFile> {
    NamedFile::open(dist.0.join("favicon.ico")).await.ok()
}

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

fn front_server(dist: &Path, port: u16, stride: &str) -> rocket::Rocket<rocket::Build> {
    let config = rocket::Config {
        port,
        address: std::net::Ipv4Addr::LOCALHOST.into(),
        log_level: rocket::config::LogLevel::Off,
        ..rocket::Config::debug_default()
    };
    let to_stride: Vec<Route> = [
        Method::Get,
        Method::Post,
        Method::Put,
        Method::Patch,
        Method::Delete,
    ]
    .into_iter()
    .map(|method| Route::ranked(10, method, "/api/<path..>", ToStride(stride.to_owned())))
    .collect();
    rocket::custom(config)
        .manage(Dist(dist.to_owned()))
        .manage(StrideBase(stride.to_owned()))
        .mount(
            "/static",
            FileServer::new(dist.join("static"), Options::None).rank(1),
        )
        .mount(
            "/img",
            FileServer::new(dist.join("img"), Options::None).rank(1),
        )
        .mount(
            "/",
            rocket::routes![
                index,
                favicon,
                sports,
                workouts,
                records,
                user_stats,
                instance_stats
            ],
        )
        .mount("/", to_stride)
}

// ---- The browser, as a user works it -------------------------------------------------------

type Step<T> = Result<T, String>;

fn check(ok: bool, what: impl Into<String>) -> Step<()> {
    if ok {
        Ok(())
    } else {
        Err(what.into())
    }
}

/// Calls `attempt` until it gives `Some`, for at most [`STEP`].
async fn until<T, F, Fut>(what: &str, mut attempt: F) -> Step<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Step<Option<T>>>,
{
    let deadline = Instant::now() + STEP;
    loop {
        let last = match attempt().await {
            Ok(Some(found)) => return Ok(found),
            Ok(None) => String::new(),
            Err(e) => format!(" ({e})"),
        };
        if Instant::now() > deadline {
            return Err(format!("{what}: not within {} s{last}", STEP.as_secs()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct Ui {
    browser: Client,
    base: String,
}

impl Ui {
    async fn open(&self, path: &str) -> Step<()> {
        self.browser
            .goto(&format!("{}{path}", self.base))
            .await
            .map_err(|e| format!("open {path}: {e}"))
    }

    async fn find(&self, css: &str) -> Step<Element> {
        self.browser
            .wait()
            .at_most(STEP)
            .for_element(Locator::Css(css))
            .await
            .map_err(|e| format!("no element {css}: {e}"))
    }

    async fn type_into(&self, css: &str, text: &str) -> Step<()> {
        let field = self.find(css).await?;
        field
            .clear()
            .await
            .map_err(|e| format!("clear {css}: {e}"))?;
        field
            .send_keys(text)
            .await
            .map_err(|e| format!("type into {css}: {e}"))
    }

    async fn click(&self, css: &str) -> Step<()> {
        self.find(css)
            .await?
            .click()
            .await
            .map_err(|e| format!("click {css}: {e}"))
    }

    async fn select(&self, css: &str, value: &str) -> Step<()> {
        self.find(css)
            .await?
            .select_by_value(value)
            .await
            .map_err(|e| format!("select {value} in {css}: {e}"))
    }

    async fn text(&self, css: &str) -> Step<String> {
        self.find(css)
            .await?
            .text()
            .await
            .map_err(|e| format!("text of {css}: {e}"))
    }

    /// Waits until the client's router is at `path` (query left out).
    async fn at(&self, path: &str) -> Step<()> {
        until(&format!("the page {path}"), || async {
            let url = self
                .browser
                .current_url()
                .await
                .map_err(|e| e.to_string())?;
            Ok((url.path() == path).then_some(()))
        })
        .await
        .map_err(|e| format!("{e}; the client is elsewhere"))
    }

    /// Waits until the text of `css` contains every one of `needles`, and returns it.
    async fn shows(&self, css: &str, needles: &[&str]) -> Step<String> {
        until(&format!("{css} showing {needles:?}"), || async {
            let text = self.text(css).await?;
            Ok(needles.iter().all(|n| text.contains(n)).then_some(text))
        })
        .await
    }

    async fn js(&self, script: &str) -> Step<Value> {
        self.browser
            .execute(script, vec![])
            .await
            .map_err(|e| format!("script {script}: {e}"))
    }

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
        let Some(dist) = client_dist() else { return };
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
        let front = front_server(&dist, front_port, &stride.base).ignite().await.expect("ignite");
        let front_shutdown = front.shutdown();
        let front_task = tokio::spawn(front.launch());
        tokio::task::spawn_blocking(move || wait_for_port(front_port, "the front server"))
            .await
            .expect("join");

        let ui = Ui { browser: chromium.client.clone(), base: front_base };
        let outcome = flows(&ui, &stride, &smtp, dir.path(), &db.url).await;
        if let Err(failure) = outcome {
            let name = format!("fittrackee-0.5.7-{}", if matches!(backend, crate::helpers::Backend::Sqlite) { "sqlite" } else { "postgres" });
            let shot = match ui.browser.screenshot().await {
                Ok(png) => save_screenshot(&name, &png).display().to_string(),
                Err(e) => format!("(no screenshot: {e})"),
            };
            let html = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.html"));
            let _ = std::fs::write(&html, ui.browser.source().await.unwrap_or_default());
            let url = ui.browser.current_url().await.map(|u| u.to_string()).unwrap_or_default();
            panic!("{failure}\n  at {url}\n  screenshot: {shot}\n  page: {}", html.display());
        }
        ui.browser.clone().close().await.expect("close the browser");
        front_shutdown.notify();
        let _ = front_task.await;
    }
}
