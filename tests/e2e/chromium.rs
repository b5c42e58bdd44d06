//! Headless Chromium over WebDriver (Debian's `chromium` and `chromium-driver`), for the tests
//! that drive pages as a user does. Skipped with a message where Chromium is not installed,
//! except in CI, which installs it (`.ci/run`).

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use serde_json::json;

use crate::mail::{free_port, required};

/// chromedriver, killed when dropped (a failing test leaves no orphan: docs/architecture.md,
/// "Tests").
pub struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A browser session and what it runs on; the driver and the profile folder go with it.
pub struct Browser {
    pub client: Client,
    _driver: Driver,
    _profile: tempfile::TempDir,
}

pub fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn installed() -> bool {
    let found = |name: &str| {
        Command::new(name)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    found("chromedriver") && (found("chromium") || found("chromium-browser"))
}

/// Starts chromedriver and a headless Chromium with a fresh profile, English (en-US: dates are
/// typed month first) and a window of `width` × `height`. `None` (the test skips) where
/// Chromium is not installed outside CI; in CI its absence fails the test.
pub async fn start(width: u32, height: u32) -> Option<Browser> {
    if !installed() {
        assert!(
            !required(),
            "Chromium and chromedriver are required in CI (apt-get install chromium chromium-driver)"
        );
        eprintln!(
            "Chromium is not installed (apt-get install chromium chromium-driver): browser test skipped"
        );
        return None;
    }
    let port = free_port();
    let driver = Driver(
        Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts"),
    );
    tokio::task::spawn_blocking(move || wait_for_port(port, "chromedriver"))
        .await
        .expect("join");
    let profile = tempfile::tempdir().expect("profile dir");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"args": [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", "--lang=en-US",
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.path().display()),
        ]}),
    );
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a Chromium session");
    Some(Browser {
        client,
        _driver: driver,
        _profile: profile,
    })
}

/// Saves a screenshot as `<name>.png` in the test target's temporary folder and returns its
/// path.
pub fn save_screenshot(name: &str, png: &[u8]) -> std::path::PathBuf {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.png"));
    let _ = std::fs::write(&path, png);
    path
}
