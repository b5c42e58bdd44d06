//! Authentication: one session row per login, so that a logout (or a password change) kills a
//! token at once on every instance sharing the database. The token names its row; the
//! `AuthUser` guard reads the row and the user in one query. The sessions store (open, list,
//! close) is here too: the guard and the store are one table's room.
//!
//! A request is judged by one credential: its `Authorization` header when it has one (Bearer
//! tokens), else, with `cookies.enabled`, the browser's session cookie and its CSRF header
//! ([`crate::cookies`], docs/browser-sessions.md). Both name the same session row.

use std::marker::PhantomData;

use rocket::http::Status;
use rocket::request::{FromRequest, Outcome, Request};
use rocket_db_pools::Database;
use sqlx::{AnyConnection, Row};

use crate::config::Config;
use crate::cookies::{self, Jar, Live, Plan};
use crate::db::{now, sqlite_error, Db};
use crate::error::ApiError;
use crate::tokens::{canonical_path, Rejection, RequestFacts, TokenKeys, Verified};
use crate::users::{User, USER_COLUMNS};

pub const PROVIDE_TOKEN: &str = "provide a valid auth token";
/// A failed login, and a wrong current password: one answer whatever was wrong.
pub const INVALID_CREDENTIALS: &str = "invalid credentials";
pub const TOKEN_EXPIRED: &str = "signature expired, please log in again";
pub const TOKEN_INVALID: &str = "invalid token, please log in again";
pub const TOKEN_NOT_ALLOWED: &str = "this token does not allow this request";

const LAST_USED_PRECISION: i64 = 60;
/// Longest user agent kept.
const USER_AGENT_MAX: usize = 256;

/// The client's `User-Agent`, to tell sessions apart in the user's list.
#[derive(Debug, Clone)]
pub struct UserAgent(pub Option<String>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for UserAgent {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let agent = request
            .headers()
            .get_one("User-Agent")
            // Control characters (a NUL, which no PostgreSQL text holds) are dropped.
            .map(|a| {
                a.chars()
                    .filter(|c| !c.is_control())
                    .take(USER_AGENT_MAX)
                    .collect()
            });
        Outcome::Success(UserAgent(agent))
    }
}

/// A session just opened: its Bearer token, and what a browser's cookie needs
/// ([`crate::cookies::Browser::open`]).
#[derive(Debug, Clone)]
pub struct Opened {
    pub token: String,
    pub user_id: i64,
    pub session_id: String,
    pub expires_at: i64,
}

/// Opens a session for a user.
pub async fn open(
    conn: &mut AnyConnection,
    keys: &TokenKeys,
    config: &Config,
    user_id: i64,
    agent: &UserAgent,
) -> Result<Opened, ApiError> {
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).map_err(|e| ApiError::internal("no OS randomness", e))?;
    let id = hex::encode(id);
    let created_at = now();
    let expires_at =
        created_at.saturating_add(i64::try_from(config.tokens.session_ttl).unwrap_or(i64::MAX));
    // Expired sessions of this user go as a new one comes: the table holds live sessions only.
    sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND expires_at < $2")
        .bind(user_id)
        .bind(created_at)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO sessions (id, user_id, created_at, expires_at, last_used_at, user_agent) \
         VALUES ($1, $2, $3, $4, $3, $5)",
    )
    .bind(&id)
    .bind(user_id)
    .bind(created_at)
    .bind(expires_at)
    .bind(agent.0.as_deref())
    .execute(conn)
    .await?;
    let token = keys
        .mint(user_id, &id, expires_at)
        .map_err(|e| ApiError::internal("minting a session token", e))?;
    Ok(Opened {
        token,
        user_id,
        session_id: id,
        expires_at,
    })
}

