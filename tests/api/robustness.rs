//! Whatever a client sends, the answer is FitTrackee's JSON envelope with a 2xx or 4xx status:
//! never a 5xx, never HTML, never a hang. Malformed bodies on every JSON endpoint, the body
//! limits, and arbitrary multipart bodies on the picture upload (property-based).

use std::io::Cursor;

use image::{DynamicImage, ImageFormat};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use serde_json::{json, Value};

use crate::helpers::{each_backend, RawReply, TestApp, PASSWORD};

/// `limits.json`: the largest body a JSON endpoint reads.
const JSON_LIMIT: usize = 64 * 1024;
const INVALID_PAYLOAD: &str = "invalid payload";
const TOO_LARGE: &str = "error, payload too large";

/// A JSON endpoint and a body it takes.
struct Endpoint {
    method: &'static str,
    path: &'static str,
    body: Value,
    /// Keys that may be null.
    nullable: &'static [&'static str],
    /// Keys that may be left out.
    optional: &'static [&'static str],
    /// A key holding text, where the malformed text goes (an unknown key where there is none).
    text: &'static str,
}

fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint {
            method: "POST",
            path: "/api/auth/register",
            body: json!({"username": "robust", "email": "robust@example.com",
                         "password": PASSWORD, "password_conf": PASSWORD}),
            // With cookies on (the default), FitTrackee 1.x's client leaves it out.
            nullable: &["password_conf"],
            optional: &["password_conf"],
            text: "username",
        },
        Endpoint {
            method: "POST",
            path: "/api/auth/login",
            body: json!({"email": "admin@example.com", "password": PASSWORD}),
            nullable: &[],
            optional: &[],
            text: "email",
        },
        Endpoint {
            method: "POST",
            path: "/api/auth/profile/edit",
            body: json!({"first_name": "Sam", "last_name": null, "location": "Lyon", "bio": null,
                         "birth_date": "1985-07-14", "password": null, "password_conf": null}),
            nullable: &[
                "first_name",
                "last_name",
                "location",
                "bio",
                "birth_date",
                "password",
                "password_conf",
            ],
            optional: &["password", "password_conf"],
            text: "first_name",
        },
        Endpoint {
            method: "POST",
            path: "/api/auth/profile/edit/preferences",
            body: json!({"timezone": "Europe/Paris", "weekm": true, "language": "fr",
                         "imperial_units": false}),
            nullable: &["language"],
            optional: &[],
            text: "timezone",
        },
        Endpoint {
            method: "POST",
            path: "/api/auth/password/reset-request",
            body: json!({"email": "admin@example.com"}),
            nullable: &[],
            optional: &[],
            text: "email",
        },
        Endpoint {
            method: "POST",
            path: "/api/auth/password/update",
            body: json!({"token": "not-a-token", "password": PASSWORD, "password_conf": PASSWORD}),
            nullable: &["password_conf"],
            optional: &["password_conf"],
            text: "token",
        },
        Endpoint {
            method: "PATCH",
            path: "/api/config",
            // Null leaves a setting as it is.
            body: json!({"max_users": 0, "max_single_file_size": 1_048_576,
                         "max_zip_file_size": 10_485_760, "gpx_limit_import": 10,
                         "is_registration_enabled": true}),
            nullable: &[
                "max_users",
                "max_single_file_size",
                "max_zip_file_size",
                "gpx_limit_import",
                "is_registration_enabled",
            ],
            optional: &[
                "max_users",
                "max_single_file_size",
                "max_zip_file_size",
                "gpx_limit_import",
                "is_registration_enabled",
            ],
            text: "note",
        },
    ]
}

/// Values of every JSON type, and numbers no field takes.
fn samples() -> Vec<Value> {
    vec![
        json!("text"),
        json!(""),
        json!(7),
        json!(-1),
        json!(1.5),
        json!(u64::MAX),
        json!(-1e300),
        json!(true),
        Value::Null,
        json!(["text"]),
        json!([]),
        json!({"text": 1}),
    ]
}

/// Whether `value` has the JSON type of `expected` (strings, booleans, integers in i64; a null
/// in a body stands for a nullable string).
fn same_type(expected: &Value, value: &Value) -> bool {
    match expected {
        Value::String(_) | Value::Null => value.is_string(),
        Value::Bool(_) => value.is_boolean(),
        Value::Number(_) => value.is_i64(),
        _ => false,
    }
}

