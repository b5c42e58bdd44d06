//! HTTP to an instance by its base URL (ureq): answers whatever their body, JSON calls.

#[allow(unused_imports)]
use super::*;

/// An answer, whatever its body.
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) etag: Option<String>,
    pub(super) content_type: Option<String>,
    pub(super) body: Vec<u8>,
}

impl Answer {
    #[track_caller]
    pub(super) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}, status {}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

pub(super) fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        // Generous: a loaded CI machine, or a deployment far away. Never a timed assertion.
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .new_agent()
}

#[track_caller]
pub(super) fn send(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Answer {
    try_send(base, method, path, token, content_type, body).unwrap_or_else(|e| panic!("{e}"))
}

/// A request; an error when no whole answer came back.
pub(super) fn try_send(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Result<Answer, String> {
    let url = format!("{base}{path}");
    let mut request = ureq::http::Request::builder().method(method).uri(&url);
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    if let Some(content_type) = content_type {
        request = request.header("Content-Type", content_type);
    }
    let mut response = agent()
        .run(request.body(body).expect("a request"))
        .map_err(|e| format!("{method} {url}: no answer: {e}"))?;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (etag, content_type) = (header("etag"), header("content-type"));
    let body = response
        .body_mut()
        .with_config()
        .limit(16 * 1024 * 1024)
        .read_to_vec()
        .map_err(|e| format!("{method} {url}: body: {e}"))?;
    Ok(Answer {
        status: response.status().as_u16(),
        etag,
        content_type,
        body,
    })
}

/// A JSON request (or none with `body: None`); the status and the JSON answer.
#[track_caller]
pub(super) fn call(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let (content_type, bytes) = match body {
        Some(body) => (Some("application/json"), body.to_string().into_bytes()),
        None => (None, Vec::new()),
    };
    let answer = send(base, method, path, token, content_type, bytes);
    (answer.status, answer.json())
}

#[track_caller]
pub(super) fn expect(answer: (u16, Value), status: u16, message: &str, context: &str) -> Value {
    let (got, body) = answer;
    assert_eq!(
        (got, body["message"].as_str()),
        (status, Some(message)),
        "{context}: {body}"
    );
    body
}
