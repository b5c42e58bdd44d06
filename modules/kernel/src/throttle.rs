//! Throttling of the requests an attacker repeats: failed logins (per account and per client
//! address), reset requests (per address and per client) and registrations (per client).
//!
//! Counters live in the database, so instances sharing it count together. Each is a fixed
//! window: the first event opens it, `throttle.window` seconds later it starts again. Keys are
//! stored as SHA-256 digests: the table holds no addresses, whether they have accounts or not.

use std::net::IpAddr;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Row};

use crate::db::now;
use crate::error::ApiError;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThrottleConfig {
    pub enabled: bool,
    /// Seconds a counter lasts.
    pub window: u64,
    pub login_failures_per_account: i64,
    pub login_failures_per_client: i64,
    pub reset_requests_per_account: i64,
    pub reset_requests_per_client: i64,
    pub registrations_per_client: i64,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            enabled: true,
            window: 15 * 60,
            login_failures_per_account: 10,
            login_failures_per_client: 50,
            reset_requests_per_account: 3,
            reset_requests_per_client: 20,
            registrations_per_client: 10,
        }
    }
}

impl ThrottleConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.window == 0 {
            return Err("throttle.window: must be at least 1 second".into());
        }
        let limits = [
            (
                "login_failures_per_account",
                self.login_failures_per_account,
            ),
            ("login_failures_per_client", self.login_failures_per_client),
            (
                "reset_requests_per_account",
                self.reset_requests_per_account,
            ),
            ("reset_requests_per_client", self.reset_requests_per_client),
            ("registrations_per_client", self.registrations_per_client),
        ];
        match limits.iter().find(|(_, n)| *n < 1) {
            Some((key, _)) => Err(format!("throttle.{key}: must be at least 1")),
            None => Ok(()),
        }
    }
}

pub const TOO_MANY: &str = "too many requests, please try again later";

/// What is counted, and whose.
pub enum Counter<'a> {
    LoginFailuresOfAccount(&'a str),
    LoginFailuresOfClient(Option<IpAddr>),
    ResetRequestsOfAccount(&'a str),
    ResetRequestsOfClient(Option<IpAddr>),
    RegistrationsOfClient(Option<IpAddr>),
}

impl Counter<'_> {
    fn key_and_limit(&self, config: &ThrottleConfig) -> (String, i64) {
        let client =
            |ip: &Option<IpAddr>| ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        let (key, limit) = match self {
            Counter::LoginFailuresOfAccount(a) => (
                format!("login:account:{a}"),
                config.login_failures_per_account,
            ),
            Counter::LoginFailuresOfClient(ip) => (
                format!("login:client:{}", client(ip)),
                config.login_failures_per_client,
            ),
            Counter::ResetRequestsOfAccount(a) => (
                format!("reset:account:{a}"),
                config.reset_requests_per_account,
            ),
            Counter::ResetRequestsOfClient(ip) => (
                format!("reset:client:{}", client(ip)),
                config.reset_requests_per_client,
            ),
            Counter::RegistrationsOfClient(ip) => (
                format!("register:client:{}", client(ip)),
                config.registrations_per_client,
            ),
        };
        (hex::encode(Sha256::digest(key.as_bytes())), limit)
    }
}

fn window(config: &ThrottleConfig) -> i64 {
    i64::try_from(config.window).unwrap_or(i64::MAX)
}

/// Refuses with 429 and `Retry-After` when any of the counters is at its limit.
pub async fn check(
    conn: &mut AnyConnection,
    config: &ThrottleConfig,
    counters: &[Counter<'_>],
) -> Result<(), ApiError> {
    if !config.enabled {
        return Ok(());
    }
    let now = now();
    let mut wait = 0;
    for counter in counters {
        let (key, limit) = counter.key_and_limit(config);
        let row = sqlx::query("SELECT count, window_start FROM throttle WHERE key = $1")
            .bind(key)
            .fetch_optional(&mut *conn)
            .await?;
        let Some(row) = row else { continue };
        let (count, start): (i64, i64) = (row.try_get("count")?, row.try_get("window_start")?);
        let ends = start.saturating_add(window(config));
        if count >= limit && ends > now {
            wait = wait.max(ends - now);
        }
    }
    if wait > 0 {
        return Err(ApiError::too_many_requests(
            TOO_MANY,
            u64::try_from(wait).unwrap_or(1),
        ));
    }
    Ok(())
}

/// Counts one event on each counter.
pub async fn hit(
    conn: &mut AnyConnection,
    config: &ThrottleConfig,
    counters: &[Counter<'_>],
) -> Result<(), sqlx::Error> {
    if !config.enabled {
        return Ok(());
    }
    let now = now();
    let expired = now.saturating_sub(window(config));
    for counter in counters {
        let (key, _) = counter.key_and_limit(config);
        sqlx::query(
            "INSERT INTO throttle (key, window_start, count) VALUES ($1, $2, 1) \
             ON CONFLICT (key) DO UPDATE SET \
               count = CASE WHEN throttle.window_start <= $3 THEN 1 ELSE throttle.count + 1 END, \
               window_start = CASE WHEN throttle.window_start <= $3 THEN $2 ELSE throttle.window_start END",
        )
        .bind(key)
        .bind(now)
        .bind(expired)
        .execute(&mut *conn)
        .await?;
    }
    // Now and then, forget counters whose window has passed.
    let mut dice = [0u8; 1];
    if getrandom::fill(&mut dice).is_ok() && dice[0] < 3 {
        sqlx::query("DELETE FROM throttle WHERE window_start <= $1")
            .bind(expired)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Forgets a counter (an account's failures once its owner logs in).
pub async fn clear(
    conn: &mut AnyConnection,
    config: &ThrottleConfig,
    counter: &Counter<'_>,
) -> Result<(), sqlx::Error> {
    if !config.enabled {
        return Ok(());
    }
    let (key, _) = counter.key_and_limit(config);
    sqlx::query("DELETE FROM throttle WHERE key = $1")
        .bind(key)
        .execute(conn)
        .await?;
    Ok(())
}
