//! Instance settings an admin changes at run time (`/api/config`). They live in the database
//! and are read fresh by every request that needs them, so a change applies at once on every
//! instance sharing the database.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use rocket::serde::json::{json, Json, Value};
use rocket::{get, patch, routes, Route, State};
use rocket_db_pools::Connection;
use serde::Deserialize;
use sqlx::{AnyConnection, Row};

use crate::auth::AdminUser;
use crate::config::Config;
use crate::db::{get_bool, Db};
use crate::error::{ApiError, ApiResult};
use crate::payload::Payload;

/// FitTrackee's defaults for the workout import limits this API reports.
const DEFAULT_MAX_ZIP_FILE_SIZE: i64 = 10 * 1024 * 1024;
const DEFAULT_GPX_LIMIT_IMPORT: i64 = 10;
/// FitTrackee 1.x's defaults for the workout limits of its statistics and global map, which
/// Stride (no workouts) only reports.
const WORKOUTS_LIMIT_1X: i64 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The admin's switch; registration is open when it is on and `max_users` is not reached.
    pub registration_switch: bool,
    /// 0 = unlimited.
    pub max_users: i64,
    pub max_single_file_size: i64,
    pub max_zip_file_size: i64,
    pub gpx_limit_import: i64,
    pub nb_users: i64,
    /// FitTrackee 1.x's instance texts (shown by its client only; kept with cookies off too).
    pub texts: Texts,
}

/// The instance's about text, the admin's contact address, and its own privacy policy with the
/// instant it last changed (null: FitTrackee's default policy).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Texts {
    pub about: Option<String>,
    pub admin_contact: Option<String>,
    pub privacy_policy: Option<String>,
    pub privacy_policy_date: Option<i64>,
}

impl Settings {
    pub fn is_registration_enabled(&self) -> bool {
        self.registration_switch && (self.max_users == 0 || self.nb_users < self.max_users)
    }

    /// FitTrackee's `/api/config` data. Registration is enabled only when a module offers it
    /// ([`SignUps`]) and the settings allow it. With `cookies.enabled`, FitTrackee 1.x's keys
    /// too (docs/users-api.md, "FitTrackee 1.x's keys"): the pictures limit
    /// (`max_single_file_size`, which is what limits pictures in FitTrackee 0.5) is also
    /// `max_image_size`, and `gpx_limit_import` is also 1.x's two file limits; the about text,
    /// the admin's contact and the instance's privacy policy are as the admin set them (null:
    /// the client shows FitTrackee's own policy); no weather and no elevation service.
    fn to_json(&self, sign_ups: &SignUps, config: &Config) -> Value {
        let mut data = self.to_json_05(sign_ups, config);
        if config.cookies.enabled {
            if let (Value::Object(map), Value::Object(keys)) = (
                &mut data,
                json!({
                    "about": self.texts.about,
                    "admin_contact": self.texts.admin_contact,
                    "elevation_services": {"open_elevation": false, "valhalla": false},
                    "file_limit_import": self.gpx_limit_import,
                    "file_sync_limit_import": self.gpx_limit_import,
                    "global_map_workouts_limit": WORKOUTS_LIMIT_1X,
                    "max_image_size": self.max_single_file_size,
                    "privacy_policy": self.texts.privacy_policy,
                    "privacy_policy_date": self.texts.privacy_policy_date.map(crate::dates::http_date_from_unix),
                    "stats_workouts_limit": WORKOUTS_LIMIT_1X,
                    "weather_provider": null,
                }),
            ) {
                map.extend(keys);
            }
        }
        data
    }

    fn to_json_05(&self, sign_ups: &SignUps, config: &Config) -> Value {
        json!({
            // Stride always has a mail transport (its outbox keeps what SMTP refuses); FitTrackee
            // 1.x's client shows its "resend confirmation" and "forgot password" links on it.
            "is_email_sending_enabled": true,
            "is_registration_enabled": sign_ups.offered() && self.is_registration_enabled(),
            "map_attribution": config.map_attribution,
            "max_users": self.max_users,
            "max_single_file_size": self.max_single_file_size,
            "max_zip_file_size": self.max_zip_file_size,
            "gpx_limit_import": self.gpx_limit_import,
            "version": env!("CARGO_PKG_VERSION"),
        })
    }
}

