//! Typed configuration, read from Rocket's figment (Rocket.toml profiles + `ROCKET_*` env).
//!
//! Every key has a default, so an empty Rocket.toml runs. A value of the wrong type, an unknown
//! key inside one of our tables, or a value out of range stops the start with a message that
//! names the key.

use std::collections::BTreeMap;

use rocket::figment::Figment;
use serde::de::DeserializeOwned;
use serde::Deserialize;

pub use crate::error::ConfigError;
pub use crate::mail::EmailConfig;
pub use crate::metrics::MetricsConfig;
pub use crate::throttle::ThrottleConfig;
pub use crate::validate::MAX_PASSWORD_LENGTH;

/// The kernel's share of the configuration. Modules read their own keys; the kernel reads only
/// what it owns (docs/architecture.md, "The operating contract").
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Base of every link Stride writes (emails); never taken from the request's Host.
    pub public_url: String,
    /// The map tiles' attribution, as `/api/config` reports it to FitTrackee's clients (HTML,
    /// shown under every map).
    pub map_attribution: String,
    pub tokens: TokenConfig,
    pub passwords: PasswordConfig,
    pub email: EmailConfig,
    pub throttle: ThrottleConfig,
    pub metrics: MetricsConfig,
    pub cookies: CookieConfig,
}

/// Browser sessions (docs/browser-sessions.md): the session in an HttpOnly cookie, guarded by a
/// CSRF header, beside the Bearer tokens every client may use.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CookieConfig {
    /// Cookie sessions, and the FitTrackee 1.x shapes of answers that today's web client reads.
    /// Off: no cookie is set or read, and every answer is FitTrackee 0.5's.
    pub enabled: bool,
    /// Seconds a cookie token lives; each authenticated response grants it again, never past
    /// the session's own expiry.
    pub ttl: u64,
    /// The cookies' `SameSite`.
    pub same_site: SameSite,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SameSite {
    Lax,
    Strict,
}

