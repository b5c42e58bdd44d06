//! Browser sessions: a session's token in an HttpOnly cookie, a CSRF header on every request
//! that changes something (docs/browser-sessions.md).
//!
//! The kernel owns the whole cookie path, as it owns the Bearer one: the `AuthUser` guard
//! reads and checks the cookie ([`crate::auth`]), routes that open a session hand it to the
//! browser through [`Browser`], and one response fairing ([`fairing`]) writes what the request
//! decided: set (a new session, or a refresh after the cookie authenticated the request),
//! clear, or nothing. A request with an `Authorization` header is judged by it alone: it never
//! reads, sets, refreshes or clears a cookie.

use std::sync::Mutex;

use rocket::fairing::{Fairing, Info, Kind};
use rocket::http::{Cookie, Header, Method, SameSite};
use rocket::request::{FromRequest, Outcome, Request};
use rocket::time::{Duration, OffsetDateTime};
use rocket::Response;
use rocket_db_pools::Database;

use crate::auth::Opened;
use crate::config::{self, Config};
use crate::db::{now, Db};
use crate::tokens::TokenKeys;

/// FitTrackee 1.3's names: its web client reads the CSRF cookie by name.
pub const ACCESS_COOKIE: &str = "access_token_cookie";
pub const CSRF_COOKIE: &str = "csrf_access_token";
pub const CSRF_HEADER: &str = "X-CSRF-TOKEN";

/// What the response does with the browser's cookies, decided while the request ran.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Plan {
    #[default]
    Nothing,
    /// The cookie authenticated the request: grant it again. After a request that may have
    /// changed something, the session is read once more first, so that a handler that ended
    /// it (a logout, the account's deletion, any module's) gets cleared cookies instead.
    Refresh { live: Live, recheck: bool },
    /// A route opened a session for this browser.
    Open(Live),
    /// The cookie was refused: both go.
    ClearBoth,
    /// Only a CSRF cookie came: it goes.
    ClearCsrf,
}

/// A live session, as the cookie needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Live {
    pub user_id: i64,
    pub session_id: String,
    /// The session's own end: no cookie token outlives it.
    pub session_expires_at: i64,
}

/// The request's plan (request-local).
#[derive(Default)]
pub(crate) struct Jar(Mutex<Plan>);

impl Jar {
    pub(crate) fn of<'r>(request: &'r Request<'_>) -> &'r Jar {
        request.local_cache(Jar::default)
    }

    pub(crate) fn plan(&self, plan: Plan) {
        if let Ok(mut current) = self.0.lock() {
            *current = plan;
        }
    }

    fn take(&self) -> Plan {
        self.0
            .lock()
            .map(|mut plan| std::mem::take(&mut *plan))
            .unwrap_or_default()
    }
}

/// Whether the cookie path judges this request: cookies on and no `Authorization` header.
pub(crate) fn judges(request: &Request<'_>, config: &Config) -> bool {
    config.cookies.enabled && !request.headers().contains("Authorization")
}

/// Whether a request asks for a CSRF header: every method that may change something, and a
/// route whose access changes something whatever its method (a logout's GET).
pub(crate) fn changing(method: Method, route_changes: bool) -> bool {
    !matches!(method, Method::Get | Method::Head | Method::Options) || route_changes
}

/// A route's way to give a new session to the browser that asked for it (a login, an account
/// confirmation). Does nothing when cookies are off or the request carries an `Authorization`
/// header: a Bearer client never gets a cookie.
pub struct Browser<'r> {
    jar: &'r Jar,
    judges: bool,
}

impl Browser<'_> {
    /// Sets the session's cookies on the response; true when it will.
    pub fn open(&self, session: &Opened) -> bool {
        if self.judges {
            self.jar.plan(Plan::Open(Live {
                user_id: session.user_id,
                session_id: session.session_id.clone(),
                session_expires_at: session.expires_at,
            }));
        }
        self.judges
    }

    /// Whether this request is a browser's on the cookie path (the answer may differ: a
    /// confirmation gives no token in JSON to a browser that gets cookies).
    pub fn gets_cookies(&self) -> bool {
        self.judges
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Browser<'r> {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let judges = request
            .rocket()
            .state::<Config>()
            .is_some_and(|config| judges(request, config));
        Outcome::Success(Browser {
            jar: Jar::of(request),
            judges,
        })
    }
}

/// The response fairing that writes the request's plan.
pub fn fairing() -> impl Fairing {
    Cookies
}

struct Cookies;

#[rocket::async_trait]
impl Fairing for Cookies {
    fn info(&self) -> Info {
        Info {
            name: "Stride browser sessions",
            kind: Kind::Response | Kind::Liftoff,
        }
    }

    async fn on_liftoff(&self, rocket: &rocket::Rocket<rocket::Orbit>) {
        if let Some(config) = rocket.state::<Config>() {
            if let Some(warning) = insecure_warning(config) {
                tracing::warn!("{warning}");
            }
        }
    }

