//! The users store. Usernames and emails are unique case-insensitively, enforced by the
//! database itself (unique indexes on `lower(username)` and on the lower-cased email), so two
//! racing registrations of one name cannot both land.

use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use time::macros::format_description;
use time::Date;

use crate::dates::{http_date, http_date_from_unix};
use crate::db::{get_bool, get_optional_bool, is_unique_violation, now};
use crate::validate::{username_text, Email, Username};

/// A user as every module sees it. The password hash is not part of it: only the login path
/// reads hashes, through `credentials`.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub admin: bool,
    pub created_at: i64,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub bio: Option<String>,
    pub location: Option<String>,
    /// ISO date, `YYYY-MM-DD`.
    pub birth_date: Option<String>,
    pub timezone: String,
    pub weekm: bool,
    pub language: Option<String>,
    pub imperial_units: bool,
    /// Whether the user has a picture: a flag a module keeps with `set_picture`, so that the
    /// user object never needs another module's table.
    pub picture: bool,
    pub state: AccountState,
    /// The address of a pending email change, while its link lives.
    pub email_to_confirm: Option<String>,
    /// How FitTrackee 1.x's web client writes dates: one of [`DATE_FORMATS`].
    pub date_format: String,
    /// The web client's dark mode; none: the browser's choice.
    pub use_dark_mode: Option<bool>,
}

/// The date formats FitTrackee 1.x's web client offers; a new user has the first.
pub const DATE_FORMATS: [&str; 4] = ["MM/dd/yyyy", "dd/MM/yyyy", "yyyy-MM-dd", "date_string"];

/// Where an account is in its life. Only an active account logs in or uses a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountState {
    /// Registered while email confirmation was required; waits for its emailed link.
    Pending,
    Active,
    /// Switched off by an admin.
    Deactivated,
}

impl AccountState {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountState::Pending => "pending",
            AccountState::Active => "active",
            AccountState::Deactivated => "deactivated",
        }
    }

    fn parse(stored: &str) -> Result<AccountState, sqlx::Error> {
        match stored {
            "pending" => Ok(AccountState::Pending),
            "active" => Ok(AccountState::Active),
            "deactivated" => Ok(AccountState::Deactivated),
            other => Err(sqlx::Error::Decode(
                format!("unknown account state {other:?}").into(),
            )),
        }
    }
}

/// The columns `User::from_row` reads, for queries that select a user, qualified by `u.`.
pub const USER_COLUMNS: &str = "u.id, u.username, u.email, u.admin, u.created_at, u.first_name, \
     u.last_name, u.bio, u.location, u.birth_date, u.timezone, u.weekm, u.language, u.imperial_units, \
     u.picture, u.state, u.email_to_confirm, u.email_to_confirm_until, u.date_format, u.use_dark_mode";

impl User {
    pub fn from_row(row: &AnyRow) -> Result<User, sqlx::Error> {
        User::read(row)
    }

    /// The user of a row of SQLite's own driver (the session check's synchronous read:
    /// `db::SqliteReader`), read column by column as [`User::from_row`] reads sqlx's.
    pub(crate) fn from_sqlite_row(row: &rusqlite::Row<'_>) -> Result<User, sqlx::Error> {
        User::read(row)
    }

    /// One list of the columns for both drivers, so that they cannot read a user differently.
    fn read(row: &impl Columns) -> Result<User, sqlx::Error> {
        use column::*;
        Ok(User {
            id: row.int(ID)?,
            username: row.text(USERNAME)?,
            email: row.text(EMAIL)?,
            admin: row.flag(ADMIN)?,
            created_at: row.int(CREATED_AT)?,
            first_name: row.optional_text(FIRST_NAME)?,
            last_name: row.optional_text(LAST_NAME)?,
            bio: row.optional_text(BIO)?,
            location: row.optional_text(LOCATION)?,
            birth_date: row.optional_text(BIRTH_DATE)?,
            timezone: row.text(TIMEZONE)?,
            weekm: row.flag(WEEKM)?,
            language: row.optional_text(LANGUAGE)?,
            imperial_units: row.flag(IMPERIAL_UNITS)?,
            picture: row.flag(PICTURE)?,
            state: AccountState::parse(&row.text(STATE)?)?,
            email_to_confirm: row.optional_text(EMAIL_TO_CONFIRM)?.filter(|_| {
                row.optional_int(EMAIL_TO_CONFIRM_UNTIL)
                    .ok()
                    .flatten()
                    .is_some_and(|until| until >= now())
            }),
            date_format: row.text(DATE_FORMAT)?,
            use_dark_mode: row.optional_flag(USE_DARK_MODE)?,
        })
    }
}

/// A column of [`USER_COLUMNS`]: its position there and its name. sqlx's rows are read by
/// name (they keep a map of their names); SQLite's own driver finds a name by comparing it with
/// every column's, which for a user's twenty columns cost more than the lookup of the session
/// check itself, so its rows are read by position: a query selects [`USER_COLUMNS`] first.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Column(pub(crate) usize, pub(crate) &'static str);

