//! What the tests of FitTrackee's own web clients share (fittrackee_client.rs: 0.5.7;
//! fittrackee_client_13.rs: 1.3.6): the front server that serves a client's built `dist/` as
//! FitTrackee does and forwards `/api/*` to Stride, and the browser as a user works it.
//!
//! The front server serves the client as FitTrackee's `catch_all` does (`fittrackee/__init__.py`,
//! the same in 0.5.7 and 1.3.6): files under `/static/` and `/img/` as they are, `/favicon.ico`,
//! `/robots.txt`, `index.html` for every other path; `/api/*` goes to Stride (the real binary,
//! whose public_url is the front server's, so its emails link to the client's pages), except
//! the routes each test adds itself (its workout stubs). It forwards what either client's calls
//! depend on: `Authorization` (0.5.7's Bearer token), and the cookie session of 1.3.6
//! (docs/browser-sessions.md): the `Cookie` and `X-CSRF-TOKEN` request headers, and every
//! `Set-Cookie` of the answer back. It logs every `/api/` request with its status, which a
//! failing test prints.

use std::future::Future;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, Locator};
use rocket::data::ToByteUnit;
use rocket::fairing::{Fairing, Info, Kind};
use rocket::fs::{FileServer, NamedFile, Options};
use rocket::http::{Method, Status};
use rocket::request::{self, FromRequest};
use rocket::response::{self, Responder, Response};
use rocket::route::{Handler, Outcome, Route};
use rocket::{Data, Request, State};
use serde_json::Value;

use crate::chromium::{save_screenshot, wait_for_port};
use crate::helpers::agent;

/// How long one step may take to show in the page.
pub const STEP: Duration = Duration::from_secs(15);

/// A client's `dist/` folder from the environment variable `var`, or `None` (the test skips)
/// outside CI when it is not there; in CI its absence fails the test.
pub fn client_dist(var: &str, version: &str) -> Option<PathBuf> {
    let dist = std::env::var_os(var).map(PathBuf::from);
    match dist {
        Some(dist) if dist.join("index.html").is_file() => Some(dist),
        _ => {
            assert!(
                !crate::mail::required(),
                "{var} must name FitTrackee {version}'s dist/ folder in CI \
                 (.ci/fittrackee-client {version} prints it)"
            );
            eprintln!(
                "{var} is not set: FitTrackee {version} web client test skipped \
                 (export {var}=$(.ci/fittrackee-client {version}))"
            );
            None
        }
    }
}

// ---- The front server ----------------------------------------------------------------------

/// One answer, as Stride (or a stub) gave it.
pub struct Answer {
    pub status: u16,
    /// Response headers passed on, in order (`Set-Cookie` may come more than once).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(body: Value) -> Answer {
        Answer {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
        }
    }
}

impl<'r> Responder<'r, 'static> for Answer {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let mut response = Response::build();
        response.status(Status::new(self.status));
        for (name, value) in self.headers {
            response.raw_header_adjoin(name, value);
        }
        response.sized_body(self.body.len(), Cursor::new(self.body));
        response.ok()
    }
}

/// The request headers a FitTrackee client's calls depend on.
const FORWARDED: [&str; 5] = [
    "Authorization",
    "Content-Type",
    "Accept-Language",
    "Cookie",
    "X-CSRF-TOKEN",
];

/// The response headers passed back to the browser.
const RETURNED: [&str; 4] = [
    "Content-Type",
    "Set-Cookie",
    "Cache-Control",
    "Content-Disposition",
];

/// Sends one request to Stride and returns its answer (blocking: run it off the runtime).
pub fn forward(
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
            headers: RETURNED
                .iter()
                .flat_map(|name| {
                    response
                        .headers()
                        .get_all(*name)
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .map(|v| (name.to_string(), v.to_owned()))
                        .collect::<Vec<_>>()
                })
                .collect(),
            body: response
                .body_mut()
                .with_config()
                .limit(64 << 20)
                .read_to_vec()
                .unwrap_or_default(),
        },
        Err(e) => Answer {
            status: 502,
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: format!("Stride did not answer: {e}").into_bytes(),
        },
    }
}

