//! Composition: the kernel, then one fairing per module. Each module is a cargo feature named
//! as its folder under `modules/` (all on by default): `cargo build --no-default-features
//! --features sessions,profile` leaves the others out of the binary. At run time each is
//! switched by `modules.<name>` (docs/modules.md).

pub mod connections;
pub mod logging;
pub mod operator;

use rocket::figment::providers::{Env, Format, Serialized, Toml};
use rocket::figment::{Figment, Profile};
use rocket::{Build, Rocket};

/// Rocket's own figment (`rocket::Config::figment`: Rocket.toml or `ROCKET_CONFIG`, then
/// `ROCKET_*` env, profile from `ROCKET_PROFILE`), with Stride's defaults layered between
/// Rocket's defaults and the files, so the files and the environment still win.
pub fn figment() -> Figment {
    Figment::from(rocket::Config::default())
        .merge(Serialized::default("ident", "Stride"))
        .merge(Serialized::default(
            "databases.main.url",
            kernel::db::DEFAULT_DATABASE_URL,
        ))
        // Account payloads are small; a megabyte of JSON is only a nuisance.
        .merge(Serialized::default("limits.json", "64 KiB"))
        .merge(Serialized::default("template_dir", default_template_dir()))
        // Rocket trusts X-Real-IP by default, which any client can forge when no proxy sets
        // it: throttling per client would be bypassed. Behind a proxy, name its header.
        .merge(Serialized::default("ip_header", false))
        .merge(Toml::file(Env::var_or("ROCKET_CONFIG", "Rocket.toml")).nested())
        .merge(Env::prefixed("ROCKET_").ignore(&["PROFILE"]).global())
        .select(Profile::from_env_or(
            "ROCKET_PROFILE",
            rocket::Config::DEFAULT_PROFILE,
        ))
}

/// `templates/` in the working directory, as Rocket expects; when there is none (the binary
/// run from elsewhere on the machine it was built on), the source tree's own. A deployment
/// sets `template_dir`.
fn default_template_dir() -> String {
    if std::path::Path::new("templates").is_dir() {
        "templates".into()
    } else {
        concat!(env!("CARGO_MANIFEST_DIR"), "/templates").into()
    }
}

/// The whole server, from a figment (tests pass their own).
pub fn build(figment: Figment) -> Rocket<Build> {
    let rocket = rocket::custom(figment).attach(kernel::stage());
    #[cfg(feature = "registration")]
    let rocket = rocket.attach(registration::stage());
    #[cfg(feature = "sessions")]
    let rocket = rocket.attach(sessions::stage());
    #[cfg(feature = "profile")]
    let rocket = rocket.attach(profile::stage());
    #[cfg(feature = "password_reset")]
    let rocket = rocket.attach(password_reset::stage());
    #[cfg(feature = "pictures")]
    let rocket = rocket.attach(pictures::stage());
    #[cfg(feature = "users")]
    let rocket = rocket.attach(users::stage());
    #[cfg(feature = "accounts")]
    let rocket = rocket.attach(accounts::stage());
    #[cfg(feature = "two_factor")]
    let rocket = rocket.attach(two_factor::stage());
    #[cfg(feature = "sso")]
    let rocket = rocket.attach(sso::stage());
    rocket
}

/// Judges the whole configuration before anything starts: the kernel's keys, then every
/// built-in module's section (switched on or not, so that turning one on later cannot meet a
/// bad key). The first error names its key.
pub fn check_config(figment: &Figment) -> Result<(), kernel::config::ConfigError> {
    use kernel::config::section;
    kernel::Config::from_figment(figment)?;
    #[cfg(feature = "registration")]
    section::<registration::RegistrationConfig>(figment)?;
    #[cfg(feature = "sessions")]
    section::<sessions::SessionsConfig>(figment)?;
    #[cfg(feature = "profile")]
    section::<profile::ProfileConfig>(figment)?;
    #[cfg(feature = "password_reset")]
    section::<password_reset::PasswordResetConfig>(figment)?;
    #[cfg(feature = "pictures")]
    section::<pictures::PicturesConfig>(figment)?;
    #[cfg(feature = "users")]
    section::<users::UsersConfig>(figment)?;
    #[cfg(feature = "accounts")]
    section::<accounts::AccountsConfig>(figment)?;
    #[cfg(feature = "two_factor")]
    section::<two_factor::TwoFactorConfig>(figment)?;
    #[cfg(feature = "sso")]
    section::<sso::SsoConfig>(figment)?;
    Ok(())
}
