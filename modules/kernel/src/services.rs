//! The kernel's services in one request guard, so that a handler names what it needs in two or
//! three arguments rather than a `&State` for each service (docs/modules.md, "Handlers"):
//!
//! ```ignore
//! #[post("/login", data = "<body>")]
//! async fn login(kernel: Services<'_>, caller: Caller, body: Payload<Login>) -> ApiResult<Value>
//! ```
//!
//! Both guards only borrow what the kernel manages or read headers already parsed: they cost
//! no query and cannot fail once the kernel has started.

use std::net::IpAddr;

use rocket::request::{FromRequest, Outcome, Request};

use crate::auth::UserAgent;
use crate::background::Background;
use crate::config::Config;
use crate::db::Db;
use crate::error::ApiError;
use crate::lifecycle::Lifecycle;
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::passwords::Passwords;
use crate::tokens::TokenKeys;

/// Everything the kernel offers a handler.
#[derive(Clone, Copy)]
pub struct Services<'r> {
    pub db: &'r Db,
    pub config: &'r Config,
    pub keys: &'r TokenKeys,
    pub passwords: &'r Passwords,
    pub mailer: &'r Mailer,
    pub metrics: &'r Metrics,
    pub background: &'r Background,
    pub lifecycle: &'r Lifecycle,
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Services<'r> {
    type Error = ApiError;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, ApiError> {
        let rocket = request.rocket();
        let services = (|| {
            Some(Services {
                db: rocket.state()?,
                config: rocket.state()?,
                keys: rocket.state()?,
                passwords: rocket.state()?,
                mailer: rocket.state()?,
                metrics: rocket.state()?,
                background: rocket.state()?,
                lifecycle: rocket.state()?,
            })
        })();
        match services {
            Some(services) => Outcome::Success(services),
            None => Outcome::Error(
                ApiError::internal("kernel services", "the kernel's state is not managed")
                    .stash(request),
            ),
        }
    }
}

/// Who is asking: the client's address (as `ip_header` and the proxy say) and its User-Agent.
#[derive(Debug, Clone)]
pub struct Caller {
    pub client: Option<IpAddr>,
    pub agent: UserAgent,
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Caller {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let agent = match UserAgent::from_request(request).await {
            Outcome::Success(agent) => agent,
            Outcome::Error((_, never)) => match never {},
            Outcome::Forward(status) => return Outcome::Forward(status),
        };
        Outcome::Success(Caller {
            client: request.client_ip(),
            agent,
        })
    }
}
