//! A user's own sessions: `GET /api/auth/sessions` lists them, `DELETE /api/auth/sessions/<id>`
//! ends one, `DELETE /api/auth/sessions` ends all but the one making the request.

use kernel::dates::http_date_from_unix;
use kernel::db::now;
use kernel::sessions::Manage;
use kernel::{sessions, ApiError, ApiResult, AuthUser, Db};
use rocket::http::Status;
use rocket::serde::json::{json, Value};
use rocket::{delete, get, routes, Route, State};
use sqlx::Row;

pub fn routes() -> Vec<Route> {
    routes![list, end_one, end_others]
}

#[get("/sessions")]
async fn list(auth: AuthUser<Manage>, db: &State<Db>) -> ApiResult<Value> {
    let mut conn = db.acquire().await?;
    let rows = sqlx::query(
        "SELECT id, created_at, last_used_at, expires_at, user_agent FROM sessions \
         WHERE user_id = $1 AND expires_at >= $2 ORDER BY last_used_at DESC, created_at DESC",
    )
    .bind(auth.user.id)
    .bind(now())
    .fetch_all(&mut *conn)
    .await?;
    let sessions = rows
        .iter()
        .map(|row| -> Result<Value, sqlx::Error> {
            let id: String = row.try_get("id")?;
            Ok(json!({
                "id": id,
                "created_at": http_date_from_unix(row.try_get("created_at")?),
                "last_used_at": http_date_from_unix(row.try_get("last_used_at")?),
                "expires_at": http_date_from_unix(row.try_get("expires_at")?),
                "user_agent": row.try_get::<Option<String>, _>("user_agent")?,
                "current": id == auth.session_id,
            }))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(json!({ "status": "success", "data": { "sessions": sessions } }))
}

/// Ends one of the user's sessions (the current one too: that is a logout). Another user's
/// session is "not found", like one that does not exist.
#[delete("/sessions/<id>")]
async fn end_one(auth: AuthUser<Manage>, db: &State<Db>, id: &str) -> ApiResult<Status> {
    let mut conn = db.acquire().await?;
    let done = sqlx::query("DELETE FROM sessions WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(auth.user.id)
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::not_found("session not found"));
    }
    Ok(Status::NoContent)
}

#[delete("/sessions")]
async fn end_others(auth: AuthUser<Manage>, db: &State<Db>) -> ApiResult<Value> {
    let mut conn = db.acquire().await?;
    let ended = sessions::close_all(&mut conn, auth.user.id, Some(&auth.session_id)).await?;
    Ok(
        json!({ "status": "success", "message": "other sessions ended", "data": { "ended": ended } }),
    )
}
