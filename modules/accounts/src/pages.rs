//! The pages the module's emails link to: `GET /account-confirmation?token=…`,
//! `GET /email-update?token=…` and `GET /email-revert?token=…` show a form (a GET never uses the token: mail scanners open
//! links), and their `POST` does what the API route does. No JavaScript, in the account's
//! language (English or French), opening no session.

use kernel::language::{BrowserLanguage, Language};
use kernel::pages::Page;
use kernel::users::User;
use kernel::{ApiError, Services};
use rocket::form::{Form, FromForm};
use rocket::http::Status;
use rocket::{get, post, routes, Route};
use rocket_dyn_templates::{context, Template};

use crate::confirm::confirm;
use crate::email_change;
use crate::tokens::{self, Purpose};
use crate::Refusal;

pub fn routes() -> Vec<Route> {
    routes![
        form,
        submit,
        email_form,
        email_submit,
        revert_form,
        revert_submit
    ]
}

fn language_of(user: &User) -> &'static str {
    Language::of_user(user.language.as_deref()).code()
}

fn invalid(lang: &str) -> Page {
    invalid_page(lang, "confirm_invalid")
}

fn invalid_page(lang: &str, template: &str) -> Page {
    Page::new(
        Status::BadRequest,
        Template::render(format!("pages/{lang}/{template}"), context! { lang }),
    )
}

#[get("/account-confirmation?<token>")]
async fn form(
    token: Option<&str>,
    kernel: Services<'_>,
    browser: BrowserLanguage,
) -> Result<Page, ApiError> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Ok(invalid(browser.0.code()));
    };
    match tokens::account(kernel.db, token, Purpose::Confirm).await {
        Ok(Some(user)) => {
            let lang = language_of(&user);
            Ok(Page::new(
                Status::Ok,
                Template::render(
                    format!("pages/{lang}/confirm_form"),
                    context! { lang, token, username: &user.username },
                ),
            ))
        }
        Ok(None) => Ok(invalid(browser.0.code())),
        Err(e) => Err(e.into()),
    }
}

#[derive(FromForm)]
struct ConfirmForm {
    token: Option<String>,
}

#[post("/account-confirmation", data = "<form>")]
async fn submit(
    form: Form<ConfirmForm>,
    kernel: Services<'_>,
    browser: BrowserLanguage,
) -> Result<Page, ApiError> {
    let token = form.token.clone().unwrap_or_default();
    match confirm(kernel, &token, None).await {
        Ok((user, _)) => {
            let lang = language_of(&user);
            Ok(Page::new(
                Status::Ok,
                Template::render(
                    format!("pages/{lang}/confirm_done"),
                    context! { lang, username: &user.username },
                ),
            ))
        }
        Err(Refusal::InvalidToken | Refusal::Taken) => Ok(invalid(browser.0.code())),
        Err(Refusal::Internal(e)) => Err(e),
    }
}

#[get("/email-update?<token>")]
async fn email_form(
    token: Option<&str>,
    kernel: Services<'_>,
    browser: BrowserLanguage,
) -> Result<Page, ApiError> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Ok(invalid_page(browser.0.code(), "email_update_invalid"));
    };
    match tokens::account(kernel.db, token, Purpose::EmailChange).await {
        Ok(Some(user)) => {
            let lang = language_of(&user);
            Ok(Page::new(
                Status::Ok,
                Template::render(
                    format!("pages/{lang}/email_update_form"),
                    context! { lang, token, username: &user.username },
                ),
            ))
        }
        Ok(None) => Ok(invalid_page(browser.0.code(), "email_update_invalid")),
        Err(e) => Err(e.into()),
    }
}

#[post("/email-update", data = "<form>")]
async fn email_submit(
    form: Form<ConfirmForm>,
    kernel: Services<'_>,
    browser: BrowserLanguage,
) -> Result<Page, ApiError> {
    let token = form.token.clone().unwrap_or_default();
    match email_change::update(kernel, &token).await {
        Ok(user) => {
            let lang = language_of(&user);
            Ok(Page::new(
                Status::Ok,
                Template::render(
                    format!("pages/{lang}/email_update_done"),
                    context! { lang, username: &user.username, email: &user.email },
                ),
            ))
        }
        Err(Refusal::InvalidToken | Refusal::Taken) => {
            Ok(invalid_page(browser.0.code(), "email_update_invalid"))
        }
        Err(Refusal::Internal(e)) => Err(e),
    }
}

#[get("/email-revert?<token>")]
async fn revert_form(
    token: Option<&str>,
    kernel: Services<'_>,
    browser: BrowserLanguage,
) -> Result<Page, ApiError> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Ok(invalid_page(browser.0.code(), "email_revert_invalid"));
    };
    match tokens::account(kernel.db, token, Purpose::Revert).await {
        Ok(Some(user)) => {
            let lang = language_of(&user);
            Ok(Page::new(
                Status::Ok,
                Template::render(
                    format!("pages/{lang}/email_revert_form"),
                    context! { lang, token, username: &user.username },
                ),
            ))
        }
        Ok(None) => Ok(invalid_page(browser.0.code(), "email_revert_invalid")),
        Err(e) => Err(e.into()),
    }
}

#[post("/email-revert", data = "<form>")]
async fn revert_submit(
    form: Form<ConfirmForm>,
    kernel: Services<'_>,
    browser: BrowserLanguage,
) -> Result<Page, ApiError> {
    let token = form.token.clone().unwrap_or_default();
    match email_change::revert(kernel, &token).await {
        Ok(user) => {
            let lang = language_of(&user);
            Ok(Page::new(
                Status::Ok,
                Template::render(
                    format!("pages/{lang}/email_revert_done"),
                    context! { lang, username: &user.username, email: &user.email },
                ),
            ))
        }
        Err(Refusal::InvalidToken | Refusal::Taken) => {
            Ok(invalid_page(browser.0.code(), "email_revert_invalid"))
        }
        Err(Refusal::Internal(e)) => Err(e),
    }
}
