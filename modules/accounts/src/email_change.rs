//! Changing the account's address and password: `PATCH /api/auth/profile/edit/account` (the
//! current password required), and `POST /api/auth/email/update`, which the link mailed to the
//! new address calls. An address changes only when the new one confirms; until then the old
//! one logs in and receives the mail, and it is told of the request.

use kernel::auth::Manage;
use kernel::error::Failure;
use kernel::language::{duration_in_words, Language};
use kernel::users::{self, InsertError, User};
use kernel::validate::{account_words, email_key, Email, Password};
use kernel::{auth, ApiError, ApiResult, AuthUser, Caller, Mailer, Payload, Services};
use rocket::serde::json::{json, Value};
use rocket::{patch, post, routes, Route, State};
use serde::Deserialize;
use serde_json::Map;
use sqlx::AnyConnection;

use crate::confirm::INVALID_TOKEN;
use crate::tokens::{self, Purpose};
use crate::{AccountsConfig, Refusal};

pub const EMAIL_MISSING: &str = "email is missing";
pub const CURRENT_MISSING: &str = "current password is missing";
pub const INVALID_EMAIL: &str = "email: valid email must be provided\n";
pub const ALREADY_EXISTS: &str = "sorry, that user already exists";

pub fn account_routes() -> Vec<Route> {
    routes![edit_account]
}

pub fn email_routes() -> Vec<Route> {
    routes![update_email, revert_email]
}

/// A string key: absent or null is `None`; any other type is `invalid payload`.
fn text(body: &Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::invalid_payload()),
    }
}

#[patch("/profile/edit/account", data = "<body>")]
async fn edit_account(
    auth: AuthUser<Manage>,
    kernel: Services<'_>,
    config: &State<AccountsConfig>,
    caller: Caller,
    body: Payload<Map<String, Value>>,
) -> ApiResult<Value> {
    let Services {
        db,
        config: server,
        passwords,
        mailer,
        lifecycle,
        ..
    } = kernel;
    let body = body.0;
    if body.is_empty() {
        return Err(ApiError::invalid_payload());
    }
    let (email, current, new_password) = (
        text(&body, "email")?,
        text(&body, "password")?,
        text(&body, "new_password")?,
    );
    let email = email
        .filter(|e| !e.is_empty())
        .ok_or_else(|| ApiError::bad_request(EMAIL_MISSING))?;
    let current = current
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::bad_request(CURRENT_MISSING))?;
    // The current password, counted as a login of the account (so throttled) when wrong.
    let account = email_key(&auth.user.email);
    let sign_in = passwords
        .check_credentials(db, &server.throttle, &account, caller.client, current)
        .await?
        .verified()?;
    {
        let mut tx = kernel::db::begin_write(db).await?;
        sign_in.record(&mut tx, &server.throttle).await?;
        tx.commit().await?;
    }
    let changes_address = email_key(&email) != account;
    let mut lines = String::new();
    let new_email = if changes_address {
        match Email::parse(&email) {
            Ok(parsed) => Some(parsed),
            Err(_) => {
                lines.push_str(INVALID_EMAIL);
                None
            }
        }
    } else {
        None
    };
    let mut password = None;
    if let Some(new) = &new_password {
        // No confirmation key in FitTrackee 1.x: the password is its own confirmation.
        match Password::parse(new, new, server.passwords.min_length) {
            Ok(candidate) => {
                let words = account_words(&auth.user.username, &auth.user.email);
                match passwords
                    .screen(&candidate, &words, server.passwords.min_strength)
                    .await?
                {
                    Some(problem) => lines.push_str(&problem.line()),
                    None => password = Some(candidate),
                }
            }
            Err(problems) => lines.extend(problems.iter().map(|p| p.line())),
        }
    }
    if !lines.is_empty() {
        return Err(ApiError::bad_request(lines));
    }
    // No pooled connection is held while argon2 runs.
    let hash = match password {
        Some(p) => Some(passwords.hash(p.into_inner()).await?),
        None => None,
    };
    let mut tx = kernel::db::begin_write(db).await?;
    let user = users::by_id(&mut tx, auth.user.id)
        .await?
        .ok_or_else(|| ApiError::unauthorized(auth::PROVIDE_TOKEN))?;
    if let Some(hash) = &hash {
        // First: the password change kills the links issued earlier, not those issued below.
        users::set_password(&mut tx, user.id, hash).await?;
        let ended = auth::close_all(&mut tx, user.id, Some(&auth.session_id)).await?;
        mailer
            .password_changed(&mut tx, &user)
            .await
            .map_err(|e| ApiError::internal("password changed email", e))?;
        tracing::info!(
            user_id = user.id,
            ended,
            "password changed, other sessions ended"
        );
    }
    if let Some(new_email) = &new_email {
        let ttls = (config.confirmation_ttl, Some(config.revert_ttl));
        request_change(&mut tx, mailer, ttls.0, ttls.1, &user, new_email)
            .await
            .map_err(|e| ApiError::internal("email change", e))?;
        tracing::info!(user_id = user.id, "email change requested");
    }
    tx.commit().await?;
    if hash.is_some() || new_email.is_some() {
        mailer.wake();
    }
    let mut conn = db.acquire().await?;
    let user = users::by_id(&mut conn, auth.user.id)
        .await?
        .ok_or_else(|| ApiError::unauthorized(auth::PROVIDE_TOKEN))?;
    Ok(json!({
        "status": "success",
        "message": "user account updated",
        "data": lifecycle.user_json(&user),
    }))
}

