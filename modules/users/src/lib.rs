//! FitTrackee's users API: `GET /api/users` (the list: pages, a search, an order),
//! `GET /api/users/<user_name>`, `PATCH /api/users/<user_name>` (an admin grants or removes admin
//! rights) and `DELETE /api/users/<user_name>` (the user themself, or an admin). The rules,
//! FitTrackee 0.5's and Stride's stronger ones, are in docs/users-api.md.
//!
//! The users table is the kernel's: this module reads and changes it through the kernel's users
//! store, and deletes an account with everything of it (sessions, picture, reset tokens, queued
//! emails, throttle counters) in one transaction, under the accounts lock that also keeps the
//! last admin.

mod actions;
mod listing;

use kernel::auth::{Manage, Read};
use kernel::config::Section;
use kernel::users::User;
use kernel::validate::email_key;
use kernel::Lifecycle;
use kernel::{db, throttle, users, ApiError, ApiResult, AuthUser, Describe, Mailer, Services};
use rocket::fairing::AdHoc;
use rocket::form::Lenient;
use rocket::http::Status;
use rocket::serde::json::{json, Value};
use rocket::{delete, get, routes};
use serde::Deserialize;
use sqlx::AnyPool;

use crate::listing::ListQuery;

pub const NO_USER: &str = "user does not exist";
pub const NO_PERMISSION: &str = "you do not have permissions";
pub const LAST_ADMIN_DELETE: &str =
    "you can not delete your account, no other user has admin rights";
pub const LAST_ADMIN_DEMOTE: &str =
    "you can not remove your admin rights, no other user has admin rights";

pub fn stage() -> AdHoc {
    kernel::module(
        |rocket, _: UsersConfig| {
            rocket
                .mount(
                    "/api/users",
                    routes![list, one, actions::change_user, remove],
                )
                .describe(include_str!("../openapi.json"))
        },
        |rocket, _| rocket,
    )
}

/// The section `users.*`: no keys yet.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersConfig {}

impl Section for UsersConfig {
    const NAME: &'static str = "users";
}

/// A user as `caller` may see them: the address only for the user themself and for admins (the
/// caller's rights as stored now, read by the guard of this request).
/// The keys of the account's own (its address and, with the account lifecycle, its state and
/// pending address) are left out for anyone else.
pub(crate) fn seen_by(lifecycle: &Lifecycle, user: &User, caller: &User) -> Value {
    let mut object = lifecycle.user_json(user);
    if caller.id != user.id && !caller.admin {
        if let Value::Object(map) = &mut object {
            for key in ["email", "is_active", "email_to_confirm"] {
                map.remove(key);
            }
        }
    }
    object
}

pub(crate) fn one_user(lifecycle: &Lifecycle, user: &User, caller: &User) -> Value {
    json!({ "status": "success", "data": { "users": [seen_by(lifecycle, user, caller)] } })
}

#[get("/?<page>&<per_page>&<q>&<order_by>&<order>")]
async fn list(
    auth: AuthUser<Read>,
    kernel: Services<'_>,
    page: Option<Lenient<&str>>,
    per_page: Option<Lenient<&str>>,
    q: Option<Lenient<&str>>,
    order_by: Option<Lenient<&str>>,
    order: Option<Lenient<&str>>,
) -> ApiResult<Value> {
    // Lenient: a parameter given twice counts as first given (`Option` alone would drop it).
    let query = ListQuery::from_values(
        page.map(Lenient::into_inner),
        per_page.map(Lenient::into_inner),
        q.map(Lenient::into_inner),
        order_by.map(Lenient::into_inner),
        order.map(Lenient::into_inner),
    )?;
    let listing = query.listing();
    let mut conn = kernel.db.acquire().await?;
    let (found, total) = users::list(&mut conn, &listing).await?;
    let pages = total.div_euclid(listing.per_page) + i64::from(total % listing.per_page != 0);
    let users: Vec<Value> = found
        .iter()
        .map(|u| seen_by(kernel.lifecycle, u, &auth.user))
        .collect();
    Ok(json!({
        "status": "success",
        "data": { "users": users },
        "pagination": {
            "has_next": listing.page < pages,
            "has_prev": listing.page > 1,
            "page": listing.page,
            "pages": pages,
            "total": total,
        },
    }))
}

