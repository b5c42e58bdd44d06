//! Throttling of the requests an attacker repeats. The kernel counts login attempts (per account
//! and client, per account, per client: [`login_attempt`]); a module declares its own counters
//! with [`Counter::new`] and its own limits in its configuration section, and takes them with
//! the same [`take`].
//!
//! Counters live in the database, so instances sharing it count together. Each is a fixed
//! window: the first event opens it, its window later it starts again. Keys are stored as
//! SHA-256 digests: the table holds no addresses, whether they have accounts or not.
//!
//! **Count first, then decide.** [`take`] adds one to every counter in a single atomic
//! statement each (`INSERT … ON CONFLICT DO UPDATE … RETURNING count`) and decides on the counts
//! it gets back, before any expensive work: a burst of concurrent attempts can never get more
//! answers than the limit, on either backend or across instances. A refused attempt gives its
//! counts back, and so does an attempt that turned out not to be what is limited (a login that
//! succeeded, a form with mistakes): [`refund`].
//!
//! **No lockout of the owner.** Failed logins are limited per account *and client* (a guesser
//! on one address gets 10 tries per window, and no one else is affected), per client (one
//! address guessing many accounts), and per account over a longer window (a guesser spread over
//! many addresses). That last, account-wide bound does not apply to the account's known
//! clients: addresses that signed in to it, or that a module vouched for ([`know_client`]: the
//! address that made the account, or proved it owns its mailbox) in the last
//! `known_client_days` days. Such proof also forgets the account's failures
//! ([`forget_login_failures`]).
//! So an attacker can slow guessing down for everyone but cannot keep the owner out: SECURITY.md
//! ("Throttling and lockout").

use std::net::IpAddr;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Row};

use crate::db::now;
use crate::error::ConfigError;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThrottleConfig {
    pub enabled: bool,
    /// Seconds a counter lasts (all but the account-wide login counter), modules' counters
    /// included.
    pub window: u64,
    /// Failed logins of one account from one client, per `window`.
    pub login_failures_per_account_and_client: i64,
    /// Failed logins of one account from clients it does not know, per `account_window`.
    pub login_failures_per_account: i64,
    /// Seconds the account-wide login counter lasts.
    pub account_window: u64,
    /// Failed logins from one client, whatever the account, per `window`.
    pub login_failures_per_client: i64,
    /// Days a client stays known to an account after it last signed in to it.
    pub known_client_days: u64,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            enabled: true,
            window: 15 * 60,
            login_failures_per_account_and_client: 10,
            // NIST SP 800-63B 5.2.2: at most 100 failed attempts on one account.
            login_failures_per_account: 100,
            account_window: 24 * 60 * 60,
            login_failures_per_client: 50,
            known_client_days: 30,
        }
    }
}

impl ThrottleConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, seconds) in [
            ("window", self.window),
            ("account_window", self.account_window),
        ] {
            if seconds == 0 {
                return Err(ConfigError::invalid(
                    &format!("throttle.{key}"),
                    "must be at least 1 second (got 0)",
                ));
            }
        }
        let limits = [
            (
                "login_failures_per_account_and_client",
                self.login_failures_per_account_and_client,
            ),
            (
                "login_failures_per_account",
                self.login_failures_per_account,
            ),
            ("login_failures_per_client", self.login_failures_per_client),
        ];
        match limits.iter().find(|(_, n)| *n < 1) {
            Some((key, n)) => Err(ConfigError::invalid(
                &format!("throttle.{key}"),
                format!("must be at least 1 (got {n})"),
            )),
            None => Ok(()),
        }
    }

    fn known_client_seconds(&self) -> i64 {
        i64::try_from(self.known_client_days.saturating_mul(86_400)).unwrap_or(i64::MAX)
    }
}

pub const TOO_MANY: &str = "too many requests, please try again later";

/// What is counted, and whose: one row of the `throttle` table.
#[derive(Debug, Clone)]
pub struct Counter {
    /// SHA-256 of what is counted and whose.
    key: String,
    /// The account whose login failures this counts, to forget them all at once.
    subject: Option<String>,
    limit: i64,
    window: i64,
}

