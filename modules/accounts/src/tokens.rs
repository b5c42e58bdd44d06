//! The module's links (`account_tokens`, read and written here only): 32 random bytes given
//! once to the user, in the emailed link, and kept only as their SHA-256, with one purpose.
//! A token is good once, until it expires, for its purpose only, and only while the account's
//! password and address are those it was issued under (docs/accounts.md, "Tokens"). Issuing a
//! token kills the account's live ones of the same purpose.

use kernel::db::now;
use kernel::error::Failure;
use kernel::tokens::{link_digest, link_token};
use kernel::users::{AccountState, User};
use kernel::validate::email_key;
use sqlx::{AnyConnection, Row};

/// What a token may be used for; refused by every route of another purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Activates a pending account.
    Confirm,
    /// Makes its `new_email` the account's address.
    EmailChange,
    /// Undoes a change of address the user asked for, from the old address: restores
    /// `old_email`. Survives later changes of address and password.
    Revert,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::Confirm => "confirm",
            Purpose::EmailChange => "email_change",
            Purpose::Revert => "revert",
        }
    }
}

/// A new token, in clear: the only time it exists so.
pub struct Issued {
    pub token: String,
    pub expires_at: i64,
}

/// Creates a token of `purpose` for `user`, valid `ttl` seconds, and kills the user's live
/// tokens of that purpose.
pub async fn issue(
    conn: &mut AnyConnection,
    user: &User,
    purpose: Purpose,
    ttl: u64,
) -> Result<Issued, Failure> {
    insert(conn, user, purpose, ttl, None, None).await
}

/// An email-change link of `user` to `new_email` (the previous one dies).
pub async fn issue_change(
    conn: &mut AnyConnection,
    user: &User,
    ttl: u64,
    new_email: &str,
) -> Result<Issued, Failure> {
    insert(conn, user, Purpose::EmailChange, ttl, Some(new_email), None).await
}

/// A revert link for the address `user` has now (earlier ones stay alive).
pub async fn issue_revert(
    conn: &mut AnyConnection,
    user: &User,
    ttl: u64,
) -> Result<Issued, Failure> {
    insert(conn, user, Purpose::Revert, ttl, None, Some(&user.email)).await
}

/// Kills the user's revert links issued after `after` (a revert undoes what came later).
pub async fn kill_later_reverts(
    conn: &mut AnyConnection,
    user_id: i64,
    after: i64,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE account_tokens SET used_at = $1 WHERE user_id = $2 AND purpose = 'revert' \
         AND used_at IS NULL AND created_at >= $3",
    )
    .bind(now())
    .bind(user_id)
    .bind(after)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Until when the user's live revert links to `email` last, if there are any.
pub async fn revertible_until(
    conn: &mut AnyConnection,
    user_id: i64,
    email: &str,
) -> Result<Option<i64>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT MAX(expires_at) AS until FROM account_tokens WHERE user_id = $1 AND purpose = 'revert' \
         AND used_at IS NULL AND expires_at >= $2 AND old_email = $3",
    )
    .bind(user_id)
    .bind(now())
    .bind(email)
    .fetch_one(conn)
    .await?;
    row.try_get("until")
}

async fn insert(
    conn: &mut AnyConnection,
    user: &User,
    purpose: Purpose,
    ttl: u64,
    new_email: Option<&str>,
    old_email: Option<&str>,
) -> Result<Issued, Failure> {
    let database = |e| Failure::new("account tokens", e);
    let token = link_token()?;
    let created_at = now();
    // At most one live link of each purpose, revert links excepted.
    if purpose != Purpose::Revert {
        kill(&mut *conn, user.id, purpose).await.map_err(database)?;
    }
    let version = kernel::users::password_version(&mut *conn, user.id)
        .await
        .map_err(database)?
        .ok_or_else(|| Failure::new("an account token", "the user is gone"))?;
    let expires_at = created_at.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX));
    sqlx::query(
        "INSERT INTO account_tokens (token_hash, user_id, purpose, password_version, email_key, \
         new_email, old_email, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(link_digest(&token))
    .bind(user.id)
    .bind(purpose.as_str())
    .bind(version)
    .bind(email_key(&user.email))
    .bind(new_email)
    .bind(old_email)
    .bind(created_at)
    .bind(expires_at)
    .execute(conn)
    .await
    .map_err(database)?;
    Ok(Issued { token, expires_at })
}

/// Kills the user's live tokens of `purpose`.
pub async fn kill(
    conn: &mut AnyConnection,
    user_id: i64,
    purpose: Purpose,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE account_tokens SET used_at = $1 WHERE user_id = $2 AND purpose = $3 AND used_at IS NULL",
    )
    .bind(now())
    .bind(user_id)
    .bind(purpose.as_str())
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// What a good token is for.
pub struct Held {
    pub user_id: i64,
    /// An email-change link's address.
    pub new_email: Option<String>,
    /// A revert link's address.
    pub old_email: Option<String>,
    pub created_at: i64,
}

/// What a token of `purpose` is good for: unused, unexpired, issued under the account's
/// current password and address, for an account still pending (a confirmation link) or not
/// deactivated (an email-change link).
pub async fn holder(
    conn: &mut AnyConnection,
    token: &str,
    purpose: Purpose,
) -> Result<Option<Held>, sqlx::Error> {
    // A token longer than any we issue is nobody's, and never reaches the database.
    if token.len() > 64 {
        return Ok(None);
    }
    let row = sqlx::query(
        "SELECT user_id, password_version, email_key, new_email, old_email, created_at FROM account_tokens \
         WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at >= $3",
    )
    .bind(link_digest(token))
    .bind(purpose.as_str())
    .bind(now())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let (user_id, issued_version, issued_email): (i64, i64, String) = (
        row.try_get("user_id")?,
        row.try_get("password_version")?,
        row.try_get("email_key")?,
    );
    let Some(user) = kernel::users::by_id(&mut *conn, user_id).await? else {
        return Ok(None);
    };
    // A revert link outlives the changes it undoes; the others die with the password and the
    // address they were issued under.
    let current = purpose == Purpose::Revert
        || (kernel::users::password_version(conn, user_id).await? == Some(issued_version)
            && email_key(&user.email) == issued_email);
    let state_fits = match purpose {
        Purpose::Confirm => user.state == AccountState::Pending,
        Purpose::EmailChange => user.state != AccountState::Deactivated,
        Purpose::Revert => true,
    };
    if !(current && state_fits) {
        return Ok(None);
    }
    Ok(Some(Held {
        user_id,
        new_email: row.try_get("new_email")?,
        old_email: row.try_get("old_email")?,
        created_at: row.try_get("created_at")?,
    }))
}

/// The account a token of `purpose` is good for (see [`holder`]).
pub async fn account(
    db: &kernel::Db,
    token: &str,
    purpose: Purpose,
) -> Result<Option<User>, sqlx::Error> {
    let mut conn = db.acquire().await?;
    let Some(held) = holder(&mut conn, token, purpose).await? else {
        return Ok(None);
    };
    kernel::users::by_id(&mut conn, held.user_id).await
}

/// Marks a token used; false when another request used it first.
pub async fn consume(conn: &mut AnyConnection, token: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE account_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL",
    )
    .bind(now())
    .bind(link_digest(token))
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes the tokens that can no longer be used (used or expired before `before`).
pub async fn delete_dead(conn: &mut AnyConnection, before: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM account_tokens WHERE (used_at IS NOT NULL AND used_at < $1) OR expires_at < $1",
    )
    .bind(before)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}
