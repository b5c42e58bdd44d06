//! Reset tokens: 32 random bytes, given once to the user (in the email link) and kept only as
//! their SHA-256. A token is good once, until it expires, and only for the password it was
//! issued under: any password change moves the user's password version on
//! (`users::password_version`) and kills it. The module's table, `password_reset_tokens`, is
//! read and written here only.

use kernel::db::now;
use kernel::error::Failure;
use kernel::tokens::{link_digest, link_token};
use kernel::users;
use sqlx::{AnyConnection, Row};

/// Creates a token for a user's current password and returns it (the only time it exists in
/// clear).
pub async fn issue(conn: &mut AnyConnection, user_id: i64, ttl: u64) -> Result<String, Failure> {
    let token = link_token()?;
    let created_at = now();
    let version = users::password_version(&mut *conn, user_id)
        .await
        .map_err(|e| Failure::new("the user's password version", e))?
        .ok_or_else(|| Failure::new("a reset token", "the user is gone"))?;
    sqlx::query(
        "INSERT INTO password_reset_tokens (token_hash, user_id, password_version, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(link_digest(&token))
    .bind(user_id)
    .bind(version)
    .bind(created_at)
    .bind(created_at.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX)))
    .execute(conn)
    .await
    .map_err(|e| Failure::new("storing a reset token", e))?;
    Ok(token)
}

/// The user a token may reset the password of, if it is unused, unexpired and issued for the
/// current password.
pub async fn holder(conn: &mut AnyConnection, token: &str) -> Result<Option<i64>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT user_id, password_version FROM password_reset_tokens \
         WHERE token_hash = $1 AND used_at IS NULL AND expires_at >= $2",
    )
    .bind(link_digest(token))
    .bind(now())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let (user_id, issued_for): (i64, i64) =
        (row.try_get("user_id")?, row.try_get("password_version")?);
    let current = users::password_version(conn, user_id).await?;
    Ok((current == Some(issued_for)).then_some(user_id))
}

/// Marks a token used; false when another request used it first.
pub async fn consume(conn: &mut AnyConnection, token: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE password_reset_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL",
    )
    .bind(now())
    .bind(link_digest(token))
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