    async fn on_response<'r>(&self, request: &'r Request<'_>, response: &mut Response<'r>) {
        let plan = Jar::of(request).take();
        if plan == Plan::Nothing {
            return;
        }
        let rocket = request.rocket();
        let (Some(config), Some(keys)) = (rocket.state::<Config>(), rocket.state::<TokenKeys>())
        else {
            return;
        };
        let attributes = Attributes::of(config);
        let cookies = match plan {
            Plan::Nothing => return,
            Plan::Open(live) => attributes.set(keys, config, &live),
            Plan::Refresh { live, recheck } => {
                let ended = recheck && !still_live(request, &live).await;
                if ended {
                    attributes.clear_both()
                } else {
                    attributes.set(keys, config, &live)
                }
            }
            Plan::ClearBoth => attributes.clear_both(),
            Plan::ClearCsrf => vec![attributes.clear(CSRF_COOKIE, false)],
        };
        for cookie in cookies {
            response.adjoin_header(Header::new("Set-Cookie", cookie.to_string()));
        }
        response.set_raw_header("Cache-Control", "no-store");
    }
}

/// Whether the session is still open and its user active. A failed read counts as ended: the
/// cookies are cleared rather than granted again on a doubt.
async fn still_live(request: &Request<'_>, live: &Live) -> bool {
    let Some(db) = Db::fetch(request.rocket()) else {
        return false;
    };
    crate::auth::is_live(db, &live.session_id, live.user_id, now())
        .await
        .unwrap_or(false)
}

/// The attributes every cookie of ours carries (docs/browser-sessions.md, "The cookies"): set
/// explicitly, as Rocket's jar would fill unset ones itself.
struct Attributes {
    secure: bool,
    same_site: SameSite,
}

impl Attributes {
    fn of(config: &Config) -> Attributes {
        Attributes {
            secure: config.public_url.starts_with("https://"),
            same_site: match config.cookies.same_site {
                config::SameSite::Lax => SameSite::Lax,
                config::SameSite::Strict => SameSite::Strict,
            },
        }
    }

    fn cookie(&self, name: &'static str, value: String, http_only: bool) -> Cookie<'static> {
        Cookie::build((name, value))
            .path("/")
            .http_only(http_only)
            .secure(self.secure)
            .same_site(self.same_site)
            .build()
    }

    /// Both cookies for the session: a cookie token until `min(now + ttl, session end)` and
    /// the session's CSRF value. Session cookies: no `Max-Age`, no `Expires` (the token
    /// carries its expiry). A token that cannot be minted clears instead.
    fn set(&self, keys: &TokenKeys, config: &Config, live: &Live) -> Vec<Cookie<'static>> {
        let ttl = i64::try_from(config.cookies.ttl).unwrap_or(i64::MAX);
        let expires_at = now().saturating_add(ttl).min(live.session_expires_at);
        match keys.mint_cookie(live.user_id, &live.session_id, expires_at) {
            Ok(token) => vec![
                self.cookie(ACCESS_COOKIE, token, true),
                self.cookie(CSRF_COOKIE, keys.csrf_value(&live.session_id), false),
            ],
            Err(error) => {
                tracing::error!("minting a cookie token: {error}");
                self.clear_both()
            }
        }
    }

    fn clear(&self, name: &'static str, http_only: bool) -> Cookie<'static> {
        let mut cookie = self.cookie(name, String::new(), http_only);
        cookie.set_max_age(Duration::ZERO);
        cookie.set_expires(OffsetDateTime::UNIX_EPOCH);
        cookie
    }

    fn clear_both(&self) -> Vec<Cookie<'static>> {
        vec![
            self.clear(ACCESS_COOKIE, true),
            self.clear(CSRF_COOKIE, false),
        ]
    }
}

/// Cookies over plain http to a host other than this machine travel unprotected: said once
/// at start.
fn insecure_warning(config: &Config) -> Option<String> {
    if !config.cookies.enabled {
        return None;
    }
    let rest = config.public_url.strip_prefix("http://")?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    let local = ["localhost", "127.0.0.1", "::1"].contains(&host.to_ascii_lowercase().as_str());
    (!local).then(|| {
        format!(
            "cookies.enabled with an http:// public_url ({}): browser session cookies are not \
             Secure and travel unencrypted; serve Stride over https (and say so in public_url)",
            config.public_url
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(public_url: &str, enabled: bool) -> Config {
        let mut config = Config {
            public_url: public_url.into(),
            ..Config::default()
        };
        config.cookies.enabled = enabled;
        config
    }

    #[test]
    fn plain_http_is_told_unless_local() {
        for local in [
            "http://127.0.0.1:8000",
            "http://localhost",
            "http://LOCALHOST:80/fit",
            "http://[::1]:8000",
            "https://fit.example.org",
        ] {
            assert_eq!(insecure_warning(&config(local, true)), None, "{local}");
        }
        for remote in ["http://fit.example.org", "http://192.168.1.4:8000/x"] {
            assert!(
                insecure_warning(&config(remote, true)).is_some(),
                "{remote}"
            );
            assert_eq!(insecure_warning(&config(remote, false)), None);
        }
    }

    #[test]
    fn changing_requests() {
        assert!(!changing(Method::Get, false));
        assert!(!changing(Method::Head, false));
        assert!(!changing(Method::Options, false));
        assert!(changing(Method::Get, true));
        for method in [Method::Post, Method::Put, Method::Patch, Method::Delete] {
            assert!(changing(method, false));
        }
    }
}
