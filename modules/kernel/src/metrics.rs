//! Prometheus metrics (OpenMetrics text, `prometheus-client`), served at `GET /metrics` when
//! `metrics.enabled` is on; with `metrics.token` set, only to `Authorization: Bearer <token>`.
//!
//! [`Metrics`] is managed state: the kernel counts HTTP requests (by route template, never the
//! raw path, so the number of series stays bounded), emails and the pool; a module registers
//! its own series in its fairing ([`Metrics::register`]) and counts on them itself.

use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Metric, Registry};
use rocket::http::{ContentType, Status};
use rocket::request::{FromRequest, Outcome, Request};
use rocket::{get, routes, Route, State};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::db::Db;
use crate::error::{ApiError, ApiResult};

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Mounts `GET /metrics`.
    pub enabled: bool,
    /// When set, `/metrics` answers only requests bearing it (`Authorization: Bearer …`).
    pub token: Option<String>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            token: None,
        }
    }
}

/// Shorter bearer secrets can be guessed; 16 characters of a password generator are enough.
const MIN_TOKEN_LENGTH: usize = 16;

impl MetricsConfig {
    pub fn validate(&self) -> Result<(), crate::error::ConfigError> {
        match &self.token {
            Some(token)
                if token.chars().count() < MIN_TOKEN_LENGTH
                    || !token.chars().all(|c| c.is_ascii_graphic()) =>
            {
                // A secret: its length is all the message tells of it.
                Err(crate::error::ConfigError::invalid(
                    "metrics.token",
                    format!(
                        "must be at least {MIN_TOKEN_LENGTH} printable ASCII characters, without \
                         spaces (got {} characters)",
                        token.chars().count()
                    ),
                ))
            }
            _ => Ok(()),
        }
    }
}

/// What happened to an email.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum EmailEvent {
    /// Written to the outbox.
    Queued,
    /// Accepted by the SMTP server (or written as a file).
    Sent,
    /// A delivery attempt failed; it will be retried.
    Failed,
    /// The last attempt failed: the courier gave up on it.
    Abandoned,
}

/// Label values in lower case, as Prometheus names go.
impl EncodeLabelValue for EmailEvent {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> fmt::Result {
        encoder.write_str(match self {
            EmailEvent::Queued => "queued",
            EmailEvent::Sent => "sent",
            EmailEvent::Failed => "failed",
            EmailEvent::Abandoned => "abandoned",
        })
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EmailLabels {
    event: EmailEvent,
}

fn latency_histogram() -> Histogram {
    // 5 ms to about 10 s: an argon2 login sits in the middle, a stalled database at the top.
    Histogram::new(exponential_buckets(0.005, 2.0, 12))
}

struct Inner {
    /// Series that say nothing of who has an account: served to any scrape.
    public: Mutex<Registry>,
    /// Series that move with whether an address has an account (an email queued for a known
    /// address only; the outbox and the pool working a little longer for it): served only to a
    /// scrape that presents `metrics.token`.
    private: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    emails: Family<EmailLabels, Counter>,
    pool_size: Gauge,
    pool_idle: Gauge,
    pool_max: Gauge,
    outbox_pending: Gauge,
}

/// This instance's metrics. Cheap to clone; managed by the kernel.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("stride");
        let mut private = Registry::with_prefix("stride");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let emails = Family::<EmailLabels, Counter>::default();
        let (pool_size, pool_idle, pool_max, outbox_pending) = Default::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route template (\"unmatched\" when no route matched) and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from the request's head to its response, by method and route template",
            latency.clone(),
        );
        private.register(
            "emails",
            "Emails queued in the outbox, sent, failed (to be retried) and abandoned",
            emails.clone(),
        );
        private.register(
            "db_pool_connections",
            "Open database connections of this instance (its pools of their own included)",
            Gauge::clone(&pool_size),
        );
        private.register(
            "db_pool_idle_connections",
            "Open database connections that are idle",
            Gauge::clone(&pool_idle),
        );
        private.register(
            "db_pool_max_connections",
            "The most connections this instance's pools may open",
            Gauge::clone(&pool_max),
        );
        private.register(
            "outbox_pending",
            "Emails in the outbox waiting for delivery (all instances on the database)",
            Gauge::clone(&outbox_pending),
        );
        Metrics(Arc::new(Inner {
            public: Mutex::new(registry),
            private: Mutex::new(private),
            requests,
            latency,
            emails,
            pool_size,
            pool_idle,
            pool_max,
            outbox_pending,
        }))
    }