/// `body` with `key` set to `value`.
fn with(body: &Value, key: &str, value: Value) -> Value {
    let mut body = body.clone();
    body[key] = value;
    body
}

/// `body` serialised with the value of `key` replaced by raw bytes (which need not be JSON).
fn with_raw(body: &Value, key: &str, raw: &[u8]) -> Vec<u8> {
    const MARK: &str = "\"@@raw@@\"";
    let text = with(body, key, json!("@@raw@@")).to_string();
    let at = text.find(MARK).expect("the mark");
    let mut out = text.as_bytes()[..at].to_vec();
    out.extend_from_slice(raw);
    out.extend_from_slice(&text.as_bytes()[at + MARK.len()..]);
    out
}

/// `body` with a string at `key` as long as it takes to make exactly `size` bytes.
fn sized(body: &Value, key: &str, size: usize) -> Vec<u8> {
    let empty = with(body, key, json!("")).to_string().len();
    with(body, key, json!("x".repeat(size - empty)))
        .to_string()
        .into_bytes()
}

/// A malformed request and the answer it must get.
struct Case {
    what: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    message: &'static str,
}

fn invalid(what: impl Into<String>, body: impl Into<Vec<u8>>) -> Case {
    Case {
        what: what.into(),
        content_type: Some("application/json"),
        body: body.into(),
        status: 400,
        message: INVALID_PAYLOAD,
    }
}

fn cases(endpoint: &Endpoint) -> Vec<Case> {
    let body = &endpoint.body;
    let text = endpoint.text;
    let valid = body.to_string();
    let first_key = body
        .as_object()
        .and_then(|o| o.keys().next())
        .expect("a key");
    let mut cases = vec![
        invalid("empty body", ""),
        invalid("blank body", " \r\n\t "),
        invalid("unterminated", &valid[..valid.len() - 1]),
        invalid("trailing garbage", format!("{valid}x")),
        invalid("two objects", format!("{valid}{valid}")),
        invalid("a form", "email=a%40b.co&password=x"),
        // JSON, but not an object.
        invalid("an array", "[]"),
        invalid("the body in an array", format!("[{valid}]")),
        invalid("a string", "\"text\""),
        invalid("a number", "42"),
        invalid("null", "null"),
        invalid("true", "true"),
        // Nesting, within the size limit: past serde_json's depth limit, wherever it is.
        invalid("deep arrays", "[".repeat(60_000)),
        invalid(
            "deep arrays in a field",
            format!("{{\"{text}\": {}", "[".repeat(60_000)),
        ),
        invalid(
            "balanced deep arrays in an extra field",
            with_raw(
                body,
                "deep",
                format!("{}{}", "[".repeat(20_000), "]".repeat(20_000)).as_bytes(),
            ),
        ),
        invalid(
            "deep objects in an extra field",
            with_raw(
                body,
                "deep",
                format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000)).as_bytes(),
            ),
        ),
        // Duplicate keys, even with the same value: which one would count?
        invalid(
            "a duplicate key",
            format!(
                "{{{}: {}, {}",
                json!(first_key),
                body[first_key.as_str()],
                &valid[1..]
            ),
        ),
        // Text that is not UTF-8, or not a character.
        invalid("invalid UTF-8", with_raw(body, text, b"\"\xff\xfe\xfd\"")),
        invalid("overlong UTF-8", with_raw(body, text, b"\"\xc0\xaf\"")),
        invalid("a lone surrogate", with_raw(body, text, b"\"\\ud800\"")),
        // NUL: raw (not JSON), escaped (JSON, but no database text holds it), outside a string.
        invalid("a raw NUL byte", with_raw(body, text, b"\"a\x00b\"")),
        invalid(
            "an escaped NUL",
            with(body, text, json!("a\u{0}b")).to_string(),
        ),
        invalid(
            "a NUL in a key",
            with(body, "a\u{0}b", json!(1)).to_string(),
        ),
        invalid("a NUL after the body", format!("{valid}\0")),
        // Over the size limit, whatever the content.
        Case {
            status: 413,
            message: TOO_LARGE,
            ..invalid("100k nested arrays", "[".repeat(100_000))
        },
        Case {
            status: 413,
            message: TOO_LARGE,
            ..invalid("one byte over the limit", sized(body, text, JSON_LIMIT + 1))
        },
        Case {
            status: 413,
            message: TOO_LARGE,
            ..invalid("a megabyte", sized(body, text, 1024 * 1024))
        },
    ];
    // A body that would do must say it is JSON.
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/xml"),
        Some("json"),
    ] {
        cases.push(Case {
            content_type,
            ..invalid(format!("Content-Type {content_type:?}"), valid.clone())
        });
    }
    // Every field, every type it does not take.
    for (key, expected) in body.as_object().expect("an object") {
        for value in samples() {
            let nullable = endpoint.nullable.contains(&key.as_str());
            if same_type(expected, &value) || (value.is_null() && nullable) {
                continue;
            }
            cases.push(invalid(
                format!("{key}: {value}"),
                with(body, key, value).to_string(),
            ));
        }
        if !endpoint.optional.contains(&key.as_str()) {
            let mut missing = body.clone();
            missing.as_object_mut().expect("object").remove(key);
            cases.push(invalid(format!("{key} missing"), missing.to_string()));
        }
    }
    cases
}

