//! What an admin changes of an account through `PATCH /api/users/<user_name>`: admin rights
//! (`admin`), and with the account lifecycle mounted (docs/accounts.md) `activate`,
//! `reset_password`, `new_email` and `role`. Every check passes before anything is applied; then
//! everything applies in one transaction under the accounts lock, and each applied action is
//! one `audit` line in the log (who did what to whom; never a password or a token).

use kernel::auth::Manage;
use kernel::users::{self, AccountState};
use kernel::validate::{email_key, Email};
use kernel::{auth, db, ApiError, ApiResult, AuthUser, Payload, Services};
use rocket::patch;
use rocket::serde::json::Value;
use serde_json::Map;

use crate::{one_user, refused, Refusal, LAST_ADMIN_DEMOTE, NO_PERMISSION, NO_USER};

pub const INVALID_ROLE: &str = "invalid role";
pub const INVALID_EMAIL: &str = "valid email must be provided";
pub const SAME_EMAIL: &str = "new email must be different than current email";
pub const EMAIL_TAKEN: &str = "sorry, that user already exists";

/// The body, checked for types.
#[derive(Debug, Default)]
struct Change {
    admin: Option<bool>,
    activate: Option<bool>,
    reset_password: Option<bool>,
    new_email: Option<String>,
    role: Option<String>,
}

fn parse(body: &Map<String, Value>, lifecycle: bool) -> Result<Change, ApiError> {
    let invalid = ApiError::invalid_payload;
    let flag = |key: &str| match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(invalid()),
    };
    let string = |key: &str| match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid()),
    };
    // Without the lifecycle, FitTrackee 0.5's one key, a boolean.
    if !lifecycle {
        return match body.get("admin") {
            Some(Value::Bool(admin)) => Ok(Change {
                admin: Some(*admin),
                ..Change::default()
            }),
            _ => Err(invalid()),
        };
    }
    let change = Change {
        admin: flag("admin")?,
        activate: flag("activate")?,
        reset_password: flag("reset_password")?,
        new_email: string("new_email")?,
        role: string("role")?,
    };
    let known = change.admin.is_some()
        || change.activate.is_some()
        || change.reset_password.is_some()
        || change.new_email.is_some()
        || change.role.is_some();
    if !known {
        return Err(invalid());
    }
    // `role` and `admin` that disagree.
    if let (Some(admin), Some(role)) = (change.admin, change.role.as_deref()) {
        if (role == "admin") != admin {
            return Err(invalid());
        }
    }
    Ok(change)
}