/// A pending change of `user`'s address to `new_email` (replacing one): its link to the new
/// address, unless the address is another account's (the answer and the notice are the same:
/// nothing tells whether it has an account), and the notice to the current address.
async fn request_change(
    conn: &mut AnyConnection,
    mailer: &Mailer,
    ttl: u64,
    revert_ttl: Option<u64>,
    user: &User,
    new_email: &Email,
) -> Result<(), Failure> {
    let database = |e| Failure::new("database", e);
    let issued = tokens::issue_change(&mut *conn, user, ttl, new_email.as_str()).await?;
    users::set_email_to_confirm(
        &mut *conn,
        user.id,
        Some((new_email.as_str(), issued.expires_at)),
    )
    .await
    .map_err(database)?;
    let lang = Language::of_user(user.language.as_deref()).code();
    let taken = users::address_taken(&mut *conn, &new_email.key(), Some(user.id))
        .await
        .map_err(database)?;
    if !taken {
        let context = json!({
            "link": format!("{}/email-update?token={}", mailer.public_url(), issued.token),
            "validity": duration_in_words(ttl, lang),
        });
        let message = mailer.compose(
            "email_change_confirmation",
            lang,
            new_email.as_str(),
            &user.username,
            context,
        )?;
        mailer
            .enqueue(&mut *conn, &message)
            .await
            .map_err(database)?;
    }
    // The way back, from the old address, for a change the user asked for (an admin moving an
    // account off a lost or hijacked address must not be undone from it).
    let revert_link = match revert_ttl {
        Some(revert_ttl) => {
            let revert = tokens::issue_revert(&mut *conn, user, revert_ttl).await?;
            Some(format!(
                "{}/email-revert?token={}",
                mailer.public_url(),
                revert.token
            ))
        }
        None => None,
    };
    let notice = mailer.compose(
        "email_change_notice",
        lang,
        &user.email,
        &user.username,
        json!({ "new_email": new_email.as_str(), "revert_link": revert_link }),
    )?;
    mailer.enqueue(conn, &notice).await.map_err(database)
}

/// An admin's change of an account's address (the kernel's lifecycle hook): the same pending
/// change and emails as the user's own.
pub struct AdminChanges {
    pub ttl: u64,
}

#[rocket::async_trait]
impl kernel::lifecycle::EmailChanges for AdminChanges {
    async fn request_by_admin(
        &self,
        conn: &mut AnyConnection,
        mailer: &Mailer,
        user: &User,
        new_email: &Email,
    ) -> Result<(), Failure> {
        request_change(conn, mailer, self.ttl, None, user, new_email).await
    }
}

/// Makes the link's address the account's, kills the link and every reset link mailed to the
/// old address, in one transaction. Sessions are kept, the state is not touched.
pub async fn update(kernel: Services<'_>, token: &str) -> Result<User, Refusal> {
    let mut tx = kernel::db::begin_write(kernel.db).await?;
    let held = tokens::holder(&mut tx, token, Purpose::EmailChange)
        .await?
        .ok_or(Refusal::InvalidToken)?;
    if !tokens::consume(&mut tx, token).await? {
        return Err(Refusal::InvalidToken);
    }
    let address = held
        .new_email
        .and_then(|e| Email::parse(&e).ok())
        .ok_or(Refusal::InvalidToken)?;
    let before = users::by_id(&mut tx, held.user_id)
        .await?
        .ok_or(Refusal::InvalidToken)?;
    match users::set_email(&mut tx, held.user_id, &address).await {
        Ok(()) => {}
        Err(InsertError::Duplicate) => {
            // Taken since: the link dies (a transaction of its own, as this one failed).
            drop(tx);
            let mut tx = kernel::db::begin_write(kernel.db).await?;
            tokens::consume(&mut tx, token).await?;
            users::set_email_to_confirm(&mut tx, held.user_id, None).await?;
            tx.commit().await?;
            return Err(Refusal::Taken);
        }
        Err(InsertError::Database(e)) => return Err(e.into()),
    }
    // The old address stays the account's to move back to while a revert link to it lives.
    if let Some(until) = tokens::revertible_until(&mut tx, before.id, &before.email).await? {
        users::reserve_address(&mut tx, before.id, &email_key(&before.email), until).await?;
    }
    let user = users::by_id(&mut tx, held.user_id)
        .await?
        .ok_or(Refusal::InvalidToken)?;
    tx.commit().await?;
    tracing::info!(user_id = user.id, "email updated");
    Ok(user)
}

