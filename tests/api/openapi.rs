//! `GET /api/openapi.json` describes exactly what the server mounts: every route and nothing
//! else, in the default configuration and with any module switched off.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::helpers::{each_backend, TestApp};

/// The modules built into this binary (each is a cargo feature, on by default).
const MODULES: &[&str] = &[
    #[cfg(feature = "registration")]
    "registration",
    #[cfg(feature = "sessions")]
    "sessions",
    #[cfg(feature = "profile")]
    "profile",
    #[cfg(feature = "pictures")]
    "pictures",
    #[cfg(feature = "password_reset")]
    "password_reset",
    #[cfg(feature = "users")]
    "users",
    #[cfg(feature = "two_factor")]
    "two_factor",
    #[cfg(feature = "sso")]
    "sso",
];

/// Rocket mounts no route of its own (no file server, no index): every mounted route is API.
/// Were one added that is not, it would be named here, and only here.
const NOT_DESCRIBED: &[(&str, &str)] = &[];

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// An operation: method (lower case) and OpenAPI path (`/api/users/{username}/picture`).
type Operation = (String, String);

async fn document(app: &TestApp) -> Value {
    let reply = app.get("/api/openapi.json", None).await;
    assert_eq!(reply.status.code, 200, "{}", reply.body);
    reply.body
}

/// What Rocket mounted, with `<name>` and `<name..>` written `{name}` as OpenAPI does.
fn mounted(app: &TestApp) -> BTreeSet<Operation> {
    app.client
        .rocket()
        .routes()
        .map(|route| {
            let path = route
                .uri
                .path()
                .split('/')
                .map(|segment| match segment.strip_prefix('<') {
                    Some(name) => {
                        format!("{{{}}}", name.trim_end_matches('>').trim_end_matches(".."))
                    }
                    None => segment.to_owned(),
                })
                .collect::<Vec<_>>()
                .join("/");
            (route.method.as_str().to_ascii_lowercase(), path)
        })
        .filter(|(method, path)| !NOT_DESCRIBED.contains(&(method.as_str(), path.as_str())))
        .collect()
}

fn operations(doc: &Value) -> impl Iterator<Item = (Operation, &Value)> {
    doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("a path item")
                .iter()
                .filter(|(key, _)| METHODS.contains(&key.as_str()))
                .map(move |(method, operation)| ((method.clone(), path.clone()), operation))
        })
}

fn described(doc: &Value) -> BTreeSet<Operation> {
    operations(doc).map(|(operation, _)| operation).collect()
}

#[track_caller]
fn assert_same_operations(app: &TestApp, doc: &Value) {
    let (mounted, described) = (mounted(app), described(doc));
    let undocumented: Vec<_> = mounted.difference(&described).collect();
    let phantom: Vec<_> = described.difference(&mounted).collect();
    assert!(
        undocumented.is_empty(),
        "mounted but not described: {undocumented:?}"
    );
    assert!(phantom.is_empty(), "described but not mounted: {phantom:?}");
}

/// The value a local `$ref` (`#/components/schemas/Error`) points at.
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

/// Every `$ref` anywhere in `value`.
fn references(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                found.push(r.clone());
            }
            map.values().for_each(|v| references(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, found)),
        _ => {}
    }
}

