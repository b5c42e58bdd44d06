use kernel::error::Failure;
use kernel::language::Language;
use kernel::throttle;
use kernel::validate::email_key;
use kernel::{users, ApiError, ApiResult, Caller, Mailer, Payload, Services};
use rocket::serde::json::{json, Value};
use rocket::{post, routes, Route, State};
use serde::Deserialize;
use sqlx::AnyPool;

use crate::reset::{reset, Refusal};
use crate::{reset_tokens, PasswordResetConfig};

pub const INVALID_TOKEN: &str = "invalid token, please request a new token";

pub fn routes() -> Vec<Route> {
    routes![reset_request, update]
}

#[derive(Deserialize)]
struct ResetRequest {
    email: String,
}

/// Answers at once, the same way whether the address is known or not: the lookup, the token
/// and the email happen after the answer, so neither body nor timing tells. Requests are
/// counted per address (known or not) and per client. The work after the answer is background
/// work: a graceful shutdown waits for it.
#[post("/reset-request", data = "<body>")]
async fn reset_request(
    kernel: Services<'_>,
    config: &State<PasswordResetConfig>,
    caller: Caller,
    body: Payload<ResetRequest>,
) -> ApiResult<Value> {
    let account = email_key(&body.0.email);
    // Counted first, atomically, per address and per client: no burst gets more answers than
    // the limits. The kind name is stored, as a digest, in counters already running: keep it.
    throttle::take_request_of_address(
        kernel.db,
        &kernel.config.throttle,
        "reset",
        &account,
        caller.client,
        (config.requests_per_account, config.requests_per_client),
    )
    .await?;
    let pool: AnyPool = (**kernel.db).clone();
    let (public_url, ttl) = (kernel.config.public_url.clone(), config.token_ttl);
    let mailer = kernel.mailer.clone();
    let email = body.0.email;
    kernel.background.spawn(async move {
        if let Err(e) = send_reset_link(&pool, &public_url, ttl, &mailer, &email).await {
            tracing::error!("password reset request: {e}");
        }
    });
    Ok(json!({ "status": "success", "message": "password reset request processed" }))
}

/// Issues a reset link for the account at `email`, if there is one, and queues its email, in
/// one transaction (the courier of any instance sends it). Nothing happens for an unknown
/// address.
// No field: the address and the token are not for the logs.
#[tracing::instrument(name = "reset_link", skip_all)]
async fn send_reset_link(
    pool: &AnyPool,
    public_url: &str,
    ttl: u64,
    mailer: &Mailer,
    email: &str,
) -> Result<(), Failure> {
    let database = |e| Failure::new("database", e);
    let mut tx = kernel::db::begin_write(pool).await.map_err(database)?;
    let user = users::by_email(&mut tx, &email_key(email))
        .await
        .map_err(database)?;
    let Some(user) = user else { return Ok(()) };
    queue_reset_link(&mut tx, public_url, ttl, mailer, &user).await?;
    tx.commit().await.map_err(database)?;
    mailer.wake();
    tracing::info!(user_id = user.id, "password reset link queued");
    Ok(())
}

/// Reset links for the kernel's lifecycle hook (an admin's `reset_password`).
pub struct Links {
    pub ttl: u64,
}

#[rocket::async_trait]
impl kernel::lifecycle::ResetLinks for Links {
    async fn send(
        &self,
        conn: &mut sqlx::AnyConnection,
        mailer: &Mailer,
        user: &users::User,
    ) -> Result<(), Failure> {
        queue_reset_link(conn, mailer.public_url(), self.ttl, mailer, user).await
    }
}

/// Issues a reset link for `user` and queues its email, in the caller's transaction: also how
/// `stride users create` gives a new account its password (the person sets their own).
pub async fn queue_reset_link(
    conn: &mut sqlx::AnyConnection,
    public_url: &str,
    ttl: u64,
    mailer: &Mailer,
    user: &users::User,
) -> Result<(), Failure> {
    let token = reset_tokens::issue(&mut *conn, user.id, ttl).await?;
    let lang = Language::of_user(user.language.as_deref()).code();
    let context = json!({
        "link": format!("{public_url}/password-reset?token={token}"),
        "validity": kernel::language::duration_in_words(ttl, lang),
    });
    let message = mailer.compose("password_reset", lang, &user.email, &user.username, context)?;
    mailer
        .enqueue(conn, &message)
        .await
        .map_err(|e| Failure::new("the outbox", e))
}

#[derive(Deserialize)]
struct Update {
    token: String,
    password: String,
    /// Required unless FitTrackee 1.x's shapes are on (`cookies.enabled`: its client does not
    /// send it); checked whenever it is sent.
    password_conf: Option<String>,
}

#[post("/update", data = "<body>")]
async fn update(kernel: Services<'_>, caller: Caller, body: Payload<Update>) -> ApiResult<Value> {
    let Update {
        token,
        password,
        password_conf,
    } = body.0;
    let confirmation = match password_conf {
        Some(confirmation) => confirmation,
        None if kernel.config.cookies.enabled => password.clone(),
        None => return Err(ApiError::invalid_payload()),
    };
    match reset(kernel, &token, &password, &confirmation, caller.client).await {
        Ok(_) => Ok(json!({ "status": "success", "message": "password updated" })),
        Err(Refusal::InvalidToken) => Err(ApiError::unauthorized(INVALID_TOKEN)),
        Err(Refusal::Password(problems)) => Err(ApiError::bad_request(
            problems.iter().map(|p| p.line()).collect::<String>(),
        )),
        Err(Refusal::Internal(e)) => Err(e),
    }
}