/// A 2xx or a 4xx, in the JSON envelope whose status says the same (errors with a message).
#[track_caller]
fn assert_envelope(what: &str, reply: &RawReply) {
    let code = reply.status.code;
    assert!(
        (200..300).contains(&code) || (400..500).contains(&code),
        "{what}: {code} {}",
        String::from_utf8_lossy(&reply.body)
    );
    let body = reply.json().body;
    if code < 300 {
        assert_eq!(body["status"], "success", "{what}: {body}");
    } else {
        assert_eq!(body["status"], "error", "{what}: {body}");
        assert!(body["message"].is_string(), "{what}: {body}");
    }
}

async fn app_with_admin(backend: &crate::helpers::Backend) -> (TestApp, String) {
    // Throttling would turn a long run of refusals into 429s: not what is under test here.
    let app = TestApp::with(backend, |f| f.merge(("throttle.enabled", false))).await;
    let admin = app.admin("admin").await;
    (app, admin)
}

async fn send(
    app: &TestApp,
    endpoint: &Endpoint,
    token: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> RawReply {
    let bearer = format!("Bearer {token}");
    let mut headers = vec![("Authorization", bearer.as_str())];
    if let Some(content_type) = content_type {
        headers.push(("Content-Type", content_type));
    }
    app.raw(endpoint.method, endpoint.path, &headers, Some(body))
        .await
}

each_backend! {
    async fn malformed_json_is_a_json_4xx_everywhere(backend) {
        let (app, admin) = app_with_admin(&backend).await;
        let mut wrong = Vec::new();
        for endpoint in endpoints() {
            for case in cases(&endpoint) {
                let what = format!("{} {}: {}", endpoint.method, endpoint.path, case.what);
                let reply = send(&app, &endpoint, &admin, case.content_type, case.body).await;
                let (code, text) = (reply.status.code, String::from_utf8_lossy(&reply.body));
                let is_json = reply.header_values("Content-Type").first()
                    .is_some_and(|c| c.starts_with("application/json"));
                let expected = serde_json::json!({"status": "error", "message": case.message});
                let body: Option<Value> = serde_json::from_slice(&reply.body).ok();
                if code != case.status || !is_json || body.as_ref() != Some(&expected) {
                    wrong.push(format!("{what}: {code} {text}"));
                }
            }
        }
        assert!(wrong.is_empty(), "{} wrong answers:\n{}", wrong.len(), wrong.join("\n"));
        // Nothing of all that registered anyone or changed a setting.
        assert_eq!(app.count("SELECT COUNT(*) AS n FROM users").await, 1);
        let settings = app.get("/api/config", None).await;
        assert_eq!(settings.body["data"]["max_users"], 0);
    }

    async fn the_json_limit_is_64_kib(backend) {
        let (app, admin) = app_with_admin(&backend).await;
        for endpoint in endpoints() {
            // Exactly at the limit the body is read and judged on its content: a 2xx or a 4xx
            // of the endpoint's own (a name too long, unknown credentials, …), never a 413.
            let body = sized(&endpoint.body, endpoint.text, JSON_LIMIT);
            assert_eq!(body.len(), JSON_LIMIT);
            let what = format!("{} {} at the limit", endpoint.method, endpoint.path);
            let reply = send(&app, &endpoint, &admin, Some("application/json"), body).await;
            assert_envelope(&what, &reply);
            assert_ne!(reply.status.code, 413, "{what}");
            // One byte more is refused unread.
            let body = sized(&endpoint.body, endpoint.text, JSON_LIMIT + 1);
            let reply = send(&app, &endpoint, &admin, Some("application/json"), body).await;
            assert_eq!(reply.status.code, 413, "{} {} over the limit", endpoint.method, endpoint.path);
            reply.json().assert_error(413, TOO_LARGE);
        }
    }

    async fn the_reset_form_limit_is_32_kib(backend) {
        // The browser page's form is read up to Rocket's `limits.form`.
        let (app, _) = app_with_admin(&backend).await;
        let form = |size: usize| {
            let head = "token=x&password_conf=y&password=";
            format!("{head}{}", "z".repeat(size - head.len())).into_bytes()
        };
        let headers = [("Content-Type", "application/x-www-form-urlencoded")];
        // At the limit the form is read, and the page says the link is not valid.
        let at = app.raw("POST", "/password-reset", &headers, Some(form(32 * 1024))).await;
        assert_eq!(at.status.code, 400, "{}", String::from_utf8_lossy(&at.body));
        assert!(at.header("Content-Type").starts_with("text/html"));
        let over = app.raw("POST", "/password-reset", &headers, Some(form(32 * 1024 + 1))).await;
        over.json().assert_error(413, TOO_LARGE);
    }

    async fn json_media_types(backend) {
        let (app, admin) = app_with_admin(&backend).await;
        let login = &endpoints()[1];
        for content_type in ["application/json", "application/json; charset=utf-8",
                             "Application/JSON", "application/merge-patch+json"] {
            let body = login.body.to_string().into_bytes();
            let reply = send(&app, login, &admin, Some(content_type), body).await;
            reply.json().assert_success(200, "successfully logged in");
        }
    }

    #[cfg(feature = "pictures")] // uses the pictures module
    async fn a_nul_in_a_path_is_not_a_server_error(backend) {
        let (app, _) = app_with_admin(&backend).await;
        app.picture("a%00b", &[]).await.json().assert_error(404, "user does not exist");
        app.picture("admin%00", &[]).await.json().assert_error(404, "user does not exist");
    }
}

// The picture upload, property-based: whatever the body, its boundary, the file names and
// the bytes, the answer is a JSON 2xx or 4xx.

fn image_bytes(format: ImageFormat, width: u32, height: u32) -> Vec<u8> {
    let image = match format {
        ImageFormat::Jpeg => DynamicImage::new_rgb8(width, height),
        _ => DynamicImage::new_rgba8(width, height),
    };
    let mut out = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut out), format)
        .expect("encode");
    out
}