/// The columns of [`USER_COLUMNS`], in its order (tested).
pub(crate) mod column {
    use super::Column;
    pub const ID: Column = Column(0, "id");
    pub const USERNAME: Column = Column(1, "username");
    pub const EMAIL: Column = Column(2, "email");
    pub const ADMIN: Column = Column(3, "admin");
    pub const CREATED_AT: Column = Column(4, "created_at");
    pub const FIRST_NAME: Column = Column(5, "first_name");
    pub const LAST_NAME: Column = Column(6, "last_name");
    pub const BIO: Column = Column(7, "bio");
    pub const LOCATION: Column = Column(8, "location");
    pub const BIRTH_DATE: Column = Column(9, "birth_date");
    pub const TIMEZONE: Column = Column(10, "timezone");
    pub const WEEKM: Column = Column(11, "weekm");
    pub const LANGUAGE: Column = Column(12, "language");
    pub const IMPERIAL_UNITS: Column = Column(13, "imperial_units");
    pub const PICTURE: Column = Column(14, "picture");
    pub const STATE: Column = Column(15, "state");
    pub const EMAIL_TO_CONFIRM: Column = Column(16, "email_to_confirm");
    pub const EMAIL_TO_CONFIRM_UNTIL: Column = Column(17, "email_to_confirm_until");
    pub const DATE_FORMAT: Column = Column(18, "date_format");
    pub const USE_DARK_MODE: Column = Column(19, "use_dark_mode");
    /// How many: the first column a query selects after the user's.
    pub const COUNT: usize = 20;
    #[cfg(test)]
    pub const ALL: [Column; COUNT] = [
        ID,
        USERNAME,
        EMAIL,
        ADMIN,
        CREATED_AT,
        FIRST_NAME,
        LAST_NAME,
        BIO,
        LOCATION,
        BIRTH_DATE,
        TIMEZONE,
        WEEKM,
        LANGUAGE,
        IMPERIAL_UNITS,
        PICTURE,
        STATE,
        EMAIL_TO_CONFIRM,
        EMAIL_TO_CONFIRM_UNTIL,
        DATE_FORMAT,
        USE_DARK_MODE,
    ];
}

/// A row's columns, as [`User::read`] needs them, from either driver.
trait Columns {
    fn int(&self, column: Column) -> Result<i64, sqlx::Error>;
    fn optional_int(&self, column: Column) -> Result<Option<i64>, sqlx::Error>;
    fn text(&self, column: Column) -> Result<String, sqlx::Error>;
    fn optional_text(&self, column: Column) -> Result<Option<String>, sqlx::Error>;
    fn flag(&self, column: Column) -> Result<bool, sqlx::Error>;
    fn optional_flag(&self, column: Column) -> Result<Option<bool>, sqlx::Error>;
}

impl Columns for AnyRow {
    fn int(&self, column: Column) -> Result<i64, sqlx::Error> {
        self.try_get(column.1)
    }
    fn optional_int(&self, column: Column) -> Result<Option<i64>, sqlx::Error> {
        self.try_get(column.1)
    }
    fn text(&self, column: Column) -> Result<String, sqlx::Error> {
        self.try_get(column.1)
    }
    fn optional_text(&self, column: Column) -> Result<Option<String>, sqlx::Error> {
        self.try_get(column.1)
    }
    fn flag(&self, column: Column) -> Result<bool, sqlx::Error> {
        get_bool(self, column.1)
    }
    fn optional_flag(&self, column: Column) -> Result<Option<bool>, sqlx::Error> {
        get_optional_bool(self, column.1)
    }
}

/// SQLite's booleans are `INTEGER` columns (docs/architecture.md, "Database").
impl Columns for rusqlite::Row<'_> {
    fn int(&self, column: Column) -> Result<i64, sqlx::Error> {
        self.get(column.0).map_err(crate::db::sqlite_error)
    }
    fn optional_int(&self, column: Column) -> Result<Option<i64>, sqlx::Error> {
        self.get(column.0).map_err(crate::db::sqlite_error)
    }
    fn text(&self, column: Column) -> Result<String, sqlx::Error> {
        self.get(column.0).map_err(crate::db::sqlite_error)
    }
    fn optional_text(&self, column: Column) -> Result<Option<String>, sqlx::Error> {
        self.get(column.0).map_err(crate::db::sqlite_error)
    }
    fn flag(&self, column: Column) -> Result<bool, sqlx::Error> {
        Ok(self.int(column)? != 0)
    }
    fn optional_flag(&self, column: Column) -> Result<Option<bool>, sqlx::Error> {
        Ok(self.optional_int(column)?.map(|v| v != 0))
    }
}

