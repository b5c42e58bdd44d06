//! Stride's kernel: what every module shares. It knows no module.
//!
//! `stage()` attaches the database pool, applies migrations, loads the token keys and the
//! instance settings, registers the JSON catchers, gives every request an id, counts requests
//! and mounts `/api/ping`, `/api/config`, `/api/openapi.json`, the probes `/health` and
//! `/ready`, and `/metrics` (when `metrics.enabled`). A module is a fairing made with [`module`]: mounted when
//! `modules.<name>` is on, and then describing its routes in the OpenAPI document
//! ([`Describe`]).

pub mod address;
pub mod auth;
pub mod background;
pub mod config;
pub mod cookies;
pub mod dates;
pub mod db;
pub mod envelope;
pub mod error;
pub mod health;
pub mod language;
pub mod lifecycle;
pub mod mail;
pub mod metrics;
pub mod openapi;
pub mod pages;
pub mod passwords;
pub mod payload;
pub mod requests;
pub mod second_factor;
pub mod services;
pub mod settings;
pub mod templates;
pub mod throttle;
pub mod tokens;
pub mod users;
pub mod validate;
mod workers;

use rocket::fairing::{self, AdHoc};
use rocket::shield::{Frame, Hsts, Referrer, Shield};
use rocket::{Build, Orbit, Rocket};
use rocket_db_pools::Database;

pub use auth::{AdminUser, AuthUser};
pub use background::Background;
pub use config::Config;
pub use db::Db;
pub use error::{ApiError, ApiResult};
pub use lifecycle::Lifecycle;
pub use mail::Mailer;
pub use metrics::Metrics;
pub use openapi::Describe;
pub use passwords::Passwords;
pub use payload::Payload;
pub use requests::RequestIds;
pub use services::{Caller, Services};
pub use tokens::TokenKeys;

/// The kernel's fairing. Attach it before any module.
pub fn stage() -> AdHoc {
    AdHoc::on_ignite("Stride kernel", |rocket| async {
        let shield = shield(rocket.figment());
        let metrics_on = Config::from_figment(rocket.figment()).is_ok_and(|c| c.metrics.enabled);
        // The binary manages its own `RequestIds`, shared with its log formatter.
        let ids = rocket.state::<RequestIds>().cloned();
        let rocket = match ids {
            Some(_) => rocket,
            None => rocket.manage(RequestIds::default()),
        };
        let ids = rocket.state::<RequestIds>().cloned().unwrap_or_default();
        let rocket = rocket
            .attach(shield)
            .attach(requests::Requests)
            .attach(cookies::fairing())
            .attach(Db::init())
            .attach(rocket_dyn_templates::Template::fairing())
            .attach(AdHoc::try_on_ignite("Stride kernel state", prepare))
            // At shutdown, in this order: work left behind by answered requests finishes
            // (its emails reach the outbox), then the courier stops between two messages.
            .attach(AdHoc::on_shutdown("Stride background work", |rocket| {
                Box::pin(finish_background_work(rocket))
            }))
            .attach(mail::courier())
            // Every module has described its routes: the document is written out once, and
            // its assembled value freed (openapi.rs).
            .attach(AdHoc::on_liftoff("Stride API document", |rocket| {
                Box::pin(async move { openapi::write_out(rocket) })
            }))
            .register("/", error::catchers())
            .manage(metrics::Metrics::new())
            .manage(settings::InitialSettings::default())
            .manage(settings::SignUps::default())
            .manage(lifecycle::Lifecycle::default())
            .manage(Background::new(ids))
            // Managed before any module's fairing runs, so that each can describe its routes.
            .manage(openapi::ApiDoc::new())
            .mount("/api", settings::routes())
            .mount("/api", health::api_routes())
            .mount("/api", openapi::routes())
            .mount("/", health::routes());
        if metrics_on {
            rocket
                .mount("/", metrics::routes())
                .describe(include_str!("../openapi-metrics.json"))
        } else {
            rocket
        }
    })
}

/// The longest a shutdown waits for work requests left behind.
const BACKGROUND_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

async fn finish_background_work(rocket: &Rocket<Orbit>) {
    if let Some(background) = rocket.state::<Background>() {
        if !background.wait(BACKGROUND_LIMIT).await {
            tracing::warn!("shutdown: background work still running after {BACKGROUND_LIMIT:?}");
        }
    }
}

