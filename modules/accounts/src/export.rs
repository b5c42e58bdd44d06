//! Data export (docs/accounts.md, "Data export"): `POST /api/auth/account/export/request`,
//! `GET /api/auth/account/export`, `GET /api/auth/account/export/<file_name>`, and the builder
//! every instance runs in the background.
//!
//! A request is a row of `data_exports` (one per user, read and written here only). Any
//! instance's builder claims a queued row for a bounded time, reads what the archive holds,
//! gives its connection back, builds the zip on the blocking pool, then stores the archive and
//! queues the "ready" email in one transaction. A claim left by a stopped instance is taken over
//! when it runs out. The archive's bytes live in the database, so every instance serves them,
//! and the sweep deletes them when the export expires.

use std::io::{Cursor, Write as _};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use kernel::auth::Read;
use kernel::dates::http_date_from_unix;
use kernel::db::now;
use kernel::error::Failure;
use kernel::language::Language;
use kernel::lifecycle::{ExportPart, PictureSource};
use kernel::{auth, users, ApiError, ApiResult, AuthUser, Db, Mailer, Services};
use rocket::fairing::{Fairing, Info, Kind};
use rocket::http::{ContentType, Header, Status};
use rocket::request::Request;
use rocket::response::{self, Responder, Response};
use rocket::serde::json::{json, Value};
use rocket::{get, post, routes, Orbit, Rocket, Route, Shutdown, State};
use rocket_db_pools::Database as _;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, Row};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::AccountsConfig;

pub const ONGOING: &str = "ongoing request exists";
pub const COMPLETED: &str = "completed request already exists";
pub const NOT_FOUND: &str = "file not found";

/// How long a builder holds a claimed export (its budget): past it, another instance takes the
/// export over.
pub const BUILD_BUDGET: i64 = 300;
/// How often a builder looks for exports queued through other instances.
const POLL: Duration = Duration::from_secs(5);

pub fn routes() -> Vec<Route> {
    routes![request_export, status, download]
}

/// Wakes this instance's builder when a request arrives through it.
#[derive(Clone, Default)]
pub struct Wake(Arc<Notify>);

const COLUMNS: &str = "id, status, created_at, expires_at, file_name, file_size";

/// The request object of FitTrackee 1.x (top-level key `request`), with Stride's `expires_at`.
fn request_json(row: &AnyRow) -> Result<Value, sqlx::Error> {
    let status: String = row.try_get("status")?;
    let successful = status == "successful";
    Ok(json!({
        "id": row.try_get::<String, _>("id")?,
        "type": "user_data_export",
        "status": status,
        "created_at": http_date_from_unix(row.try_get("created_at")?),
        "expires_at": http_date_from_unix(row.try_get("expires_at")?),
        "file_name": if successful { row.try_get::<Option<String>, _>("file_name")? } else { None },
        "file_size": if successful { row.try_get::<Option<i64>, _>("file_size")? } else { None },
    }))
}

fn random_text(bytes: usize) -> Result<String, ApiError> {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).map_err(|e| ApiError::internal("OS randomness", e))?;
    Ok(URL_SAFE_NO_PAD.encode(buffer))
}

/// Queues an export, at once: the archive is built in the background. One at a time: an
/// ongoing one or a completed one that has not expired refuses a new one; an errored or
/// expired one is replaced.
#[post("/export/request")]
async fn request_export(
    auth: AuthUser,
    kernel: Services<'_>,
    config: &State<AccountsConfig>,
    wake: &State<Wake>,
) -> ApiResult<Value> {
    let now = now();
    let (id, file_name) = (
        random_text(16)?,
        format!("archive_{}.zip", random_text(18)?),
    );
    let mut tx = kernel::db::begin_write(kernel.db).await?;
    let existing = sqlx::query("SELECT status, expires_at FROM data_exports WHERE user_id = $1")
        .bind(auth.user.id)
        .fetch_optional(&mut *tx)
        .await?;
    if let Some(row) = existing {
        let status: String = row.try_get("status")?;
        let live = row.try_get::<i64, _>("expires_at")? >= now;
        match status.as_str() {
            "queued" | "in_progress" => return Err(ApiError::bad_request(ONGOING)),
            "successful" if live => return Err(ApiError::bad_request(COMPLETED)),
            _ => {}
        }
        sqlx::query("DELETE FROM data_exports WHERE user_id = $1")
            .bind(auth.user.id)
            .execute(&mut *tx)
            .await?;
    }
    let ttl = i64::try_from(config.export_ttl).unwrap_or(i64::MAX);
    let inserted = sqlx::query(
        "INSERT INTO data_exports (user_id, id, status, created_at, expires_at, file_name) \
         VALUES ($1, $2, 'queued', $3, $4, $5)",
    )
    .bind(auth.user.id)
    .bind(&id)
    .bind(now)
    .bind(now.saturating_add(ttl))
    .bind(&file_name)
    .execute(&mut *tx)
    .await;
    match inserted {
        Ok(_) => {}
        // A racing request of the same user won (PostgreSQL; SQLite's writers queue).
        Err(e) if kernel::db::is_unique_violation(&e) => {
            return Err(ApiError::bad_request(ONGOING))
        }
        Err(e) => return Err(e.into()),
    }
    let sql = format!("SELECT {COLUMNS} FROM data_exports WHERE user_id = $1");
    let row = sqlx::query(&sql)
        .bind(auth.user.id)
        .fetch_one(&mut *tx)
        .await?;
    let request = request_json(&row)?;
    tx.commit().await?;
    wake.0.notify_one();
    tracing::info!(user_id = auth.user.id, "data export requested");
    Ok(json!({ "status": "success", "request": request }))
}

