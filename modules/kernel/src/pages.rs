//! The HTML pages a browser user opens from an email (a reset link, a confirmation link): plain
//! forms without JavaScript, rendered from `templates/pages/`, never cached, never leaking the
//! link's token in a Referer, and confined by a strict Content-Security-Policy. A page that
//! cannot work without JavaScript (a WebAuthn ceremony) runs only the script files this
//! instance serves, and talks to this instance only ([`Page::scripted`]).

use rocket::http::{Header, Status};
use rocket::request::Request;
use rocket::response::{self, Responder};
use rocket_dyn_templates::Template;

/// A page with the headers every such page carries.
pub struct Page {
    status: Status,
    template: Template,
    csp: &'static str,
}

const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// [`CSP`], and scripts from this origin's files (never inline, never `eval`), which may call
/// this origin only.
const CSP_SCRIPTED: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; \
                            style-src 'unsafe-inline'; form-action 'self'; \
                            frame-ancestors 'none'; base-uri 'none'";

impl Page {
    pub fn new(status: Status, template: Template) -> Page {
        Page {
            status,
            template,
            csp: CSP,
        }
    }

    /// A page whose template loads a script file of this instance's.
    pub fn scripted(status: Status, template: Template) -> Page {
        Page {
            status,
            template,
            csp: CSP_SCRIPTED,
        }
    }
}

impl<'r> Responder<'r, 'static> for Page {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        let mut response = self.template.respond_to(request)?;
        response.set_status(self.status);
        response.set_header(Header::new("Referrer-Policy", "no-referrer"));
        response.set_header(Header::new("Cache-Control", "no-store"));
        response.set_header(Header::new("Content-Security-Policy", self.csp));
        Ok(response)
    }
}
