//! Email confirmation of new accounts: the link registration sends (through the kernel's
//! `SignUpConfirmation` hook), `POST /api/auth/account/confirm` and
//! `POST /api/auth/account/resend-confirmation`.

use kernel::auth::{Opened, UserAgent};
use kernel::cookies::Browser;
use kernel::error::Failure;
use kernel::language::{duration_in_words, Language};
use kernel::lifecycle::SignUpConfirmation;
use kernel::throttle;
use kernel::users::{self, AccountState, User};
use kernel::validate::email_key;
use kernel::{auth, ApiError, ApiResult, Caller, Mailer, Payload, Services};
use rocket::serde::json::{json, Value};
use rocket::{post, routes, Route, State};
use serde::Deserialize;
use sqlx::{AnyConnection, AnyPool};

use crate::tokens::{self, Purpose};
use crate::{AccountsConfig, Refusal};

pub const INVALID_TOKEN: &str = "invalid token, please request a new token";

pub fn routes() -> Vec<Route> {
    routes![confirm_account, resend]
}

/// Registration's hook: the link of a new pending account.
pub struct Links {
    ttl: u64,
}

impl Links {
    pub fn new(config: &AccountsConfig) -> Links {
        Links {
            ttl: config.confirmation_ttl,
        }
    }
}

#[rocket::async_trait]
impl SignUpConfirmation for Links {
    async fn send(
        &self,
        conn: &mut AnyConnection,
        mailer: &Mailer,
        user: &User,
    ) -> Result<(), Failure> {
        queue_link(conn, mailer, self.ttl, user).await
    }
}

/// Issues a confirmation link for `user` (the previous one dies) and queues its email, in the
/// caller's transaction.
async fn queue_link(
    conn: &mut AnyConnection,
    mailer: &Mailer,
    ttl: u64,
    user: &User,
) -> Result<(), Failure> {
    let issued = tokens::issue(&mut *conn, user, Purpose::Confirm, ttl).await?;
    let lang = Language::of_user(user.language.as_deref()).code();
    let context = json!({
        "link": format!("{}/account-confirmation?token={}", mailer.public_url(), issued.token),
        "validity": duration_in_words(ttl, lang),
    });
    let message = mailer.compose(
        "account_confirmation",
        lang,
        &user.email,
        &user.username,
        context,
    )?;
    mailer
        .enqueue(conn, &message)
        .await
        .map_err(|e| Failure::new("the outbox", e))
}

/// Activates the account the token confirms and kills the token, in one transaction; with
/// `session`, opens a session for it there too (the API's answer carries its token; the page
/// opens none).
pub async fn confirm(
    kernel: Services<'_>,
    token: &str,
    session: Option<&UserAgent>,
) -> Result<(User, Option<Opened>), Refusal> {
    let mut tx = kernel::db::begin_write(kernel.db).await?;
    // Read again in the writer's turn: a racing use of the token or a change of the account
    // decides here.
    let user_id = tokens::holder(&mut tx, token, Purpose::Confirm)
        .await?
        .ok_or(Refusal::InvalidToken)?
        .user_id;
    if !tokens::consume(&mut tx, token).await? {
        return Err(Refusal::InvalidToken);
    }
    users::set_state(&mut tx, user_id, AccountState::Active).await?;
    let user = users::by_id(&mut tx, user_id)
        .await?
        .ok_or(Refusal::InvalidToken)?;
    let opened = match session {
        Some(agent) => Some(auth::open(&mut tx, kernel.keys, kernel.config, user_id, agent).await?),
        None => None,
    };
    tx.commit().await?;
    tracing::info!(user_id, "account confirmed");
    Ok((user, opened))
}

#[derive(Deserialize)]
struct TokenBody {
    token: String,
}

#[post("/confirm", data = "<body>")]
async fn confirm_account(
    kernel: Services<'_>,
    caller: Caller,
    browser: Browser<'_>,
    body: Payload<TokenBody>,
) -> ApiResult<Value> {
    match confirm(kernel, &body.0.token, Some(&caller.agent)).await {
        // A browser gets the session in its cookies only: no token in JSON, where any script
        // of the page could read it (docs/browser-sessions.md, "Opening, refreshing, ending").
        Ok((_, Some(session))) if browser.open(&session) => Ok(json!({
            "status": "success",
            "message": "account confirmation successful",
        })),
        Ok((_, session)) => Ok(json!({
            "status": "success",
            "message": "account confirmation successful",
            "auth_token": session.map(|s| s.token),
        })),
        Err(Refusal::InvalidToken | Refusal::Taken) => Err(ApiError::bad_request(INVALID_TOKEN)),
        Err(Refusal::Internal(e)) => Err(e),
    }
}

#[derive(Deserialize)]
struct ResendBody {
    email: String,
}

/// Answers at once and the same for any address, known or not, pending or not: the lookup and
/// the email happen after the answer (background work, which a graceful shutdown waits for).
/// Requests are counted per address and per client first.
#[post("/resend-confirmation", data = "<body>")]
async fn resend(
    kernel: Services<'_>,
    config: &State<AccountsConfig>,
    caller: Caller,
    body: Payload<ResendBody>,
) -> ApiResult<Value> {
    let account = email_key(&body.0.email);
    throttle::take_request_of_address(
        kernel.db,
        &kernel.config.throttle,
        "resend",
        &account,
        caller.client,
        (
            config.resend_requests_per_account,
            config.resend_requests_per_client,
        ),
    )
    .await?;
    let pool: AnyPool = (**kernel.db).clone();
    let (mailer, ttl) = (kernel.mailer.clone(), config.confirmation_ttl);
    kernel.background.spawn(async move {
        if let Err(e) = resend_link(&pool, &mailer, ttl, &account).await {
            tracing::error!("confirmation resend: {e}");
        }
    });
    Ok(json!({ "status": "success", "message": "confirmation email resent" }))
}

/// A new link for the pending account at `account`, if there is one; nothing otherwise.
// No field: the address is not for the logs.
#[tracing::instrument(name = "confirmation_resend", skip_all)]
async fn resend_link(
    pool: &AnyPool,
    mailer: &Mailer,
    ttl: u64,
    account: &str,
) -> Result<(), Failure> {
    let database = |e| Failure::new("database", e);
    let mut tx = kernel::db::begin_write(pool).await.map_err(database)?;
    let user = users::by_email(&mut tx, account).await.map_err(database)?;
    let Some(user) = user.filter(|u| u.state == AccountState::Pending) else {
        return Ok(());
    };
    queue_link(&mut tx, mailer, ttl, &user).await?;
    tx.commit().await.map_err(database)?;
    mailer.wake();
    tracing::info!(user_id = user.id, "confirmation link resent");
    Ok(())
}
