//! The OpenAPI 3.1 document of the API this server mounts, served at `GET /api/openapi.json`.
//!
//! The kernel describes what it owns (`openapi.json` beside its `Cargo.toml`: the envelopes,
//! the bearer scheme, the shared error answers, `/api/ping`, `/api/config` and this document);
//! each module adds the fragment that describes its own routes when, and only when, it mounts
//! them:
//!
//! ```ignore
//! rocket.mount("/api/auth", routes![login]).describe(include_str!("../openapi.json"))
//! ```
//!
//! A fragment is a partial OpenAPI document holding `paths` and, if it needs them, its own
//! `components`. Fragments may not redefine each other's operations or components.
//!
//! An authenticated operation names the `bearer` scheme; with `cookies.enabled` the served
//! document adds the browser's alternative (docs/browser-sessions.md): the session cookie,
//! with the CSRF header for an operation that changes something (every method but GET, HEAD,
//! OPTIONS, and a GET marked `"x-changes": true`).

use std::sync::{Mutex, OnceLock};

use rocket::http::ContentType;
use rocket::{get, routes, Build, Rocket, Route, State};
use serde_json::{json, Map, Value};

use crate::config::Config;
use crate::cookies::{ACCESS_COOKIE, CSRF_HEADER};

const KERNEL_FRAGMENT: &str = include_str!("../openapi.json");

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The document as assembled so far; complete once the server has ignited. Written out once
/// as the server lifts off (or at the first request for it), which frees the assembled value
/// (about 1 MiB of JSON nodes against 0.2 MiB of text: BENCHMARKS.md, "What the run says").
pub struct ApiDoc {
    assembled: Mutex<Value>,
    served: OnceLock<String>,
}

impl ApiDoc {
    /// The kernel's own document, before any module adds to it.
    pub(crate) fn new() -> ApiDoc {
        let mut document = parse(KERNEL_FRAGMENT, "the kernel's openapi.json");
        document["info"]["version"] = env!("CARGO_PKG_VERSION").into();
        add_server_errors(&mut document);
        ApiDoc {
            assembled: Mutex::new(document),
            served: OnceLock::new(),
        }
    }

    /// The whole document as served, written once (modules add to it only while the server
    /// is built, never after it serves).
    fn served(&self, cookies: bool) -> &str {
        self.served.get_or_init(|| {
            let mut document = self
                .assembled
                .lock()
                .map(|mut d| d.take())
                .unwrap_or_default();
            if cookies {
                add_cookie_scheme(&mut document);
            }
            document.to_string()
        })
    }

    fn add(&self, fragment: &str) -> Result<(), String> {
        if self.served.get().is_some() {
            return Err("the API document is already served".into());
        }
        let mut fragment = parse(fragment, "a module's openapi fragment");
        add_server_errors(&mut fragment);
        let mut document = self
            .assembled
            .lock()
            .map_err(|_| "the API document is poisoned")?;
        merge(&mut document, fragment)
    }
}

fn parse(text: &str, what: &str) -> Value {
    // Fragments are compiled in: a broken one is a bug of the program, which every test that
    // starts a server finds at once.
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{what} is not valid JSON: {e}"))
}

/// Adds a module's fragment to the document the server serves.
pub trait Describe {
    fn describe(self, fragment: &str) -> Self;
}

impl Describe for Rocket<Build> {
    fn describe(self, fragment: &str) -> Self {
        let Some(doc) = self.state::<ApiDoc>() else {
            panic!("describe(): attach the kernel before the modules");
        };
        if let Err(e) = doc.add(fragment) {
            panic!("a module's openapi fragment does not fit the document: {e}");
        }
        self
    }
}

/// Any operation may fail on the server's side (500) or find the database pool exhausted
/// (503); the kernel's catchers answer both with the error envelope.
fn add_server_errors(fragment: &mut Value) {
    let operations = fragment
        .get_mut("paths")
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(Value::as_object_mut)
        .flat_map(|item| {
            item.iter_mut()
                .filter(|(key, _)| METHODS.contains(&key.as_str()))
                .map(|(_, operation)| operation)
        });
    for operation in operations {
        if let Some(responses) = operation["responses"].as_object_mut() {
            responses.entry("5XX").or_insert_with(
                || serde_json::json!({ "$ref": "#/components/responses/ServerError" }),
            );
        }
    }
}

/// Adds `fragment`'s path items, operations and components to `document`. A key both define
/// must be defined identically (two modules sharing a path is fine, sharing an operation is not).
fn merge(document: &mut Value, fragment: Value) -> Result<(), String> {
    let Value::Object(fragment) = fragment else {
        return Err("a fragment is a JSON object".into());
    };
    for (key, value) in fragment {
        match key.as_str() {
            "paths" => merge_maps(&mut document["paths"], value, 2, "paths")?,
            "components" => merge_maps(&mut document["components"], value, 2, "components")?,
            other => {
                return Err(format!(
                    "a fragment holds paths and components, not {other}"
                ))
            }
        }
    }
    Ok(())
}

