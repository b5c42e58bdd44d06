//! Liveness: FitTrackee's `GET /api/ping`, and the probes for an orchestrator or a load
//! balancer: `GET /health` (the process answers; it touches nothing) and `GET /ready` (the
//! database answers and holds every migration this binary embeds: this instance can serve).

use std::time::Duration;

use rocket::http::Status;
use rocket::serde::json::{json, Value};
use rocket::{get, routes, Route, State};
use sqlx::{AnyPool, Row};

use crate::db::{embedded_migrations, Backend, Db};
use crate::error::{ApiError, ApiResult};

/// A readiness probe must answer within the prober's timeout, typically a few seconds, even
/// when the database hangs.
const READY_TIMEOUT: Duration = Duration::from_secs(3);

pub fn routes() -> Vec<Route> {
    routes![health, ready]
}

/// Mounted under `/api`.
pub fn api_routes() -> Vec<Route> {
    routes![ping]
}

#[get("/ping")]
fn ping() -> Value {
    json!({ "status": "success", "message": "pong!" })
}

#[get("/health")]
fn health() -> Value {
    json!({ "status": "success", "message": "alive" })
}

#[get("/ready")]
async fn ready(db: &State<Db>) -> ApiResult<Value> {
    let check = tokio::time::timeout(READY_TIMEOUT, pending_migrations(db)).await;
    let unready = |message: &'static str| ApiError::new(Status::ServiceUnavailable, message);
    match check {
        Err(_) => {
            tracing::warn!("readiness: the database did not answer within {READY_TIMEOUT:?}");
            Err(unready("not ready: the database does not answer"))
        }
        Ok(Err(e)) => {
            // The details (host names, credentials in a URL) are for the operator only.
            tracing::warn!("readiness: database: {e}");
            Err(unready("not ready: the database does not answer"))
        }
        Ok(Ok(0)) => Ok(json!({ "status": "success", "message": "ready" })),
        Ok(Ok(pending)) => {
            tracing::warn!("readiness: {pending} database migration(s) not applied");
            Err(unready("not ready: database migrations are not applied"))
        }
    }
}

/// How many of the embedded migrations the database has not applied successfully.
async fn pending_migrations(pool: &AnyPool) -> Result<usize, sqlx::Error> {
    let backend = Backend::of(pool).await?;
    let applied: Vec<i64> = sqlx::query("SELECT version FROM _sqlx_migrations WHERE success = $1")
        .bind(true)
        .fetch_all(pool)
        .await?
        .iter()
        .map(|row| row.try_get("version"))
        .collect::<Result<_, _>>()?;
    Ok(embedded_migrations(backend)
        .filter(|version| !applied.contains(version))
        .count())
}
