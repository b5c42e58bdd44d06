//! The browser's side of an OpenID Connect login: `GET /api/auth/sso/<provider>/start` sends it
//! to the provider; the provider sends it back to `…/callback`, which checks `state`, exchanges
//! the code, checks the ID token, finds or makes the account, and sends the browser to
//! `sso.return_url` with a one-time code (no session token in any URL). What goes wrong is an
//! HTML page (kernel::pages: no cache, no referrer, a strict CSP), in the browser's language.

use kernel::cookies::Browser;
use kernel::language::BrowserLanguage;
use kernel::pages::Page;
use kernel::throttle::{self, Counter};
use kernel::users::{self, AccountState};
use kernel::{auth, ApiError, Caller, Services};
use rocket::http::{Cookie, CookieJar, Header, SameSite, Status};
use rocket::response::Responder;
use rocket::{get, routes, Route, State};
use rocket_dyn_templates::{context, Template};

use crate::accounts::{self, Refusal};
use crate::oidc::OidcError;
use crate::store::{self, Flow};
use crate::{Logins, Outcome, Sso, Way};

pub fn routes() -> Vec<Route> {
    routes![start, callback]
}

/// With `cookies.enabled`: a browser client (FitTrackee 1.x's web client on cookie sessions)
/// completes the login without handling the code.
pub fn browser_routes() -> Vec<Route> {
    routes![complete]
}

/// The cookie that ties a login to the browser that began it: a callback opened in another
/// browser (an attacker's link, to log the victim into the attacker's account) finds no
/// matching flow.
const FLOW_COOKIE: &str = "stride_sso_flow";
const FLOW_COOKIE_PATH: &str = "/api/auth/sso";

/// The one-time code, also handed to the browser that completed the callback, for
/// `GET /api/auth/sso/complete`: a cookie no other site can set, so no one can complete a login
/// in a victim's browser with a code of their own.
const CODE_COOKIE: &str = "stride_sso_code";

fn flow_cookie(value: String, sso: &Sso, max_age: i64) -> Cookie<'static> {
    sso_cookie(FLOW_COOKIE, value, sso, max_age)
}

fn sso_cookie(name: &'static str, value: String, sso: &Sso, max_age: i64) -> Cookie<'static> {
    Cookie::build((name, value))
        .path(FLOW_COOKIE_PATH)
        .http_only(true)
        .secure(sso.public_url.starts_with("https://"))
        // Lax: the provider's redirect back is a top-level navigation from another site.
        .same_site(SameSite::Lax)
        .max_age(rocket::time::Duration::seconds(max_age))
        .build()
}

/// A redirect that no cache keeps.
#[derive(Responder)]
#[response(status = 303)]
pub struct SeeOther {
    body: &'static str,
    location: Header<'static>,
    cache: Header<'static>,
}

impl SeeOther {
    fn to(url: String) -> SeeOther {
        SeeOther {
            body: "",
            location: Header::new("Location", url),
            cache: Header::new("Cache-Control", "no-store"),
        }
    }
}

#[derive(Responder)]
pub enum Answer {
    Redirect(SeeOther),
    Page(Page),
}

/// Why the page says no: its template's `reason`, and its status.
#[derive(Debug, Clone, Copy)]
enum Why {
    /// The `state` is unknown, used, expired or another provider's.
    State,
    /// The provider refused, could not be reached, or answered nonsense.
    Provider,
    /// The ID token failed a check.
    Token,
    /// The browser's one-time code is missing, used or expired.
    Code,
    Refused(Refusal),
}

impl Why {
    fn reason(self) -> &'static str {
        match self {
            Why::State => "state",
            Why::Provider => "provider",
            Why::Token => "token",
            Why::Code => "code",
            Why::Refused(Refusal::Unverified) => "unverified",
            Why::Refused(Refusal::Closed) => "closed",
            Why::Refused(Refusal::Inactive) => "inactive",
            Why::Refused(Refusal::Reserved) => "reserved",
        }
    }

    fn status(self) -> Status {
        match self {
            Why::State => Status::BadRequest,
            Why::Provider => Status::BadGateway,
            Why::Token => Status::Unauthorized,
            Why::Code => Status::BadRequest,
            Why::Refused(_) => Status::Forbidden,
        }
    }
}