fn digest(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// A client as the counters name it.
pub fn client_text(ip: Option<IpAddr>) -> String {
    ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
}

/// The subject of every counter of an account (and of its known clients): what a completed
/// reset clears of its failed logins, and what a deletion clears of everything. (The text
/// digested is kept as it was when only login counters had one: rows already stored match.)
fn account_subject(account: &str) -> String {
    digest(&format!("login-subject:{account}"))
}

impl Counter {
    /// A module's counter: at most `limit` events of `kind` (a name the module owns, such as
    /// `reset:client`) for `whose` (a client's [`client_text`], or anything but an account) per
    /// `throttle.window`.
    pub fn new(config: &ThrottleConfig, kind: &str, whose: &str, limit: i64) -> Counter {
        Counter {
            key: digest(&format!("{kind}:{whose}")),
            subject: None,
            limit,
            window: seconds(config.window),
        }
    }

    /// A module's counter of an account (its address key, known or not): like [`Counter::new`],
    /// and forgotten with the account's other counters ([`forget_account`]).
    pub fn of_account(config: &ThrottleConfig, kind: &str, account: &str, limit: i64) -> Counter {
        Counter {
            subject: Some(account_subject(account)),
            ..Counter::new(config, kind, account, limit)
        }
    }

    /// Failed logins of an account (its address key) from one client.
    fn login_failures_of_account_from_client(
        config: &ThrottleConfig,
        account: &str,
        client: Option<IpAddr>,
    ) -> Counter {
        Counter {
            key: digest(&format!("login:pair:{}:{account}", client_text(client))),
            subject: Some(account_subject(account)),
            limit: config.login_failures_per_account_and_client,
            window: seconds(config.window),
        }
    }

    /// Failed logins of an account from clients it does not know.
    fn login_failures_of_account(config: &ThrottleConfig, account: &str) -> Counter {
        Counter {
            key: digest(&format!("login:account:{account}")),
            subject: Some(account_subject(account)),
            limit: config.login_failures_per_account,
            window: seconds(config.account_window),
        }
    }

    /// Failed logins from one client, whatever the account.
    fn login_failures_of_client(config: &ThrottleConfig, client: Option<IpAddr>) -> Counter {
        Counter {
            key: digest(&format!("login:client:{}", client_text(client))),
            subject: None,
            limit: config.login_failures_per_client,
            window: seconds(config.window),
        }
    }
}

fn seconds(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// What [`take`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// A counter is past its limit; its window ends in this many seconds.
    Refused {
        retry_after: u64,
    },
}

/// Counts one request for an address (known or not) and from a client, each against its own
/// limit (`{kind}:account`, `{kind}:client`), in one writing transaction (one turn at SQLite's
/// write lock), and refuses with the 429 past either: the guard of the routes that email a
/// link to any address they are given (reset requests, confirmation resends).
pub async fn take_request_of_address(
    db: &crate::db::Db,
    config: &ThrottleConfig,
    kind: &str,
    account: &str,
    client: Option<IpAddr>,
    limits: (i64, i64),
) -> Result<(), crate::error::ApiError> {
    let counters = [
        Counter::of_account(config, &format!("{kind}:account"), account, limits.0),
        Counter::new(
            config,
            &format!("{kind}:client"),
            &client_text(client),
            limits.1,
        ),
    ];
    let mut tx = crate::db::begin_write(db).await?;
    let verdict = take(&mut tx, config, &counters).await?;
    tx.commit().await?;
    verdict.or_too_many()
}

/// Counts one attempt on every counter, atomically, and decides on the counts: refused when
/// any of them is now past its limit. A refused attempt is given back at once, so refusals do
/// not extend anything.
pub async fn take(
    conn: &mut AnyConnection,
    config: &ThrottleConfig,
    counters: &[Counter],
) -> Result<Verdict, sqlx::Error> {
    if !config.enabled {
        return Ok(Verdict::Allowed);
    }
    let now = now();
    let mut wait = 0;
    for spec in counters {
        let row = sqlx::query(
            "INSERT INTO throttle (key, subject, window_start, count) VALUES ($1, $2, $3, 1) \
             ON CONFLICT (key) DO UPDATE SET \
               count = CASE WHEN throttle.window_start <= $4 THEN 1 ELSE throttle.count + 1 END, \
               window_start = CASE WHEN throttle.window_start <= $4 THEN $3 ELSE throttle.window_start END \
             RETURNING count, window_start",
        )
        .bind(&spec.key)
        .bind(spec.subject.as_deref())
        .bind(now)
        .bind(now.saturating_sub(spec.window))
        .fetch_one(&mut *conn)
        .await?;
        let (count, start): (i64, i64) = (row.try_get("count")?, row.try_get("window_start")?);
        if count > spec.limit {
            wait = wait.max(start.saturating_add(spec.window).saturating_sub(now).max(1));
        }
    }
    prune_now_and_then(conn, config, now).await?;
    if wait > 0 {
        refund(conn, config, counters).await?;
        return Ok(Verdict::Refused {
            retry_after: u64::try_from(wait).unwrap_or(1),
        });
    }
    Ok(Verdict::Allowed)
}

/// Gives back one attempt on each counter (never below zero).
pub async fn refund(
    conn: &mut AnyConnection,
    config: &ThrottleConfig,
    counters: &[Counter],
) -> Result<(), sqlx::Error> {
    if !config.enabled {
        return Ok(());
    }
    for counter in counters {
        sqlx::query("UPDATE throttle SET count = count - 1 WHERE key = $1 AND count > 0")
            .bind(&counter.key)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Forgets every counter of an account, its failed logins from every client included: after
/// its owner signed in, or completed a password reset.
pub async fn forget_login_failures(
    conn: &mut AnyConnection,
    config: &ThrottleConfig,
    account: &str,
) -> Result<(), sqlx::Error> {
    if !config.enabled {
        return Ok(());
    }
    sqlx::query("DELETE FROM throttle WHERE subject = $1")
        .bind(account_subject(account))
        .execute(conn)
        .await?;
    Ok(())
}

/// Forgets everything the throttle holds of an account (its counters and its known clients),
/// whatever the configuration says now: the account is being deleted, and a new account at the
/// same address starts clean.
pub async fn forget_account(conn: &mut AnyConnection, account: &str) -> Result<(), sqlx::Error> {
    let subject = account_subject(account);
    sqlx::query("DELETE FROM throttle WHERE subject = $1")
        .bind(&subject)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM known_clients WHERE subject = $1")
        .bind(&subject)
        .execute(conn)
        .await?;
    Ok(())
}

fn known_client_key(account: &str, client: Option<IpAddr>) -> String {
    digest(&format!("known-client:{}:{account}", client_text(client)))
}

/// Remembers `client` as one of the account's own (it signed in, made the account, or proved
/// it owns the account's mailbox): the account-wide bound on failed logins no longer applies
/// to it.
pub async fn know_client(
    conn: &mut AnyConnection,
    config: &ThrottleConfig,
    account: &str,
    client: Option<IpAddr>,
) -> Result<(), sqlx::Error> {
    if !config.enabled {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO known_clients (key, subject, seen_at) VALUES ($1, $2, $3) \
         ON CONFLICT (key) DO UPDATE SET seen_at = $3",
    )
    .bind(known_client_key(account, client))
    .bind(account_subject(account))
    .bind(now())
    .execute(conn)
    .await?;
    Ok(())
}

/// A login attempt of `account` from `client`: the counters it takes, and whether a success
/// should (re)record the client as known.
pub struct LoginAttempt {
    pub counters: Vec<Counter>,
    /// The client is not known, or was last recorded more than a day ago: a success records it.
    /// (Recording it on every login would be one more write per login for nothing.)
    pub record_client: bool,
}

/// Gives back a successful login's attempt on the client's counter (the account's are
/// forgotten with [`forget_login_failures`]): it was not a failure.
pub async fn refund_login_of_client(
    conn: &mut AnyConnection,
    config: &ThrottleConfig,
    client: Option<IpAddr>,
) -> Result<(), sqlx::Error> {
    refund(
        conn,
        config,
        &[Counter::login_failures_of_client(config, client)],
    )
    .await
}

/// Seconds before a known client's record is refreshed by a successful login.
const KNOWN_CLIENT_REFRESH: i64 = 24 * 60 * 60;

/// The counters a login attempt of `account` from `client` takes: always per account and client
/// and per client, and per account when the client is not one of the account's own.
pub async fn login_attempt(
    conn: &mut AnyConnection,
    config: &ThrottleConfig,
    account: &str,
    client: Option<IpAddr>,
) -> Result<LoginAttempt, sqlx::Error> {
    let mut counters = vec![
        Counter::login_failures_of_account_from_client(config, account, client),
        Counter::login_failures_of_client(config, client),
    ];
    if !config.enabled {
        return Ok(LoginAttempt {
            counters,
            record_client: false,
        });
    }
    let seen_at: Option<i64> = sqlx::query("SELECT seen_at FROM known_clients WHERE key = $1")
        .bind(known_client_key(account, client))
        .fetch_optional(&mut *conn)
        .await?
        .map(|row| row.try_get("seen_at"))
        .transpose()?;
    let now = now();
    let known = seen_at.is_some_and(|at| at > now.saturating_sub(config.known_client_seconds()));
    if !known {
        counters.push(Counter::login_failures_of_account(config, account));
    }
    Ok(LoginAttempt {
        counters,
        record_client: seen_at.is_none_or(|at| now.saturating_sub(at) > KNOWN_CLIENT_REFRESH),
    })
}

/// Now and then, forget counters and known clients whose time has passed.
async fn prune_now_and_then(
    conn: &mut AnyConnection,
    config: &ThrottleConfig,
    now: i64,
) -> Result<(), sqlx::Error> {
    let mut dice = [0u8; 1];
    if getrandom::fill(&mut dice).is_err() || dice[0] >= 3 {
        return Ok(());
    }
    let longest = seconds(config.window.max(config.account_window));
    sqlx::query("DELETE FROM throttle WHERE window_start <= $1")
        .bind(now.saturating_sub(longest))
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM known_clients WHERE seen_at <= $1")
        .bind(now.saturating_sub(config.known_client_seconds()))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

impl Verdict {
    /// The answer to a refused attempt: 429 with `Retry-After`.
    pub fn or_too_many(self) -> Result<(), crate::ApiError> {
        match self {
            Verdict::Allowed => Ok(()),
            Verdict::Refused { retry_after } => {
                Err(crate::ApiError::too_many_requests(TOO_MANY, retry_after))
            }
        }
    }
}
