//! The module's tables (migrations/*/20261201000009_two_factor.sql, …000012_passkeys.sql): its queries, and no one
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

/// Removes every factor of a user (TOTP, passkeys, recovery codes, waiting steps and
/// ceremonies); true when there was one.
pub async fn remove_all(conn: &mut AnyConnection, user_id: i64) -> Result<bool, sqlx::Error> {
    let totp = sqlx::query("DELETE FROM two_factor_totp WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    let passkeys = sqlx::query("DELETE FROM two_factor_passkeys WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM two_factor_ceremonies WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    remove_recovery(conn, user_id).await?;
    Ok(totp.rows_affected() + passkeys.rows_affected() > 0)
}

/// Removes the user's TOTP factor (active or pending); true when there was an active one.
pub async fn remove_totp(conn: &mut AnyConnection, user_id: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM two_factor_totp WHERE user_id = $1 RETURNING confirmed_at")
        .bind(user_id)
        .fetch_optional(conn)
        .await?;
    Ok(match done {
        Some(row) => row.try_get::<Option<i64>, _>("confirmed_at")?.is_some(),
        None => false,
    })
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

/// Which factors a user has: an active TOTP, and how many passkeys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub totp: bool,
    pub passkeys: i64,
}

impl Held {
    /// Any factor at all: what makes a login ask for a second step.
    pub fn any(self) -> bool {
        self.totp || self.passkeys > 0
    }
}

pub async fn held(conn: &mut AnyConnection, user_id: i64) -> Result<Held, sqlx::Error> {
    let totp = totp(&mut *conn, user_id)
        .await?
        .is_some_and(|t| t.confirmed);
    let passkeys = passkey_count(conn, user_id).await?;
    Ok(Held { totp, passkeys })
}

/// A registered passkey: its row, the credential as webauthn-rs serialised it.
pub struct PasskeyRow {
    pub id: i64,
    pub name: String,
    pub credential: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

fn passkey_row(row: &sqlx::any::AnyRow) -> Result<PasskeyRow, sqlx::Error> {
    Ok(PasskeyRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        credential: row.try_get("credential")?,
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
    })
}

/// The user's passkeys, oldest first.
pub async fn passkeys(
    conn: &mut AnyConnection,
    user_id: i64,
) -> Result<Vec<PasskeyRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, name, credential, created_at, last_used_at FROM two_factor_passkeys \
         WHERE user_id = $1 ORDER BY id",
    )
    .bind(user_id)
    .fetch_all(conn)
    .await?;
    rows.iter().map(passkey_row).collect()
}

/// The user's passkey of this credential id.
pub async fn passkey_by_credential(
    conn: &mut AnyConnection,
    user_id: i64,
    credential_id: &str,
) -> Result<Option<PasskeyRow>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, name, credential, created_at, last_used_at FROM two_factor_passkeys \
         WHERE user_id = $1 AND credential_id = $2",
    )
    .bind(user_id)
    .bind(credential_id)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(passkey_row).transpose()
}

pub async fn passkey_count(conn: &mut AnyConnection, user_id: i64) -> Result<i64, sqlx::Error> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM two_factor_passkeys WHERE user_id = $1")
        .bind(user_id)
        .fetch_one(conn)
        .await?;
    row.try_get("n")
}

/// The WebAuthn user handle of the user's passkeys, when they have one.
pub async fn user_handle(
    conn: &mut AnyConnection,
    user_id: i64,
) -> Result<Option<String>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT user_handle FROM two_factor_passkeys WHERE user_id = $1 ORDER BY id LIMIT 1",
    )
    .bind(user_id)
    .fetch_optional(conn)
    .await?;
    row.map(|r| r.try_get("user_handle")).transpose()
}

/// A new passkey row; None when this credential is already registered (to anyone).
pub struct NewPasskey<'a> {
    pub user_id: i64,
    pub credential_id: &'a str,
    pub user_handle: &'a str,
    pub name: &'a str,
    pub credential: &'a str,
    pub now: i64,
}

pub async fn insert_passkey(
    conn: &mut AnyConnection,
    new: NewPasskey<'_>,
) -> Result<Option<i64>, sqlx::Error> {
    let row = sqlx::query(
        "INSERT INTO two_factor_passkeys \
         (user_id, credential_id, user_handle, name, credential, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (credential_id) DO NOTHING RETURNING id",
    )
    .bind(new.user_id)
    .bind(new.credential_id)
    .bind(new.user_handle)
    .bind(new.name)
    .bind(new.credential)
    .bind(new.now)
    .fetch_optional(conn)
    .await?;
    row.map(|r| r.try_get("id")).transpose()
}

/// Records a passkey's use: when, and its credential as the assertion updated it (signature
/// counter, backup state).
pub async fn passkey_used(
    conn: &mut AnyConnection,
    id: i64,
    credential: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE two_factor_passkeys SET credential = $1, last_used_at = $2 WHERE id = $3")
        .bind(credential)
        .bind(now)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn rename_passkey(
    conn: &mut AnyConnection,
    user_id: i64,
    id: i64,
    name: &str,
) -> Result<bool, sqlx::Error> {
    let done =
        sqlx::query("UPDATE two_factor_passkeys SET name = $1 WHERE id = $2 AND user_id = $3")
            .bind(name)
            .bind(id)
            .bind(user_id)
            .execute(conn)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// Removes one of the user's passkeys; its name when it was theirs.
pub async fn remove_passkey(
    conn: &mut AnyConnection,
    user_id: i64,
    id: i64,
) -> Result<Option<String>, sqlx::Error> {
    let row = sqlx::query(
        "DELETE FROM two_factor_passkeys WHERE id = $1 AND user_id = $2 RETURNING name",
    )
    .bind(id)
    .bind(user_id)
    .fetch_optional(conn)
    .await?;
    row.map(|r| r.try_get("name")).transpose()
}

/// The recovery codes and waiting steps of a user left with no factor.
pub async fn remove_recovery(conn: &mut AnyConnection, user_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM two_factor_recovery_codes WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    forget_steps(conn, user_id).await
}

/// What a passkey ceremony is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ceremony {
    Register,
    Login,
}

impl Ceremony {
    fn as_str(self) -> &'static str {
        match self {
            Ceremony::Register => "register",
            Ceremony::Login => "login",
        }
    }
}

/// Keeps a ceremony's state until it is answered, replacing the user's earlier ceremony of this
/// kind: one live ceremony per user and kind, whatever a client asks.
pub async fn put_ceremony(
    conn: &mut AnyConnection,
    digest: &str,
    user_id: i64,
    kind: Ceremony,
    state: &str,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM two_factor_ceremonies WHERE user_id = $1 AND kind = $2")
        .bind(user_id)
        .bind(kind.as_str())
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO two_factor_ceremonies (digest, user_id, kind, state, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(digest)
    .bind(user_id)
    .bind(kind.as_str())
    .bind(state)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Uses up the user's ceremony of this kind and digest: its state when it was live. Deleted
/// whatever the answer, so a ceremony is answered once.
pub async fn take_ceremony(
    conn: &mut AnyConnection,
    digest: &str,
    user_id: i64,
    kind: Ceremony,
    now: i64,
) -> Result<Option<String>, sqlx::Error> {
    let row = sqlx::query(
        "DELETE FROM two_factor_ceremonies WHERE digest = $1 AND user_id = $2 AND kind = $3 \
         RETURNING state, expires_at",
    )
    .bind(digest)
    .bind(user_id)
    .bind(kind.as_str())
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let expires_at: i64 = row.try_get("expires_at")?;
    (expires_at >= now)
        .then(|| row.try_get("state"))
        .transpose()
}