fn page(why: Why, lang: BrowserLanguage, provider: &str) -> Answer {
    let lang = lang.0.code();
    Answer::Page(Page::new(
        why.status(),
        Template::render(
            format!("pages/{lang}/sso_refused"),
            context! { lang, reason: why.reason(), provider },
        ),
    ))
}

/// Begins a login: each is a row and a call to the provider, so they are counted per client
/// first (`sso.starts_per_client`).
#[get("/<provider>/start")]
async fn start(
    provider: &str,
    kernel: Services<'_>,
    caller: Caller,
    sso: &State<Sso>,
    cookies: &CookieJar<'_>,
    lang: BrowserLanguage,
) -> Result<Answer, ApiError> {
    let Some(oidc) = sso.providers.get(provider) else {
        return Err(ApiError::not_found("unknown provider"));
    };
    let starts = Counter::new(
        &kernel.config.throttle,
        "sso-start:client",
        &throttle::client_text(caller.client),
        sso.config.starts_per_client,
    );
    {
        let mut conn = kernel.db.acquire().await?;
        throttle::take(&mut conn, &kernel.config.throttle, &[starts])
            .await?
            .or_too_many()?;
    }
    let started = match oidc.start().await {
        Ok(started) => started,
        Err(e) => {
            tracing::warn!(provider, "single sign-on could not start: {e}");
            return Ok(page(Why::Provider, lang, oidc.config.name()));
        }
    };
    let browser = store::random_secret().map_err(|e| ApiError::internal("no OS randomness", e))?;
    let flow = Flow {
        browser_hash: store::digest(&browser),
        provider: provider.to_owned(),
        nonce: started.nonce,
        pkce_verifier: started.pkce_verifier,
    };
    let mut conn = kernel.db.acquire().await?;
    let ttl = Sso::ttl(sso.config.flow_ttl);
    store::save_flow(&mut conn, &started.state, &flow, ttl).await?;
    cookies.add(flow_cookie(browser, sso, ttl));
    Ok(Answer::Redirect(SeeOther::to(started.url)))
}

