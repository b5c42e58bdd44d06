//! The real binary, as a test runs it: `stride` in a folder of its own, killed when dropped,
//! and plain HTTP calls to it.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{free_port, PASSWORD};

pub const BIN: &str = env!("CARGO_BIN_EXE_stride");

/// A running server, killed when dropped (a failing test leaves no process behind).
pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn stride(dir: &Path, database: Option<&str>) -> Command {
    let mut command = Command::new(BIN);
    command
        .current_dir(dir)
        .env_remove("ROCKET_PROFILE")
        .env("ROCKET_LOG_LEVEL", "off");
    for (key, _) in std::env::vars() {
        if key.starts_with("ROCKET_") && key != "ROCKET_LOG_LEVEL" {
            command.env_remove(key);
        }
    }
    if let Some(url) = database {
        command.env("ROCKET_DATABASES", format!("{{main={{url=\"{url}\"}}}}"));
    }
    command
}

pub fn run(command: &mut Command) -> Output {
    command.stdin(Stdio::null()).output().expect("stride runs")
}

pub fn start(dir: &Path, database: Option<&str>) -> Server {
    start_with(dir, database, |_| {})
}

/// Starts `stride serve` in `dir` and waits until it answers; `configure` may add to its
/// environment or redirect its output.
pub fn start_with(
    dir: &Path,
    database: Option<&str>,
    configure: impl FnOnce(&mut Command),
) -> Server {
    start_on(dir, database, free_port(), configure)
}

/// As [`start_with`], on a port chosen beforehand (a server whose `public_url` names it).
pub fn start_on(
    dir: &Path,
    database: Option<&str>,
    port: u16,
    configure: impl FnOnce(&mut Command),
) -> Server {
    let mut command = stride(dir, database);
    command
        .env("ROCKET_PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    configure(&mut command);
    let child = command.spawn().expect("stride starts");
    let mut server = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = server.child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = server.child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("stride exited ({status}): {err}");
        }
        if call(&server, "GET", "/api/ping", None, None).is_some() {
            return server;
        }
        assert!(
            Instant::now() < deadline,
            "stride did not answer within 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
}

/// One request; `None` when nothing answers.
pub fn call(
    server: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Option<(u16, Value)> {
    let url = format!("{}{path}", server.base);
    let mut request = ureq::http::Request::builder().method(method).uri(url);
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let request = request.header("Content-Type", "application/json");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut response = agent().run(request.body(body).expect("request")).ok()?;
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().ok()?;
    Some((
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")),
    ))
}

pub fn call_ok(
    server: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    call(server, method, path, token, body).expect("the server answers")
}

/// Registers sam (password `PASSWORD`) and returns the session token.
pub fn register_sam(server: &Server) -> String {
    let (status, body) = call_ok(
        server,
        "POST",
        "/api/auth/register",
        None,
        Some(
            json!({"username": "sam", "email": "sam@example.com", "password": PASSWORD, "password_conf": PASSWORD}),
        ),
    );
    assert_eq!(status, 201, "{body}");
    body["auth_token"].as_str().expect("token").to_owned()
}