    /// Counts an answered request. `route` is the matched route's URI template, or `None`.
    pub fn request(&self, method: &str, route: Option<&str>, status: u16, elapsed: Duration) {
        let route = route.unwrap_or("unmatched").to_owned();
        let method = method.to_owned();
        self.0
            .latency
            .get_or_create(&RouteLabels {
                method: method.clone(),
                route: route.clone(),
            })
            .observe(elapsed.as_secs_f64());
        self.0
            .requests
            .get_or_create(&RequestLabels {
                method,
                route,
                status,
            })
            .inc();
    }

    /// Registers a module's series, `stride_<name>`, served to any scrape: it must say nothing
    /// of whether an address has an account (a login counted by outcome does not: an unknown
    /// address fails like a wrong password). The module keeps a clone and counts on it.
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.0
            .public
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .register(name, help, metric);
    }

    /// Registers a module's series served only with `metrics.token`: one that moves with
    /// whether an address has an account.
    pub fn register_private(&self, name: &str, help: &str, metric: impl Metric) {
        self.0
            .private
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .register(name, help, metric);
    }

    pub fn email(&self, event: EmailEvent) {
        self.0.emails.get_or_create(&EmailLabels { event }).inc();
    }

    /// The OpenMetrics text of the public series, and of the private ones when `private`, with
    /// the gauges read now.
    async fn render(&self, db: &Db, private: bool) -> String {
        // A registry is only written while the server starts.
        fn lock(registry: &Mutex<Registry>) -> std::sync::MutexGuard<'_, Registry> {
            registry.lock().unwrap_or_else(PoisonError::into_inner)
        }
        let mut text = String::new();
        if !private {
            let public = lock(&self.0.public);
            if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &public) {
                tracing::error!("metrics: encoding: {e}");
            }
            return text;
        }
        let pool = &***db;
        let (open, idle, most) = db.connections();
        self.0.pool_size.set(i64::from(open));
        self.0
            .pool_idle
            .set(i64::try_from(idle).unwrap_or(i64::MAX));
        self.0.pool_max.set(i64::from(most));
        let pending = sqlx::query(
            "SELECT COUNT(*) AS pending FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL",
        )
        .fetch_one(pool)
        .await
        .and_then(|row| row.try_get::<i64, _>("pending"));
        match pending {
            Ok(pending) => {
                self.0.outbox_pending.set(pending);
            }
            // The last value stays; the scrape itself must not fail with the database.
            Err(e) => tracing::warn!("metrics: counting the outbox: {e}"),
        }
        let (public, private) = (lock(&self.0.public), lock(&self.0.private));
        let encoded = prometheus_client::encoding::text::encode_registry(&mut text, &public)
            .and_then(|()| prometheus_client::encoding::text::encode_registry(&mut text, &private))
            .and_then(|()| prometheus_client::encoding::text::encode_eof(&mut text));
        if let Err(e) = encoded {
            tracing::error!("metrics: encoding: {e}");
        }
        text
    }
}

/// The `Authorization` header, if any: the metrics route checks it itself, so that a refusal
/// is the JSON envelope like every other.
struct Authorization(Option<String>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Authorization {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        Outcome::Success(Authorization(
            request
                .headers()
                .get_one("Authorization")
                .map(str::to_owned),
        ))
    }
}

/// Compares digests, so the time taken does not tell how much of the token was right.
fn same_secret(given: &str, expected: &str) -> bool {
    let (a, b) = (Sha256::digest(given), Sha256::digest(expected));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

pub const INVALID_METRICS_TOKEN: &str = "provide a valid metrics token";

pub fn routes() -> Vec<Route> {
    routes![metrics]
}

#[get("/metrics")]
async fn metrics(
    authorization: Authorization,
    config: &State<MetricsConfig>,
    metrics: &State<Metrics>,
    db: &State<Db>,
) -> ApiResult<(ContentType, String)> {
    let private = config.token.is_some();
    if let Some(expected) = &config.token {
        let given = authorization
            .0
            .as_deref()
            .and_then(|h| h.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !same_secret(given, expected) {
            return Err(ApiError::new(Status::Unauthorized, INVALID_METRICS_TOKEN));
        }
    }
    let openmetrics = ContentType::new("application", "openmetrics-text")
        .with_params([("version", "1.0.0"), ("charset", "utf-8")]);
    Ok((openmetrics, metrics.render(db, private).await))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_must_be_long_enough() {
        let config = |token: &str| MetricsConfig {
            token: Some(token.into()),
            ..Default::default()
        };
        assert!(config("short").validate().is_err());
        assert!(config("sixteen chars ok").validate().is_err(), "spaces");
        assert!(config("0123456789abcdef").validate().is_ok());
        assert!(MetricsConfig::default().validate().is_ok());
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("0123456789abcdef", "0123456789abcdef"));
        assert!(!same_secret("0123456789abcde", "0123456789abcdef"));
        assert!(!same_secret("", "0123456789abcdef"));
    }
}
