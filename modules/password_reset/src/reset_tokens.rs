//! Reset tokens: 32 random bytes, given once to the user (in the email link) and kept only as
//! their SHA-256. A token is good once, until it expires, and only for the password it was
//! issued under: any password change moves the user's password version on
//! (`users::password_version`) and kills it. The module's table, `password_reset_tokens`, is
//! read and written here only.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use kernel::db::now;
use kernel::error::Failure;
use kernel::users;
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Row};

pub fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Creates a token for a user's current password and returns it (the only time it exists in
/// clear).
pub async fn issue(conn: &mut AnyConnection, user_id: i64, ttl: u64) -> Result<String, Failure> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Failure::new("OS randomness", e.to_string()))?;
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let created_at = now();
    let version = users::password_version(&mut *conn, user_id)
        .await
        .map_err(|e| Failure::new("the user's password version", e))?
        .ok_or_else(|| Failure::new("a reset token", "the user is gone"))?;
    sqlx::query(
        "INSERT INTO password_reset_tokens (token_hash, user_id, password_version, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(digest(&token))
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
    .bind(digest(token))
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
    .bind(digest(token))
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_sha256_hex() {
        assert_eq!(
            digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