fn forwarded_headers(request: &Request<'_>) -> Vec<(String, String)> {
    FORWARDED
        .iter()
        .flat_map(|name| {
            request
                .headers()
                .get(name)
                .map(|v| (name.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The request's [`FORWARDED`] headers, as a route's guard.
pub struct Forwarded(pub Vec<(String, String)>);

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

/// Stride's address, for the stubs that ask it something.
pub struct StrideBase(pub String);

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

#[rocket::get("/robots.txt")]
async fn robots(dist: &State<Dist>) -> Option<NamedFile> {
    NamedFile::open(dist.0.join("robots.txt")).await.ok()
}

/// Every `/api/` request the front server answered, `METHOD uri -> status`, oldest first.
#[derive(Clone, Default)]
pub struct ApiLog(Arc<Mutex<Vec<String>>>);

impl ApiLog {
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().expect("log").clone()
    }

    /// The lines whose status is 400 or more.
    pub fn failures(&self) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|line| {
                line.rsplit(' ')
                    .next()
                    .and_then(|s| s.parse::<u16>().ok())
                    .is_some_and(|s| s >= 400)
            })
            .collect()
    }
}

#[rocket::async_trait]
impl Fairing for ApiLog {
    fn info(&self) -> Info {
        Info {
            name: "the /api/ log",
            kind: Kind::Response,
        }
    }

    async fn on_response<'r>(&self, request: &'r Request<'_>, response: &mut Response<'r>) {
        if request.uri().path().starts_with("/api/") {
            self.0.lock().expect("log").push(format!(
                "{} {} -> {}",
                request.method(),
                request.uri(),
                response.status().code
            ));
        }
    }
}

/// The front server on `port` for the client in `dist`, with `stubs` answered by itself before
/// Stride sees anything.
pub fn front_server(
    dist: &Path,
    port: u16,
    stride: &str,
    stubs: Vec<Route>,
    log: ApiLog,
) -> rocket::Rocket<rocket::Build> {
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
        .attach(log)
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
        .mount("/", rocket::routes![index, favicon, robots])
        .mount("/", stubs)
        .mount("/", to_stride)
}

/// A launched front server, stopped by [`Front::stop`].
pub struct Front {
    shutdown: rocket::Shutdown,
    task: tokio::task::JoinHandle<Result<rocket::Rocket<rocket::Ignite>, rocket::Error>>,
}

impl Front {
    /// Launches `front` on `port` and waits until it listens.
    pub async fn launch(front: rocket::Rocket<rocket::Build>, port: u16) -> Front {
        let front = front.ignite().await.expect("ignite");
        let shutdown = front.shutdown();
        let task = tokio::spawn(front.launch());
        tokio::task::spawn_blocking(move || wait_for_port(port, "the front server"))
            .await
            .expect("join");
        Front { shutdown, task }
    }

    pub async fn stop(self) {
        self.shutdown.notify();
        let _ = self.task.await;
    }
}

// ---- The browser, as a user works it -------------------------------------------------------

pub type Step<T> = Result<T, String>;

pub fn check(ok: bool, what: impl Into<String>) -> Step<()> {
    if ok {
        Ok(())
    } else {
        Err(what.into())
    }
}

/// Calls `attempt` until it gives `Some`, for at most [`STEP`].
pub async fn until<T, F, Fut>(what: &str, mut attempt: F) -> Step<T>
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

pub struct Ui {
    pub browser: Client,
    pub base: String,
}

impl Ui {
    pub async fn open(&self, path: &str) -> Step<()> {
        self.browser
            .goto(&format!("{}{path}", self.base))
            .await
            .map_err(|e| format!("open {path}: {e}"))
    }

    pub async fn find(&self, css: &str) -> Step<Element> {
        self.browser
            .wait()
            .at_most(STEP)
            .for_element(Locator::Css(css))
            .await
            .map_err(|e| format!("no element {css}: {e}"))
    }

    pub async fn type_into(&self, css: &str, text: &str) -> Step<()> {
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

    /// Clicks `css`, scrolled to the middle of the window first (below the fold, the page's
    /// fixed footer would take the click).
    pub async fn click(&self, css: &str) -> Step<()> {
        let element = self.find(css).await?;
        let arg = serde_json::to_value(&element).map_err(|e| e.to_string())?;
        self.browser
            .execute("arguments[0].scrollIntoView({block: 'center'})", vec![arg])
            .await
            .map_err(|e| format!("scroll to {css}: {e}"))?;
        element
            .click()
            .await
            .map_err(|e| format!("click {css}: {e}"))
    }

    pub async fn select(&self, css: &str, value: &str) -> Step<()> {
        self.find(css)
            .await?
            .select_by_value(value)
            .await
            .map_err(|e| format!("select {value} in {css}: {e}"))
    }

    pub async fn text(&self, css: &str) -> Step<String> {
        self.find(css)
            .await?
            .text()
            .await
            .map_err(|e| format!("text of {css}: {e}"))
    }

    /// Waits until the client's router is at `path` (query left out).
    pub async fn at(&self, path: &str) -> Step<()> {
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
    pub async fn shows(&self, css: &str, needles: &[&str]) -> Step<String> {
        until(&format!("{css} showing {needles:?}"), || async {
            let text = self.text(css).await?;
            Ok(needles.iter().all(|n| text.contains(n)).then_some(text))
        })
        .await
    }

    pub async fn js(&self, script: &str) -> Step<Value> {
        self.browser
            .execute(script, vec![])
            .await
            .map_err(|e| format!("script {script}: {e}"))
    }

    /// Saves a screenshot and the page's HTML as `<name>.png` and `<name>.html` in the test
    /// target's temporary folder and panics with `failure`, where the page was, both files and
    /// `log` (the front server's `/api/` requests).
    pub async fn fail(&self, name: &str, failure: &str, log: &ApiLog) -> ! {
        let shot = match self.browser.screenshot().await {
            Ok(png) => save_screenshot(name, &png).display().to_string(),
            Err(e) => format!("(no screenshot: {e})"),
        };
        let html = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.html"));
        let _ = std::fs::write(&html, self.browser.source().await.unwrap_or_default());
        let url = self
            .browser
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default();
        panic!(
            "{failure}\n  at {url}\n  screenshot: {shot}\n  page: {}\n  the client's API \
             requests, in order:\n    {}\n  those answered 400 or more:\n    {}",
            html.display(),
            log.lines().join("\n    "),
            log.failures().join("\n    ")
        );
    }
}