/// Whether a session is open and its user active (what the guard's query asks, without the
/// user): the cookie's refresh asks it again after a request that may have ended the session.
pub async fn is_live(
    db: &Db,
    session_id: &str,
    user_id: i64,
    now: i64,
) -> Result<bool, sqlx::Error> {
    // `'active'` written in, not bound: see `session_sql`.
    const SQL: &str = "SELECT 1 AS live FROM sessions s JOIN users u ON u.id = s.user_id \
         WHERE s.id = $1 AND s.user_id = $2 AND s.expires_at >= $3 AND u.state = 'active'";
    if let Some(reader) = db.sqlite_reader() {
        // Built once, as the guard's query is ([`sqlite_session_sql`]).
        static SQLITE_SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let sql = SQLITE_SQL.get_or_init(|| by_session_index(SQL));
        return reader.read(|conn| {
            use rusqlite::OptionalExtension as _;
            let mut statement = conn.prepare_cached(sql).map_err(sqlite_error)?;
            let live = statement
                .query_row(rusqlite::params![session_id, user_id, now], |_| Ok(()))
                .optional()
                .map_err(sqlite_error)?;
            Ok(live.is_some())
        });
    }
    let row = sqlx::query(SQL)
        .bind(session_id)
        .bind(user_id)
        .bind(now)
        .fetch_optional(&***db)
        .await?;
    Ok(row.is_some())
}

/// Ends one session.
pub async fn close(conn: &mut AnyConnection, session_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sessions WHERE id = $1")
        .bind(session_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// A live session, as its user sees it in their list.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub id: String,
    pub created_at: i64,
    pub last_used_at: i64,
    pub expires_at: i64,
    pub user_agent: Option<String>,
}

impl SessionInfo {
    /// The session as the user's list shows it (the list adds `current`).
    pub fn to_json(&self) -> serde_json::Value {
        use crate::dates::http_date_from_unix;
        serde_json::json!({
            "id": self.id,
            "created_at": http_date_from_unix(self.created_at),
            "last_used_at": http_date_from_unix(self.last_used_at),
            "expires_at": http_date_from_unix(self.expires_at),
            "user_agent": self.user_agent,
        })
    }
}

/// A user's live sessions, the most recently used first.
pub async fn list(conn: &mut AnyConnection, user_id: i64) -> Result<Vec<SessionInfo>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, created_at, last_used_at, expires_at, user_agent FROM sessions \
         WHERE user_id = $1 AND expires_at >= $2 ORDER BY last_used_at DESC, created_at DESC",
    )
    .bind(user_id)
    .bind(now())
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(SessionInfo {
                id: row.try_get("id")?,
                created_at: row.try_get("created_at")?,
                last_used_at: row.try_get("last_used_at")?,
                expires_at: row.try_get("expires_at")?,
                user_agent: row.try_get("user_agent")?,
            })
        })
        .collect()
}