/// The user's export request, or null (none, or expired).
#[get("/export")]
async fn status(auth: AuthUser<Read>, db: &State<Db>) -> ApiResult<Value> {
    let mut conn = db.acquire().await?;
    let sql = format!("SELECT {COLUMNS} FROM data_exports WHERE user_id = $1 AND expires_at >= $2");
    let row = sqlx::query(&sql)
        .bind(auth.user.id)
        .bind(now())
        .fetch_optional(&mut *conn)
        .await?;
    let request = row.as_ref().map(request_json).transpose()?;
    Ok(json!({ "status": "success", "request": request }))
}

/// An archive, as a download nobody caches or sniffs.
pub struct Archive {
    file_name: String,
    bytes: Vec<u8>,
}

impl<'r> Responder<'r, 'static> for Archive {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        Response::build()
            .status(Status::Ok)
            .header(ContentType::ZIP)
            .header(Header::new(
                "Content-Disposition",
                format!("attachment; filename=\"{}\"", self.file_name),
            ))
            .header(Header::new("Cache-Control", "no-store"))
            .header(Header::new("X-Content-Type-Options", "nosniff"))
            .sized_body(self.bytes.len(), Cursor::new(self.bytes))
            .ok()
    }
}

/// The archive, only to its owner, only while it is successful and unexpired; any other name
/// (another user's included) is 404 `file not found`.
#[get("/export/<file_name>")]
async fn download(auth: AuthUser<Read>, db: &State<Db>, file_name: &str) -> ApiResult<Archive> {
    // A name longer than any we make is nobody's, and never reaches the database.
    if file_name.len() > 64 {
        return Err(ApiError::not_found(NOT_FOUND));
    }
    let mut conn = db.acquire().await?;
    let row = sqlx::query(
        "SELECT archive FROM data_exports WHERE user_id = $1 AND file_name = $2 \
         AND status = 'successful' AND expires_at >= $3",
    )
    .bind(auth.user.id)
    .bind(file_name)
    .bind(now())
    .fetch_optional(&mut *conn)
    .await?;
    let bytes: Option<Vec<u8>> = row.map(|r| r.try_get("archive")).transpose()?.flatten();
    let bytes = bytes.ok_or_else(|| ApiError::not_found(NOT_FOUND))?;
    Ok(Archive {
        file_name: file_name.to_owned(),
        bytes,
    })
}

/// The builder, on every instance.
pub struct Builder {
    wake: Wake,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Builder {
    pub fn new(wake: Wake) -> Builder {
        Builder {
            wake,
            task: Mutex::new(None),
        }
    }
}

#[rocket::async_trait]
impl Fairing for Builder {
    fn info(&self) -> Info {
        Info {
            name: "Stride data exports",
            kind: Kind::Liftoff | Kind::Shutdown,
        }
    }