/// Whether this server offers sign-up at all: a module that creates accounts says so in its
/// fairing ([`SignUps::offer`]). Off until one does, so a server built or configured without one
/// never reports registration as enabled.
#[derive(Debug, Default)]
pub struct SignUps(AtomicBool);

impl SignUps {
    pub fn offer(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn offered(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// FitTrackee's default for `max_single_file_size`.
const DEFAULT_MAX_SINGLE_FILE_SIZE: i64 = 1024 * 1024;

/// The values the settings row starts with, on a database's first start. The kernel manages it
/// as its stage begins; a module that owns the meaning of one (the largest upload a module
/// accepts) sets it from its own configuration in its fairing, which Rocket runs before the
/// kernel's state is prepared and the row created (docs/modules.md, "Configuration").
#[derive(Debug)]
pub struct InitialSettings {
    max_single_file_size: AtomicI64,
}

impl Default for InitialSettings {
    fn default() -> Self {
        InitialSettings {
            max_single_file_size: AtomicI64::new(DEFAULT_MAX_SINGLE_FILE_SIZE),
        }
    }
}

impl InitialSettings {
    pub fn set_max_single_file_size(&self, bytes: u64) {
        self.max_single_file_size
            .store(i64::try_from(bytes).unwrap_or(i64::MAX), Ordering::Relaxed);
    }
}

/// Creates the settings row on first start, from the initial values.
pub async fn initialise(
    conn: &mut AnyConnection,
    initial: &InitialSettings,
) -> Result<(), sqlx::Error> {
    let max_single_file_size = initial.max_single_file_size.load(Ordering::Relaxed);
    sqlx::query(
        "INSERT INTO instance_settings \
         (id, registration_switch, max_users, max_single_file_size, max_zip_file_size, gpx_limit_import) \
         VALUES (1, $1, 0, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
    )
    .bind(true)
    .bind(max_single_file_size)
    .bind(DEFAULT_MAX_ZIP_FILE_SIZE.max(max_single_file_size))
    .bind(DEFAULT_GPX_LIMIT_IMPORT)
    .execute(conn)
    .await?;
    Ok(())
}

/// The current settings, with the number of users only when a limit makes it matter.
pub async fn load(conn: &mut AnyConnection) -> Result<Settings, sqlx::Error> {
    let row = sqlx::query(
        "SELECT registration_switch, max_users, max_single_file_size, max_zip_file_size, gpx_limit_import, \
         about, admin_contact, privacy_policy, privacy_policy_date, \
         CASE WHEN max_users > 0 THEN (SELECT COUNT(*) FROM users) ELSE 0 END AS nb_users \
         FROM instance_settings WHERE id = 1",
    )
    .fetch_one(conn)
    .await?;
    Ok(Settings {
        registration_switch: get_bool(&row, "registration_switch")?,
        max_users: row.try_get("max_users")?,
        max_single_file_size: row.try_get("max_single_file_size")?,
        max_zip_file_size: row.try_get("max_zip_file_size")?,
        gpx_limit_import: row.try_get("gpx_limit_import")?,
        nb_users: row.try_get("nb_users")?,
        texts: Texts {
            about: row.try_get("about")?,
            admin_contact: row.try_get("admin_contact")?,
            privacy_policy: row.try_get("privacy_policy")?,
            privacy_policy_date: row.try_get("privacy_policy_date")?,
        },
    })
}

/// The current settings, read under the settings row's write lock, which the transaction keeps
/// until it ends: writers that must not race on them (registrations checking `max_users`)
/// queue on it, on PostgreSQL as on SQLite (whose writing transactions are serial anyway).
pub async fn load_locked(conn: &mut AnyConnection) -> Result<Settings, sqlx::Error> {
    sqlx::query("UPDATE instance_settings SET max_users = max_users WHERE id = 1")
        .execute(&mut *conn)
        .await?;
    load(conn).await
}

pub fn routes() -> Vec<Route> {
    routes![get_config, patch_config]
}

#[get("/config")]
async fn get_config(
    mut db: Connection<Db>,
    sign_ups: &State<SignUps>,
    config: &State<Config>,
) -> ApiResult<Value> {
    let settings = load(&mut db).await?;
    Ok(json!({ "status": "success", "data": settings.to_json(sign_ups, config) }))
}

#[derive(Deserialize)]
struct ConfigPatch {
    max_users: Option<i64>,
    max_single_file_size: Option<i64>,
    max_zip_file_size: Option<i64>,
    gpx_limit_import: Option<i64>,
    is_registration_enabled: Option<bool>,
    /// FitTrackee 1.x's admin form's keys, read only with `cookies.enabled` (FitTrackee 0.5
    /// ignores them): [`ConfigPatch1x`].
    max_image_size: Option<Value>,
    file_limit_import: Option<Value>,
    file_sync_limit_import: Option<Value>,
    stats_workouts_limit: Option<Value>,
    global_map_workouts_limit: Option<Value>,
    /// A `null` text is sent (it clears), unlike a missing one.
    #[serde(default, deserialize_with = "sent")]
    about: Option<Value>,
    #[serde(default, deserialize_with = "sent")]
    admin_contact: Option<Value>,
    #[serde(default, deserialize_with = "sent")]
    privacy_policy: Option<Value>,
}

/// A key that is present, `null` included.
fn sent<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// What FitTrackee 1.x's admin form changes: `max_image_size` is the pictures limit (and wins
/// over a `max_single_file_size` sent beside it, which the form always sends), and
/// `file_limit_import` is `gpx_limit_import` (winning likewise); `about`, `admin_contact` and
/// `privacy_policy` are stored (`null` or `""` clears one). The keys Stride has no use for
/// (`file_sync_limit_import`, the two workout limits) must have their JSON type, and are
/// dropped.
struct ConfigPatch1x {
    max_image_size: Option<i64>,
    file_limit_import: Option<i64>,
    /// Each text sent: `Some(None)` clears it.
    about: Option<Option<String>>,
    admin_contact: Option<Option<String>>,
    privacy_policy: Option<Option<String>>,
    /// Any 1.x key was sent.
    any: bool,
}

/// A text of the form: `""` (or only spaces) is none, as `null` is.
fn text(value: Option<Option<String>>) -> Option<Option<String>> {
    value.map(|t| t.filter(|t| !t.trim().is_empty()))
}

impl ConfigPatch {
    fn read_1x(&self) -> Result<ConfigPatch1x, ApiError> {
        fn typed<T: serde::de::DeserializeOwned>(
            value: &Option<Value>,
        ) -> Result<Option<T>, ApiError> {
            value
                .clone()
                .map(serde_json::from_value::<T>)
                .transpose()
                .map_err(|_| ApiError::invalid_payload())
        }
        for limit in [
            &self.file_sync_limit_import,
            &self.stats_workouts_limit,
            &self.global_map_workouts_limit,
        ] {
            typed::<i64>(limit)?;
        }
        let any = [
            &self.max_image_size,
            &self.file_limit_import,
            &self.file_sync_limit_import,
            &self.stats_workouts_limit,
            &self.global_map_workouts_limit,
            &self.about,
            &self.admin_contact,
            &self.privacy_policy,
        ]
        .iter()
        .any(|v| v.is_some());
        Ok(ConfigPatch1x {
            max_image_size: typed(&self.max_image_size)?,
            file_limit_import: typed(&self.file_limit_import)?,
            about: text(typed(&self.about)?),
            admin_contact: text(typed(&self.admin_contact)?),
            privacy_policy: text(typed(&self.privacy_policy)?),
            any,
        })
    }
}

#[patch("/config", data = "<patch>")]
async fn patch_config(
    _admin: AdminUser,
    mut db: Connection<Db>,
    sign_ups: &State<SignUps>,
    config: &State<Config>,
    patch: Payload<ConfigPatch>,
) -> ApiResult<Json<Value>> {
    let patch = patch.0;
    let more = if config.cookies.enabled {
        patch.read_1x()?
    } else {
        ConfigPatch1x {
            max_image_size: None,
            file_limit_import: None,
            about: None,
            admin_contact: None,
            privacy_policy: None,
            any: false,
        }
    };
    let nothing = patch.max_users.is_none()
        && patch.max_single_file_size.is_none()
        && patch.max_zip_file_size.is_none()
        && patch.gpx_limit_import.is_none()
        && patch.is_registration_enabled.is_none()
        && !more.any;
    if nothing {
        return Err(ApiError::invalid_payload());
    }
    let current = load(&mut db).await?;
    let next = Settings {
        registration_switch: patch
            .is_registration_enabled
            .unwrap_or(current.registration_switch),
        max_users: patch.max_users.unwrap_or(current.max_users),
        max_single_file_size: more
            .max_image_size
            .or(patch.max_single_file_size)
            .unwrap_or(current.max_single_file_size),
        max_zip_file_size: patch.max_zip_file_size.unwrap_or(current.max_zip_file_size),
        gpx_limit_import: more
            .file_limit_import
            .or(patch.gpx_limit_import)
            .unwrap_or(current.gpx_limit_import),
        nb_users: current.nb_users,
        texts: Texts {
            about: more.about.unwrap_or(current.texts.about.clone()),
            admin_contact: more
                .admin_contact
                .unwrap_or(current.texts.admin_contact.clone()),
            privacy_policy_date: match &more.privacy_policy {
                Some(Some(policy)) if current.texts.privacy_policy.as_ref() != Some(policy) => {
                    Some(crate::db::now())
                }
                Some(None) => None,
                _ => current.texts.privacy_policy_date,
            },
            privacy_policy: more
                .privacy_policy
                .unwrap_or(current.texts.privacy_policy.clone()),
        },
    };
    let mut errors = String::new();
    // FitTrackee 1.x's line; the address is kept as typed (it is shown, never mailed).
    let contact = next.texts.admin_contact.as_deref();
    if contact.is_some_and(|c| crate::validate::Email::parse(c).is_err()) {
        errors.push_str("valid email must be provided for admin contact\n");
    }
    if next.max_users < 0 {
        errors.push_str("max. number of users must be 0 (unlimited) or greater\n");
    }
    if next.gpx_limit_import <= 0 {
        errors.push_str("Max. files in a zip archive must be greater than 0\n");
    }
    if next.max_single_file_size <= 0 {
        errors.push_str("Max. size of uploaded files must be greater than 0\n");
    }
    if next.max_zip_file_size <= 0 {
        errors.push_str("Max. size of zip archive must be greater than 0\n");
    }
    if errors.is_empty() && next.max_zip_file_size < next.max_single_file_size {
        errors.push_str(
            "Max. size of zip archive must be equal or greater than max. size of uploaded files\n",
        );
    }
    if !errors.is_empty() {
        return Err(ApiError::bad_request(errors));
    }
    sqlx::query(
        "UPDATE instance_settings SET registration_switch = $1, max_users = $2, max_single_file_size = $3, \
         max_zip_file_size = $4, gpx_limit_import = $5, about = $6, admin_contact = $7, \
         privacy_policy = $8, privacy_policy_date = $9 WHERE id = 1",
    )
    .bind(next.registration_switch)
    .bind(next.max_users)
    .bind(next.max_single_file_size)
    .bind(next.max_zip_file_size)
    .bind(next.gpx_limit_import)
    .bind(next.texts.about.as_deref())
    .bind(next.texts.admin_contact.as_deref())
    .bind(next.texts.privacy_policy.as_deref())
    .bind(next.texts.privacy_policy_date)
    .execute(&mut **db)
    .await?;
    let settings = load(&mut db).await?;
    Ok(Json(
        json!({ "status": "success", "data": settings.to_json(sign_ups, config) }),
    ))
}
