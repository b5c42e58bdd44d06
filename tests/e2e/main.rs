//! Stride end to end: the real binary as an operator runs it (the CLI, crashes, logs, shutdown,
//! slow clients), emails through a real SMTP server (aiosmtpd), the reset pages in headless
//! Chromium, FitTrackee's own web client in front of Stride, and clusters of instances on one
//! PostgreSQL database. In CI these fail, rather
//! than skip, when what they need is missing (`.ci/run` installs it).

#[path = "../support/mod.rs"]
mod helpers;
#[path = "../support/smtp.rs"]
mod mail;

mod browser;
mod chromium;
mod cli;
mod cluster;
#[cfg(feature = "accounts")]
mod confirmation;
mod crash;
mod email_addresses;
mod email_languages;
mod email_reset;
// Every account flow of the client needs every module.
#[cfg(all(
    feature = "registration",
    feature = "sessions",
    feature = "profile",
    feature = "password_reset",
    feature = "pictures",
    feature = "users"
))]
mod fittrackee_client;
#[cfg(all(
    feature = "registration",
    feature = "sessions",
    feature = "profile",
    feature = "password_reset",
    feature = "pictures",
    feature = "users",
    feature = "accounts"
))]
mod fittrackee_client_13;
// The front server and browser helpers of both FitTrackee client tests.
#[cfg(all(
    feature = "registration",
    feature = "sessions",
    feature = "profile",
    feature = "password_reset",
    feature = "pictures",
    feature = "users"
))]
mod fittrackee_front;
mod logs;
#[cfg(all(feature = "two_factor", feature = "registration", feature = "sessions"))]
mod passkeys;
mod served;
mod shutdown;
mod slow_clients;
#[cfg(all(
    feature = "sso",
    feature = "registration",
    feature = "sessions",
    feature = "users"
))]
mod sso;