/// Which keys a user object carries besides FitTrackee 0.5's own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserKeys {
    /// The account lifecycle's (`is_active`, `email_to_confirm`, `role`), when a lifecycle
    /// module is mounted (lifecycle.rs).
    pub lifecycle: bool,
    /// FitTrackee 1.x's, which its web client reads while cookie sessions are on
    /// (docs/users-api.md, "FitTrackee 1.x's keys").
    pub fittrackee_1x: bool,
}

/// The user object of FitTrackee's API (the profile, a user's page), written straight from the
/// user: a response serializes it without building a JSON value first (the profile, the most
/// frequent authenticated request, spent more on that value and its copies than on its
/// session check: BENCHMARKS.md). Its keys come in alphabetical order, as a `serde_json` map
/// keeps them, so both ways give the same bytes (tested). Stride keeps no workouts: their keys
/// are those of a user who recorded none.
///
/// With FitTrackee 1.x's keys: its two stored preferences, and for everything Stride does not
/// keep the values of a new FitTrackee account. `suspended_at` must be there and null (the
/// client takes any other value, absence included, for a suspended account),
/// `accepted_privacy_policy` true (Stride has no policy to accept).
#[derive(Debug, Clone, Copy)]
pub struct UserObject<'a> {
    user: &'a User,
    keys: UserKeys,
}

/// `{}` and `[]`, for the keys of things Stride does not keep.
struct EmptyMap;
struct EmptyList;

impl serde::Serialize for EmptyMap {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serde::ser::SerializeMap::end(serializer.serialize_map(Some(0))?)
    }
}

impl serde::Serialize for EmptyList {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serde::ser::SerializeSeq::end(serializer.serialize_seq(Some(0))?)
    }
}

impl serde::Serialize for UserObject<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let (user, lifecycle, x) = (self.user, self.keys.lifecycle, self.keys.fittrackee_1x);
        const PRIVATE: &str = "private";
        let mut map = serializer.serialize_map(None)?;
        if x {
            map.serialize_entry("accepted_privacy_policy", &true)?;
        }
        map.serialize_entry("admin", &user.admin)?;
        if x {
            map.serialize_entry("analysis_visibility", PRIVATE)?;
        }
        map.serialize_entry("bio", &user.bio)?;
        map.serialize_entry("birth_date", &birth_date_json(user.birth_date.as_deref()))?;
        if x {
            map.serialize_entry("calories_visibility", PRIVATE)?;
        }
        map.serialize_entry("created_at", &http_date_from_unix(user.created_at))?;
        if x {
            map.serialize_entry("date_format", &user.date_format)?;
            map.serialize_entry("display_ascent", &true)?;
        }
        map.serialize_entry("email", &user.email)?;
        if lifecycle {
            map.serialize_entry("email_to_confirm", &user.email_to_confirm)?;
        }
        map.serialize_entry("first_name", &user.first_name)?;
        if x {
            map.serialize_entry("followers", &0)?;
            map.serialize_entry("following", &0)?;
            map.serialize_entry("hide_profile_in_users_directory", &true)?;
            map.serialize_entry("hr_visibility", PRIVATE)?;
        }
        map.serialize_entry("imperial_units", &user.imperial_units)?;
        if lifecycle {
            map.serialize_entry("is_active", &(user.state == AccountState::Active))?;
        }
        map.serialize_entry("language", &user.language)?;
        map.serialize_entry("last_name", &user.last_name)?;
        map.serialize_entry("location", &user.location)?;
        if x {
            map.serialize_entry("manually_approves_followers", &true)?;
            map.serialize_entry("map_visibility", PRIVATE)?;
            map.serialize_entry("media_visibility", PRIVATE)?;
            map.serialize_entry("messages_preferences", &EmptyMap)?;
            map.serialize_entry("missing_elevations_processing", "file")?;
        }
        map.serialize_entry("nb_sports", &0)?;
        map.serialize_entry("nb_workouts", &0)?;
        if x {
            map.serialize_entry("notification_preferences", &EmptyMap)?;
        }
        map.serialize_entry("picture", &user.picture)?;
        map.serialize_entry("records", &EmptyList)?;
        if lifecycle {
            map.serialize_entry("role", if user.admin { "admin" } else { "user" })?;
        }
        if x {
            map.serialize_entry("sanctions_count", &0)?;
            map.serialize_entry("segments_creation_event", "only_manual")?;
            map.serialize_entry("split_workout_charts", &true)?;
        }
        map.serialize_entry("sports_list", &EmptyList)?;
        if x {
            map.serialize_entry("start_elevation_at_zero", &true)?;
            map.serialize_entry("suspended_at", &None::<()>)?;
        }
        map.serialize_entry("timezone", &user.timezone)?;
        if x {
            map.serialize_entry("total_ascent", &0.0)?;
        }
        map.serialize_entry("total_distance", &0.0)?;
        map.serialize_entry("total_duration", "0:00:00")?;
        if x {
            map.serialize_entry("use_dark_mode", &user.use_dark_mode)?;
            map.serialize_entry("use_raw_gpx_speed", &false)?;
        }
        map.serialize_entry("username", &user.username)?;
        map.serialize_entry("weekm", &user.weekm)?;
        if x {
            map.serialize_entry("workouts_visibility", PRIVATE)?;
        }
        map.end()
    }
}

