//! Password reset by email: `POST /api/auth/password/reset-request`,
//! `POST /api/auth/password/update`, and the pages a browser user opens from the email,
//! `GET`/`POST /password-reset`.

mod api;
mod pages;
mod reset;
mod tokens;

use kernel::Describe;
use rocket::fairing::AdHoc;

pub fn stage() -> AdHoc {
    kernel::module(
        "password_reset",
        |rocket| {
            rocket
                .mount("/api/auth/password", api::routes())
                .mount("/", pages::routes())
                .describe(include_str!("../openapi.json"))
        },
        |rocket| rocket,
    )
}