/// Ends one of a user's sessions; false when the user has no such session (another user's
/// included).
pub async fn close_of(
    conn: &mut AnyConnection,
    user_id: i64,
    session_id: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM sessions WHERE id = $1 AND user_id = $2")
        .bind(session_id)
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Ends every session of a user but `keep` (the one making the request), or all of them.
pub async fn close_all(
    conn: &mut AnyConnection,
    user_id: i64,
    keep: Option<&str>,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id <> $2")
        .bind(user_id)
        .bind(keep.unwrap_or(""))
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

/// What a route does with the account, as a narrowed token sees it: the `operation` fact its
/// holder's checks read is decided by the route, not by the HTTP method (a logout is not a
/// read, whatever its method).
pub trait Access: Send + Sync + 'static {
    /// The `operation` fact, or None when only a token as minted may use the route.
    const OPERATION: Option<&'static str>;
    /// The route changes something whatever its HTTP method: a browser's cookie request needs
    /// the CSRF header even on a GET.
    const CHANGES: bool;
    /// The route ends the session making the request: its "last used" is not written first.
    const ENDS: bool = false;
}

/// Reads the account and changes nothing: `operation("read")`.
pub struct Read;
/// Changes the account: `operation("write")`. The default.
pub struct Write;
/// Manages the account's sessions or credentials (logout, ending sessions, new sessions):
/// only a token as minted, never a narrowed one, so that a narrowed token can never give its
/// holder a broader one.
pub struct Manage;
/// Ends the session making the request (a logout), whatever the HTTP method: as [`Manage`],
/// and a change even on a GET.
pub struct End;

impl Access for Read {
    const OPERATION: Option<&'static str> = Some("read");
    const CHANGES: bool = false;
}
impl Access for Write {
    const OPERATION: Option<&'static str> = Some("write");
    const CHANGES: bool = true;
}
impl Access for Manage {
    const OPERATION: Option<&'static str> = None;
    const CHANGES: bool = false;
}
impl Access for End {
    const OPERATION: Option<&'static str> = None;
    const CHANGES: bool = true;
    const ENDS: bool = true;
}

/// The user behind a valid `Authorization: Bearer` session token, or a browser's session
/// cookie with its CSRF header, for a route that does `A`.
///
/// Put it before any `Connection<Db>` in a handler's parameters: it borrows a pooled connection
/// for its one query and gives it back before the handler takes one: a handler that held one
/// while the guard waited for another would starve the pool under load.
#[derive(Debug)]
pub struct AuthUser<A: Access = Write> {
    pub user: User,
    pub session_id: String,
    /// The token was narrowed by its holder: changes of credentials ask for the password.
    pub narrowed: bool,
    /// The request came with the browser's session cookie (not a Bearer token).
    pub by_cookie: bool,
    access: PhantomData<A>,
}

#[rocket::async_trait]
impl<'r, A: Access> FromRequest<'r> for AuthUser<A> {
    type Error = ApiError;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, ApiError> {
        match authenticate::<A>(request).await {
            Ok(user) => Outcome::Success(user),
            Err(error) => Outcome::Error(error.stash(request)),
        }
    }
}

fn bearer<'a>(request: &'a Request<'_>) -> Option<&'a str> {
    let header = request.headers().get_one("Authorization")?;
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn rejected(rejection: Rejection) -> ApiError {
    match rejection {
        Rejection::Expired => ApiError::unauthorized(TOKEN_EXPIRED),
        Rejection::Invalid => ApiError::unauthorized(TOKEN_INVALID),
        Rejection::Forbidden => ApiError::new(Status::Forbidden, TOKEN_NOT_ALLOWED),
    }
}

/// The credential that judges the request: its `Authorization` header, else the cookie.
async fn authenticate<A: Access>(request: &Request<'_>) -> Result<AuthUser<A>, ApiError> {
    let rocket = request.rocket();
    let (Some(keys), Some(config)) = (rocket.state::<TokenKeys>(), rocket.state::<Config>()) else {
        return Err(ApiError::internal(
            "auth guard",
            "the kernel's state is not managed",
        ));
    };
    if cookies::judges(request, config) {
        by_cookie::<A>(request, keys).await
    } else {
        by_bearer::<A>(request, keys).await
    }
}

/// A live session's row, with its user.
#[derive(Clone)]
struct SessionRow {
    user: User,
    last_used_at: i64,
    expires_at: i64,
}

/// The session's row and its user, in one query: only an active account's sessions work (a
/// deactivated account's are also ended). Read on every request, never cached: a session
/// ended on any instance is refused at once. On a SQLite file the read runs on this thread
/// ([`crate::db::SqliteReader`]), on PostgreSQL in a batch of the requests waiting
/// ([`SessionReads`]), elsewhere (an in-memory SQLite) on the pool.
async fn session_row(
    request: &Request<'_>,
    session_id: &str,
    user_id: i64,
    now: i64,
) -> Result<Option<SessionRow>, ApiError> {
    let db = Db::fetch(request.rocket())
        .ok_or_else(|| ApiError::internal("auth guard", "no database"))?;
    let sql = session_sql();
    if let Some(reader) = db.sqlite_reader() {
        return Ok(reader.read(|conn| {
            let mut statement = conn
                .prepare_cached(sqlite_session_sql())
                .map_err(sqlite_error)?;
            let mut rows = statement
                .query(rusqlite::params![session_id, user_id, now])
                .map_err(sqlite_error)?;
            let Some(row) = rows.next().map_err(sqlite_error)? else {
                return Ok(None);
            };
            // By position, as the user's columns are read: the two after them.
            let read = |at: usize| row.get::<_, i64>(at).map_err(sqlite_error);
            Ok(Some(SessionRow {
                user: User::from_sqlite_row(row)?,
                last_used_at: read(crate::users::column::COUNT)?,
                expires_at: read(crate::users::column::COUNT + 1)?,
            }))
        })?);
    }
    if let Some(Some(batched)) = request.rocket().state::<SessionReads>().map(|r| &r.0) {
        let asked = SessionQuestion {
            session_id: session_id.to_owned(),
            user_id,
            now,
        };
        return Ok(batched.ask(asked).await?);
    }
    let row = sqlx::query(sql)
        .bind(session_id)
        .bind(user_id)
        .bind(now)
        .fetch_optional(&***db)
        .await?;
    row.map(|row| session_of(&row))
        .transpose()
        .map_err(ApiError::from)
}

fn session_of(row: &sqlx::any::AnyRow) -> Result<SessionRow, sqlx::Error> {
    Ok(SessionRow {
        user: User::from_row(row)?,
        last_used_at: row.try_get("session_last_used_at")?,
        expires_at: row.try_get("session_expires_at")?,
    })
}

/// The guard's reads on PostgreSQL, many requests' in one query ([`crate::db::Batched`]); none
/// on SQLite, read in the process ([`crate::db::SqliteReader`]).
pub struct SessionReads(Option<crate::db::Batched<SessionQuestion, Option<SessionRow>>>);

/// What one request asks of the sessions: the guard's query's three values.
pub struct SessionQuestion {
    session_id: String,
    user_id: i64,
    now: i64,
}

/// Questions answered by one query at most: the statement stays small, and a batch's rows
/// come back in one message or two.
const SESSIONS_PER_QUERY: usize = 64;

impl SessionReads {
    /// Starts the batching on PostgreSQL, with one runner (`db::Batched`). Measured on 2 cores
    /// at 16 and 64 connections (BENCHMARKS.md): one runner served 13,000–23,000 profiles a second, two 9,000–17,000, four or eight fewer
    /// still, and one query per request 7,700–9,400.
    ///
    /// The runner queries on a connection of its own ([`crate::db::DbPool::own_pool`]), never
    /// waiting for one of the shared pool's: a session check does not queue behind other
    /// requests' transactions.
    pub async fn start(db: &crate::db::DbPool) -> Result<SessionReads, sqlx::Error> {
        if crate::db::Backend::of(db).await? != crate::db::Backend::Postgres {
            return Ok(SessionReads(None));
        }
        let pool = db.own_pool(1);
        Ok(SessionReads(Some(crate::db::Batched::start(
            SESSIONS_PER_QUERY,
            move |asked| {
                let pool = pool.clone();
                async move { sessions_of(&pool, asked).await }
            },
        ))))
    }
}

/// The guard's query for many sessions at once: each session named (a JSON array bound as
/// one text value: the `Any` driver binds no arrays) found by its key and joined to its user,
/// active ones only. Owner and expiry are compared per question, as the single query's
/// conditions compare them. One lookup per name (`LATERAL … LIMIT 1`): the prepared
/// statement's generic plan cannot know how many names come, and for `s.id = ANY(…)` it chose
/// to scan both tables whole (3 ms for 8 names among 1,000 sessions, 0.2 ms this way).
fn batch_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let active = crate::users::AccountState::Active.as_str();
        format!(
            "SELECT found.* FROM jsonb_array_elements_text($1::jsonb) AS asked(id) \
             CROSS JOIN LATERAL (SELECT {USER_COLUMNS}, s.id AS session_id, \
             s.last_used_at AS session_last_used_at, s.expires_at AS session_expires_at \
             FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.id = asked.id AND u.state = '{active}' LIMIT 1) AS found"
        )
    })
}