impl User {
    /// The user object with `keys` ([`UserObject`]).
    pub fn object(&self, keys: UserKeys) -> UserObject<'_> {
        UserObject { user: self, keys }
    }
}

impl UserObject<'_> {
    /// The object as a JSON value, for a response that adds to it or takes keys out.
    pub fn to_value(&self) -> Value {
        // Nothing in it can fail to serialize (strings, numbers, booleans).
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// A stored `YYYY-MM-DD` birth date as Flask writes it (midnight UTC, RFC 1123).
fn birth_date_json(stored: Option<&str>) -> Option<String> {
    stored
        .and_then(|d| Date::parse(d, format_description!("[year]-[month]-[day]")).ok())
        .map(|d| http_date(d.midnight().assume_utc()))
}

#[derive(Debug)]
pub enum InsertError {
    /// The username or the email is taken.
    Duplicate,
    Database(sqlx::Error),
}

impl From<sqlx::Error> for InsertError {
    fn from(error: sqlx::Error) -> Self {
        if is_unique_violation(&error) {
            InsertError::Duplicate
        } else {
            InsertError::Database(error)
        }
    }
}

/// True when the username or the email is already taken (case-insensitively). A cheap early
/// answer; `insert` is what guarantees uniqueness.
pub async fn exists(
    conn: &mut AnyConnection,
    username: &Username,
    email: &Email,
) -> Result<bool, sqlx::Error> {
    let row =
        sqlx::query("SELECT COUNT(*) AS n FROM users WHERE lower(username) = $1 OR email_key = $2")
            .bind(username.as_str().to_ascii_lowercase())
            .bind(email.key())
            .fetch_one(&mut *conn)
            .await?;
    Ok(row.try_get::<i64, _>("n")? > 0 || reserved_for_another(conn, &email.key(), None).await?)
}

/// True when the address is an account's, or reserved for one other than `except`
/// (`email_reservations`: an address an account moved away from, while it can move back).
pub async fn address_taken(
    conn: &mut AnyConnection,
    email_key: &str,
    except: Option<i64>,
) -> Result<bool, sqlx::Error> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM users WHERE email_key = $1")
        .bind(email_key)
        .fetch_one(&mut *conn)
        .await?;
    Ok(row.try_get::<i64, _>("n")? > 0 || reserved_for_another(conn, email_key, except).await?)
}

async fn reserved_for_another(
    conn: &mut AnyConnection,
    email_key: &str,
    except: Option<i64>,
) -> Result<bool, sqlx::Error> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM email_reservations WHERE email_key = $1 AND until >= $2 AND user_id <> $3",
    )
    .bind(email_key)
    .bind(now())
    .bind(except.unwrap_or(-1))
    .fetch_one(conn)
    .await?;
    Ok(row.try_get::<i64, _>("n")? > 0)
}

/// Keeps `email_key` for the user until `until` (replacing any reservation of it).
pub async fn reserve_address(
    conn: &mut AnyConnection,
    user_id: i64,
    email_key: &str,
    until: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM email_reservations WHERE email_key = $1")
        .bind(email_key)
        .execute(&mut *conn)
        .await?;
    sqlx::query("INSERT INTO email_reservations (email_key, user_id, until) VALUES ($1, $2, $3)")
        .bind(email_key)
        .bind(user_id)
        .bind(until)
        .execute(conn)
        .await?;
    Ok(())
}

/// Ends the user's reservations; with `expired_before`, every reservation that ran out before
/// it instead.
pub async fn release_addresses(
    conn: &mut AnyConnection,
    user_id: Option<i64>,
    expired_before: i64,
) -> Result<u64, sqlx::Error> {
    let done = match user_id {
        Some(id) => {
            sqlx::query("DELETE FROM email_reservations WHERE user_id = $1")
                .bind(id)
                .execute(conn)
                .await?
        }
        None => {
            sqlx::query("DELETE FROM email_reservations WHERE until < $1")
                .bind(expired_before)
                .execute(conn)
                .await?
        }
    };
    Ok(done.rows_affected())
}

/// True when the username is taken (case-insensitively).
pub async fn username_taken(
    conn: &mut AnyConnection,
    username: &Username,
) -> Result<bool, sqlx::Error> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM users WHERE lower(username) = $1")
        .bind(username.as_str().to_ascii_lowercase())
        .fetch_one(conn)
        .await?;
    Ok(row.try_get::<i64, _>("n")? > 0)
}