#[derive(Deserialize)]
struct TokenBody {
    token: String,
}

#[post("/update", data = "<body>")]
async fn update_email(kernel: Services<'_>, body: Payload<TokenBody>) -> ApiResult<Value> {
    match update(kernel, &body.0.token).await {
        Ok(_) => Ok(json!({ "status": "success", "message": "email updated" })),
        Err(Refusal::InvalidToken) => Err(ApiError::bad_request(INVALID_TOKEN)),
        Err(Refusal::Taken) => Err(ApiError::bad_request(ALREADY_EXISTS)),
        Err(Refusal::Internal(e)) => Err(e),
    }
}

/// "This was not me", from the old address: the pending change is dropped, or the old address
/// restored; then every session ends, the password stops working (a reset link goes to the
/// restored address), every other link of the account dies but older revert links, and the
/// reservation ends. One transaction.
pub async fn revert(kernel: Services<'_>, token: &str) -> Result<User, Refusal> {
    // A password nobody knows, hashed before the transaction.
    let unusable = kernel.passwords.unusable_hash().await?;
    let mut tx = kernel::db::begin_write(kernel.db).await?;
    let held = tokens::holder(&mut tx, token, Purpose::Revert)
        .await?
        .ok_or(Refusal::InvalidToken)?;
    if !tokens::consume(&mut tx, token).await? {
        return Err(Refusal::InvalidToken);
    }
    tokens::kill_later_reverts(&mut tx, held.user_id, held.created_at).await?;
    let user = users::by_id(&mut tx, held.user_id)
        .await?
        .ok_or(Refusal::InvalidToken)?;
    let old = held
        .old_email
        .and_then(|e| Email::parse(&e).ok())
        .ok_or(Refusal::InvalidToken)?;
    if email_key(&user.email) != old.key() {
        match users::set_email(&mut tx, user.id, &old).await {
            Ok(()) => {}
            // Reserved for the account, the address cannot be another's; should it be, the
            // account keeps its address and is locked all the same.
            Err(InsertError::Duplicate) => {
                tracing::warn!(user_id = user.id, "revert: the old address is taken");
            }
            Err(InsertError::Database(e)) => return Err(e.into()),
        }
    }
    tokens::kill(&mut tx, user.id, Purpose::EmailChange).await?;
    users::set_email_to_confirm(&mut tx, user.id, None).await?;
    users::set_password(&mut tx, user.id, &unusable).await?;
    let ended = auth::close_all(&mut tx, user.id, None).await?;
    users::release_addresses(&mut tx, Some(user.id), 0).await?;
    let user = users::by_id(&mut tx, user.id)
        .await?
        .ok_or(Refusal::InvalidToken)?;
    if let Some(links) = kernel.lifecycle.reset_links() {
        links
            .send(&mut tx, kernel.mailer, &user)
            .await
            .map_err(|e| Refusal::Internal(ApiError::internal("reset link", e)))?;
    }
    tx.commit().await?;
    kernel.mailer.wake();
    tracing::info!(
        user_id = user.id,
        ended,
        "email change reverted, account locked until a reset"
    );
    Ok(user)
}

#[post("/revert", data = "<body>")]
async fn revert_email(kernel: Services<'_>, body: Payload<TokenBody>) -> ApiResult<Value> {
    match revert(kernel, &body.0.token).await {
        Ok(_) => Ok(json!({ "status": "success", "message": "email change reverted" })),
        Err(Refusal::InvalidToken | Refusal::Taken) => Err(ApiError::bad_request(INVALID_TOKEN)),
        Err(Refusal::Internal(e)) => Err(e),
    }
}
