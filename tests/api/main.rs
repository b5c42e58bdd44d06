//! Stride's specification through its HTTP surface, in process: Rocket's local client against
//! a fresh server per test. Needs nothing but the build (and, for the PostgreSQL run of every
//! test, `STRIDE_TEST_POSTGRES_URL`). What needs a binary, an SMTP server, a browser or a
//! cluster is in tests/e2e.

#[path = "../support/mod.rs"]
mod helpers;

#[cfg(feature = "accounts")]
mod accounts;
mod addresses;
#[cfg(feature = "accounts")]
mod admin_actions;
mod attenuation;
mod boundaries;
mod config;
mod cookies;
#[cfg(feature = "accounts")]
mod email_change;
#[cfg(feature = "accounts")]
mod email_revert;
mod errors;
#[cfg(feature = "accounts")]
mod export;
mod headers;
mod languages;
mod openapi;
mod ops;
#[cfg(feature = "two_factor")]
mod passkeys;
mod password_reset;
#[cfg(feature = "pictures")]
mod pictures;
mod profile;
mod register;
mod robustness;
mod sessions;
mod shapes;
#[cfg(feature = "sso")]
mod sso;
mod throttle;
#[cfg(feature = "two_factor")]
mod two_factor;
#[cfg(feature = "two_factor")]
mod two_factor_policy;
mod users;