pub async fn insert(
    conn: &mut AnyConnection,
    username: &Username,
    email: &Email,
    password_hash: &str,
    state: AccountState,
) -> Result<i64, InsertError> {
    let now = now();
    // An address reserved for another account is taken (checked in the inserting statement).
    let row = sqlx::query(
        "INSERT INTO users (username, email, email_key, password_hash, created_at, password_changed_at, state) \
         SELECT $1, $2, $3, $4, $5, $5, $6 WHERE NOT EXISTS \
         (SELECT 1 FROM email_reservations WHERE email_key = $3 AND until >= $5) RETURNING id",
    )
    .bind(username.as_str())
    .bind(email.as_str())
    .bind(email.key())
    .bind(password_hash)
    .bind(now)
    .bind(state.as_str())
    .fetch_optional(conn)
    .await?;
    let row = row.ok_or(InsertError::Duplicate)?;
    Ok(row.try_get("id")?)
}

/// What a login checks of the account with this email.
#[derive(Debug, Clone)]
pub struct StoredCredentials {
    pub id: i64,
    pub password_hash: String,
    /// Only an active account may log in (a pending or deactivated one fails like a wrong
    /// password, after the same work).
    pub active: bool,
}

/// The credentials of the account with this email, for a login.
pub async fn credentials(
    conn: &mut AnyConnection,
    email_key: &str,
) -> Result<Option<StoredCredentials>, sqlx::Error> {
    let row = sqlx::query("SELECT id, password_hash, state FROM users WHERE email_key = $1")
        .bind(email_key)
        .fetch_optional(conn)
        .await?;
    row.map(|r| {
        Ok(StoredCredentials {
            id: r.try_get("id")?,
            password_hash: r.try_get("password_hash")?,
            active: r.try_get::<String, _>("state")? == AccountState::Active.as_str(),
        })
    })
    .transpose()
}

pub async fn by_id(conn: &mut AnyConnection, id: i64) -> Result<Option<User>, sqlx::Error> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(conn).await?;
    row.as_ref().map(User::from_row).transpose()
}

pub async fn by_email(
    conn: &mut AnyConnection,
    email_key: &str,
) -> Result<Option<User>, sqlx::Error> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.email_key = $1");
    let row = sqlx::query(&sql)
        .bind(email_key)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(User::from_row).transpose()
}

/// The user of that name, ignoring ASCII case. A name registration would refuse (a NUL, which
/// PostgreSQL's text cannot hold; a `%`; 300 characters) is nobody's, and never reaches the
/// database.
pub async fn by_username(
    conn: &mut AnyConnection,
    username: &str,
) -> Result<Option<User>, sqlx::Error> {
    if Username::parse(username).is_err() {
        return Ok(None);
    }
    let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE lower(u.username) = $1");
    let row = sqlx::query(&sql)
        .bind(username.to_ascii_lowercase())
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(User::from_row).transpose()
}

