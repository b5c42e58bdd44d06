//! The pictures store: at most one picture per user, kept in the database (bytes, format and
//! ETag), so every instance serves every picture and a database backup holds them all.
//!
//! The store only keeps what it is given: checking, re-encoding and hashing are the pictures
//! module's business. A user's `picture` flag (`User::picture`) is read from this table.

use sqlx::{AnyConnection, Row};

use crate::db::now;
use crate::validate::Username;

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
/// the old picture or the new one, never none.
pub async fn put(
    conn: &mut AnyConnection,
    user_id: i64,
    picture: &Picture,
) -> Result<(), sqlx::Error> {
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
    .execute(conn)
    .await?;
    Ok(())
}

/// The user named `username` (case-insensitively) and the ETag of their picture, without the
/// bytes: enough to answer a conditional request.
pub async fn lookup(conn: &mut AnyConnection, username: &Username) -> Result<Lookup, sqlx::Error> {
    let row = sqlx::query(
        "SELECT u.id, p.etag FROM users u LEFT JOIN pictures p ON p.user_id = u.id \
         WHERE lower(u.username) = $1",
    )
    .bind(username.as_str().to_ascii_lowercase())
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else {
        return Ok(Lookup::NoUser);
    };
    Ok(match row.try_get::<Option<String>, _>("etag")? {
        None => Lookup::NoPicture,
        Some(etag) => Lookup::Tagged {
            user_id: row.try_get("id")?,
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

/// Removes a user's picture; false when there was none.
pub async fn delete(conn: &mut AnyConnection, user_id: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM pictures WHERE user_id = $1")
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}
