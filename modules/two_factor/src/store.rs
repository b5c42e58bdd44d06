//! The module's tables (migrations/*/20261201000009_two_factor.sql): its queries, and no one
//! else's.

use sqlx::{AnyConnection, Row};

/// A user's TOTP factor.
pub struct Totp {
    pub sealed_secret: Vec<u8>,
    pub confirmed: bool,
}

pub async fn totp(conn: &mut AnyConnection, user_id: i64) -> Result<Option<Totp>, sqlx::Error> {
    let row =
        sqlx::query("SELECT sealed_secret, confirmed_at FROM two_factor_totp WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(conn)
            .await?;
    row.map(|row| {
        Ok(Totp {
            sealed_secret: row.try_get("sealed_secret")?,
            confirmed: row.try_get::<Option<i64>, _>("confirmed_at")?.is_some(),
        })
    })
    .transpose()
}

/// Starts (or starts again) an enrolment that is not confirmed yet. An active factor is never
/// replaced this way.
pub async fn start_enrolment(
    conn: &mut AnyConnection,
    user_id: i64,
    sealed_secret: &[u8],
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO two_factor_totp (user_id, sealed_secret, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (user_id) DO UPDATE SET sealed_secret = $2, created_at = $3, last_step = NULL \
         WHERE two_factor_totp.confirmed_at IS NULL",
    )
    .bind(user_id)
    .bind(sealed_secret)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Records `step` as the last one accepted, if it is later than the last: false when a code of
/// this step (or a later one) was already accepted, so no code works twice, even in a race.
pub async fn use_step(
    conn: &mut AnyConnection,
    user_id: i64,
    step: i64,
    confirming: bool,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = if confirming {
        sqlx::query(
            "UPDATE two_factor_totp SET last_step = $1, confirmed_at = $3 WHERE user_id = $2 \
             AND confirmed_at IS NULL AND (last_step IS NULL OR last_step < $1)",
        )
        .bind(step)
        .bind(user_id)
        .bind(now)
        .execute(conn)
        .await?
    } else {
        sqlx::query(
            "UPDATE two_factor_totp SET last_step = $1 WHERE user_id = $2 \
             AND confirmed_at IS NOT NULL AND (last_step IS NULL OR last_step < $1)",
        )
        .bind(step)
        .bind(user_id)
        .execute(conn)
        .await?
    };
    Ok(done.rows_affected() == 1)
}

/// Removes every factor of a user (TOTP, recovery codes, waiting steps); true when there was
/// one.
pub async fn remove_all(conn: &mut AnyConnection, user_id: i64) -> Result<bool, sqlx::Error> {
    let totp = sqlx::query("DELETE FROM two_factor_totp WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM two_factor_recovery_codes WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    forget_steps(conn, user_id).await?;
    Ok(totp.rows_affected() > 0)
}

/// Replaces a user's recovery codes with these digests.
pub async fn set_recovery_codes(
    conn: &mut AnyConnection,
    user_id: i64,
    digests: &[String],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM two_factor_recovery_codes WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    for digest in digests {
        sqlx::query("INSERT INTO two_factor_recovery_codes (user_id, digest) VALUES ($1, $2)")
            .bind(user_id)
            .bind(digest)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Uses up a recovery code: true when it was one of the user's, now gone.
pub async fn use_recovery_code(
    conn: &mut AnyConnection,
    user_id: i64,
    digest: &str,
) -> Result<bool, sqlx::Error> {
    let done =
        sqlx::query("DELETE FROM two_factor_recovery_codes WHERE user_id = $1 AND digest = $2")
            .bind(user_id)
            .bind(digest)
            .execute(conn)
            .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn recovery_codes_left(
    conn: &mut AnyConnection,
    user_id: i64,
) -> Result<i64, sqlx::Error> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM two_factor_recovery_codes WHERE user_id = $1")
        .bind(user_id)
        .fetch_one(conn)
        .await?;
    row.try_get("n")
}

/// What a step token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A login whose password matched, waiting for its second factor.
    Login,
    /// A login whose password matched, of an account the policy requires a factor of and whose
    /// grace period is over: it allows the TOTP enrolment only (docs/two-factor.md, "Policy").
    Enrol,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::Login => "login",
            Purpose::Enrol => "enrol",
        }
    }
}

pub async fn insert_step(
    conn: &mut AnyConnection,
    digest: &str,
    user_id: i64,
    purpose: Purpose,
    expires_at: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    // The user's dead steps go as a new one comes: the table holds live steps only.
    sqlx::query("DELETE FROM two_factor_steps WHERE user_id = $1 AND expires_at < $2")
        .bind(user_id)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO two_factor_steps (digest, user_id, purpose, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(digest)
    .bind(user_id)
    .bind(purpose.as_str())
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The user of a live step token of this purpose (not using it up).
pub async fn step_user(
    conn: &mut AnyConnection,
    digest: &str,
    purpose: Purpose,
    now: i64,
) -> Result<Option<i64>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT user_id FROM two_factor_steps WHERE digest = $1 AND purpose = $2 AND expires_at >= $3",
    )
    .bind(digest)
    .bind(purpose.as_str())
    .bind(now)
    .fetch_optional(conn)
    .await?;
    row.map(|r| r.try_get("user_id")).transpose()
}

/// Uses up a step token: true when it was live (so two requests racing with one token cannot
/// both open a session).
pub async fn use_step_token(conn: &mut AnyConnection, digest: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM two_factor_steps WHERE digest = $1")
        .bind(digest)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn forget_steps(conn: &mut AnyConnection, user_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM two_factor_steps WHERE user_id = $1")
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// When the policy's grace period began for the user: the instant recorded the first time the
/// policy required a factor of them (now, when this is that time), and whether it is now.
pub async fn grace_start(
    conn: &mut AnyConnection,
    user_id: i64,
    now: i64,
) -> Result<(i64, bool), sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO two_factor_grace (user_id, started_at) VALUES ($1, $2) \
         ON CONFLICT (user_id) DO NOTHING",
    )
    .bind(user_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    let row = sqlx::query("SELECT started_at FROM two_factor_grace WHERE user_id = $1")
        .bind(user_id)
        .fetch_one(conn)
        .await?;
    Ok((row.try_get("started_at")?, done.rows_affected() == 1))
}

/// Forgets the user's grace period: the policy no longer applies to them, or an operator
/// removed their factors (a new grace begins when it applies next).
pub async fn forget_grace(conn: &mut AnyConnection, user_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM two_factor_grace WHERE user_id = $1")
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(())
}
