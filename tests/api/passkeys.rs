//! Passkeys as a second factor (docs/two-factor.md, "Passkeys"): registering, naming and removing
//! them, the login's passkey step, and every refusal. The authenticator is written here from the
//! WebAuthn and CTAP2 specifications (P-256 keys from the `p256` crate, CBOR by hand, `none`
//! attestation), independent of the webauthn-rs code under test; headless Chromium's virtual
//! authenticator runs the same ceremonies end to end (tests/e2e/passkeys.rs).

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::{each_backend, Mail, Reply, TestApp, PASSWORD};

pub(crate) const ORIGIN: &str = "http://localhost:8000";
const REQUIRED: &str = "two-factor authentication required";
const INVALID_CODE: &str = "invalid two-factor authentication code";
const INVALID_STEP: &str = "invalid token, please log in again";

/// A CTAP2 authenticator holding one P-256 credential.
pub(crate) struct Authenticator {
    key: SigningKey,
    credential_id: Vec<u8>,
    counter: u32,
    origin: String,
}

fn cbor_head(major: u8, len: usize, out: &mut Vec<u8>) {
    match len {
        0..=23 => out.push(major << 5 | len as u8),
        24..=255 => out.extend([major << 5 | 24, len as u8]),
        _ => {
            out.push(major << 5 | 25);
            out.extend((len as u16).to_be_bytes());
        }
    }
}

fn cbor_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    cbor_head(2, bytes.len(), out);
    out.extend(bytes);
}

fn cbor_text(text: &str, out: &mut Vec<u8>) {
    cbor_head(3, text.len(), out);
    out.extend(text.as_bytes());
}

impl Authenticator {
    /// A credential whose key and id are derived from `seed` (distinct seeds, distinct
    /// credentials).
    pub(crate) fn new(seed: &str) -> Authenticator {
        let scalar = Sha256::digest(format!("stride test passkey key {seed}").as_bytes());
        let key = SigningKey::from_bytes(&scalar).expect("a P-256 scalar");
        let credential_id =
            Sha256::digest(format!("stride test passkey id {seed}").as_bytes())[..16].to_vec();
        Authenticator {
            key,
            credential_id,
            counter: 0,
            origin: ORIGIN.into(),
        }
    }

    fn id(&self) -> String {
        B64.encode(&self.credential_id)
    }

    /// The COSE_Key (RFC 9053, EC2, ES256) of the credential's public key.
    fn cose_key(&self) -> Vec<u8> {
        let point = self.key.verifying_key().to_encoded_point(false);
        let mut out = vec![0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21];
        cbor_bytes(point.x().expect("x"), &mut out);
        out.push(0x22);
        cbor_bytes(point.y().expect("y"), &mut out);
        out
    }

    /// authenticatorData: the RP id's hash, flags (user present and verified, plus `extra`),
    /// the signature counter, and what follows.
    fn auth_data(&self, rp_id: &str, extra_flags: u8, rest: &[u8]) -> Vec<u8> {
        let mut data = Sha256::digest(rp_id.as_bytes()).to_vec();
        data.push(0x01 | 0x04 | extra_flags);
        data.extend(self.counter.to_be_bytes());
        data.extend(rest);
        data
    }

    fn client_data(&self, kind: &str, challenge: &str) -> Vec<u8> {
        json!({"type": kind, "challenge": challenge, "origin": self.origin, "crossOrigin": false})
            .to_string()
            .into_bytes()
    }