/// Grants admin rights and activates the account (an admin role activates, so that a first
/// admin can be made on an instance whose mail does not work yet); false when there is no such
/// user.
pub async fn set_admin(conn: &mut AnyConnection, username: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE users SET admin = $1, state = $2 WHERE lower(username) = $3")
        .bind(true)
        .bind(AccountState::Active.as_str())
        .bind(username.to_ascii_lowercase())
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Grants or removes admin rights of the user with this id.
pub async fn set_admin_of(
    conn: &mut AnyConnection,
    id: i64,
    admin: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET admin = $1 WHERE id = $2")
        .bind(admin)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The number of admins other than the user with this id. Read under `db::lock_accounts` when
/// a change depends on it (the last admin keeps their rights).
pub async fn admins_other_than(conn: &mut AnyConnection, id: i64) -> Result<i64, sqlx::Error> {
    sqlx::query("SELECT COUNT(*) AS n FROM users WHERE admin = $1 AND id <> $2")
        .bind(true)
        .bind(id)
        .fetch_one(conn)
        .await?
        .try_get("n")
}

/// Deletes the user's row; the rows that refer to it (sessions, a picture, reset tokens: every
/// table keyed by a user declares `ON DELETE CASCADE`) go with it, in the caller's transaction.
/// False when there was no such user.
pub async fn delete(conn: &mut AnyConnection, id: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Deletes the user's row (as `delete`) only if the account is still pending; false otherwise.
pub async fn delete_if_pending(conn: &mut AnyConnection, id: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM users WHERE id = $1 AND state = $2")
        .bind(id)
        .bind(AccountState::Pending.as_str())
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// How a list of users is sorted. Every order is total: ties keep registration order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Registration order, oldest first.
    Registration,
    /// Lower-cased usernames compared byte by byte, on both backends.
    Username { descending: bool },
    /// By registration instant; `descending` is the exact reverse of ascending.
    CreatedAt { descending: bool },
    /// Non-admins first (ascending); users of one kind in registration order either way.
    Admin { descending: bool },
}

/// One page of the users whose username contains `contains` (ASCII case ignored, every
/// character literal), in `order`.
#[derive(Debug, Clone)]
pub struct Listing<'a> {
    pub contains: Option<&'a str>,
    pub order: Order,
    /// Counted from 1.
    pub page: i64,
    pub per_page: i64,
}

/// The page of users `listing` asks for, and how many users match in all.
pub async fn list(
    conn: &mut AnyConnection,
    listing: &Listing<'_>,
) -> Result<(Vec<User>, i64), sqlx::Error> {
    let contains = listing.contains.filter(|q| !q.is_empty());
    // A username holds ASCII letters, digits and `_` only: text with anything else (a `%`, a
    // NUL, a non-ASCII letter) is in no username, and never reaches the database.
    if contains.is_some_and(|q| !username_text(q)) {
        return Ok((Vec::new(), 0));
    }
    let sqlite = conn.backend_name() != "PostgreSQL";
    // A literal substring. Three characters or more on SQLite: the trigram index
    // (`users_search`, FTS5, case-insensitive: a phrase of trigrams is a substring). Otherwise
    // LIKE with its wildcards and escape character escaped, on lower-cased text (usernames are
    // ASCII), alike on both backends; on PostgreSQL its trigram index serves that LIKE.
    let (count_filter, page_filter, pattern) = match contains {
        None => ("", "", None),
        Some(q) if sqlite && q.len() >= 3 => {
            let filter =
                "WHERE u.id IN (SELECT rowid FROM users_search WHERE users_search MATCH $1)";
            (filter, filter, Some(format!("\"{q}\"")))
        }
        Some(q) => {
            let mut pattern = String::from("%");
            for c in q.to_ascii_lowercase().chars() {
                if matches!(c, '%' | '_' | '\\') {
                    pattern.push('\\');
                }
                pattern.push(c);
            }
            pattern.push('%');
            let filter = "WHERE lower(u.username) LIKE $1 ESCAPE '\\'";
            // PostgreSQL plans a prepared statement once for any pattern, guessing many matches,
            // and would walk the whole table in page order filtering it; the matching ids
            // computed first (through the trigram index) keep a selective search cheap.
            let page = if sqlite {
                filter
            } else {
                "WHERE u.id = ANY (ARRAY(SELECT id FROM users WHERE lower(username) LIKE $1 ESCAPE '\\'))"
            };
            (filter, page, Some(pattern))
        }
    };
    let total: i64 = match &pattern {
        // Kept by the database's triggers: no count of every row.
        None => sqlx::query("SELECT n FROM user_count WHERE id = 1")
            .fetch_one(&mut *conn)
            .await?
            .try_get("n")?,
        Some(pattern) => {
            let sql = format!("SELECT COUNT(*) AS n FROM users u {count_filter}");
            sqlx::query(&sql)
                .bind(pattern.clone())
                .fetch_one(&mut *conn)
                .await?
                .try_get("n")?
        }
    };
    // An offset past any table: the page is empty, whatever its number (no overflow).
    let Some(offset) = listing
        .page
        .checked_sub(1)
        .and_then(|p| p.checked_mul(listing.per_page))
        .filter(|offset| *offset < total)
    else {
        return Ok((Vec::new(), total));
    };
    // Byte order of the lower-cased name: PostgreSQL's database collation would sort by locale.
    let bytes = if sqlite { "" } else { " COLLATE \"C\"" };
    let order = match listing.order {
        Order::Registration => "u.id ASC".to_owned(),
        Order::Username { descending } => {
            format!("lower(u.username){bytes} {}", direction(descending))
        }
        Order::CreatedAt { descending } => {
            let d = direction(descending);
            format!("u.created_at {d}, u.id {d}")
        }
        Order::Admin { descending } => format!("u.admin {}, u.id ASC", direction(descending)),
    };
    let (limit, offset_at) = if pattern.is_some() {
        ("$2", "$3")
    } else {
        ("$1", "$2")
    };
    let sql = format!(
        "SELECT {USER_COLUMNS} FROM users u {page_filter} ORDER BY {order} LIMIT {limit} OFFSET {offset_at}"
    );
    let mut query = sqlx::query(&sql);
    if let Some(pattern) = pattern {
        query = query.bind(pattern);
    }
    let rows = query
        .bind(listing.per_page)
        .bind(offset)
        .fetch_all(conn)
        .await?;
    let users = rows.iter().map(User::from_row).collect::<Result<_, _>>()?;
    Ok((users, total))
}

fn direction(descending: bool) -> &'static str {
    if descending {
        "DESC"
    } else {
        "ASC"
    }
}

/// Replaces the password hash and moves `password_version` on, so that every token issued
/// for the old password (reset links, confirmation and email-change links) dies, and with it
/// the pending email change.
pub async fn set_password(
    conn: &mut AnyConnection,
    id: i64,
    password_hash: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET password_hash = $1, password_changed_at = $2, \
         password_version = password_version + 1, email_to_confirm = NULL, \
         email_to_confirm_until = NULL WHERE id = $3",
    )
    .bind(password_hash)
    .bind(now())
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Stores `new`, a hash of the same password as `stored` with this version's parameters
/// (`passwords::needs_rehash`), if `stored` is still the account's hash. Not a password change:
/// the links and sessions issued for the password stay valid.
pub async fn replace_password_hash(
    conn: &mut AnyConnection,
    id: i64,
    stored: &str,
    new: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2 AND password_hash = $3")
        .bind(new)
        .bind(id)
        .bind(stored)
        .execute(conn)
        .await?;
    Ok(())
}

/// What a user edits of their own profile (FitTrackee's five profile keys).
#[derive(Debug, Clone, Default)]
pub struct ProfileFields {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub location: Option<String>,
    pub bio: Option<String>,
    /// `YYYY-MM-DD`.
    pub birth_date: Option<String>,
}

pub async fn update_profile(
    conn: &mut AnyConnection,
    id: i64,
    fields: &ProfileFields,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET first_name = $1, last_name = $2, location = $3, bio = $4, birth_date = $5 \
         WHERE id = $6",
    )
    .bind(&fields.first_name)
    .bind(&fields.last_name)
    .bind(&fields.location)
    .bind(&fields.bio)
    .bind(&fields.birth_date)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Sets the language and time zone a registration sent (`None` keeps the default).
pub async fn set_locale(
    conn: &mut AnyConnection,
    id: i64,
    language: Option<&str>,
    timezone: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET language = COALESCE($1, language), timezone = COALESCE($2, timezone) \
         WHERE id = $3",
    )
    .bind(language)
    .bind(timezone)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// A user's preferences (FitTrackee's four, and the two of FitTrackee 1.x's that Stride keeps).
#[derive(Debug, Clone)]
pub struct Preferences {
    pub timezone: String,
    pub weekm: bool,
    /// A language tag, or none.
    pub language: Option<String>,
    pub imperial_units: bool,
    /// One of [`DATE_FORMATS`]; none keeps the stored one.
    pub date_format: Option<&'static str>,
    /// `Some(choice)` sets the dark mode (`Some(None)`: the browser's choice); none keeps it.
    pub use_dark_mode: Option<Option<bool>>,
}

pub async fn update_preferences(
    conn: &mut AnyConnection,
    id: i64,
    preferences: &Preferences,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET timezone = $1, weekm = $2, language = $3, imperial_units = $4, \
         date_format = COALESCE($5, date_format), \
         use_dark_mode = CASE WHEN $6 THEN $7 ELSE use_dark_mode END WHERE id = $8",
    )
    .bind(&preferences.timezone)
    .bind(preferences.weekm)
    .bind(&preferences.language)
    .bind(preferences.imperial_units)
    .bind(preferences.date_format)
    .bind(preferences.use_dark_mode.is_some())
    .bind(preferences.use_dark_mode.flatten())
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// The version of the user's password, which moves on with every change: what a token issued
/// for one password (a reset link) records, to die with it. None when there is no such user.
pub async fn password_version(
    conn: &mut AnyConnection,
    id: i64,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query("SELECT password_version FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?
        .map(|row| row.try_get("password_version"))
        .transpose()
}

/// Sets the account's state.
pub async fn set_state(
    conn: &mut AnyConnection,
    id: i64,
    state: AccountState,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET state = $1 WHERE id = $2")
        .bind(state.as_str())
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records (or, with `None`, clears) the address of a pending email change and until when
/// its link lives.
pub async fn set_email_to_confirm(
    conn: &mut AnyConnection,
    id: i64,
    pending: Option<(&str, i64)>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET email_to_confirm = $1, email_to_confirm_until = $2 WHERE id = $3",
    )
    .bind(pending.map(|(address, _)| address))
    .bind(pending.map(|(_, until)| until))
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Changes the account's address (login uses it from then on), clears any pending change, and
/// moves `password_version` on: the links mailed to the old address (reset links) die with it.
/// `InsertError::Duplicate` when another account has it or it is reserved for one.
pub async fn set_email(
    conn: &mut AnyConnection,
    id: i64,
    email: &Email,
) -> Result<(), InsertError> {
    if reserved_for_another(&mut *conn, &email.key(), Some(id)).await? {
        return Err(InsertError::Duplicate);
    }
    sqlx::query(
        "UPDATE users SET email = $1, email_key = $2, email_to_confirm = NULL, \
         email_to_confirm_until = NULL, password_version = password_version + 1 WHERE id = $3",
    )
    .bind(email.as_str())
    .bind(email.key())
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// The ids and addresses of the accounts still pending that registered before `before`.
pub async fn pending_before(
    conn: &mut AnyConnection,
    before: i64,
    limit: i64,
) -> Result<Vec<(i64, String)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, email FROM users WHERE state = $1 AND created_at < $2 ORDER BY created_at LIMIT $3",
    )
    .bind(AccountState::Pending.as_str())
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("email")?)))
        .collect()
}

