//! Users' pictures: `POST /api/auth/picture` (multipart, field `file`),
//! `DELETE /api/auth/picture`, `GET /api/users/<username>/picture`.
//!
//! An upload is read while it streams in and refused past the run-time limit
//! (`max_single_file_size`, [`upload`]); its content must be the image its extension names,
//! decoded under limits and re-encoded, which drops every byte of metadata ([`image`]: GIFs
//! keep their first frame only). The result goes to the module's store ([`store`]), in the
//! database, and is served with a strong ETag ([`serve`]).
//!
//! When the module is off nothing is mounted: every picture path is a JSON 404.

mod image;
mod serve;
mod size;
mod store;
mod upload;

use crate::store::{Lookup, Picture};
use kernel::config::{ConfigError, Section};
use kernel::validate::Username;
use kernel::{settings, ApiError, ApiResult, AuthUser, Db, Describe};
use rocket::data::Data;
use rocket::fairing::AdHoc;
use rocket::http::Status;
use rocket::serde::json::{json, Value};
use rocket::{delete, get, post, routes, State};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::image::Refusal;
use crate::serve::{IfNoneMatch, Served};
use crate::upload::BodyHeaders;

pub fn stage() -> AdHoc {
    kernel::module(
        |rocket, config: PicturesConfig| {
            if let Some(initial) = rocket.state::<settings::InitialSettings>() {
                initial.set_max_single_file_size(config.max_size);
            }
            if let Some(lifecycle) = rocket.state::<kernel::Lifecycle>() {
                lifecycle.offer_pictures(std::sync::Arc::new(store::Source));
            }
            rocket
                .manage(Decoders::new())
                .mount("/api/auth", routes![update, remove])
                .mount("/api/users", routes![picture])
                .describe(include_str!("../openapi.json"))
        },
        |rocket, _| rocket,
    )
}

/// The section `pictures.*`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PicturesConfig {
    /// Initial value of the run-time setting `max_single_file_size`, in bytes.
    pub max_size: u64,
}

impl Default for PicturesConfig {
    fn default() -> Self {
        PicturesConfig {
            max_size: 1024 * 1024,
        }
    }
}

impl Section for PicturesConfig {
    const NAME: &'static str = "pictures";

    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_size == 0 {
            return Err(ConfigError::invalid(
                "pictures.max_size",
                "must be at least 1 byte (got 0)",
            ));
        }
        Ok(())
    }
}

/// Permits to decode, one per CPU: decoding is CPU-bound and may take up to
/// `image::MAX_DECODED` bytes, so more at once would only queue on the cores and add memory.
struct Decoders(Semaphore);

impl Decoders {
    fn new() -> Decoders {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        Decoders(Semaphore::new(cpus))
    }
}

#[post("/picture", data = "<data>")]
async fn update(
    auth: AuthUser,
    headers: BodyHeaders,
    db: &State<Db>,
    decoders: &State<Decoders>,
    data: Data<'_>,
) -> ApiResult<Value> {
    // The limit is the admin's run-time setting, read fresh; no connection is held while the
    // body streams in or while the image is decoded.
    let limit = {
        let mut conn = db.acquire().await?;
        settings::load(&mut conn).await?.max_single_file_size
    };
    let limit = u64::try_from(limit).unwrap_or(0);
    let file = upload::read(&headers, data, limit).await?;

    let permit = decoders
        .0
        .acquire()
        .await
        .map_err(|e| ApiError::internal("picture decoders", e))?;
    let format = file.format;
    let encoded = tokio::task::spawn_blocking(move || image::reencode(format, &file.bytes))
        .await
        .map_err(|e| ApiError::internal("re-encoding a picture", e))?;
    drop(permit);
    let data = encoded.map_err(Refusal::into_error)?;

    let picture = Picture {
        format: format.name().to_owned(),
        etag: hex::encode(Sha256::digest(&data)),
        data,
    };
    store::put(db, auth.user.id, &picture).await?;
    tracing::info!(
        user_id = auth.user.id,
        format = picture.format,
        bytes = picture.data.len(),
        "picture updated"
    );
    Ok(json!({ "status": "success", "message": "user picture updated" }))
}

/// 204 whether or not there was a picture: the outcome the client asked for holds either way.
#[delete("/picture")]
async fn remove(auth: AuthUser, db: &State<Db>) -> ApiResult<Status> {
    store::delete(db, auth.user.id).await?;
    Ok(Status::NoContent)
}

#[get("/<username>/picture")]
async fn picture(username: &str, if_none_match: IfNoneMatch, db: &State<Db>) -> ApiResult<Served> {
    // A name registration would refuse belongs to nobody, and is never sent to the database
    // (PostgreSQL refuses text with a NUL in it).
    let Ok(username) = Username::parse(username) else {
        return Err(ApiError::not_found(NO_USER));
    };
    let mut conn = db.acquire().await?;
    let user_id = match store::lookup(&mut conn, &username).await? {
        Lookup::NoUser => return Err(ApiError::not_found(NO_USER)),
        Lookup::NoPicture => return Err(ApiError::not_found(NO_PICTURE)),
        Lookup::Tagged { etag, .. } if if_none_match.matches(&etag) => {
            return Ok(Served::NotModified { etag })
        }
        Lookup::Tagged { user_id, .. } => user_id,
    };
    // Read again with the bytes: if the picture changed in between, this is the new one, with
    // its own ETag.
    match store::get(&mut conn, user_id).await? {
        Some(picture) => Ok(Served::Image(picture)),
        None => Err(ApiError::not_found(NO_PICTURE)),
    }
}

const NO_USER: &str = "user does not exist";
const NO_PICTURE: &str = "no picture";
