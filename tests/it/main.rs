//! Stride's specification, through its HTTP surface. Every test runs on SQLite and, when
//! `STRIDE_TEST_POSTGRES_URL` is set, on PostgreSQL.

mod helpers;
mod mail;

mod addresses;
mod attenuation;
mod boundaries;
mod browser;
mod cli;
mod cluster;
mod config;
mod crash;
mod errors;
mod headers;
mod languages;
mod logs;
mod openapi;
mod ops;
mod password_reset;
#[cfg(feature = "pictures")]
mod pictures;
mod profile;
mod register;
mod robustness;
mod sessions;
mod slow_clients;
mod throttle;
