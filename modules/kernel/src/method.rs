//! No method override. Rocket 0.5 rewrites a form `POST` whose first field is `_method` into
//! that method (`_method=DELETE` makes it a DELETE) before any fairing runs. No Stride route is
//! meant to be reached that way: a browser form, which can be sent from any site, would reach
//! routes a form cannot name (a DELETE that ends sessions), and `_method=HEAD` made a POST
//! answer with no body at all. This fairing undoes the rewrite: the request is the POST it was.

use rocket::fairing::{Fairing, Info, Kind};
use rocket::form::Form;
use rocket::http::Method;
use rocket::{Data, Request};

pub struct NoMethodOverride;

/// The longest `_method=…` Rocket reads ("_method=delete").
const PEEK: usize = "_method=delete".len();

#[rocket::async_trait]
impl Fairing for NoMethodOverride {
    fn info(&self) -> Info {
        Info {
            name: "No _method override",
            kind: Kind::Request,
        }
    }

    async fn on_request(&self, request: &mut Request<'_>, data: &mut Data<'_>) {
        if request.method() == Method::Post || !request.content_type().is_some_and(|c| c.is_form())
        {
            return;
        }
        // Rocket rewrites only a POST, and only when its form body starts with a `_method`
        // field naming the new method. (Another method's request whose form body starts with
        // `_method` naming that very method looks the same: only a crafted one would, and it
        // is taken for the POST it resembles.)
        let current = request.method();
        let rewritten = std::str::from_utf8(data.peek(PEEK).await)
            .ok()
            .and_then(|raw| Form::values(raw).next())
            .filter(|field| field.name == "_method")
            .and_then(|field| field.value.parse::<Method>().ok())
            .is_some_and(|named| named == current);
        if rewritten {
            request.set_method(Method::Post);
        }
    }
}
