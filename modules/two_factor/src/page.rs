//! The passkey page (docs/two-factor.md, "The passkey page"): the smallest browser page that
//! runs the WebAuthn ceremonies, in English or French by the browser's language. It logs in
//! (password, then a passkey, an authenticator code or a recovery code when the account has a
//! factor), then lists, adds, renames and removes the account's passkeys, all through the JSON
//! API a native client uses. Its one script is a file served here (`assets/passkeys.js`), under
//! the kernel's scripted Content-Security-Policy.

use kernel::language::BrowserLanguage;
use kernel::pages::Page;
use rocket::http::{ContentType, Header, Status};
use rocket::response::{self, Responder};
use rocket::{get, routes, Request, Route};
use rocket_dyn_templates::{context, Template};

pub fn routes() -> Vec<Route> {
    routes![page, script]
}

#[get("/two-factor/passkeys")]
fn page(browser: BrowserLanguage) -> Page {
    let lang = browser.0.code();
    Page::scripted(
        Status::Ok,
        Template::render(format!("pages/{lang}/passkeys"), context! { lang }),
    )
}

/// The page's script, with the headers a script file of this instance carries.
struct Script(&'static str);

impl<'r> Responder<'r, 'static> for Script {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        let mut response = self.0.respond_to(request)?;
        response.set_header(ContentType::JavaScript);
        response.set_header(Header::new("X-Content-Type-Options", "nosniff"));
        response.set_header(Header::new("Cache-Control", "no-cache"));
        Ok(response)
    }
}

#[get("/two-factor/passkeys.js")]
fn script() -> Script {
    Script(include_str!("../assets/passkeys.js"))
}