#[allow(clippy::too_many_arguments)]
#[get("/<provider>/callback?<code>&<state>&<error>")]
async fn callback(
    provider: &str,
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    kernel: Services<'_>,
    sso: &State<Sso>,
    logins: &State<Logins>,
    cookies: &CookieJar<'_>,
    lang: BrowserLanguage,
) -> Result<Answer, ApiError> {
    let Some(oidc) = sso.providers.get(provider) else {
        return Err(ApiError::not_found("unknown provider"));
    };
    let name = oidc.config.name();
    // The state is taken first, whatever else the callback carries: it is single use.
    let flow = match state.as_deref().filter(|s| !s.is_empty()) {
        Some(state) => {
            let mut conn = kernel.db.acquire().await?;
            store::take_flow(&mut conn, state, provider).await?
        }
        None => None,
    };
    let browser = cookies.get(FLOW_COOKIE).map(|c| store::digest(c.value()));
    let flow = flow.filter(|f| browser.as_deref() == Some(f.browser_hash.as_str()));
    if flow.is_some() {
        cookies.remove(flow_cookie(String::new(), sso, 0));
    }
    let Some(flow) = flow else {
        tracing::warn!(
            provider,
            "single sign-on callback with an unknown or used state, or from another browser"
        );
        logins.count(Way::Oidc, Outcome::Refused);
        return Ok(page(Why::State, lang, name));
    };
    if let Some(error) = error {
        // The provider's error code, as far as it is one (no control characters in the log).
        let error: String = error
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(64)
            .collect();
        tracing::info!(provider, %error, "the provider refused the login");
        logins.count(Way::Oidc, Outcome::Refused);
        return Ok(page(Why::Provider, lang, name));
    }
    let Some(code) = code.filter(|c| !c.is_empty()) else {
        return Ok(page(Why::Provider, lang, name));
    };
    // No pooled connection is held while the provider answers.
    let identity = match oidc.finish(code, flow.pkce_verifier, flow.nonce).await {
        Ok(identity) => identity,
        Err(e) => {
            tracing::warn!(provider, "single sign-on failed: {e}");
            logins.count(Way::Oidc, Outcome::Refused);
            let why = match e {
                OidcError::Provider(_) => Why::Provider,
                OidcError::IdToken(_) => Why::Token,
            };
            return Ok(page(why, lang, name));
        }
    };
    let mut tx = kernel::db::begin_write(kernel.db).await?;
    let (user, outcome) = match accounts::resolve(&mut tx, provider, &identity).await? {
        Ok(found) => found,
        Err(refusal) => {
            drop(tx);
            tracing::info!(provider, ?refusal, "single sign-on refused");
            logins.count(Way::Oidc, Outcome::Refused);
            return Ok(page(Why::Refused(refusal), lang, name));
        }
    };
    let ttl = Sso::ttl(sso.config.code_ttl);
    let code = store::issue_code(&mut tx, user.id, ttl).await?;
    tx.commit().await?;
    cookies.add(sso_cookie(CODE_COOKIE, code.clone(), sso, ttl));
    logins.count(Way::Oidc, outcome);
    tracing::info!(user_id = user.id, provider, "single sign-on: code issued");
    Ok(Answer::Redirect(SeeOther::to(sso.return_to(&code))))
}

/// Exchanges the browser's code cookie for a session in its cookies, and sends it on to
/// `sso.web_url`. A missing, used or expired code is a page.
#[get("/complete")]
async fn complete(
    kernel: Services<'_>,
    caller: Caller,
    browser: Browser<'_>,
    sso: &State<Sso>,
    cookies: &CookieJar<'_>,
    lang: BrowserLanguage,
) -> Result<Answer, ApiError> {
    let code = cookies
        .get(CODE_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|c| !c.is_empty());
    cookies.remove(sso_cookie(CODE_COOKIE, String::new(), sso, 0));
    let expired = || page(Why::Code, lang, "");
    let Some(code) = code else {
        return Ok(expired());
    };
    if !browser.gets_cookies() {
        // A request with `Authorization` is an app's: it exchanges codes by POST.
        return Ok(expired());
    }
    let mut tx = kernel::db::begin_write(kernel.db).await?;
    let Some(user_id) = store::take_code(&mut tx, &code).await? else {
        tx.commit().await?;
        return Ok(expired());
    };
    let active = users::by_id(&mut tx, user_id)
        .await?
        .is_some_and(|u| u.state == AccountState::Active);
    if !active {
        tx.commit().await?;
        return Ok(expired());
    }
    let session = auth::open(&mut tx, kernel.keys, kernel.config, user_id, &caller.agent).await?;
    tx.commit().await?;
    browser.open(&session);
    Ok(Answer::Redirect(SeeOther::to(sso.web_to())))
}

impl Sso {
    /// `sso.web_url`, under `public_url` when it is a path.
    fn web_to(&self) -> String {
        let base = &self.config.web_url;
        if base.starts_with('/') {
            format!("{}{base}", self.public_url)
        } else {
            base.clone()
        }
    }

    /// `sso.return_url` (under `public_url` when it is a path) with the one-time code.
    fn return_to(&self, code: &str) -> String {
        let base = &self.config.return_url;
        let url = if base.starts_with('/') {
            format!("{}{base}", self.public_url)
        } else {
            base.clone()
        };
        let separator = if url.contains('?') { '&' } else { '?' };
        format!("{url}{separator}code={code}")
    }
}