/// File contents: noise, real images, images damaged or cut short, and magic bytes with noise.
fn file_content() -> BoxedStrategy<Vec<u8>> {
    let images = vec![
        image_bytes(ImageFormat::Png, 3, 2),
        image_bytes(ImageFormat::Jpeg, 8, 8),
        image_bytes(ImageFormat::Gif, 2, 2),
    ];
    let magic: Vec<&'static [u8]> =
        vec![b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"GIF87a"];
    let image = proptest::sample::select(images);
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        image.clone(),
        (
            image.clone(),
            proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)
        )
            .prop_map(|(mut bytes, flips)| {
                for (at, byte) in flips {
                    let at = at % bytes.len();
                    bytes[at] = byte;
                }
                bytes
            }),
        (image, any::<usize>()).prop_map(|(bytes, cut)| bytes[..cut % bytes.len()].to_vec()),
        (
            proptest::sample::select(magic),
            proptest::collection::vec(any::<u8>(), 0..256)
        )
            .prop_map(|(magic, tail)| [magic, &tail].concat()),
    ]
    .boxed()
}

/// A file name: an allowed extension in any case, another one, none, or anything.
fn file_name() -> BoxedStrategy<String> {
    prop_oneof![
        "[a-zA-Z0-9 ._-]{0,12}\\.(png|PNG|jpg|JPG|jpeg|JpEg|gif|GIF|txt|svg|html|)",
        "\\PC{0,24}",
        Just(String::new()),
        Just("../../etc/passwd.png".to_owned()),
        Just("me.png\"; name=\"other".to_owned()),
    ]
    .boxed()
}

#[derive(Debug, Clone)]
struct Part {
    name: String,
    file_name: Option<String>,
    content: Vec<u8>,
}

fn part() -> impl Strategy<Value = Part> {
    (
        prop_oneof![3 => Just("file".to_owned()), 1 => "\\PC{0,8}"],
        proptest::option::weighted(0.8, file_name()),
        file_content(),
    )
        .prop_map(|(name, file_name, content)| Part {
            name,
            file_name,
            content,
        })
}

