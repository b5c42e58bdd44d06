//! The module's tables: `sso_flows` (logins begun, waiting for their callback), `sso_codes`
//! (one-time codes waiting for their exchange), `sso_identities` (provider accounts linked to
//! Stride accounts) and `sso_settings` (the SSO-only switch). Secrets (`state`, codes) are
//! kept as their SHA-256 only; every row that can be used is used once.

use kernel::db::{get_bool, now};
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Row};

pub fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A random secret: 32 bytes, URL-safe base64.
pub fn random_secret() -> Result<String, getrandom::Error> {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// A login begun at a provider.
pub struct Flow {
    /// The SHA-256 of the flow cookie given to the browser that began it.
    pub browser_hash: String,
    pub provider: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

pub async fn save_flow(
    conn: &mut AnyConnection,
    state: &str,
    flow: &Flow,
    ttl: i64,
) -> Result<(), sqlx::Error> {
    let now = now();
    sqlx::query("DELETE FROM sso_flows WHERE expires_at < $1")
        .bind(now)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO sso_flows (state_hash, browser_hash, provider, nonce, pkce_verifier, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(digest(state))
    .bind(&flow.browser_hash)
    .bind(&flow.provider)
    .bind(&flow.nonce)
    .bind(&flow.pkce_verifier)
    .bind(now.saturating_add(ttl))
    .execute(conn)
    .await?;
    Ok(())
}

/// The flow of this `state`, taken (a second callback with it finds nothing); none when it is
/// unknown, used, expired or another provider's.
pub async fn take_flow(
    conn: &mut AnyConnection,
    state: &str,
    provider: &str,
) -> Result<Option<Flow>, sqlx::Error> {
    let row = sqlx::query(
        "DELETE FROM sso_flows WHERE state_hash = $1 \
         RETURNING browser_hash, provider, nonce, pkce_verifier, expires_at",
    )
    .bind(digest(state))
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let flow = Flow {
        browser_hash: row.try_get("browser_hash")?,
        provider: row.try_get("provider")?,
        nonce: row.try_get("nonce")?,
        pkce_verifier: row.try_get("pkce_verifier")?,
    };
    let expires_at: i64 = row.try_get("expires_at")?;
    Ok((flow.provider == provider && expires_at >= now()).then_some(flow))
}

/// Issues a one-time code for a session of `user_id`; returns the code.
pub async fn issue_code(
    conn: &mut AnyConnection,
    user_id: i64,
    ttl: i64,
) -> Result<String, kernel::ApiError> {
    let code = random_secret().map_err(|e| kernel::ApiError::internal("no OS randomness", e))?;
    let now = now();
    sqlx::query("DELETE FROM sso_codes WHERE expires_at < $1")
        .bind(now)
        .execute(&mut *conn)
        .await?;
    sqlx::query("INSERT INTO sso_codes (code_hash, user_id, expires_at) VALUES ($1, $2, $3)")
        .bind(digest(&code))
        .bind(user_id)
        .bind(now.saturating_add(ttl))
        .execute(conn)
        .await?;
    Ok(code)
}

/// The user of a one-time code, taking it: a second exchange finds nothing, and so does an
/// expired code.
pub async fn take_code(conn: &mut AnyConnection, code: &str) -> Result<Option<i64>, sqlx::Error> {
    let row =
        sqlx::query("DELETE FROM sso_codes WHERE code_hash = $1 RETURNING user_id, expires_at")
            .bind(digest(code))
            .fetch_optional(conn)
            .await?;
    let Some(row) = row else { return Ok(None) };
    let expires_at: i64 = row.try_get("expires_at")?;
    (expires_at >= now())
        .then(|| row.try_get("user_id"))
        .transpose()
}

/// A provider account linked to a Stride account.
#[derive(Debug, Clone)]
pub struct Link {
    pub id: i64,
    pub user_id: i64,
    pub provider: String,
    pub subject: String,
    pub email: Option<String>,
    pub created_at: i64,
    pub last_login_at: i64,
}

const LINK_COLUMNS: &str = "id, user_id, provider, subject, email, created_at, last_login_at";

fn link_of(row: &sqlx::any::AnyRow) -> Result<Link, sqlx::Error> {
    Ok(Link {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        provider: row.try_get("provider")?,
        subject: row.try_get("subject")?,
        email: row.try_get("email")?,
        created_at: row.try_get("created_at")?,
        last_login_at: row.try_get("last_login_at")?,
    })
}

pub async fn link_of_subject(
    conn: &mut AnyConnection,
    provider: &str,
    subject: &str,
) -> Result<Option<Link>, sqlx::Error> {
    let sql =
        format!("SELECT {LINK_COLUMNS} FROM sso_identities WHERE provider = $1 AND subject = $2");
    let row = sqlx::query(&sql)
        .bind(provider)
        .bind(subject)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(link_of).transpose()
}

/// Links a provider's subject to an account (a subject already linked is left as it is: the
/// unique key decides a race).
pub async fn link(
    conn: &mut AnyConnection,
    user_id: i64,
    provider: &str,
    subject: &str,
    email: Option<&str>,
) -> Result<(), sqlx::Error> {
    let now = now();
    sqlx::query(
        "INSERT INTO sso_identities (user_id, provider, subject, email, created_at, last_login_at) \
         VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind(user_id)
    .bind(provider)
    .bind(subject)
    .bind(email)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn touch(
    conn: &mut AnyConnection,
    id: i64,
    email: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE sso_identities SET last_login_at = $1, email = COALESCE($2, email) WHERE id = $3",
    )
    .bind(now())
    .bind(email)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn links_of(conn: &mut AnyConnection, user_id: i64) -> Result<Vec<Link>, sqlx::Error> {
    let sql = format!(
        "SELECT {LINK_COLUMNS} FROM sso_identities WHERE user_id = $1 ORDER BY created_at, id"
    );
    let rows = sqlx::query(&sql).bind(user_id).fetch_all(conn).await?;
    rows.iter().map(link_of).collect()
}

pub async fn unlink(conn: &mut AnyConnection, user_id: i64, id: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM sso_identities WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// The SSO-only switch, `default` until an admin sets it.
pub async fn only_sso(conn: &mut AnyConnection, default: bool) -> Result<bool, sqlx::Error> {
    let row = sqlx::query("SELECT only_sso FROM sso_settings WHERE id = 1")
        .fetch_optional(conn)
        .await?;
    row.map_or(Ok(default), |row| get_bool(&row, "only_sso"))
}

pub async fn set_only_sso(conn: &mut AnyConnection, on: bool) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sso_settings (id, only_sso) VALUES (1, $1) \
         ON CONFLICT (id) DO UPDATE SET only_sso = excluded.only_sso",
    )
    .bind(on)
    .execute(conn)
    .await?;
    Ok(())
}