/// Sets whether the user has a picture.
pub async fn set_picture(
    conn: &mut AnyConnection,
    id: i64,
    picture: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET picture = $1 WHERE id = $2")
        .bind(picture)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The session check reads its user with SQLite's own driver on a SQLite file
    /// (`db::SqliteReader`), everything else with sqlx: both read every column alike, NULLs,
    /// flags and a pending email change included.
    #[tokio::test]
    async fn both_drivers_read_a_user_alike() {
        let (pool, path) = crate::db::testing::migrated_sqlite("user-rows").await;
        let later = now() + 3600;
        for (name, extra) in [
            ("plain", "".to_owned()),
            (
                "full",
                format!(
                    ", admin = 1, first_name = 'Ada', bio = 'b', birth_date = '1960-02-29', \
                     weekm = 1, language = 'fr', imperial_units = 1, use_dark_mode = 0, \
                     email_to_confirm = 'new@example.com', email_to_confirm_until = {later}"
                ),
            ),
        ] {
            sqlx::query(
                "INSERT INTO users (username, email, email_key, password_hash, created_at, \
                 password_changed_at) VALUES ($1, $2, $2, 'x', 1, 1)",
            )
            .bind(name)
            .bind(format!("{name}@example.com"))
            .execute(&pool)
            .await
            .expect("user");
            sqlx::query(&format!(
                "UPDATE users SET timezone = timezone {extra} WHERE username = $1"
            ))
            .bind(name)
            .execute(&pool)
            .await
            .expect("columns");
            let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.username = $1");
            let by_sqlx = User::from_row(
                &sqlx::query(&sql)
                    .bind(name)
                    .fetch_one(&pool)
                    .await
                    .expect("sqlx row"),
            )
            .expect("sqlx user");
            let conn = rusqlite::Connection::open(&path).expect("rusqlite");
            let by_sqlite = conn
                .query_row(&sql, [name], |row| Ok(User::from_sqlite_row(row)))
                .expect("rusqlite row")
                .expect("rusqlite user");
            assert_eq!(by_sqlx, by_sqlite, "{name}");
        }
    }

    /// SQLite's rows are read by position: the positions are those of `USER_COLUMNS`.
    #[test]
    fn the_column_positions_are_those_of_the_column_list() {
        let listed: Vec<&str> = USER_COLUMNS.split(", ").collect();
        assert_eq!(listed.len(), column::COUNT);
        for (at, c) in column::ALL.iter().enumerate() {
            assert_eq!(c.0, at, "{}", c.1);
            assert_eq!(listed[at], format!("u.{}", c.1));
        }
    }

    #[test]
    fn birth_dates_as_flask_writes_them() {
        assert_eq!(
            birth_date_json(Some("1960-02-29")).as_deref(),
            Some("Mon, 29 Feb 1960 00:00:00 GMT")
        );
        assert_eq!(birth_date_json(None), None);
        assert_eq!(birth_date_json(Some("not a date")), None);
    }

    /// The user object written straight from the user is the bytes its JSON value gives (whose
    /// map sorts its keys), with each set of keys, and holds each set exactly.
    #[test]
    fn the_user_object_is_written_in_the_order_of_its_value() {
        let user = User {
            id: 7,
            username: "sam".into(),
            email: "sam@example.com".into(),
            admin: true,
            created_at: 1_700_000_000,
            first_name: Some("Sam".into()),
            last_name: None,
            bio: Some("runs \"far\"".into()),
            location: None,
            birth_date: Some("1990-05-01".into()),
            timezone: "Europe/Paris".into(),
            weekm: true,
            language: Some("fr".into()),
            imperial_units: false,
            picture: true,
            state: AccountState::Active,
            email_to_confirm: Some("new@example.com".into()),
            date_format: "dd/MM/yyyy".into(),
            use_dark_mode: None,
        };
        for (keys, count) in [
            (UserKeys::default(), 20),
            (
                UserKeys {
                    lifecycle: true,
                    fittrackee_1x: false,
                },
                23,
            ),
            (
                UserKeys {
                    lifecycle: false,
                    fittrackee_1x: true,
                },
                44,
            ),
            (
                UserKeys {
                    lifecycle: true,
                    fittrackee_1x: true,
                },
                47,
            ),
        ] {
            let object = user.object(keys);
            let value = object.to_value();
            assert_eq!(value.as_object().map(|m| m.len()), Some(count), "{keys:?}");
            assert_eq!(
                serde_json::to_string(&object).expect("written"),
                serde_json::to_string(&value).expect("written"),
                "{keys:?}"
            );
        }
        let all = user
            .object(UserKeys {
                lifecycle: true,
                fittrackee_1x: true,
            })
            .to_value();
        assert_eq!(all["birth_date"], json!("Tue, 01 May 1990 00:00:00 GMT"));
        assert_eq!(all["role"], json!("admin"));
        assert_eq!(all["suspended_at"], Value::Null);
        assert_eq!(all["messages_preferences"], json!({}));
        assert_eq!(all["records"], json!([]));
        assert_eq!(all["total_ascent"], json!(0.0));
    }
}