/// Security headers on every response: Rocket's defaults (nosniff, a permissions policy),
/// frames refused, no referrer, and HSTS when Stride is served over https (TLS usually ends at
/// a proxy, so `public_url` says it, not Rocket's own TLS).
fn shield(figment: &rocket::figment::Figment) -> Shield {
    let shield = Shield::default()
        .enable(Frame::Deny)
        .enable(Referrer::NoReferrer);
    let https = Config::from_figment(figment).is_ok_and(|c| c.public_url.starts_with("https://"));
    if https {
        shield.enable(Hsts::default())
    } else {
        shield
    }
}

async fn prepare(rocket: Rocket<Build>) -> fairing::Result {
    match try_prepare(&rocket).await {
        Ok((config, keys, passwords, mailer, reads)) => Ok(rocket
            .manage(reads)
            // The metrics route reads its own section, not the whole configuration.
            .manage(config.metrics.clone())
            .manage(config)
            .manage(keys)
            .manage(passwords)
            .manage(mailer)),
        Err(message) => {
            tracing::error!("{message}");
            Err(rocket)
        }
    }
}

async fn try_prepare(
    rocket: &Rocket<Build>,
) -> Result<(Config, TokenKeys, Passwords, Mailer, auth::SessionReads), String> {
    let config = Config::from_figment(rocket.figment()).map_err(|e| e.to_string())?;
    let dir = templates::template_dir(rocket.figment()).map_err(|e| e.to_string())?;
    let renderer = templates::Renderer::load(&dir).map_err(|e| e.to_string())?;
    let metrics = rocket
        .state::<metrics::Metrics>()
        .cloned()
        .ok_or("the metrics are not managed")?;
    let mailer = Mailer::new(renderer, &config.email, &config.public_url, metrics)
        .map_err(|e| e.to_string())?;
    let db = Db::fetch(rocket).ok_or("the database pool did not start")?;
    db::migrate(db)
        .await
        .map_err(|e| format!("database migration failed: {e}"))?;
    let mut conn = db.acquire().await.map_err(|e| format!("database: {e}"))?;
    let keys = TokenKeys::load(&mut conn, config.tokens.private_key.as_deref())
        .await
        .map_err(|e| e.to_string())?;
    let initial = rocket
        .state::<settings::InitialSettings>()
        .ok_or("the initial settings are not managed")?;
    rocket
        .state::<Lifecycle>()
        .ok_or("the lifecycle hooks are not managed")?
        .serve_1x_keys(config.cookies.enabled);
    settings::initialise(&mut conn, initial)
        .await
        .map_err(|e| format!("instance settings: {e}"))?;
    let passwords = Passwords::new().await.map_err(|e| e.message.to_string())?;
    let reads = auth::SessionReads::start(db)
        .await
        .map_err(|e| format!("database: {e}"))?;
    Ok((config, keys, passwords, mailer, reads))
}

/// A module's fairing: `on` mounts the module when `modules.<name>` is on (the default), `off`
/// shapes the server when it is off (most modules leave it untouched). Both get the module's
/// configuration section `S` (named as the module: [`config::Section`]), read and checked here.
/// A switch that is not a boolean, or a bad key in the section, stops the start with a message
/// naming it.
pub fn module<S, On, Off>(on: On, off: Off) -> AdHoc
where
    S: config::Section,
    On: FnOnce(Rocket<Build>, S) -> Rocket<Build> + Send + Sync + 'static,
    Off: FnOnce(Rocket<Build>, S) -> Rocket<Build> + Send + Sync + 'static,
{
    let name = S::NAME;
    AdHoc::try_on_ignite(name, move |rocket| async move {
        let section = config::module_enabled(rocket.figment(), name)
            .and_then(|on| Ok((on, config::section::<S>(rocket.figment())?)));
        match section {
            Ok((true, section)) => Ok(on(rocket, section)),
            Ok((false, section)) => {
                tracing::info!("module {name} is switched off");
                Ok(off(rocket, section))
            }
            Err(e) => {
                tracing::error!("{e}");
                Err(rocket)
            }
        }
    })
}
