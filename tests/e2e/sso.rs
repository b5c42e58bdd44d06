//! Single sign-on end to end (docs/sso.md): the real binary against a real OpenID provider that
//! nobody here wrote, `oidc-provider` from npm run by node (version pinned in
//! tests/e2e/oidc/package.json, installed into a cache folder on first use; tests/e2e/oidc/
//! provider.mjs only configures it, logs in without a form, and can move its clock or forge its
//! keys for the negative cases). A browser is played by plain HTTP calls that carry the
//! provider's cookies and stop at every redirect.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{call_ok, free_port, register_sam, start_on, Server};

const CLIENT_ID: &str = "stride";
const CLIENT_SECRET: &str = "a-client-secret-for-tests";
const PROVIDER_JS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/oidc/provider.mjs");
const PACKAGE_JSON: &str = include_str!("oidc/package.json");

/// The `node_modules` folder holding the pinned oidc-provider: `STRIDE_TEST_OIDC_MODULES`, or
/// `npm install` of tests/e2e/oidc/package.json into ~/.cache. `None` (the test skips) when node
/// or npm is missing outside CI; in CI that fails.
fn oidc_modules() -> Option<PathBuf> {
    static MODULES: OnceLock<Option<PathBuf>> = OnceLock::new();
    MODULES
        .get_or_init(|| {
            if let Ok(dir) = std::env::var("STRIDE_TEST_OIDC_MODULES") {
                return Some(PathBuf::from(dir));
            }
            let version = serde_json::from_str::<Value>(PACKAGE_JSON).expect("package.json")
                ["dependencies"]["oidc-provider"]
                .as_str()
                .expect("a pinned version")
                .to_owned();
            let home = std::env::var("HOME").unwrap_or_else(|_| "/tmp".into());
            let dir = Path::new(&home).join(format!(".cache/stride-oidc-provider/{version}"));
            let installed = dir.join("node_modules/oidc-provider/package.json");
            if !installed.exists() {
                std::fs::create_dir_all(&dir).expect("cache folder");
                std::fs::write(dir.join("package.json"), PACKAGE_JSON).expect("package.json");
                let status = Command::new("npm")
                    .args([
                        "install",
                        "--no-audit",
                        "--no-fund",
                        "--ignore-scripts",
                        "--omit=dev",
                    ])
                    .current_dir(&dir)
                    .stdin(Stdio::null())
                    .status();
                match status {
                    Ok(s) if s.success() => {}
                    other => {
                        assert!(
                            std::env::var_os("CI").is_none(),
                            "npm install of oidc-provider failed: {other:?}"
                        );
                        eprintln!("skipped: npm cannot install oidc-provider ({other:?})");
                        return None;
                    }
                }
            }
            Some(dir.join("node_modules"))
        })
        .clone()
}