/// Grants or removes admin rights, activates or deactivates, resets the password, moves the
/// account to a new address. The caller's rights are checked first (before the body and the
/// lookup), then the body, then the user; the last admin keeps their rights.
#[patch("/<user_name>", data = "<body>")]
pub async fn change_user(
    auth: AuthUser<Manage>,
    kernel: Services<'_>,
    user_name: &str,
    body: Result<Payload<Map<String, Value>>, ApiError>,
) -> ApiResult<Value> {
    if !auth.user.admin {
        return Err(ApiError::forbidden(NO_PERMISSION));
    }
    let lifecycle = kernel.lifecycle;
    let body = body?.0;
    let mut change = parse(&body, lifecycle.mounted())?;
    if change.activate == Some(false) && user_name.eq_ignore_ascii_case(&auth.user.username) {
        return Err(ApiError::forbidden(NO_PERMISSION));
    }
    let reset_password = change.reset_password == Some(true);
    if reset_password && lifecycle.reset_links().is_none() {
        // No module to send the link: the key is not one this server knows.
        return Err(ApiError::invalid_payload());
    }
    if change.new_email.is_some() && lifecycle.email_changes().is_none() {
        return Err(ApiError::invalid_payload());
    }
    let user = {
        let mut conn = kernel.db.acquire().await?;
        users::by_username(&mut conn, user_name)
            .await?
            .ok_or_else(|| ApiError::not_found(NO_USER))?
    };
    match change.role.as_deref() {
        None => {}
        Some("admin") => {
            change.admin = Some(true);
            change.activate.get_or_insert(true);
        }
        Some("user") => change.admin = Some(false),
        Some(_) => return Err(ApiError::bad_request(INVALID_ROLE)),
    }
    let new_email = match &change.new_email {
        None => None,
        Some(raw) => {
            let email = Email::parse(raw).map_err(|_| ApiError::bad_request(INVALID_EMAIL))?;
            if email.key() == email_key(&user.email) {
                return Err(ApiError::bad_request(SAME_EMAIL));
            }
            Some(email)
        }
    };
    // A password nobody knows, hashed before the transaction (no connection held meanwhile).
    let unusable = if reset_password {
        Some(kernel.passwords.unusable_hash().await?)
    } else {
        None
    };

    let mut tx = db::begin_write(kernel.db).await?;
    db::lock_accounts(&mut tx).await?;
    // Read again under the lock: the caller's rights and the account as they are now.
    if !users::by_id(&mut tx, auth.user.id)
        .await?
        .is_some_and(|c| c.admin)
    {
        return Err(ApiError::forbidden(NO_PERMISSION));
    }
    let user = users::by_id(&mut tx, user.id)
        .await?
        .ok_or_else(|| ApiError::not_found(NO_USER))?;
    if let Some(email) = &new_email {
        if users::address_taken(&mut tx, &email.key(), Some(user.id)).await? {
            return Err(ApiError::bad_request(EMAIL_TAKEN));
        }
    }
    if change.admin == Some(false)
        && user.admin
        && users::admins_other_than(&mut tx, user.id).await? == 0
    {
        return Err(refused(Refusal::LastAdmin, LAST_ADMIN_DEMOTE));
    }
    let audit = |action: &str, detail: &str| {
        tracing::info!(
            action,
            admin = %auth.user.username,
            user = %user.username,
            detail,
            "audit: {action} of {} by {}",
            user.username,
            auth.user.username
        );
    };
    if let Some(admin) = change.admin.filter(|a| *a != user.admin) {
        users::set_admin_of(&mut tx, user.id, admin).await?;
        audit("role", if admin { "admin" } else { "user" });
    }
    match change.activate {
        Some(true) if user.state != AccountState::Active => {
            users::set_state(&mut tx, user.id, AccountState::Active).await?;
            audit("activate", "");
        }
        Some(false) if user.state != AccountState::Deactivated => {
            users::set_state(&mut tx, user.id, AccountState::Deactivated).await?;
            // Its links die with the state; the pending address goes, and every session ends.
            users::set_email_to_confirm(&mut tx, user.id, None).await?;
            auth::close_all(&mut tx, user.id, None).await?;
            audit("deactivate", "");
        }
        _ => {}
    }
    let mailer = kernel.mailer;
    if let (Some(hash), Some(links)) = (&unusable, lifecycle.reset_links()) {
        users::set_password(&mut tx, user.id, hash).await?;
        auth::close_all(&mut tx, user.id, None).await?;
        mailer
            .password_changed(&mut tx, &user)
            .await
            .map_err(|e| ApiError::internal("password changed email", e))?;
        links
            .send(&mut tx, mailer, &user)
            .await
            .map_err(|e| ApiError::internal("reset link", e))?;
        audit("reset_password", "");
    }
    if let (Some(email), Some(changes)) = (&new_email, lifecycle.email_changes()) {
        changes
            .request_by_admin(&mut tx, mailer, &user, email)
            .await
            .map_err(|e| ApiError::internal("email change", e))?;
        audit("new_email", email.as_str());
    }
    let user = users::by_id(&mut tx, user.id)
        .await?
        .ok_or_else(|| ApiError::not_found(NO_USER))?;
    tx.commit().await?;
    mailer.wake();
    Ok(one_user(lifecycle, &user, &auth.user))
}
