//! The pictures store: at most one picture per user, kept in the database (bytes, format and
//! ETag), so every instance serves every picture and a database backup holds them all.
//!
//! The store only keeps what it is given: checking and re-encoding are done before. The
//! module's table (`pictures`, migrations/*/20261125000002_pictures.sql) is read and written
//! here only; the user's `picture` flag, which every user object carries, is the kernel's
//! (`users::set_picture`), set in the same transaction as the row.

use kernel::db::{self, now};
use kernel::users;
use kernel::validate::Username;
use sqlx::{AnyConnection, AnyPool, Row};

/// A stored picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picture {
    /// The image format's short name: `png`, `jpeg` or `gif`.
    pub format: String,
    /// The entity tag the picture is served with (without quotes).
    pub etag: String,
    pub data: Vec<u8>,
}

/// What a picture request finds before reading any image bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    NoUser,
    NoPicture,
    /// The user has a picture with this ETag.
    Tagged {
        user_id: i64,
        etag: String,
    },
}

/// Stores a user's picture, replacing the previous one in the same statement, so a reader sees
/// the old picture or the new one, never none; the user's flag changes in the same transaction.
pub async fn put(pool: &AnyPool, user_id: i64, picture: &Picture) -> Result<(), sqlx::Error> {
    let mut tx = db::begin_write(pool).await?;
    sqlx::query(
        "INSERT INTO pictures (user_id, format, etag, data, updated_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (user_id) DO UPDATE SET format = excluded.format, etag = excluded.etag, \
         data = excluded.data, updated_at = excluded.updated_at",
    )
    .bind(user_id)
    .bind(&picture.format)
    .bind(&picture.etag)
    .bind(&picture.data)
    .bind(now())
    .execute(&mut *tx)
    .await?;
    users::set_picture(&mut tx, user_id, true).await?;
    tx.commit().await
}

/// The user named `username` (case-insensitively) and the ETag of their picture, without the
/// bytes: enough to answer a conditional request.
pub async fn lookup(conn: &mut AnyConnection, username: &Username) -> Result<Lookup, sqlx::Error> {
    let Some(user) = users::by_username(&mut *conn, username.as_str()).await? else {
        return Ok(Lookup::NoUser);
    };
    if !user.picture {
        return Ok(Lookup::NoPicture);
    }
    let etag: Option<String> = sqlx::query("SELECT etag FROM pictures WHERE user_id = $1")
        .bind(user.id)
        .fetch_optional(conn)
        .await?
        .map(|row| row.try_get("etag"))
        .transpose()?;
    Ok(match etag {
        None => Lookup::NoPicture,
        Some(etag) => Lookup::Tagged {
            user_id: user.id,
            etag,
        },
    })
}

/// A user's picture, bytes included.
pub async fn get(conn: &mut AnyConnection, user_id: i64) -> Result<Option<Picture>, sqlx::Error> {
    let row = sqlx::query("SELECT format, etag, data FROM pictures WHERE user_id = $1")
        .bind(user_id)
        .fetch_optional(conn)
        .await?;
    row.map(|row| {
        Ok(Picture {
            format: row.try_get("format")?,
            etag: row.try_get("etag")?,
            data: row.try_get("data")?,
        })
    })
    .transpose()
}

/// The pictures for the kernel's lifecycle hook (a data export carries the user's).
pub struct Source;

#[rocket::async_trait]
impl kernel::lifecycle::PictureSource for Source {
    async fn picture(
        &self,
        conn: &mut AnyConnection,
        user_id: i64,
    ) -> Result<Option<(Vec<u8>, &'static str)>, kernel::error::Failure> {
        let picture = get(conn, user_id)
            .await
            .map_err(|e| kernel::error::Failure::new("a picture", e))?;
        Ok(picture.map(|p| {
            let extension = match crate::image::Format::from_name(&p.format) {
                Some(crate::image::Format::Jpeg) => "jpg",
                Some(crate::image::Format::Gif) => "gif",
                _ => "png",
            };
            (p.data, extension)
        }))
    }
}

/// Removes a user's picture, and the user's flag with it.
pub async fn delete(pool: &AnyPool, user_id: i64) -> Result<(), sqlx::Error> {
    let mut tx = db::begin_write(pool).await?;
    sqlx::query("DELETE FROM pictures WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    users::set_picture(&mut tx, user_id, false).await?;
    tx.commit().await
}