async fn sessions_of(
    pool: &sqlx::AnyPool,
    asked: Vec<SessionQuestion>,
) -> Result<Vec<Option<SessionRow>>, sqlx::Error> {
    let ids: Vec<&str> = asked.iter().map(|a| a.session_id.as_str()).collect();
    let ids = serde_json::to_string(&ids).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let rows = sqlx::query(batch_sql()).bind(ids).fetch_all(pool).await?;
    let mut found = std::collections::HashMap::with_capacity(rows.len());
    for row in &rows {
        found.insert(row.try_get::<String, _>("session_id")?, session_of(row)?);
    }
    Ok(asked
        .iter()
        .map(|a| {
            found
                .get(&a.session_id)
                .filter(|s| s.user.id == a.user_id && s.expires_at >= a.now)
                .cloned()
        })
        .collect())
}

/// On SQLite the session is found by its key's index whatever the planner's statistics say.
/// An `ANALYZE` taken while `sessions` held a row or two (the benchmark's seeding did so)
/// makes the planner of every connection opened afterwards scan the whole table for the
/// guard's query instead: a read per request that grew with the number of sessions
/// (BENCHMARKS.md, "What the run says"). `sqlite_autoindex_sessions_1` is the index SQLite
/// keeps for `sessions.id TEXT PRIMARY KEY` (migrations/sqlite); a statement naming an index
/// that is gone fails, it never scans.
const SQLITE_SESSION_BY_ID: &str = " sessions s INDEXED BY sqlite_autoindex_sessions_1 ";