    async fn on_liftoff(&self, rocket: &Rocket<Orbit>) {
        let (Some(db), Some(mailer)) = (Db::fetch(rocket), rocket.state::<Mailer>()) else {
            tracing::error!("data exports: no database or mailer; exports stay queued");
            return;
        };
        let lifecycle = rocket.state::<kernel::Lifecycle>();
        let pictures = lifecycle.and_then(|l| l.pictures());
        let parts = lifecycle.map(|l| l.export_parts()).unwrap_or_default();
        let keys_1x = rocket
            .state::<kernel::Config>()
            .is_some_and(|c| c.cookies.enabled);
        let job = Job {
            pool: (**db).clone(),
            mailer: mailer.clone(),
            pictures,
            parts,
            keys_1x,
        };
        let task = tokio::spawn(run(job, self.wake.clone(), rocket.shutdown()));
        if let Ok(mut slot) = self.task.lock() {
            *slot = Some(task);
        }
    }

    async fn on_shutdown(&self, _: &Rocket<Orbit>) {
        let task = self.task.lock().ok().and_then(|mut slot| slot.take());
        if let Some(task) = task {
            // An export being built when the server stops is taken over by another instance (or
            // this one at its next start) once its claim runs out.
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

/// What building needs.
#[derive(Clone)]
pub struct Job {
    pub pool: AnyPool,
    pub mailer: Mailer,
    pub pictures: Option<Arc<dyn PictureSource>>,
    /// The other modules' files (kernel::lifecycle::ExportPart).
    pub parts: Vec<Arc<dyn ExportPart>>,
    /// The profile carries FitTrackee 1.x's keys, as the API gives it (`cookies.enabled`).
    pub keys_1x: bool,
}

async fn run(job: Job, wake: Wake, shutdown: Shutdown) {
    tokio::pin!(shutdown);
    loop {
        loop {
            match build_next(&job).await {
                Ok(true) => continue,
                Ok(false) => break,
                Err(e) => {
                    tracing::warn!("data exports: {e}; tried again later");
                    break;
                }
            }
        }
        tokio::select! {
            _ = &mut shutdown => return,
            _ = wake.0.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Claims the oldest export that is queued (or whose builder's claim ran out) and builds it;
/// false when there was none.
pub async fn build_next(job: &Job) -> Result<bool, Failure> {
    let database = |e| Failure::new("database", e);
    let now = now();
    let claimed = {
        let mut tx = kernel::db::begin_write(&job.pool).await.map_err(database)?;
        let candidate = sqlx::query(
            "SELECT user_id FROM data_exports WHERE (status = 'queued' OR \
             (status = 'in_progress' AND claimed_until < $1)) AND expires_at >= $1 \
             ORDER BY created_at LIMIT 1",
        )
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(database)?;
        let Some(candidate) = candidate else {
            return Ok(false);
        };
        let user_id: i64 = candidate.try_get("user_id").map_err(database)?;
        // Taken only if still free: two builders racing for it, one wins.
        let done = sqlx::query(
            "UPDATE data_exports SET status = 'in_progress', claimed_until = $1 WHERE user_id = $2 \
             AND (status = 'queued' OR (status = 'in_progress' AND claimed_until < $3))",
        )
        .bind(now.saturating_add(BUILD_BUDGET))
        .bind(user_id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(database)?;
        tx.commit().await.map_err(database)?;
        (done.rows_affected() == 1).then_some(user_id)
    };
    let Some(user_id) = claimed else {
        return Ok(true);
    };
    match build(job, user_id).await {
        Ok(()) => Ok(true),
        Err(e) => {
            tracing::error!(user_id, "data export failed: {e}");
            let mut conn = job.pool.acquire().await.map_err(database)?;
            sqlx::query(
                "UPDATE data_exports SET status = 'errored', claimed_until = NULL \
                 WHERE user_id = $1 AND status = 'in_progress'",
            )
            .bind(user_id)
            .execute(&mut *conn)
            .await
            .map_err(database)?;
            Ok(true)
        }
    }
}

/// What the archive holds, read with one pooled connection that is given back before the zip
/// is built.
struct Contents {
    user: users::User,
    profile: Vec<u8>,
    sessions: Vec<u8>,
    picture: Option<(Vec<u8>, &'static str)>,
    /// (file name, JSON) of the modules that hold something of the user.
    parts: Vec<(&'static str, Vec<u8>)>,
}

async fn read_contents(
    conn: &mut AnyConnection,
    job: &Job,
    user_id: i64,
) -> Result<Option<Contents>, Failure> {
    let database = |e| Failure::new("database", e);
    let Some(user) = users::by_id(&mut *conn, user_id).await.map_err(database)? else {
        return Ok(None);
    };
    let sessions: Vec<Value> = auth::list(&mut *conn, user_id)
        .await
        .map_err(database)?
        .iter()
        .map(auth::SessionInfo::to_json)
        .collect();
    let picture = match (&job.pictures, user.picture) {
        (Some(pictures), true) => pictures.picture(&mut *conn, user_id).await?,
        _ => None,
    };
    let json = |value: &Value| {
        serde_json::to_vec_pretty(value).map_err(|e| Failure::new("export JSON", e))
    };
    let profile = user
        .object(users::UserKeys {
            lifecycle: true,
            fittrackee_1x: job.keys_1x,
        })
        .to_value();
    let mut parts = Vec::with_capacity(job.parts.len());
    for part in &job.parts {
        if let Some(value) = part.part(&mut *conn, user_id).await? {
            parts.push((part.file_name(), json(&value)?));
        }
    }
    Ok(Some(Contents {
        profile: json(&profile)?,
        sessions: json(&Value::Array(sessions))?,
        picture,
        parts,
        user,
    }))
}

/// The zip, in a buffer sized for it up front (a growing one would copy the archive, and peak
/// at twice its size).
fn zip(contents: &Contents) -> Result<Vec<u8>, Failure> {
    let failed = |e: zip::result::ZipError| Failure::new("the archive", e);
    let io = |e: std::io::Error| Failure::new("the archive", e);
    // Stored, not deflated: the picture is compressed already, the JSON is small.
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let picture = contents
        .picture
        .as_ref()
        .map_or(0, |(bytes, _)| bytes.len());
    let parts: usize = contents
        .parts
        .iter()
        .map(|(_, bytes)| bytes.len() + 128)
        .sum();
    let size = contents.profile.len() + contents.sessions.len() + picture + parts + 1024;
    let mut archive = zip::ZipWriter::new(Cursor::new(Vec::with_capacity(size)));
    archive
        .start_file("user_data.json", options)
        .map_err(failed)?;
    archive.write_all(&contents.profile).map_err(io)?;
    archive
        .start_file("user_sessions.json", options)
        .map_err(failed)?;
    archive.write_all(&contents.sessions).map_err(io)?;
    for (name, bytes) in &contents.parts {
        archive.start_file(*name, options).map_err(failed)?;
        archive.write_all(bytes).map_err(io)?;
    }
    if let Some((bytes, extension)) = &contents.picture {
        archive
            .start_file(format!("picture.{extension}"), options)
            .map_err(failed)?;
        archive.write_all(bytes).map_err(io)?;
    }
    Ok(archive.finish().map_err(failed)?.into_inner())
}

async fn build(job: &Job, user_id: i64) -> Result<(), Failure> {
    let database = |e| Failure::new("database", e);
    let contents = {
        let mut conn = job.pool.acquire().await.map_err(database)?;
        read_contents(&mut conn, job, user_id).await?
    };
    // The account went meanwhile: its export went with it (ON DELETE CASCADE).
    let Some(contents) = contents else {
        return Ok(());
    };
    let (archive, mut contents) = tokio::task::spawn_blocking(move || (zip(&contents), contents))
        .await
        .map_err(|e| Failure::new("the archive", e))?;
    let archive = archive?;
    // The picture is in the archive now: its own copy goes before the archive is stored.
    contents.picture = None;
    let size = i64::try_from(archive.len()).unwrap_or(i64::MAX);
    let mut tx = kernel::db::begin_write(&job.pool).await.map_err(database)?;
    let stored = sqlx::query(
        "UPDATE data_exports SET status = 'successful', archive = $1, file_size = $2, \
         claimed_until = NULL WHERE user_id = $3 AND status = 'in_progress'",
    )
    .bind(archive)
    .bind(size)
    .bind(user_id)
    .execute(&mut *tx)
    .await
    .map_err(database)?;
    if stored.rows_affected() == 1 {
        let user = &contents.user;
        let lang = Language::of_user(user.language.as_deref()).code();
        let context =
            json!({ "link": format!("{}/profile/edit/account", job.mailer.public_url()) });
        let message = job.mailer.compose(
            "data_export_ready",
            lang,
            &user.email,
            &user.username,
            context,
        )?;
        job.mailer
            .enqueue(&mut tx, &message)
            .await
            .map_err(database)?;
    }
    tx.commit().await.map_err(database)?;
    job.mailer.wake();
    tracing::info!(user_id, bytes = size, "data export built");
    Ok(())
}

/// Deletes the exports that expired (their archives with them).
pub async fn delete_expired(conn: &mut AnyConnection) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM data_exports WHERE expires_at < $1")
        .bind(now())
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}
