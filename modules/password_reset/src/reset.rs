//! The reset itself, shared by the JSON endpoint and the browser page.

use std::net::IpAddr;

use kernel::throttle;
use kernel::validate::{account_words, email_key, Password, PasswordProblem};
use kernel::{auth, users, ApiError, Db, Services};

use crate::reset_tokens;

pub enum Refusal {
    /// Unknown, expired, used, or issued before the password last changed.
    InvalidToken,
    /// The new password breaks the policy.
    Password(Vec<PasswordProblem>),
    Internal(ApiError),
}

impl From<sqlx::Error> for Refusal {
    fn from(e: sqlx::Error) -> Self {
        Refusal::Internal(e.into())
    }
}

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Self {
        Refusal::Internal(e)
    }
}

/// The user a token is valid for.
pub async fn holder(db: &Db, token: &str) -> Result<Option<users::User>, Refusal> {
    let mut conn = db.acquire().await?;
    let Some(user_id) = reset_tokens::holder(&mut conn, token).await? else {
        return Ok(None);
    };
    Ok(users::by_id(&mut conn, user_id).await?)
}

/// Checks the token, then the password; sets the password, ends every session of the user and
/// queues the "password changed" email, in one transaction. The account's failed logins are
/// forgotten and `client` becomes one of its own: whoever an attacker is, the owner who
/// completes a reset can sign in (SECURITY.md, "Throttling and lockout").
pub async fn reset(
    kernel: Services<'_>,
    token: &str,
    password: &str,
    confirmation: &str,
    client: Option<IpAddr>,
) -> Result<users::User, Refusal> {
    let Services {
        db,
        config,
        passwords,
        mailer,
        ..
    } = kernel;
    let user = holder(db, token).await?.ok_or(Refusal::InvalidToken)?;
    let password = Password::parse(password, confirmation, config.passwords.min_length)
        .map_err(Refusal::Password)?;
    let words = account_words(&user.username, &user.email);
    if let Some(problem) = passwords
        .screen(&password, &words, config.passwords.min_strength)
        .await?
    {
        return Err(Refusal::Password(vec![problem]));
    }
    // No connection is held while argon2 runs.
    let hash = passwords.hash(password.into_inner()).await?;
    let mut tx = kernel::db::begin_write(db).await?;
    if !reset_tokens::consume(&mut tx, token).await? {
        return Err(Refusal::InvalidToken);
    }
    users::set_password(&mut tx, user.id, &hash).await?;
    let ended = auth::close_all(&mut tx, user.id, None).await?;
    let account = email_key(&user.email);
    throttle::forget_login_failures(&mut tx, &config.throttle, &account).await?;
    throttle::know_client(&mut tx, &config.throttle, &account, client).await?;
    mailer
        .password_changed(&mut tx, &user)
        .await
        .map_err(|e| ApiError::internal("password changed email", e))?;
    tx.commit().await?;
    mailer.wake();
    tracing::info!(user_id = user.id, ended, "password reset");
    Ok(user)
}