#[derive(Debug, Clone)]
struct Upload {
    content_type: Option<String>,
    body: Vec<u8>,
}

/// How the body ends: properly, without its closing line, or cut anywhere.
#[derive(Debug, Clone)]
enum Ending {
    Closed,
    Open,
    Cut(usize),
}

fn multipart_body(boundary: &str, parts: &[Part], ending: &Ending) -> Vec<u8> {
    let parts: Vec<crate::helpers::Part<'_>> = parts
        .iter()
        .map(|p| crate::helpers::Part {
            name: &p.name,
            file_name: p.file_name.as_deref(),
            content: &p.content,
        })
        .collect();
    let mut body = crate::helpers::multipart_parts(boundary, &parts);
    match ending {
        Ending::Closed => body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes()),
        Ending::Open => {}
        Ending::Cut(at) => body.truncate(at % (body.len() + 1)),
    }
    body
}

fn upload() -> impl Strategy<Value = Upload> {
    let boundary = prop_oneof![
        3 => "[0-9A-Za-z'()+_,./:=?-]{1,70}",
        1 => "\\PC{0,80}",
    ];
    let ending = prop_oneof![
        4 => Just(Ending::Closed),
        1 => Just(Ending::Open),
        1 => any::<usize>().prop_map(Ending::Cut),
    ];
    // Mostly multipart bodies, sometimes noise.
    let parts = proptest::option::weighted(0.8, proptest::collection::vec(part(), 0..4));
    let noise = proptest::collection::vec(any::<u8>(), 0..2048);
    let header = 0..8u8;
    (boundary, parts, ending, noise, header).prop_map(|(boundary, parts, ending, noise, header)| {
        let body = match parts {
            Some(parts) => multipart_body(&boundary, &parts, &ending),
            None => noise,
        };
        let content_type = match header {
            0..=3 => Some(format!("multipart/form-data; boundary={boundary}")),
            4 => Some(format!("multipart/form-data; boundary=\"{boundary}\"")),
            5 => Some(format!("multipart/mixed; boundary={boundary}")),
            6 => Some("application/json".to_owned()),
            _ => None,
        };
        Upload { content_type, body }
    })
}

/// The envelope, as a property: a failed case shrinks instead of panicking.
fn check_envelope(reply: &RawReply) -> Result<(), TestCaseError> {
    let code = reply.status.code;
    let text = String::from_utf8_lossy(&reply.body);
    prop_assert!(
        (200..300).contains(&code) || (400..500).contains(&code),
        "{} {}",
        code,
        text
    );
    let is_json = reply
        .header_values("Content-Type")
        .first()
        .is_some_and(|c| c.starts_with("application/json"));
    prop_assert!(is_json, "not JSON: {} {}", code, text);
    let body: Value = serde_json::from_slice(&reply.body)
        .map_err(|e| TestCaseError::fail(format!("invalid JSON ({e}): {text}")))?;
    if code < 300 {
        prop_assert_eq!(&body["status"], "success");
    } else {
        prop_assert_eq!(&body["status"], "error");
        prop_assert!(body["message"].is_string(), "{}", body);
    }
    Ok(())
}

each_backend! {
    async fn any_upload_gets_a_json_answer(backend) {
        let app = TestApp::new(&backend).await;
        let bearer = format!("Bearer {}", app.register("sam").await);
        let handle = tokio::runtime::Handle::current();
        // A bounded number of cases keeps this test quick; the image decoder alone gets many
        // more in the pictures module's unit tests.
        let mut runner = TestRunner::new(ProptestConfig {
            cases: 64,
            failure_persistence: None,
            ..ProptestConfig::default()
        });
        let outcome = tokio::task::block_in_place(|| {
            runner.run(&upload(), |upload| {
                let mut headers = vec![("Authorization", bearer.as_str())];
                if let Some(content_type) = &upload.content_type {
                    headers.push(("Content-Type", content_type));
                }
                let reply = handle.block_on(app.raw("POST", "/api/auth/picture", &headers,
                    Some(upload.body.clone())));
                check_envelope(&reply)
            })
        });
        if let Err(e) = outcome {
            panic!("{e}");
        }
        // And the server still serves.
        assert_eq!(app.get("/api/ping", None).await.status.code, 200);
    }
}