/// The provider, killed when dropped.
struct Idp {
    child: Child,
    port: u16,
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Idp {
    fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// How the provider runs.
#[derive(Default)]
struct IdpOptions {
    clock_skew: i64,
    forge_jwks: bool,
}

fn start_idp(
    modules: &Path,
    port: u16,
    keys: &Path,
    accounts: &Value,
    stride_port: u16,
    options: IdpOptions,
) -> Idp {
    let child = Command::new("node")
        .arg(PROVIDER_JS)
        .env("OIDC_MODULES", modules)
        .env("OIDC_PORT", port.to_string())
        .env("OIDC_KEYS", keys)
        .env("OIDC_ACCOUNTS", accounts.to_string())
        .env("OIDC_CLIENT_ID", CLIENT_ID)
        .env("OIDC_CLIENT_SECRET", CLIENT_SECRET)
        .env(
            "OIDC_REDIRECT_URI",
            format!("http://127.0.0.1:{stride_port}/api/auth/sso/test/callback"),
        )
        .env("OIDC_CLOCK_SKEW", options.clock_skew.to_string())
        .env(
            "OIDC_FORGE_JWKS",
            if options.forge_jwks { "1" } else { "0" },
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("node runs");
    let mut idp = Idp { child, port };
    let deadline = Instant::now() + Duration::from_secs(30);
    let discovery = format!("{}/.well-known/openid-configuration", idp.issuer());
    loop {
        if let Ok(Some(status)) = idp.child.try_wait() {
            panic!("the OpenID provider exited: {status}");
        }
        if get(&discovery, &mut Jar::default()).status == 200 {
            return idp;
        }
        assert!(
            Instant::now() < deadline,
            "the OpenID provider did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A browser's cookies, by name (the provider's only; paths are ignored).
#[derive(Default)]
struct Jar(BTreeMap<String, String>);

struct Hop {
    status: u16,
    location: Option<String>,
    body: String,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .new_agent()
}

fn get(url: &str, jar: &mut Jar) -> Hop {
    let mut request = ureq::http::Request::builder().method("GET").uri(url);
    if !jar.0.is_empty() {
        let cookies: Vec<String> = jar.0.iter().map(|(n, v)| format!("{n}={v}")).collect();
        request = request.header("Cookie", cookies.join("; "));
    }
    let Ok(mut response) = agent().run(request.body(()).expect("request")) else {
        return Hop {
            status: 0,
            location: None,
            body: String::new(),
        };
    };
    for cookie in response.headers().get_all("Set-Cookie") {
        let pair = cookie
            .to_str()
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default();
        if let Some((name, value)) = pair.split_once('=') {
            jar.0
                .insert(name.trim().to_owned(), value.trim().to_owned());
        }
    }
    let location = response
        .headers()
        .get("Location")
        .and_then(|l| l.to_str().ok())
        .map(str::to_owned);
    Hop {
        status: response.status().as_u16(),
        location,
        body: response.body_mut().read_to_string().unwrap_or_default(),
    }
}

fn absolute(base: &str, location: &str) -> String {
    if location.starts_with("http") {
        location.to_owned()
    } else {
        format!("{base}{location}")
    }
}

fn set_login(idp: &Idp, sub: &str) {
    let url = format!("{}/_test/login?sub={sub}", idp.issuer());
    let request = ureq::http::Request::builder().method("POST").uri(url);
    let response = agent()
        .run(request.body(()).expect("request"))
        .expect("provider answers");
    assert_eq!(response.status().as_u16(), 200);
}

/// From Stride's start route through the provider to Stride's callback URL (not opened), and
/// the browser's cookies (Stride's flow cookie among them: one host, as a browser keeps it).
fn to_callback(stride: &Server, idp: &Idp, sub: &str) -> (String, Jar) {
    set_login(idp, sub);
    let mut jar = Jar::default();
    let start = get(
        &format!("{}/api/auth/sso/test/start", stride.base),
        &mut jar,
    );
    assert_eq!(start.status, 303, "{}", start.body);
    let mut url = start.location.expect("to the provider");
    for _ in 0..10 {
        if url.starts_with(&stride.base) {
            return (url, jar);
        }
        let hop = get(&url, &mut jar);
        assert!(
            (300..400).contains(&hop.status),
            "{} at {url}: {}",
            hop.status,
            hop.body
        );
        url = absolute(&idp.issuer(), &hop.location.expect("a redirect"));
    }
    panic!("the provider never sent the browser back");
}

/// The whole browser flow: the callback's answer.
fn login(stride: &Server, idp: &Idp, sub: &str) -> Hop {
    let (callback, mut jar) = to_callback(stride, idp, sub);
    get(&callback, &mut jar)
}

/// The one-time code of a successful callback.
fn code_of(hop: &Hop) -> String {
    assert_eq!(hop.status, 303, "{}", hop.body);
    let location = hop.location.as_deref().expect("to the return URL");
    let (_, code) = location
        .split_once("/done?code=")
        .expect("the code in the return URL");
    code.to_owned()
}

fn exchange(stride: &Server, code: &str) -> (u16, Value) {
    call_ok(
        stride,
        "POST",
        "/api/auth/sso/exchange",
        None,
        Some(json!({ "code": code })),
    )
}

fn refusal(hop: &Hop) -> (u16, String) {
    let reason = hop
        .body
        .split("data-reason=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_default()
        .to_owned();
    (hop.status, reason)
}

/// A provider and a Stride that trusts it, in a fresh folder (SQLite).
struct World {
    stride: Server,
    idp: Idp,
    modules: PathBuf,
    dir: tempfile::TempDir,
    stride_port: u16,
    accounts: Value,
}

fn world(accounts: Value, options: IdpOptions) -> Option<World> {
    world_returning_to(accounts, options, "/done")
}

fn world_returning_to(accounts: Value, options: IdpOptions, return_url: &str) -> Option<World> {
    let modules = oidc_modules()?;
    let dir = tempfile::tempdir().expect("a folder");
    let stride_port = free_port();
    let idp_port = free_port();
    let idp = start_idp(
        &modules,
        idp_port,
        &dir.path().join("keys-a.json"),
        &accounts,
        stride_port,
        options,
    );
    let sso = format!(
        "{{providers=[{{id=\"test\",display_name=\"Test IdP\",issuer=\"{}\",client_id=\"{CLIENT_ID}\",client_secret=\"{CLIENT_SECRET}\"}}],return_url=\"{return_url}\",code_ttl=5}}",
        idp.issuer()
    );
    let stride = start_on(dir.path(), None, stride_port, |command| {
        command
            .env(
                "ROCKET_PUBLIC_URL",
                format!("http://127.0.0.1:{stride_port}"),
            )
            .env("ROCKET_SSO", sso);
    });
    Some(World {
        stride,
        idp,
        modules,
        dir,
        stride_port,
        accounts,
    })
}

fn alice() -> Value {
    json!({
        "alice-sub": {"email": "alice@example.com", "email_verified": true, "preferred_username": "alice"},
        "sam-sub": {"email": "sam@example.com", "email_verified": true, "preferred_username": "samuel"},
        "mallory-sub": {"email": "sam@example.com", "email_verified": false},
        "nobody-sub": {"email": "new@example.com", "email_verified": false},
    })
}

#[test]
fn login_creates_an_account_and_its_code_works_once() {
    let Some(w) = world(alice(), IdpOptions::default()) else {
        return;
    };
    let code = code_of(&login(&w.stride, &w.idp, "alice-sub"));
    let (status, body) = exchange(&w.stride, &code);
    assert_eq!(status, 200, "{body}");
    let token = body["auth_token"].as_str().expect("a token").to_owned();
    let (_, profile) = call_ok(&w.stride, "GET", "/api/auth/profile", Some(&token), None);
    assert_eq!(profile["data"]["username"], "alice");
    assert_eq!(profile["data"]["email"], "alice@example.com");
    // The one-time code used twice.
    let (status, body) = exchange(&w.stride, &code);
    assert_eq!(
        (status, body["message"].as_str()),
        (401, Some("invalid code, please log in again"))
    );
    // An ordinary session, and a linked identity with no password beside it.
    let (_, sessions) = call_ok(&w.stride, "GET", "/api/auth/sessions", Some(&token), None);
    assert_eq!(
        sessions["data"]["sessions"].as_array().map(Vec::len),
        Some(1)
    );
    let (_, identities) = call_ok(
        &w.stride,
        "GET",
        "/api/auth/sso/identities",
        Some(&token),
        None,
    );
    assert_eq!(identities["data"]["identities"][0]["provider"], "test");
    assert_eq!(
        identities["data"]["identities"][0]["provider_name"],
        "Test IdP"
    );
    assert_eq!(identities["data"]["has_password"], false);
    // Logging in again finds the same account through its link.
    let code = code_of(&login(&w.stride, &w.idp, "alice-sub"));
    let (_, body) = exchange(&w.stride, &code);
    let again = body["auth_token"].as_str().expect("a token");
    let (_, profile) = call_ok(&w.stride, "GET", "/api/auth/profile", Some(again), None);
    assert_eq!(profile["data"]["username"], "alice");
    let (_, users) = call_ok(&w.stride, "GET", "/api/users", Some(again), None);
    assert_eq!(
        users["data"]["users"].as_array().map(Vec::len),
        Some(1),
        "{users}"
    );
}

#[test]
fn an_expired_code_opens_nothing() {
    let Some(w) = world(alice(), IdpOptions::default()) else {
        return;
    };
    let code = code_of(&login(&w.stride, &w.idp, "alice-sub"));
    std::thread::sleep(Duration::from_secs(7));
    let (status, _) = exchange(&w.stride, &code);
    assert_eq!(status, 401);
}

#[test]
fn login_links_an_account_by_its_verified_email() {
    let Some(w) = world(alice(), IdpOptions::default()) else {
        return;
    };
    let sam = register_sam(&w.stride);
    // An unverified address links nothing, and makes nothing.
    assert_eq!(
        refusal(&login(&w.stride, &w.idp, "mallory-sub")),
        (403, "unverified".into())
    );
    assert_eq!(
        refusal(&login(&w.stride, &w.idp, "nobody-sub")),
        (403, "unverified".into())
    );
    let (_, identities) = call_ok(
        &w.stride,
        "GET",
        "/api/auth/sso/identities",
        Some(&sam),
        None,
    );
    assert_eq!(
        identities["data"]["identities"].as_array().map(Vec::len),
        Some(0)
    );
    // A verified one logs into sam's account, whatever the provider's username.
    let code = code_of(&login(&w.stride, &w.idp, "sam-sub"));
    let (_, body) = exchange(&w.stride, &code);
    let token = body["auth_token"].as_str().expect("a token");
    let (_, profile) = call_ok(&w.stride, "GET", "/api/auth/profile", Some(token), None);
    assert_eq!(profile["data"]["username"], "sam");
    let (_, identities) = call_ok(
        &w.stride,
        "GET",
        "/api/auth/sso/identities",
        Some(&sam),
        None,
    );
    assert_eq!(
        identities["data"]["identities"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(identities["data"]["has_password"], true);
    // The session is an ordinary one: ended by a logout.
    call_ok(&w.stride, "POST", "/api/auth/logout", Some(token), None);
    let (status, _) = call_ok(&w.stride, "GET", "/api/auth/profile", Some(token), None);
    assert_eq!(status, 401);
}

#[test]
fn a_wrong_state_and_a_replayed_code_are_refused() {
    let Some(w) = world(alice(), IdpOptions::default()) else {
        return;
    };
    let (callback, mut jar) = to_callback(&w.stride, &w.idp, "alice-sub");
    let (prefix, query) = callback.split_once('?').expect("a query");
    let forged: Vec<String> = query
        .split('&')
        .map(|p| {
            if p.starts_with("state=") {
                "state=forged".to_owned()
            } else {
                p.to_owned()
            }
        })
        .collect();
    let wrong = get(&format!("{prefix}?{}", forged.join("&")), &mut jar);
    assert_eq!(refusal(&wrong), (400, "state".into()));
    // The real callback still works once; replayed, its state is spent.
    code_of(&get(&callback, &mut jar));
    assert_eq!(refusal(&get(&callback, &mut jar)), (400, "state".into()));
    // The provider's code replayed under a fresh state: the provider refuses it.
    let old_code = query
        .split('&')
        .find_map(|p| p.strip_prefix("code="))
        .expect("a code")
        .to_owned();
    let (fresh, mut jar) = to_callback(&w.stride, &w.idp, "alice-sub");
    let (prefix, query) = fresh.split_once('?').expect("a query");
    let replayed: Vec<String> = query
        .split('&')
        .map(|p| {
            if p.starts_with("code=") {
                format!("code={old_code}")
            } else {
                p.to_owned()
            }
        })
        .collect();
    let replay = get(&format!("{prefix}?{}", replayed.join("&")), &mut jar);
    assert_eq!(refusal(&replay), (502, "provider".into()));
}

/// Login CSRF: an attacker begins a login, signs in at the provider as themselves, and sends
/// the callback link to a victim. The victim's browser lacks the flow cookie: nothing opens.
#[test]
fn a_callback_in_another_browser_opens_nothing() {
    let Some(w) = world(alice(), IdpOptions::default()) else {
        return;
    };
    let (callback, _attacker) = to_callback(&w.stride, &w.idp, "alice-sub");
    let victim = get(&callback, &mut Jar::default());
    assert_eq!(refusal(&victim), (400, "state".into()));
    // Another browser's cookie does not help either.
    let (callback, _attacker) = to_callback(&w.stride, &w.idp, "alice-sub");
    let (_, mut other) = to_callback(&w.stride, &w.idp, "alice-sub");
    assert_eq!(refusal(&get(&callback, &mut other)), (400, "state".into()));
}

#[test]
fn an_expired_id_token_is_refused() {
    // The provider's clock two hours behind: its ID tokens expired an hour ago.
    let options = IdpOptions {
        clock_skew: -7200,
        ..IdpOptions::default()
    };
    let Some(w) = world(alice(), options) else {
        return;
    };
    assert_eq!(
        refusal(&login(&w.stride, &w.idp, "alice-sub")),
        (401, "token".into())
    );
}

#[test]
fn a_wrongly_signed_id_token_is_refused() {
    let options = IdpOptions {
        forge_jwks: true,
        ..IdpOptions::default()
    };
    let Some(w) = world(alice(), options) else {
        return;
    };
    assert_eq!(
        refusal(&login(&w.stride, &w.idp, "alice-sub")),
        (401, "token".into())
    );
}

#[test]
fn a_key_rotation_is_followed() {
    let Some(mut w) = world(alice(), IdpOptions::default()) else {
        return;
    };
    code_of(&login(&w.stride, &w.idp, "alice-sub"));
    // The provider restarts with a new signing key (and forgets the old one); Stride's cached
    // keys lack it, and the ID token's key id makes it fetch them again.
    let port = w.idp.port;
    let _ = w.idp.child.kill();
    let _ = w.idp.child.wait();
    w.idp = start_idp(
        &w.modules,
        port,
        &w.dir.path().join("keys-b.json"),
        &w.accounts,
        w.stride_port,
        IdpOptions::default(),
    );
    let code = code_of(&login(&w.stride, &w.idp, "alice-sub"));
    assert_eq!(exchange(&w.stride, &code).0, 200);
}

/// A web client on cookie sessions: the callback leads the browser to
/// `/api/auth/sso/complete`, which puts the session in its cookies; the code works once.
#[test]
fn a_browser_completes_the_login_in_its_cookies() {
    let Some(w) = world_returning_to(alice(), IdpOptions::default(), "/api/auth/sso/complete")
    else {
        return;
    };
    let (callback, mut jar) = to_callback(&w.stride, &w.idp, "alice-sub");
    let back = get(&callback, &mut jar);
    assert_eq!(back.status, 303, "{}", back.body);
    let complete = back.location.expect("to the complete route");
    assert!(
        complete.contains("/api/auth/sso/complete?code="),
        "{complete}"
    );
    let done = get(&complete, &mut jar);
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(
        done.location.as_deref(),
        Some(format!("{}/", w.stride.base).as_str())
    );
    assert!(jar
        .0
        .get("access_token_cookie")
        .is_some_and(|v| !v.is_empty()));
    // The browser is logged in by its cookies alone.
    let profile = get(&format!("{}/api/auth/profile", w.stride.base), &mut jar);
    assert_eq!(profile.status, 200, "{}", profile.body);
    assert!(
        profile.body.contains("\"username\":\"alice\""),
        "{}",
        profile.body
    );
    // The code cookie is spent.
    assert_eq!(refusal(&get(&complete, &mut jar)), (400, "code".into()));
}