    /// The answer to `navigator.credentials.create` for these options (`publicKey`).
    pub(crate) fn create(&mut self, options: &Value) -> Value {
        let challenge = options["challenge"].as_str().expect("a challenge");
        let rp_id = options["rp"]["id"].as_str().expect("an RP id");
        let mut attested = vec![0u8; 16]; // AAGUID
        attested.extend((self.credential_id.len() as u16).to_be_bytes());
        attested.extend(&self.credential_id);
        attested.extend(self.cose_key());
        let auth_data = self.auth_data(rp_id, 0x40, &attested);
        let mut attestation = vec![0xa3];
        cbor_text("fmt", &mut attestation);
        cbor_text("none", &mut attestation);
        cbor_text("attStmt", &mut attestation);
        attestation.push(0xa0);
        cbor_text("authData", &mut attestation);
        cbor_bytes(&auth_data, &mut attestation);
        json!({
            "id": self.id(),
            "rawId": self.id(),
            "type": "public-key",
            "response": {
                "attestationObject": B64.encode(attestation),
                "clientDataJSON": B64.encode(self.client_data("webauthn.create", challenge)),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
        })
    }

    /// The answer to `navigator.credentials.get` for these options (`publicKey`): the counter
    /// moves on, as a hardware authenticator's does.
    pub(crate) fn get(&mut self, options: &Value) -> Value {
        self.counter += 1;
        self.assert(options, "localhost")
    }

    fn assert(&self, options: &Value, rp_id: &str) -> Value {
        let challenge = options["challenge"].as_str().expect("a challenge");
        let auth_data = self.auth_data(rp_id, 0, &[]);
        let client_data = self.client_data("webauthn.get", challenge);
        let mut signed = auth_data.clone();
        signed.extend(Sha256::digest(&client_data));
        let signature: Signature = self.key.sign(&signed);
        json!({
            "id": self.id(),
            "rawId": self.id(),
            "type": "public-key",
            "response": {
                "authenticatorData": B64.encode(auth_data),
                "clientDataJSON": B64.encode(client_data),
                "signature": B64.encode(signature.to_der().as_bytes()),
                "userHandle": null,
            },
            "clientExtensionResults": {},
        })
    }
}

/// A wrong answer made from sam's and kim's authenticators and the options.
type Forgery = dyn Fn(&mut Authenticator, &mut Authenticator, &Value) -> Value;

fn email(name: &str) -> String {
    format!("{name}@example.com")
}

/// A server whose `public_url` is a domain name (passkeys need one), with these settings too.
async fn app_with(
    backend: &crate::helpers::Backend,
    mail: &Mail,
    tweak: impl FnOnce(rocket::figment::Figment) -> rocket::figment::Figment,
) -> TestApp {
    TestApp::with_mail(backend, mail, |f| tweak(f.merge(("public_url", ORIGIN)))).await
}

/// Starts a registration; the `publicKey` options and the ceremony.
async fn start(app: &TestApp, token: &str) -> (Value, String) {
    let reply = app
        .post_auth(
            "/api/auth/two-factor/passkeys/register",
            token,
            json!({"password": PASSWORD}),
        )
        .await;
    reply.assert_success(
        200,
        "create the passkey, then send the authenticator's answer",
    );
    let data = &reply.body["data"];
    (
        data["options"]["publicKey"].clone(),
        data["ceremony"].as_str().expect("a ceremony").to_owned(),
    )
}

async fn finish(
    app: &TestApp,
    token: &str,
    ceremony: &str,
    name: &str,
    credential: Value,
) -> Reply {
    app.post_auth(
        "/api/auth/two-factor/passkeys",
        token,
        json!({"ceremony": ceremony, "name": name, "credential": credential}),
    )
    .await
}

/// Registers `key` under `name`; the answer's data.
pub(crate) async fn register(
    app: &TestApp,
    token: &str,
    key: &mut Authenticator,
    name: &str,
) -> Value {
    let (options, ceremony) = start(app, token).await;
    let reply = finish(app, token, &ceremony, name, key.create(&options)).await;
    reply.assert_success(201, "passkey added");
    reply.body["data"].clone()
}

/// The step token of a protected account's password login.
async fn step(app: &TestApp, name: &str) -> String {
    let reply = app.login(&email(name), PASSWORD).await;
    reply.assert_error(401, REQUIRED);
    assert!(reply.body.get("auth_token").is_none(), "{}", reply.body);
    reply.body["data"]["step_token"]
        .as_str()
        .expect("a step token")
        .to_owned()
}

/// A login ceremony for a step token: the `publicKey` options and the ceremony.
async fn challenge(app: &TestApp, step_token: &str) -> (Value, String) {
    let reply = app
        .post(
            "/api/auth/two-factor/passkey/challenge",
            json!({"step_token": step_token}),
        )
        .await;
    reply.assert_success(200, "use the passkey, then send the authenticator's answer");
    let data = &reply.body["data"];
    (
        data["options"]["publicKey"].clone(),
        data["ceremony"].as_str().expect("a ceremony").to_owned(),
    )
}

async fn answer(app: &TestApp, step_token: &str, ceremony: &str, credential: Value) -> Reply {
    app.post(
        "/api/auth/two-factor/login",
        json!({"step_token": step_token, "passkey": {"ceremony": ceremony, "credential": credential}}),
    )
    .await
}

#[track_caller]
fn ok(reply: &Reply) {
    assert_eq!(reply.status.code, 200, "{}", reply.body);
    assert_eq!(reply.body["status"], "success", "{}", reply.body);
}

fn names(reply: &Reply) -> Vec<String> {
    reply.body["data"]["passkeys"]
        .as_array()
        .expect("passkeys")
        .iter()
        .map(|p| p["name"].as_str().expect("a name").to_owned())
        .collect()
}

each_backend! {
    async fn a_passkey_is_registered_used_at_login_and_removed(backend) {
        let mail = Mail::new();
        let app = app_with(&backend, &mail, |f| f).await;
        let token = app.register("sam").await;
        let other = app.login(&email("sam"), PASSWORD).await.token();
        // Registering needs the password, as every factor does.
        app.post_auth("/api/auth/two-factor/passkeys/register", &token, json!({"password": "wrong-horse"}))
            .await
            .assert_error(401, "invalid credentials");
        let (options, ceremony) = start(&app, &token).await;
        assert_eq!(options["rp"]["id"], "localhost");
        assert_eq!(options["rp"]["name"], "Stride");
        assert_eq!(options["user"]["name"], "sam");
        assert_eq!(options["authenticatorSelection"]["userVerification"], "required");
        assert!(B64.decode(options["challenge"].as_str().expect("challenge")).expect("base64url").len() >= 16);
        assert_eq!(options["excludeCredentials"], json!([]));
        let mut key = Authenticator::new("sam laptop");
        let reply = finish(&app, &token, &ceremony, "  Laptop  ", key.create(&options)).await;
        reply.assert_success(201, "passkey added");
        let data = &reply.body["data"];
        assert_eq!(data["passkey"]["name"], "Laptop", "trimmed");
        assert!(data["passkey"]["last_used_at"].is_null());
        let codes = data["recovery_codes"].as_array().expect("recovery codes: the first factor");
        assert_eq!(codes.len(), 10);
        // The account's other sessions ended; this one stays.
        app.get("/api/auth/profile", Some(&other)).await.assert_error(401, "provide a valid auth token");
        let status = app.get("/api/auth/two-factor", Some(&token)).await;
        assert_eq!(status.body["data"], json!({
            "totp": false, "enrolment_pending": false, "passkeys": 1, "passkeys_available": true,
            "recovery_codes_left": 10,
        }));
        let texts = mail.wait(&email("sam"), 1).await;
        assert!(texts[0].contains("A passkey named “Laptop” was just added"), "{}", texts[0]);
        // A FitTrackee client gets the message and no session; one that knows asks for a challenge.
        let reply = app.login(&email("sam"), PASSWORD).await;
        reply.assert_error(401, REQUIRED);
        assert_eq!(reply.body["data"]["methods"], json!(["passkey", "recovery_code"]));
        let step_token = reply.body["data"]["step_token"].as_str().expect("step").to_owned();
        let (options, ceremony) = challenge(&app, &step_token).await;
        assert_eq!(options["rpId"], "localhost");
        assert_eq!(options["userVerification"], "required");
        assert_eq!(options["allowCredentials"][0]["id"], B64.encode(&key.credential_id));
        let reply = answer(&app, &step_token, &ceremony, key.get(&options)).await;
        reply.assert_success(200, "successfully logged in");
        let session = reply.token();
        ok(&app.get("/api/auth/profile", Some(&session)).await);
        let list = app.get("/api/auth/two-factor/passkeys", Some(&session)).await;
        assert_eq!(names(&list), ["Laptop"]);
        assert!(list.body["data"]["passkeys"][0]["last_used_at"].is_string(), "{}", list.body);
        // The step token is used up.
        app.post("/api/auth/two-factor/passkey/challenge", json!({"step_token": step_token}))
            .await
            .assert_error(401, INVALID_STEP);
        // Removing needs the password; the last factor takes the recovery codes with it.
        let id = list.body["data"]["passkeys"][0]["id"].as_i64().expect("an id");
        let path = format!("/api/auth/two-factor/passkeys/{id}");
        let wrong = app.send("DELETE", &path, Some(&session), Some(&json!({"password": "wrong-horse"}).to_string())).await;
        wrong.assert_error(401, "invalid credentials");
        let removed = app.send("DELETE", &path, Some(&session), Some(&json!({"password": PASSWORD}).to_string())).await;
        removed.assert_success(200, "passkey removed");
        let status = app.get("/api/auth/two-factor", Some(&session)).await;
        assert_eq!(status.body["data"]["passkeys"], 0);
        assert_eq!(status.body["data"]["recovery_codes_left"], 0);
        app.login(&email("sam"), PASSWORD).await.assert_success(200, "successfully logged in");
        let texts = mail.wait(&email("sam"), 2).await;
        assert!(texts[1].contains("it was your last second factor"), "{}", texts[1]);
    }

    async fn an_assertion_counts_once_for_its_own_ceremony_user_and_origin(backend) {
        let mail = Mail::new();
        let app = app_with(&backend, &mail, |f| f.merge(("two_factor.code_failures_per_account", 100))).await;
        let sam = app.register("sam").await;
        let kim = app.register("kim").await;
        let mut sam_key = Authenticator::new("sam");
        let mut kim_key = Authenticator::new("kim");
        register(&app, &sam, &mut sam_key, "Phone").await;
        register(&app, &kim, &mut kim_key, "Phone").await;
        let step_token = step(&app, "sam").await;
        let (options, ceremony) = challenge(&app, &step_token).await;
        // Another user's passkey, a signature over another challenge, another origin, another
        // RP id: refused, and each refusal uses the ceremony up.
        let cases: Vec<Box<Forgery>> = vec![
            Box::new(|_, kim_key, options| kim_key.get(options)),
            Box::new(|sam_key, _, options| {
                let mut other = options.clone();
                other["challenge"] = json!(B64.encode([7u8; 32]));
                sam_key.get(&other)
            }),
            Box::new(|sam_key, _, options| {
                sam_key.origin = "http://localhost.evil.example:8000".into();
                let answer = sam_key.get(options);
                sam_key.origin = ORIGIN.into();
                answer
            }),
            Box::new(|sam_key, _, options| { sam_key.counter += 1; sam_key.assert(options, "example.com") }),
        ];
        let mut ceremony = ceremony;
        let mut options = options;
        for case in &cases {
            let credential = case(&mut sam_key, &mut kim_key, &options);
            answer(&app, &step_token, &ceremony, credential).await.assert_error(401, INVALID_CODE);
            // The ceremony is gone: even the right answer now fails.
            answer(&app, &step_token, &ceremony, sam_key.get(&options)).await.assert_error(401, INVALID_CODE);
            (options, ceremony) = challenge(&app, &step_token).await;
        }
        // kim's ceremony does not serve sam's step, nor sam's kim's.
        let kim_step = step(&app, "kim").await;
        let (kim_options, kim_ceremony) = challenge(&app, &kim_step).await;
        answer(&app, &step_token, &kim_ceremony, kim_key.get(&kim_options)).await.assert_error(401, INVALID_CODE);
        // A replayed answer (same ceremony twice) opens one session.
        let credential = sam_key.get(&options);
        answer(&app, &step_token, &ceremony, credential.clone()).await.assert_success(200, "successfully logged in");
        let again = step(&app, "sam").await;
        answer(&app, &again, &ceremony, credential).await.assert_error(401, INVALID_CODE);
        // An answer older than the last (a cloned authenticator's counter) is refused.
        let (options, ceremony) = challenge(&app, &again).await;
        let mut clone = Authenticator::new("sam");
        answer(&app, &again, &ceremony, clone.get(&options)).await.assert_error(401, INVALID_CODE);
        // The step token is not a session, and a session is not a step token.
        app.get("/api/auth/profile", Some(&again)).await.assert_error(401, INVALID_STEP);
        app.post("/api/auth/two-factor/passkey/challenge", json!({"step_token": sam}))
            .await
            .assert_error(401, INVALID_STEP);
    }

    async fn passkey_guesses_are_throttled_with_the_codes(backend) {
        let mail = Mail::new();
        let app = app_with(&backend, &mail, |f| f).await;
        let token = app.register("sam").await;
        let mut key = Authenticator::new("sam");
        register(&app, &token, &mut key, "Phone").await;
        let step_token = step(&app, "sam").await;
        for _ in 0..5 {
            let (options, ceremony) = challenge(&app, &step_token).await;
            let mut other = options.clone();
            other["challenge"] = json!(B64.encode([9u8; 32]));
            answer(&app, &step_token, &ceremony, key.get(&other)).await.assert_error(401, INVALID_CODE);
        }
        let (options, ceremony) = challenge(&app, &step_token).await;
        let reply = answer(&app, &step_token, &ceremony, key.get(&options)).await;
        reply.assert_error(429, "too many requests, please try again later");
    }

    async fn an_expired_ceremony_is_refused(backend) {
        let mail = Mail::new();
        let app = app_with(&backend, &mail, |f| f.merge(("two_factor.passkey_ttl", 1))).await;
        let token = app.register("sam").await;
        let mut key = Authenticator::new("sam");
        let (options, ceremony) = start(&app, &token).await;
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        finish(&app, &token, &ceremony, "Phone", key.create(&options))
            .await
            .assert_error(400, "invalid or expired passkey ceremony, please start again");
        register(&app, &token, &mut key, "Phone").await;
        let step_token = step(&app, "sam").await;
        let (options, ceremony) = challenge(&app, &step_token).await;
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        answer(&app, &step_token, &ceremony, key.get(&options)).await.assert_error(401, INVALID_CODE);
    }

    async fn registrations_are_single_use_unique_bounded_and_named(backend) {
        let mail = Mail::new();
        let app = app_with(&backend, &mail, |f| f.merge(("two_factor.max_passkeys", 2))).await;
        let sam = app.register("sam").await;
        let kim = app.register("kim").await;
        let mut laptop = Authenticator::new("laptop");
        // Names: 1 to 64 characters once trimmed, no control character.
        for name in ["", "   ", "tab\there", &"x".repeat(65)] {
            let (options, ceremony) = start(&app, &sam).await;
            finish(&app, &sam, &ceremony, name, laptop.create(&options)).await.assert_error(400, "invalid passkey name");
        }
        let (options, ceremony) = start(&app, &sam).await;
        let credential = laptop.create(&options);
        finish(&app, &sam, &ceremony, "Laptop", credential.clone()).await.assert_success(201, "passkey added");
        // The ceremony is used up; the same authenticator again is refused (excluded).
        finish(&app, &sam, &ceremony, "Laptop", credential).await
            .assert_error(400, "invalid or expired passkey ceremony, please start again");
        let (options, ceremony) = start(&app, &sam).await;
        assert_eq!(options["excludeCredentials"][0]["id"], B64.encode(&laptop.credential_id));
        finish(&app, &sam, &ceremony, "Again", laptop.create(&options)).await
            .assert_error(400, "invalid passkey");
        // Nor can another account take it.
        let (options, ceremony) = start(&app, &kim).await;
        finish(&app, &kim, &ceremony, "Mine", laptop.create(&options)).await
            .assert_error(400, "this passkey is already registered");
        // A ceremony is its user's: kim cannot finish sam's.
        let (options, ceremony) = start(&app, &sam).await;
        finish(&app, &kim, &ceremony, "Stolen", Authenticator::new("k2").create(&options)).await
            .assert_error(400, "invalid or expired passkey ceremony, please start again");
        // A forged attestation (another challenge) is refused.
        let (options, ceremony) = start(&app, &sam).await;
        let mut forged = options.clone();
        forged["challenge"] = json!(B64.encode([1u8; 32]));
        finish(&app, &sam, &ceremony, "Forged", Authenticator::new("f").create(&forged)).await
            .assert_error(400, "invalid passkey");
        // Garbage where the credential goes: a clear 400, nothing stored.
        let (_, ceremony) = start(&app, &sam).await;
        for credential in [json!("x"), json!({}), json!({"id": "a", "rawId": "!!", "type": "public-key", "response": {}})] {
            finish(&app, &sam, &ceremony, "Junk", credential).await.assert_error(400, "invalid payload");
        }
        let (options, ceremony) = start(&app, &sam).await;
        let mut junk = Authenticator::new("junk").create(&options);
        junk["response"]["attestationObject"] = json!(B64.encode(b"\xa1\x63fmt"));
        finish(&app, &sam, &ceremony, "Junk", junk).await.assert_error(400, "invalid passkey");
        // Two at most.
        register(&app, &sam, &mut Authenticator::new("phone"), "Phone").await;
        app.post_auth("/api/auth/two-factor/passkeys/register", &sam, json!({"password": PASSWORD}))
            .await
            .assert_error(400, "too many passkeys");
        let list = app.get("/api/auth/two-factor/passkeys", Some(&sam)).await;
        assert_eq!(names(&list), ["Laptop", "Phone"]);
        // A second passkey makes no new recovery codes.
        let status = app.get("/api/auth/two-factor", Some(&sam)).await;
        assert_eq!(status.body["data"]["recovery_codes_left"], 10);
        // Renaming: the user's own passkeys only.
        let id = list.body["data"]["passkeys"][1]["id"].as_i64().expect("id");
        let path = format!("/api/auth/two-factor/passkeys/{id}");
        let renamed = app.send("PATCH", &path, Some(&sam), Some(&json!({"name": "Old phone"}).to_string())).await;
        ok(&renamed);
        assert_eq!(renamed.body["data"]["passkey"]["name"], "Old phone");
        app.send("PATCH", &path, Some(&sam), Some(&json!({"name": ""}).to_string())).await
            .assert_error(400, "invalid passkey name");
        app.send("PATCH", &path, Some(&kim), Some(&json!({"name": "Mine"}).to_string())).await
            .assert_error(404, "passkey not found");
        app.send("DELETE", &path, Some(&kim), Some(&json!({"password": PASSWORD}).to_string())).await
            .assert_error(404, "passkey not found");
        let list = app.get("/api/auth/two-factor/passkeys", Some(&sam)).await;
        assert_eq!(names(&list), ["Laptop", "Old phone"]);
    }

    async fn passkeys_and_totp_together(backend) {
        let mail = Mail::new();
        let app = app_with(&backend, &mail, |f| f).await;
        let token = app.register("sam").await;
        let mut key = Authenticator::new("sam");
        let data = register(&app, &token, &mut key, "Phone").await;
        let first = data["recovery_codes"].as_array().expect("codes").clone();
        // A TOTP factor beside the passkey keeps the recovery codes.
        let secret = crate::two_factor::enrol_secret(&app, &token).await;
        let reply = app
            .post_auth("/api/auth/two-factor/totp/confirm", &token,
                json!({"totp_code": crate::two_factor::code(&secret, -1).await}))
            .await;
        reply.assert_success(200, "two-factor authentication enabled");
        assert!(reply.body["data"].get("recovery_codes").is_none(), "{}", reply.body);
        let reply = app.login(&email("sam"), PASSWORD).await;
        assert_eq!(reply.body["data"]["methods"], json!(["totp", "passkey", "recovery_code"]));
        // Removing TOTP alone keeps the passkey and the codes.
        let reply = app
            .send("DELETE", "/api/auth/two-factor/totp", Some(&token),
                Some(&json!({"password": PASSWORD, "recovery_code": first[0]}).to_string()))
            .await;
        reply.assert_success(200, "authenticator app removed");
        let status = app.get("/api/auth/two-factor", Some(&token)).await;
        assert_eq!(status.body["data"]["totp"], false);
        assert_eq!(status.body["data"]["passkeys"], 1);
        assert_eq!(status.body["data"]["recovery_codes_left"], 9);
        let step_token = step(&app, "sam").await;
        let (options, ceremony) = challenge(&app, &step_token).await;
        answer(&app, &step_token, &ceremony, key.get(&options)).await.assert_success(200, "successfully logged in");
        // Disabling removes every factor.
        app.post_auth("/api/auth/two-factor/disable", &token,
            json!({"password": PASSWORD, "recovery_code": first[1]}))
            .await
            .assert_success(200, "two-factor authentication disabled");
        let status = app.get("/api/auth/two-factor", Some(&token)).await;
        assert_eq!(status.body["data"]["passkeys"], 0);
        app.login(&email("sam"), PASSWORD).await.assert_success(200, "successfully logged in");
    }

    /// A narrowed token, even one that allows reads and writes, never adds, renames or
    /// removes a passkey: only a token as minted manages credentials (the `Manage` guard).
    /// It still reads the list.
    async fn a_narrowed_token_cannot_manage_passkeys(backend) {
        let mail = Mail::new();
        let app = app_with(&backend, &mail, |f| f).await;
        let token = app.register("sam").await;
        let mut key = Authenticator::new("sam laptop");
        let data = register(&app, &token, &mut key, "Laptop").await;
        let id = data["passkey"]["id"].as_i64().expect("an id");
        let path = format!("/api/auth/two-factor/passkeys/{id}");
        const NOT_ALLOWED: &str = "this token does not allow this request";
        for code in [r#"check if operation("read");"#, r#"check if operation("read") or operation("write");"#] {
            let narrowed = crate::attenuation::narrow_code(&token, code);
            app.post_auth("/api/auth/two-factor/passkeys/register", &narrowed, json!({"password": PASSWORD}))
                .await
                .assert_error(403, NOT_ALLOWED);
            // A ceremony the full token started cannot be finished with the narrowed one.
            let (options, ceremony) = start(&app, &token).await;
            let mut other = Authenticator::new("sam phone");
            finish(&app, &narrowed, &ceremony, "Phone", other.create(&options))
                .await
                .assert_error(403, NOT_ALLOWED);
            app.send("PATCH", &path, Some(&narrowed), Some(&json!({"name": "Renamed"}).to_string()))
                .await
                .assert_error(403, NOT_ALLOWED);
            app.send("DELETE", &path, Some(&narrowed), Some(&json!({"password": PASSWORD}).to_string()))
                .await
                .assert_error(403, NOT_ALLOWED);
            let list = app.get("/api/auth/two-factor/passkeys", Some(&narrowed)).await;
            ok(&list);
            assert_eq!(names(&list), ["Laptop"], "nothing changed: {}", list.body);
        }
    }

    async fn passkeys_need_a_domain_name(backend) {
        // The default public_url, http://127.0.0.1:8000, names an IP address: WebAuthn has no
        // relying party for it.
        let app = TestApp::new(&backend).await;
        let token = app.register("sam").await;
        let status = app.get("/api/auth/two-factor", Some(&token)).await;
        assert_eq!(status.body["data"]["passkeys_available"], false);
        app.post_auth("/api/auth/two-factor/passkeys/register", &token, json!({"password": PASSWORD}))
            .await
            .assert_error(400, "passkeys are not available on this instance");
        ok(&app.get("/api/auth/two-factor/passkeys", Some(&token)).await);
    }

    async fn a_french_user_is_told_in_french(backend) {
        let mail = Mail::new();
        let app = app_with(&backend, &mail, |f| f).await;
        let token = app.register("sam").await;
        app.post_auth("/api/auth/profile/edit/preferences", &token,
            json!({"timezone": "Europe/Paris", "weekm": true, "language": "fr", "imperial_units": false})).await
            .assert_success(200, "user preferences updated");
        let mut key = Authenticator::new("sam");
        register(&app, &token, &mut key, "Téléphone").await;
        let texts = mail.wait(&email("sam"), 1).await;
        assert!(texts[0].contains("Une clé d'accès nommée « Téléphone » vient d'être ajoutée"), "{}", texts[0]);
    }

    async fn the_passkey_page_runs_only_its_own_script(backend) {
        let app = TestApp::new(&backend).await;
        let page = app.raw("GET", "/two-factor/passkeys", &[("Accept-Language", "fr-CA,fr;q=0.9")], None).await;
        assert_eq!(page.status.code, 200);
        let csp = page.header("Content-Security-Policy");
        for directive in ["default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"] {
            assert!(csp.contains(directive), "{csp}");
        }
        assert!(!csp.contains("unsafe-eval") && !csp.contains("script-src 'self' 'unsafe-inline'"), "{csp}");
        assert_eq!(page.header("Cache-Control"), "no-store");
        assert_eq!(page.header("Referrer-Policy"), "no-referrer");
        let html = String::from_utf8(page.body.clone()).expect("UTF-8");
        assert!(html.contains("<html lang=\"fr\">"), "{html}");
        assert!(html.contains("Ajouter une clé d'accès"), "{html}");
        assert!(html.contains("<script src=\"passkeys.js\"></script>"), "{html}");
        // Its texts are data the script reads, not code: JSON that parses.
        let start = html.find("id=\"text\">").expect("the texts") + "id=\"text\">".len();
        let end = start + html[start..].find("</script>").expect("their end");
        let texts: Value = serde_json::from_str(&html[start..end]).expect("JSON");
        assert_eq!(texts["messages"]["invalid passkey"], "Cette clé d'accès n'a pas pu être vérifiée.");
        let english = app.raw("GET", "/two-factor/passkeys", &[], None).await;
        assert!(String::from_utf8_lossy(&english.body).contains("Add a passkey"));
        let script = app.raw("GET", "/two-factor/passkeys.js", &[], None).await;
        assert_eq!(script.status.code, 200);
        assert_eq!(script.header("Content-Type"), "text/javascript");
        assert_eq!(script.header("X-Content-Type-Options"), "nosniff");
        let code = String::from_utf8(script.body).expect("UTF-8");
        assert!(code.contains("credentials: \"omit\""), "no cookie: the page's session is its own");
        assert!(!code.contains("eval(") && !code.contains("innerHTML"), "no markup from data");
    }
}