/// Merges two objects `depth` levels deep; below that, a key present in both must hold the
/// same value.
fn merge_maps(into: &mut Value, from: Value, depth: usize, at: &str) -> Result<(), String> {
    if into.is_null() {
        *into = Value::Object(Map::new());
    }
    let (Value::Object(into), Value::Object(from)) = (into, from) else {
        return Err(format!("{at}: expected an object"));
    };
    for (key, value) in from {
        let here = format!("{at}/{key}");
        match into.get_mut(&key) {
            None => {
                into.insert(key, value);
            }
            Some(existing) if depth > 1 => merge_maps(existing, value, depth - 1, &here)?,
            Some(existing) if *existing == value => {}
            Some(_) => return Err(format!("{here} is defined twice")),
        }
    }
    Ok(())
}

/// Writes the document out as the server lifts off, after which nothing adds to it.
pub(crate) fn write_out(rocket: &Rocket<rocket::Orbit>) {
    if let (Some(doc), Some(config)) = (rocket.state::<ApiDoc>(), rocket.state::<Config>()) {
        doc.served(config.cookies.enabled);
    }
}

pub fn routes() -> Vec<Route> {
    routes![openapi]
}

#[get("/openapi.json")]
fn openapi<'r>(doc: &'r State<ApiDoc>, config: &State<Config>) -> (ContentType, &'r str) {
    (ContentType::JSON, doc.served(config.cookies.enabled))
}

/// The browser's way beside every Bearer one: the cookie, and the CSRF header where the
/// operation changes something.
fn add_cookie_scheme(document: &mut Value) {
    let schemes = &mut document["components"]["securitySchemes"];
    schemes["cookie"] = json!({
        "type": "apiKey",
        "in": "cookie",
        "name": ACCESS_COOKIE,
        "description": "A browser's session: the HttpOnly cookie that login, a registration opening a session and an account confirmation set beside the `csrf_access_token` cookie. The same session as the Bearer token; refreshed on every response it authenticated; ended by logout."
    });
    schemes["csrf"] = json!({
        "type": "apiKey",
        "in": "header",
        "name": CSRF_HEADER,
        "description": "With the session cookie, on every request that changes something: the value of the `csrf_access_token` cookie. Missing or wrong: 401 `provide a valid auth token`, nothing changed."
    });
    let bearer_only = json!([{ "bearer": [] }]);
    let Some(paths) = document["paths"].as_object_mut() else {
        return;
    };
    for item in paths.values_mut().filter_map(Value::as_object_mut) {
        for (method, operation) in item.iter_mut() {
            if !METHODS.contains(&method.as_str()) || operation["security"] != bearer_only {
                continue;
            }
            let changes = !matches!(method.as_str(), "get" | "head" | "options")
                || operation["x-changes"] == true;
            operation["security"] = if changes {
                json!([{ "bearer": [] }, { "cookie": [], "csrf": [] }])
            } else {
                json!([{ "bearer": [] }, { "cookie": [] }])
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl ApiDoc {
        /// The document as assembled so far.
        fn document(&self) -> Value {
            self.assembled.lock().map(|d| d.clone()).unwrap_or_default()
        }
    }

    /// Served once: the text is the assembled document (with the cookie scheme when asked),
    /// the assembled value is freed, and nothing can be added afterwards.
    #[test]
    fn the_document_is_written_once_and_then_fixed() {
        let plain = ApiDoc::new();
        let assembled = plain.document();
        let served: Value = serde_json::from_str(plain.served(false)).expect("JSON");
        assert_eq!(served, assembled);
        let doc = ApiDoc::new();
        let served: Value = serde_json::from_str(doc.served(true)).expect("JSON");
        assert_eq!(
            served["components"]["securitySchemes"]["cookie"]["in"],
            "cookie"
        );
        assert_eq!(doc.document(), Value::Null, "the assembled value is freed");
        assert_eq!(doc.served(false), doc.served(true), "written once");
        assert!(doc.add(r#"{"paths": {"/api/late": {}}}"#).is_err());
    }

    #[test]
    fn the_kernel_document_is_openapi_3_1() {
        let doc = ApiDoc::new().document();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(
            doc["paths"]["/api/ping"]["get"]["responses"]["5XX"]["$ref"],
            "#/components/responses/ServerError"
        );
    }

    #[test]
    fn fragments_add_operations_but_never_replace_them() {
        let doc = ApiDoc::new();
        let operation = |method: &str| {
            json!({"paths": {"/api/things/act": {method: {"responses": {"200": {"description": "ok"}}}}}})
                .to_string()
        };
        let login = operation("post");
        doc.add(&login).expect("a new path");
        doc.add(&operation("get"))
            .expect("a new method on a known path");
        let item = &doc.document()["paths"]["/api/things/act"];
        assert!(item["get"].is_object() && item["post"].is_object());
        assert!(
            doc.add(&login).is_ok(),
            "an identical operation is the same one"
        );
        let other = login.replace("\"ok\"", "\"other\"");
        let refused = doc.add(&other).expect_err("a different operation");
        assert!(refused.contains("/api/things/act/post"), "{refused}");
        let redefined = json!({"components": {"schemas": {"Error": {"type": "string"}}}});
        assert!(doc.add(&redefined.to_string()).is_err());
        assert!(doc.add(r#"{"info": {}}"#).is_err());
    }
}