/// The guard's query for SQLite's own driver (built once).
fn sqlite_session_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| by_session_index(session_sql()))
}

/// A query of `sessions s` for SQLite, naming the index of the session's key.
fn by_session_index(sql: &str) -> String {
    sql.replace(" sessions s ", SQLITE_SESSION_BY_ID)
}

/// The guard's query (built once). The account's state is written in, not bound: `users.state`
/// is in the condition of a partial index (`users_pending`), and SQLite (built with STAT4)
/// prepares a statement again each time a value bound to such a column changes, which every
/// request's bindings did: the guard parsed its SQL once per request.
fn session_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let active = crate::users::AccountState::Active.as_str();
        format!(
            "SELECT {USER_COLUMNS}, s.last_used_at AS session_last_used_at, \
             s.expires_at AS session_expires_at FROM sessions s \
             JOIN users u ON u.id = s.user_id WHERE s.id = $1 AND s.user_id = $2 \
             AND s.expires_at >= $3 AND u.state = '{active}'"
        )
    })
}

/// "Last used" is kept to the minute: one small write a minute per session, not one per
/// request. On SQLite it waits for this process's turn at the write lock, as every writing
/// transaction does ([`crate::db::write_turn`]).
async fn touch(
    request: &Request<'_>,
    found: &SessionRow,
    session_id: &str,
    now: i64,
) -> Result<(), ApiError> {
    if now - found.last_used_at >= LAST_USED_PRECISION {
        let db = Db::fetch(request.rocket())
            .ok_or_else(|| ApiError::internal("auth guard", "no database"))?;
        let _turn = crate::db::write_turn(db).await;
        sqlx::query("UPDATE sessions SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(session_id)
            .execute(&***db)
            .await?;
    }
    Ok(())
}

/// The cookie path (docs/browser-sessions.md, "Checks and answers on the cookie path"), in
/// this order: a cookie; a cookie token of ours, unexpired; for a request that changes
/// something, the session's CSRF value in the header (before any query); the session row.
/// Every refusal is the same 401; the response clears the cookies unless the CSRF check
/// failed (a forged request must not log anyone out).
async fn by_cookie<A: Access>(
    request: &Request<'_>,
    keys: &TokenKeys,
) -> Result<AuthUser<A>, ApiError> {
    let refused = || ApiError::unauthorized(PROVIDE_TOKEN);
    let jar = Jar::of(request);
    let cookie = request
        .cookies()
        .get(cookies::ACCESS_COOKIE)
        .map(|c| c.value());
    let Some(token) = cookie.filter(|t| !t.is_empty()) else {
        if request.cookies().get(cookies::CSRF_COOKIE).is_some() {
            jar.plan(Plan::ClearCsrf);
        }
        return Err(refused());
    };
    let now = now();
    let claims = match keys.verify_cookie(token) {
        Ok(claims) if !claims.expired(now) => claims,
        _ => {
            jar.plan(Plan::ClearBoth);
            return Err(refused());
        }
    };
    let changing = cookies::changing(request.method(), A::CHANGES);
    if changing {
        let presented = request
            .headers()
            .get_one(cookies::CSRF_HEADER)
            .unwrap_or("");
        if !keys.csrf_matches(&claims.session_id, presented) {
            return Err(refused());
        }
    }
    let Some(found) = session_row(request, &claims.session_id, claims.user_id, now).await? else {
        jar.plan(Plan::ClearBoth);
        return Err(refused());
    };
    if !A::ENDS {
        touch(request, &found, &claims.session_id, now).await?;
    }
    jar.plan(Plan::Refresh {
        live: Live {
            user_id: claims.user_id,
            session_id: claims.session_id.clone(),
            session_expires_at: found.expires_at,
        },
        recheck: changing,
    });
    Ok(AuthUser {
        user: found.user,
        session_id: claims.session_id,
        narrowed: false,
        by_cookie: true,
        access: PhantomData,
    })
}

/// Signature and authority block first; then the session row (a dead or expired session ends
/// here, before any Datalog its holder wrote runs); then, for a narrowed token, its checks.
async fn by_bearer<A: Access>(
    request: &Request<'_>,
    keys: &TokenKeys,
) -> Result<AuthUser<A>, ApiError> {
    let token = bearer(request).ok_or_else(|| ApiError::unauthorized(PROVIDE_TOKEN))?;
    let (claims, narrowed) = match keys.verify(token).await.map_err(rejected)? {
        Verified::Plain(claims) => (claims, None),
        Verified::Narrowed(claims, narrowed) => (claims, Some(narrowed)),
    };
    let now = now();
    if claims.expired(now) {
        return Err(rejected(Rejection::Expired));
    }
    let found = session_row(request, &claims.session_id, claims.user_id, now)
        .await?
        .ok_or_else(|| ApiError::unauthorized(PROVIDE_TOKEN))?;
    let is_narrowed = narrowed.is_some();
    if let Some(narrowed) = narrowed {
        let operation = A::OPERATION.ok_or_else(|| rejected(Rejection::Forbidden))?;
        let path = canonical_path(request.uri().path().segments());
        let route = request
            .route()
            .map(|r| r.uri.origin.path().as_str().to_owned())
            .unwrap_or_default();
        let facts = RequestFacts {
            operation,
            path: &path,
            route: &route,
        };
        keys.authorize(narrowed, &facts).await.map_err(rejected)?;
    }
    if A::ENDS {
        // The session ends: its token need not take room among the verified ones.
        keys.forget(token);
    } else {
        touch(request, &found, &claims.session_id, now).await?;
    }
    Ok(AuthUser {
        user: found.user,
        session_id: claims.session_id,
        narrowed: is_narrowed,
        by_cookie: false,
        access: PhantomData,
    })
}

/// An `AuthUser` who is an instance admin; 403 "you do not have permissions" otherwise.
pub struct AdminUser(pub AuthUser);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for AdminUser {
    type Error = ApiError;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, ApiError> {
        match <AuthUser>::from_request(request).await {
            Outcome::Success(auth) if auth.user.admin => Outcome::Success(AdminUser(auth)),
            Outcome::Success(_) => {
                Outcome::Error(ApiError::forbidden("you do not have permissions").stash(request))
            }
            Outcome::Error(e) => Outcome::Error(e),
            Outcome::Forward(f) => Outcome::Forward(f),
        }
    }
}

#[cfg(test)]
mod tests {
    /// The guard's statement is prepared once, not once per request: binding a value compared
    /// with `users.state` (in a partial index's condition) made SQLite prepare it again at
    /// every execution.
    #[tokio::test]
    async fn the_sqlite_session_check_is_not_prepared_again() {
        let (_pool, path) = crate::db::testing::migrated_sqlite("session-prep").await;
        let conn = rusqlite::Connection::open(&path).expect("a connection");
        let runs = |sql: &str, bound: &[&dyn rusqlite::ToSql]| -> i32 {
            let mut statement = conn.prepare(sql).expect("prepare");
            for _ in 0..3 {
                let mut rows = statement.query(bound).expect("query");
                assert!(rows.next().expect("a step").is_none());
            }
            statement.get_status(rusqlite::StatementStatus::RePrepare)
        };
        let sql = super::sqlite_session_sql();
        // What binding the state did, so that this test shows the cost it guards against.
        let bound = sql.replace("'active'", "$4");
        assert!(runs(&bound, &[&"s", &1, &1, &"active"]) > 0);
        assert_eq!(runs(sql, &[&"s", &1, &1]), 0);
    }

    /// The guard's SQLite query finds its session by the key's index even after an `ANALYZE`
    /// taken while the table held one session (which made SQLite's planner scan `sessions` on
    /// every request of connections opened afterwards).
    #[tokio::test]
    async fn the_sqlite_session_check_never_scans() {
        let (pool, path) = crate::db::testing::migrated_sqlite("session-plan").await;
        let statements = [
            "INSERT INTO users (username, email, email_key, password_hash, created_at, \
             password_changed_at) VALUES ('sam', 'sam@example.com', 'sam@example.com', 'x', 1, 1)",
            "INSERT INTO sessions (id, user_id, created_at, expires_at) VALUES ('s0', 1, 1, 9)",
            "ANALYZE",
        ];
        for statement in statements {
            sqlx::query(statement)
                .execute(&pool)
                .await
                .expect(statement);
        }
        for i in 1..200 {
            sqlx::query(
                "INSERT INTO sessions (id, user_id, created_at, expires_at) VALUES ($1, 1, 1, 9)",
            )
            .bind(format!("s{i}"))
            .execute(&pool)
            .await
            .expect("session");
        }
        let conn = rusqlite::Connection::open(&path).expect("a new connection");
        let plan = |sql: &str| -> String {
            let mut statement = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .expect("plan");
            let rows = statement
                .query_map(rusqlite::params!["s1", 1, 1], |row| row.get::<_, String>(3))
                .expect("plan rows");
            rows.map(|r| r.expect("a plan row"))
                .collect::<Vec<_>>()
                .join("; ")
        };
        // What the statistics alone lead to, so that this test shows the hazard it guards.
        let unguarded = plan(super::session_sql());
        assert!(unguarded.contains("SCAN s"), "{unguarded}");
        let guarded = plan(super::sqlite_session_sql());
        assert!(
            guarded.contains("SEARCH s USING INDEX sqlite_autoindex_sessions_1"),
            "{guarded}"
        );
        assert!(!guarded.contains("SCAN s"), "{guarded}");
    }
}
