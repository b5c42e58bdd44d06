//! A user's own sessions: `GET /api/auth/sessions` lists them, `DELETE /api/auth/sessions/<id>`
//! ends one, `DELETE /api/auth/sessions` ends all but the one making the request.

use kernel::auth::Manage;
use kernel::{auth, ApiError, ApiResult, AuthUser, Db};
use rocket::http::Status;
use rocket::serde::json::{json, Value};
use rocket::{delete, get, routes, Route, State};

pub fn routes() -> Vec<Route> {
    routes![list, end_one, end_others]
}

#[get("/sessions")]
async fn list(auth: AuthUser<Manage>, db: &State<Db>) -> ApiResult<Value> {
    let mut conn = db.acquire().await?;
    let sessions: Vec<Value> = auth::list(&mut conn, auth.user.id)
        .await?
        .into_iter()
        .map(|session| {
            let mut object = session.to_json();
            object["current"] = (session.id == auth.session_id).into();
            object
        })
        .collect();
    Ok(json!({ "status": "success", "data": { "sessions": sessions } }))
}

/// Ends one of the user's sessions (the current one too: that is a logout). Another user's
/// session is "not found", like one that does not exist.
#[delete("/sessions/<id>")]
async fn end_one(auth: AuthUser<Manage>, db: &State<Db>, id: &str) -> ApiResult<Status> {
    let mut conn = db.acquire().await?;
    if !auth::close_of(&mut conn, auth.user.id, id).await? {
        return Err(ApiError::not_found("session not found"));
    }
    Ok(Status::NoContent)
}

#[delete("/sessions")]
async fn end_others(auth: AuthUser<Manage>, db: &State<Db>) -> ApiResult<Value> {
    let mut conn = db.acquire().await?;
    let ended = auth::close_all(&mut conn, auth.user.id, Some(&auth.session_id)).await?;
    Ok(
        json!({ "status": "success", "message": "other sessions ended", "data": { "ended": ended } }),
    )
}