#[track_caller]
fn assert_well_formed(doc: &Value) {
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let mut refs = Vec::new();
    references(doc, &mut refs);
    for reference in refs {
        assert!(
            resolve(doc, &reference).is_some(),
            "{reference} points nowhere"
        );
    }
    let cookies = doc["components"]["securitySchemes"]["cookie"].is_object();
    let mut ids = BTreeSet::new();
    for ((method, path), operation) in operations(doc) {
        let at = format!("{method} {path}");
        assert!(
            ids.insert(operation["operationId"].as_str().expect(&at).to_owned()),
            "{at}: operationId reused"
        );
        let responses = operation["responses"].as_object().expect(&at);
        assert!(!responses.is_empty(), "{at} lists no responses");
        for (status, response) in responses {
            let response = match response["$ref"].as_str() {
                Some(r) => resolve(doc, r).expect(&at),
                None => response,
            };
            assert!(
                response["description"].is_string(),
                "{at} {status}: no description"
            );
        }
        // Every `{name}` of the path is a path parameter, and nothing else is.
        let in_path: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        let declared = declared_parameters(operation, "path");
        assert_eq!(in_path, declared, "{at}: path parameters");
        // Authenticated operations name the bearer scheme, and (cookies are on by default)
        // the browser's cookie, with the CSRF header where they change something; and
        // describe their 401.
        if operation.get("security").is_some() {
            let changes = !matches!(method.as_str(), "get" | "head" | "options")
                || operation["x-changes"] == true;
            let expected = if !cookies {
                serde_json::json!([{"bearer": []}])
            } else if changes {
                serde_json::json!([{"bearer": []}, {"cookie": [], "csrf": []}])
            } else {
                serde_json::json!([{"bearer": []}, {"cookie": []}])
            };
            assert_eq!(operation["security"], expected, "{at}");
            assert!(responses.contains_key("401"), "{at}: no 401");
        }
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

/// The names of an operation's parameters `in` one location (`path`, `query`).
fn declared_parameters<'a>(operation: &'a Value, location: &str) -> BTreeSet<&'a str> {
    operation["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["in"] == location)
        .filter_map(|p| p["name"].as_str())
        .collect()
}

/// The query parameters Rocket routes take (`/password-reset?<token>`) are the ones described.
#[track_caller]
fn assert_same_query_parameters(app: &TestApp, doc: &Value) {
    for route in app.client.rocket().routes() {
        let method = route.method.as_str().to_ascii_lowercase();
        let path = route.uri.path().to_string();
        let Some(operation) = doc["paths"].get(&path).and_then(|item| item.get(&method)) else {
            continue; // a path with parameters: compared as a whole above
        };
        let taken: BTreeSet<&str> = route
            .uri
            .query()
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter_map(|s| s.strip_prefix('<')?.strip_suffix('>'))
            .collect();
        let declared = declared_parameters(operation, "query");
        assert_eq!(taken, declared, "{method} {path}: query parameters");
    }
}

each_backend! {
    async fn describes_every_mounted_route_and_no_other(backend) {
        let app = TestApp::new(&backend).await;
        let doc = document(&app).await;
        assert_well_formed(&doc);
        assert_same_operations(&app, &doc);
        assert_same_query_parameters(&app, &doc);
        // Every module is on by default, so every one of them is described.
        for tag in MODULES.iter().map(|m| m.replace('_', " ")) {
            assert!(operations(&doc).any(|(_, op)| op["tags"][0] == tag.as_str()), "{tag}");
        }
    }

    async fn the_cookie_scheme_is_described_while_cookies_are_on(backend) {
        let on = document(&TestApp::new(&backend).await).await;
        let schemes = &on["components"]["securitySchemes"];
        assert_eq!(schemes["cookie"]["in"], "cookie");
        assert_eq!(schemes["cookie"]["name"], "access_token_cookie");
        assert_eq!(schemes["csrf"]["in"], "header");
        assert_eq!(schemes["csrf"]["name"], "X-CSRF-TOKEN");
        let logout = &on["paths"]["/api/auth/logout"];
        let with_csrf = serde_json::json!([{"bearer": []}, {"cookie": [], "csrf": []}]);
        assert_eq!(logout["get"]["security"], with_csrf, "a logout's GET changes something");
        assert_eq!(logout["post"]["security"], with_csrf);
        assert_eq!(on["paths"]["/api/auth/profile"]["get"]["security"], serde_json::json!([{"bearer": []}, {"cookie": []}]));
        let off = document(&TestApp::with(&backend, |f| f.merge(("cookies.enabled", false))).await).await;
        assert_well_formed(&off);
        assert!(off["components"]["securitySchemes"].get("cookie").is_none());
        assert_eq!(off["paths"]["/api/auth/logout"]["post"]["security"], serde_json::json!([{"bearer": []}]));
    }

    #[cfg(feature = "sso")]
    async fn the_trusted_header_route_is_described_when_configured(backend) {
        let app = TestApp::with(&backend, |f| f.merge((
            "sso",
            serde_json::json!({"trusted_header": {"header": "Remote-User", "proxies": ["10.0.0.0/8"]}}),
        ))).await;
        let doc = document(&app).await;
        assert_well_formed(&doc);
        assert_same_operations(&app, &doc);
        assert!(doc["paths"]["/api/auth/sso/header/login"]["post"].is_object());
    }

    async fn a_module_switched_off_is_not_described(backend) {
        for module in MODULES {
            let off = format!("modules.{module}");
            let app = TestApp::with(&backend, |f| f.merge((off, false))).await;
            let doc = document(&app).await;
            assert_well_formed(&doc);
            assert_same_operations(&app, &doc);
            let tag = module.replace('_', " ");
            let left: Vec<_> =
                operations(&doc).filter(|(_, op)| op["tags"][0] == tag.as_str()).collect();
            if *module == "registration" {
                // Registration off still answers, with its 403 and only that.
                let [((method, path), operation)] = &left[..] else { panic!("{left:?}") };
                assert_eq!((method.as_str(), path.as_str()), ("post", "/api/auth/register"));
                let statuses = operation["responses"].as_object().expect("responses");
                assert_eq!(statuses.keys().collect::<Vec<_>>(), ["403", "5XX"]);
                let reply = app.post("/api/auth/register", serde_json::json!({})).await;
                reply.assert_error(403, "error, registration is disabled");
            } else {
                assert!(left.is_empty(), "{module} is off but described: {left:?}");
            }
        }
    }
}
