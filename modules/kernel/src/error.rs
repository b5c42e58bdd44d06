//! The one way a request fails: `ApiError`, rendered as FitTrackee's JSON envelope
//! `{"status": "error", "message": …}`, and the catchers that give every framework error the
//! same shape.

use std::borrow::Cow;
use std::sync::Mutex;

use rocket::http::Status;
use rocket::request::Request;
use rocket::response::{self, Responder};
use rocket::serde::json::Json;
use rocket::{catch, catchers, Catcher};
use serde_json::json;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: Status,
    pub message: Cow<'static, str>,
    /// Seconds, for a 429.
    pub retry_after: Option<u64>,
    /// What a client may need to go on, rendered as the envelope's `data` (a login that asks
    /// for a second factor hands its step token there).
    pub data: Option<serde_json::Value>,
}

pub type ApiResult<T> = Result<T, ApiError>;

/// A configuration that cannot run, with the key at fault (`kernel::config::ConfigError`). It
/// lives here, with the other error types, so that every area checking its own section names
/// it without depending on the configuration that gathers them.
#[derive(Debug)]
pub struct ConfigError(String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid configuration: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}

impl From<rocket::figment::Error> for ConfigError {
    fn from(error: rocket::figment::Error) -> Self {
        // figment's own messages already name the key and where its value came from.
        ConfigError::from_lines(error.into_iter().map(|e| e.to_string()).collect())
    }
}

impl ConfigError {
    /// A value that has the right type but cannot run: `key` is its full name, `why` says
    /// what it must be and what it was.
    pub fn invalid(key: &str, why: impl std::fmt::Display) -> ConfigError {
        ConfigError(format!("{key}: {why}"))
    }

    /// Several errors, each naming its key.
    pub fn from_lines(lines: Vec<String>) -> ConfigError {
        ConfigError(lines.join("; "))
    }
}

/// Why the kernel could not do something, for the operator's log (a client never sees it: a
/// request that meets one answers `ApiError::internal`): what it was doing, and the cause, kept
/// as the error's source.
#[derive(Debug, thiserror::Error)]
#[error("{context}: {source}")]
pub struct Failure {
    context: Cow<'static, str>,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl Failure {
    pub fn new(
        context: impl Into<Cow<'static, str>>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Failure {
        Failure {
            context: context.into(),
            source: source.into(),
        }
    }
}

pub const INVALID_PAYLOAD: &str = "invalid payload";
pub const REQUEST_TIMEOUT: &str = "error, request timeout";
pub const INTERNAL_ERROR: &str = "error, please try again or contact the administrator";

impl ApiError {
    pub fn new(status: Status, message: impl Into<Cow<'static, str>>) -> Self {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
            data: None,
        }
    }

    /// The same error, with `data` beside its message.
    pub fn with_data(self, data: serde_json::Value) -> Self {
        ApiError {
            data: Some(data),
            ..self
        }
    }

    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Status::BadRequest, message)
    }

    pub fn invalid_payload() -> Self {
        Self::bad_request(INVALID_PAYLOAD)
    }

    pub fn unauthorized(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Status::Unauthorized, message)
    }

    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Status::Forbidden, message)
    }

    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Status::NotFound, message)
    }

    pub fn too_many_requests(message: impl Into<Cow<'static, str>>, retry_after: u64) -> Self {
        ApiError {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(Status::TooManyRequests, message)
        }
    }

    pub fn payload_too_large() -> Self {
        Self::new(Status::PayloadTooLarge, "error, payload too large")
    }

    /// A body that arrived too slowly: the server's `connections.body_timeout` or `body_total`
    /// ran out while it was read (README.md, "Connections").
    pub fn request_timeout() -> Self {
        Self::new(Status::RequestTimeout, REQUEST_TIMEOUT)
    }

    /// Whether a failed body read is such a timeout (Rocket's body reader says `TimedOut`,
    /// `vendor/rocket/STRIDE-PATCH.md`).
    pub fn is_timeout(error: &std::io::Error) -> bool {
        error.kind() == std::io::ErrorKind::TimedOut
    }

    /// A failure that is ours, not the user's: logged for the operator, generic for the client.
    pub fn internal(context: &str, error: impl std::fmt::Display) -> Self {
        tracing::error!("{context}: {error}");
        Self::new(Status::InternalServerError, INTERNAL_ERROR)
    }

    /// Remembers this error on the request, so the catcher that Rocket calls after a failed
    /// guard or data guard answers with this message instead of a generic one.
    pub fn stash(self, request: &Request<'_>) -> (Status, Self) {
        let status = self.status;
        let slot = request.local_cache(|| Stashed(Mutex::new(None)));
        if let Ok(mut slot) = slot.0.lock() {
            *slot = Some(self.clone());
        }
        (status, self)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::PoolTimedOut => {
                tracing::warn!("database pool exhausted");
                ApiError::new(
                    Status::ServiceUnavailable,
                    "error, service busy, please try again",
                )
            }
            other => ApiError::internal("database error", other),
        }
    }
}

impl<'r> Responder<'r, 'static> for ApiError {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        let body = match self.data {
            Some(data) => Json(json!({ "status": "error", "message": self.message, "data": data })),
            None => envelope(&self.message),
        };
        let mut response = (self.status, body).respond_to(request)?;
        if let Some(seconds) = self.retry_after {
            response.set_header(rocket::http::Header::new(
                "Retry-After",
                seconds.to_string(),
            ));
        }
        Ok(response)
    }
}

fn envelope(message: &str) -> Json<serde_json::Value> {
    Json(json!({ "status": "error", "message": message }))
}

struct Stashed(Mutex<Option<ApiError>>);

/// Every error Rocket produces itself (no route, a failed guard, a malformed body, a panic)
/// answers with the JSON envelope.
#[catch(default)]
fn json_catcher(status: Status, request: &Request<'_>) -> (Status, Json<serde_json::Value>) {
    let stashed = request
        .local_cache(|| Stashed(Mutex::new(None)))
        .0
        .lock()
        .ok()
        .and_then(|slot| slot.clone());
    if let Some(error) = stashed.filter(|e| e.status == status) {
        return (status, envelope(&error.message));
    }
    let (status, message) = match status.code {
        // Rocket answers 422 for a body that parses but does not fit: for FitTrackee's clients
        // that is an invalid payload like any other.
        400 | 422 => (Status::BadRequest, INVALID_PAYLOAD),
        401 => (status, "provide a valid auth token"),
        403 => (status, "you do not have permissions"),
        404 => (status, "error, page not found"),
        405 => (status, "error, method not allowed"),
        408 => (status, REQUEST_TIMEOUT),
        413 => (status, "error, payload too large"),
        415 => (status, "error, unsupported media type"),
        503 => (status, "error, service busy, please try again"),
        500..=599 => (Status::InternalServerError, INTERNAL_ERROR),
        _ => (status, status.reason().unwrap_or("error")),
    };
    (status, envelope(message))
}

pub fn catchers() -> Vec<Catcher> {
    catchers![json_catcher]
}
