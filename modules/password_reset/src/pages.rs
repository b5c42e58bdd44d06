//! The pages a browser user opens from the reset email. Plain HTML forms, no JavaScript, in the
//! user's language (English or French), never cached and never leaking the token in a Referer.

use kernel::config::MAX_PASSWORD_LENGTH;
use kernel::language::{BrowserLanguage, Language};
use kernel::pages::Page;
use kernel::validate::PasswordProblem;
use kernel::{ApiError, Caller, Services};
use rocket::form::{Form, FromForm};
use rocket::http::Status;
use rocket::{get, post, routes, Route};
use rocket_dyn_templates::{context, Template};

use crate::reset::{holder, reset, Refusal};

pub fn routes() -> Vec<Route> {
    routes![form, submit]
}

/// The language of the account's pages, whatever its stored preference holds.
fn language_of(user: &kernel::users::User) -> &'static str {
    Language::of_user(user.language.as_deref()).code()
}

fn invalid(lang: &str) -> Page {
    Page::new(
        Status::BadRequest,
        Template::render(format!("pages/{lang}/reset_invalid"), context! { lang }),
    )
}

fn form_page(
    status: Status,
    lang: &str,
    token: &str,
    min_length: usize,
    error: Option<&str>,
) -> Page {
    Page::new(
        status,
        Template::render(
            format!("pages/{lang}/reset_form"),
            context! { lang, token, min_length, max_length: MAX_PASSWORD_LENGTH, error },
        ),
    )
}

#[get("/password-reset?<token>")]
async fn form(
    token: Option<&str>,
    kernel: Services<'_>,
    browser: BrowserLanguage,
) -> Result<Page, ApiError> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Ok(invalid(browser.0.code()));
    };
    match holder(kernel.db, token).await {
        Ok(Some(user)) => {
            let lang = language_of(&user);
            Ok(form_page(
                Status::Ok,
                lang,
                token,
                kernel.config.passwords.min_length,
                None,
            ))
        }
        Ok(None) | Err(Refusal::InvalidToken | Refusal::Password(_)) => {
            Ok(invalid(browser.0.code()))
        }
        Err(Refusal::Internal(e)) => Err(e),
    }
}

#[derive(FromForm)]
struct ResetForm {
    token: Option<String>,
    password: Option<String>,
    password_conf: Option<String>,
}

#[post("/password-reset", data = "<form>")]
async fn submit(
    form: Form<ResetForm>,
    kernel: Services<'_>,
    caller: Caller,
    browser: BrowserLanguage,
) -> Result<Page, ApiError> {
    let token = form.token.clone().unwrap_or_default();
    let password = form.password.clone().unwrap_or_default();
    let confirmation = form.password_conf.clone().unwrap_or_default();
    // The page's language is the account's, known from the token while it is valid.
    let lang = match holder(kernel.db, &token).await {
        Ok(Some(user)) => language_of(&user),
        _ => browser.0.code(),
    };
    match reset(kernel, &token, &password, &confirmation, caller.client).await {
        Ok(user) => {
            let lang = language_of(&user);
            Ok(Page::new(
                Status::Ok,
                Template::render(format!("pages/{lang}/reset_done"), context! { lang }),
            ))
        }
        Err(Refusal::InvalidToken) => Ok(invalid(lang)),
        Err(Refusal::Password(problems)) => {
            // The page says one thing, the first of these that applies.
            let has = |p: fn(&PasswordProblem) -> bool| problems.iter().any(p);
            let error = if has(|p| *p == PasswordProblem::Differ) {
                "mismatch"
            } else if has(|p| *p == PasswordProblem::Guessable) {
                "guessable"
            } else if has(|p| *p == PasswordProblem::TooLong) {
                "too_long"
            } else {
                "too_short"
            };
            Ok(form_page(
                Status::BadRequest,
                lang,
                &token,
                kernel.config.passwords.min_length,
                Some(error),
            ))
        }
        Err(Refusal::Internal(e)) => Err(e),
    }
}