impl Default for CookieConfig {
    fn default() -> Self {
        CookieConfig {
            enabled: true,
            ttl: 900,
            same_site: SameSite::Lax,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenConfig {
    /// Lifetime of a session token, in seconds.
    pub session_ttl: u64,
    /// Hex Ed25519 private key. When absent, one is generated once and kept in the database,
    /// so every instance on that database shares it.
    pub private_key: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordConfig {
    pub min_length: usize,
    /// Least zxcvbn score (0 to 4) a new password needs. Below 2 it is on a breached-password
    /// list, a dictionary word, a name or a keyboard or repeated pattern (fewer than 10^6
    /// guesses). 0 switches the check off.
    pub min_strength: u8,
}

pub const DEFAULT_PUBLIC_URL: &str = "http://127.0.0.1:8000";
/// FitTrackee 0.5's default (its `TILE_SERVER_ATTRIBUTION`): OpenStreetMap's tiles.
pub const DEFAULT_MAP_ATTRIBUTION: &str = "&copy; <a href=\"http://www.openstreetmap.org/copyright\" target=\"_blank\" rel=\"noopener noreferrer\">OpenStreetMap</a> contributors";

impl Default for Config {
    fn default() -> Self {
        Config {
            public_url: DEFAULT_PUBLIC_URL.into(),
            map_attribution: DEFAULT_MAP_ATTRIBUTION.into(),
            tokens: TokenConfig::default(),
            passwords: PasswordConfig::default(),
            email: EmailConfig::default(),
            throttle: ThrottleConfig::default(),
            metrics: MetricsConfig::default(),
            cookies: CookieConfig::default(),
        }
    }
}

impl Default for TokenConfig {
    fn default() -> Self {
        TokenConfig {
            session_ttl: 30 * 24 * 3600,
            private_key: None,
        }
    }
}

impl Default for PasswordConfig {
    fn default() -> Self {
        PasswordConfig {
            min_length: 8,
            min_strength: 2,
        }
    }
}

/// A module's configuration section: a table of its own, named as the module unless that name
/// is taken (`gallery.*` for the module switched by `modules.gallery`). Every key has a default
/// (`Default`); unknown keys are refused (`#[serde(deny_unknown_fields)]`); `validate` refuses
/// values that cannot run.
/// [`crate::module`] reads it in the module's fairing and hands it to the module; the binary's
/// start-up check reads every module's first (docs/modules.md, "Configuration").
pub trait Section: DeserializeOwned + Default + Send + Sync + 'static {
    /// The module's name: its switch is `modules.<NAME>`.
    const NAME: &'static str;
    /// The section's table: `<KEY>.*`, and `ROCKET_<KEY>` in the environment. The module's name
    /// unless Rocket reserves it (`ROCKET_PROFILE` selects Rocket's profile).
    const KEY: &'static str = Self::NAME;

    fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }
}

/// Reads and validates a module's section; an error names the key in full
/// (`gallery.max_size`) and the value, as the kernel's own do.
pub fn section<S: Section>(figment: &Figment) -> Result<S, ConfigError> {
    let name = S::KEY;
    let section = if figment.contains(name) {
        figment.focus(name).extract::<S>().map_err(|error| {
            let all: Vec<String> = error
                .into_iter()
                .map(|mut e| {
                    e.path.insert(0, name.to_owned());
                    e.to_string()
                })
                .collect();
            ConfigError::from_lines(all)
        })?
    } else {
        S::default()
    };
    section.validate()?;
    Ok(section)
}

impl Config {
    pub fn from_figment(figment: &Figment) -> Result<Config, ConfigError> {
        let mut config: Config = figment.extract()?;
        config.validate()?;
        // Each module reads its own switch; a switch that is not a boolean is refused here too,
        // so the whole configuration is judged before anything starts.
        Switches::from_figment(figment)?;
        Ok(config)
    }

    fn validate(&mut self) -> Result<(), ConfigError> {
        let url = self.public_url.trim_end_matches('/');
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .ok_or_else(|| {
                ConfigError::invalid(
                    "public_url",
                    format!("must start with http:// or https:// (got {url:?})"),
                )
            })?;
        if rest.is_empty() || rest.contains(char::is_whitespace) {
            return Err(ConfigError::invalid(
                "public_url",
                format!("must name a host, without spaces (got {url:?})"),
            ));
        }
        self.public_url = url.to_owned();

        if self.tokens.session_ttl == 0 {
            return Err(ConfigError::invalid(
                "tokens.session_ttl",
                "must be at least 1 second (got 0)",
            ));
        }
        if let Some(key) = &self.tokens.private_key {
            if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
                // The value is a secret: its length is all the message tells of it.
                return Err(ConfigError::invalid(
                    "tokens.private_key",
                    format!(
                        "must be 64 hexadecimal characters, an Ed25519 private key (got {} \
                         characters{})",
                        key.chars().count(),
                        if key.bytes().all(|b| b.is_ascii_hexdigit()) {
                            ""
                        } else {
                            ", not all hexadecimal"
                        }
                    ),
                ));
            }
        }
        if !(1..=MAX_PASSWORD_LENGTH).contains(&self.passwords.min_length) {
            return Err(ConfigError::invalid(
                "passwords.min_length",
                format!(
                    "must be between 1 and {MAX_PASSWORD_LENGTH} (got {})",
                    self.passwords.min_length
                ),
            ));
        }
        if self.passwords.min_strength > 4 {
            return Err(ConfigError::invalid(
                "passwords.min_strength",
                format!(
                    "must be between 0 (off) and 4 (got {})",
                    self.passwords.min_strength
                ),
            ));
        }
        if self.cookies.ttl == 0 {
            return Err(ConfigError::invalid(
                "cookies.ttl",
                "must be at least 1 second (got 0)",
            ));
        }
        self.email.validate()?;
        self.throttle.validate()?;
        self.metrics.validate()?;
        Ok(())
    }
}

/// The `modules` table: one boolean per module name. (Extracted as a whole rather than with
/// `extract_inner`, whose errors name the key path backwards.)
#[derive(Deserialize, Default)]
#[serde(default)]
struct Switches {
    modules: BTreeMap<String, bool>,
}

impl Switches {
    fn from_figment(figment: &Figment) -> Result<Switches, ConfigError> {
        Ok(figment.extract()?)
    }
}

/// Reads a module's switch, `modules.<name>` (on unless set to false).
pub fn module_enabled(figment: &Figment, name: &str) -> Result<bool, ConfigError> {
    Ok(Switches::from_figment(figment)?
        .modules
        .get(name)
        .copied()
        .unwrap_or(true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rocket::figment::providers::Serialized;

    fn config(key: &str, value: impl serde::Serialize) -> Result<Config, ConfigError> {
        Config::from_figment(&Figment::from(Serialized::default(key, value)))
    }

    #[test]
    fn defaults_are_the_contract() {
        let c = Config::from_figment(&Figment::new()).expect("defaults are valid");
        assert_eq!(c.public_url, "http://127.0.0.1:8000");
        assert_eq!(c.tokens.session_ttl, 2_592_000);
        assert_eq!(c.passwords.min_length, 8);
        assert_eq!(c.passwords.min_strength, 2);
    }

    #[test]
    fn errors_name_the_key() {
        let e = config("tokens.session_ttl", "soon")
            .unwrap_err()
            .to_string();
        assert!(e.contains("tokens.session_ttl"), "{e}");
        let e = config("tokens.session_tll", 3).unwrap_err().to_string();
        assert!(e.contains("session_tll"), "{e}");
        let e = config("public_url", "ftp://x").unwrap_err().to_string();
        assert!(e.contains("public_url"), "{e}");
        let e = config("passwords.min_strength", 5).unwrap_err().to_string();
        assert!(e.contains("passwords.min_strength"), "{e}");
        let e = config("passwords.min_length", 0).unwrap_err().to_string();
        assert!(e.contains("passwords.min_length"), "{e}");
        let e = config("tokens.private_key", "abc").unwrap_err().to_string();
        assert!(e.contains("tokens.private_key"), "{e}");
    }

    /// Every refusal names the key and the value, but never a secret's value.
    #[test]
    fn errors_name_the_value_too() {
        let e = config("public_url", "ftp://x").unwrap_err().to_string();
        assert!(e.contains("ftp://x"), "{e}");
        let e = config("passwords.min_strength", 5).unwrap_err().to_string();
        assert!(e.contains("(got 5)"), "{e}");
        let e = config("passwords.min_length", 0).unwrap_err().to_string();
        assert!(e.contains("(got 0)"), "{e}");
        let e = config("tokens.session_ttl", 0).unwrap_err().to_string();
        assert!(e.contains("(got 0)"), "{e}");
        let e = config("tokens.private_key", "zz-secret")
            .unwrap_err()
            .to_string();
        assert!(e.contains("got 9 characters, not all hexadecimal"), "{e}");
        assert!(!e.contains("zz-secret"), "{e}");
        let e = config("throttle.window", 0).unwrap_err().to_string();
        assert!(
            e.contains("throttle.window") && e.contains("(got 0)"),
            "{e}"
        );
    }

    #[test]
    fn cookie_settings_are_checked() {
        let c = Config::from_figment(&Figment::new()).expect("defaults are valid");
        assert!(c.cookies.enabled);
        assert_eq!(c.cookies.ttl, 900);
        assert_eq!(c.cookies.same_site, SameSite::Lax);
        let c = config("cookies.same_site", "strict").expect("valid");
        assert_eq!(c.cookies.same_site, SameSite::Strict);
        let e = config("cookies.same_site", "none").unwrap_err().to_string();
        assert!(e.contains("cookies.same_site") && e.contains("none"), "{e}");
        let e = config("cookies.ttl", 0).unwrap_err().to_string();
        assert!(e.contains("cookies.ttl") && e.contains("(got 0)"), "{e}");
        let e = config("cookies.enabled", "yes").unwrap_err().to_string();
        assert!(e.contains("cookies.enabled"), "{e}");
    }

    #[test]
    fn public_url_loses_its_trailing_slash() {
        let c = config("public_url", "https://fit.example.org/").expect("valid");
        assert_eq!(c.public_url, "https://fit.example.org");
    }

    #[test]
    fn module_switches_default_on() {
        let f = Figment::from(Serialized::default("modules.gallery", false));
        assert!(!module_enabled(&f, "gallery").expect("bool"));
        assert!(module_enabled(&f, "journal").expect("default"));
        let f = Figment::from(Serialized::default("modules.gallery", "nope"));
        let e = module_enabled(&f, "gallery").unwrap_err().to_string();
        assert!(e.contains("modules.gallery"), "{e}");
    }
}