#[get("/<user_name>")]
async fn one(auth: AuthUser<Read>, kernel: Services<'_>, user_name: &str) -> ApiResult<Value> {
    let mut conn = kernel.db.acquire().await?;
    let user = users::by_username(&mut conn, user_name)
        .await?
        .ok_or_else(|| ApiError::not_found(NO_USER))?;
    Ok(one_user(kernel.lifecycle, &user, &auth.user))
}

/// Who asks for a change of an account.
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    /// A user, by the API: their rights are read again under the lock.
    User(&'a User),
    /// The operator, by the command line: every right.
    Operator,
}

impl Actor<'_> {
    fn id(&self) -> Option<i64> {
        match self {
            Actor::User(user) => Some(user.id),
            Actor::Operator => None,
        }
    }
}

/// Why a change of an account was refused.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("{NO_USER}")]
    NoUser,
    #[error("{NO_PERMISSION}")]
    NoPermission,
    #[error("no other user has admin rights")]
    LastAdmin,
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Grants or removes admin rights of the user named `name`; the last admin keeps theirs. The
/// actor's rights, the check and the change are one step under the accounts lock, on every
/// instance: two admins demoting each other at once leave one.
pub async fn set_admin_rights(
    pool: &AnyPool,
    actor: Actor<'_>,
    name: &str,
    admin: bool,
) -> Result<User, Refusal> {
    let mut tx = db::begin_write(pool).await?;
    db::lock_accounts(&mut tx).await?;
    if let Some(id) = actor.id() {
        if !users::by_id(&mut tx, id).await?.is_some_and(|c| c.admin) {
            return Err(Refusal::NoPermission);
        }
    }
    let mut user = users::by_username(&mut tx, name)
        .await?
        .ok_or(Refusal::NoUser)?;
    if user.admin && !admin && users::admins_other_than(&mut tx, user.id).await? == 0 {
        return Err(Refusal::LastAdmin);
    }
    if user.admin != admin {
        users::set_admin_of(&mut tx, user.id, admin).await?;
        tracing::info!(
            by = actor.id(),
            user_id = user.id,
            admin,
            "admin rights changed"
        );
    }
    tx.commit().await?;
    user.admin = admin;
    Ok(user)
}

/// Deletes the account named `name`, by the user themself, an admin or the operator, with
/// every trace of it, in one transaction under the accounts lock: the row and what refers to
/// it (sessions, so every token dies at once on every instance; the picture; reset tokens), the
/// emails still queued for it, and what the throttle holds of its address. The last admin
/// cannot be deleted.
pub async fn delete_account(
    pool: &AnyPool,
    mailer: &Mailer,
    actor: Actor<'_>,
    name: &str,
) -> Result<User, Refusal> {
    let mut tx = db::begin_write(pool).await?;
    db::lock_accounts(&mut tx).await?;
    let user = users::by_username(&mut tx, name)
        .await?
        .ok_or(Refusal::NoUser)?;
    if let Actor::User(by) = actor {
        if user.id != by.id && !by.admin {
            return Err(Refusal::NoPermission);
        }
    }
    if user.admin && users::admins_other_than(&mut tx, user.id).await? == 0 {
        return Err(Refusal::LastAdmin);
    }
    let dropped = mailer.drop_pending_to(&mut tx, &user.email).await?;
    throttle::forget_account(&mut tx, &email_key(&user.email)).await?;
    users::delete(&mut tx, user.id).await?;
    tx.commit().await?;
    tracing::info!(
        by = actor.id(),
        user_id = user.id,
        emails_dropped = dropped,
        "account deleted"
    );
    Ok(user)
}

/// The API's answer to a refusal.
pub(crate) fn refused(refusal: Refusal, last_admin: &'static str) -> ApiError {
    match refusal {
        Refusal::NoUser => ApiError::not_found(NO_USER),
        Refusal::NoPermission => ApiError::forbidden(NO_PERMISSION),
        Refusal::LastAdmin => ApiError::forbidden(last_admin),
        Refusal::Database(e) => e.into(),
    }
}

/// Deletes an account: 404 for a name that is nobody's (whoever asks), 403 for another user's
/// account unless the caller is an admin, 403 for the last admin.
#[delete("/<user_name>")]
async fn remove(
    auth: AuthUser<Manage>,
    kernel: Services<'_>,
    user_name: &str,
) -> ApiResult<Status> {
    delete_account(kernel.db, kernel.mailer, Actor::User(&auth.user), user_name)
        .await
        .map_err(|r| refused(r, LAST_ADMIN_DELETE))?;
    Ok(Status::NoContent)
}
