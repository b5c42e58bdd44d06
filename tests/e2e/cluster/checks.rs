//! The deployment under test, and the checks shared by the local cluster and the acceptance run
//! against a real deployment.

#[allow(unused_imports)]
use super::*;

/// What the checks need to know about a deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    /// Base URLs of the instances, each reached directly (not through the balancer).
    pub urls: Vec<String>,
    /// An instance admin's email and password: for the configuration check.
    pub admin: Option<(String, String)>,
    /// The failed logins an address without an account gets from one client: the smaller of
    /// the deployment's `throttle.login_failures_per_account_and_client` and
    /// `throttle.login_failures_per_account`. For the throttling check.
    pub login_failures: Option<u32>,
}

impl Deployment {
    /// From `STRIDE_ACCEPTANCE_URLS` (comma-separated base URLs, at least two),
    /// `STRIDE_ACCEPTANCE_ADMIN_EMAIL` and `…_PASSWORD`, `STRIDE_ACCEPTANCE_LOGIN_FAILURES`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Deployment, String> {
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let urls: Vec<String> = var("STRIDE_ACCEPTANCE_URLS")
            .ok_or("STRIDE_ACCEPTANCE_URLS is not set (e.g. http://a:8000,http://b:8000)")?
            .split(',')
            .map(|u| u.trim().trim_end_matches('/').to_owned())
            .filter(|u| !u.is_empty())
            .collect();
        if urls.len() < 2 {
            return Err(format!(
                "STRIDE_ACCEPTANCE_URLS: at least two instances are needed, got {urls:?}"
            ));
        }
        if let Some(bad) = urls
            .iter()
            .find(|u| !u.starts_with("http://") && !u.starts_with("https://"))
        {
            return Err(format!(
                "STRIDE_ACCEPTANCE_URLS: {bad} is not an http(s) URL"
            ));
        }
        let admin = match (
            var("STRIDE_ACCEPTANCE_ADMIN_EMAIL"),
            var("STRIDE_ACCEPTANCE_ADMIN_PASSWORD"),
        ) {
            (Some(email), Some(password)) => Some((email, password)),
            (None, None) => None,
            _ => {
                return Err(
                    "STRIDE_ACCEPTANCE_ADMIN_EMAIL and STRIDE_ACCEPTANCE_ADMIN_PASSWORD \
                            go together"
                        .into(),
                )
            }
        };
        let login_failures = var("STRIDE_ACCEPTANCE_LOGIN_FAILURES")
            .map(|n| {
                n.trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or(format!(
                        "STRIDE_ACCEPTANCE_LOGIN_FAILURES: {n} is not a limit"
                    ))
            })
            .transpose()?;
        Ok(Deployment {
            urls,
            admin,
            login_failures,
        })
    }

    /// The admin's session token, opened through the first instance.
    pub(super) fn admin_token(&self) -> Option<String> {
        let (email, password) = self.admin.as_ref()?;
        let body = expect(
            log_in(&self.urls[0], email, password),
            200,
            "successfully logged in",
            "the admin's login (STRIDE_ACCEPTANCE_ADMIN_*)",
        );
        Some(body["auth_token"].as_str().expect("a token").to_owned())
    }

    /// Every check, in order; what was left out (no admin, no throttling limit) is said.
    pub fn check_all(&self) {
        let admin = self.admin_token();
        // The checks register users: open registration for the duration if it is closed.
        let open = admin
            .as_deref()
            .map(|token| RegistrationSwitch::set(&self.urls[0], token, true));
        let registration = config(&self.urls[0])["is_registration_enabled"].as_bool();
        assert_eq!(
            registration,
            Some(true),
            "registration is closed on {}: the checks register throwaway users; give an \
             admin's credentials (STRIDE_ACCEPTANCE_ADMIN_*) to open it while they run",
            self.urls[0]
        );

        let run = |name: &str, check: &dyn Fn()| {
            eprintln!("cluster check: {name}");
            check();
        };
        run("a token minted by one instance works on all", &|| {
            tokens_cross(&self.urls)
        });
        run("a logout on one instance ends the session on all", &|| {
            logout_crosses(&self.urls)
        });
        run(
            "a password change on one ends the other sessions on all",
            &|| password_change_crosses(&self.urls),
        );
        match &admin {
            Some(token) => run("PATCH /api/config on one applies on all", &|| {
                config_crosses(&self.urls, token)
            }),
            None => eprintln!(
                "cluster check: configuration crossing SKIPPED (no STRIDE_ACCEPTANCE_ADMIN_*)"
            ),
        }
        run("a picture uploaded through one is served by all", &|| {
            pictures_cross(&self.urls)
        });
        run(
            "racing registrations of one name: exactly one wins",
            &|| registration_race(&self.urls, 16),
        );
        match self.login_failures {
            Some(limit) => run(
                "throttling counts failures on all instances together",
                &|| throttling_counts_together(&self.urls, limit),
            ),
            None => {
                eprintln!("cluster check: throttling SKIPPED (no STRIDE_ACCEPTANCE_LOGIN_FAILURES)")
            }
        }
        // Registration as it was, then the admin's session ended.
        drop(open);
        if let Some(token) = admin {
            call(
                &self.urls[0],
                "POST",
                "/api/auth/logout",
                Some(&token),
                None,
            );
        }
    }
}

pub(super) fn config(base: &str) -> Value {
    let (status, body) = call(base, "GET", "/api/config", None, None);
    assert_eq!(status, 200, "GET {base}/api/config: {body}");
    body["data"].clone()
}

/// Sets the registration switch, and puts back what it found when dropped (also when a check
/// fails half-way).
pub(super) struct RegistrationSwitch {
    pub(super) base: String,
    pub(super) token: String,
    pub(super) found: bool,
}

impl RegistrationSwitch {
    pub(super) fn set(base: &str, token: &str, on: bool) -> RegistrationSwitch {
        let found = config(base)["is_registration_enabled"]
            .as_bool()
            .expect("is_registration_enabled");
        patch_registration(base, token, on);
        RegistrationSwitch {
            base: base.to_owned(),
            token: token.to_owned(),
            found,
        }
    }
}

impl Drop for RegistrationSwitch {
    fn drop(&mut self) {
        // Never a panic while a failed check unwinds: that would abort the whole test run.
        let restored = try_send(
            &self.base,
            "PATCH",
            "/api/config",
            Some(&self.token),
            Some("application/json"),
            json!({"is_registration_enabled": self.found})
                .to_string()
                .into_bytes(),
        );
        match restored {
            Ok(answer) if answer.status == 200 => {}
            outcome => {
                let why = outcome.map_or_else(
                    |e| e,
                    |a| format!("{} {}", a.status, String::from_utf8_lossy(&a.body)),
                );
                let message = format!(
                    "could not restore is_registration_enabled={} through {}: {why}",
                    self.found, self.base
                );
                if std::thread::panicking() {
                    eprintln!("{message}");
                } else {
                    panic!("{message}");
                }
            }
        }
    }
}

#[track_caller]
pub(super) fn patch_registration(base: &str, token: &str, on: bool) {
    let (status, body) = call(
        base,
        "PATCH",
        "/api/config",
        Some(token),
        Some(json!({"is_registration_enabled": on})),
    );
    assert_eq!(status, 200, "PATCH {base}/api/config (admin): {body}");
    assert_eq!(body["data"]["is_registration_enabled"], on, "{body}");
}

/// A session opened through any instance works through every instance: the token's key is
/// the deployment's, and the session row is in the shared database.
pub fn tokens_cross(urls: &[String]) {
    let user = User::new("tok");
    let signed_up = user.sign_up(&urls[0]);
    for base in urls {
        assert_works(base, &signed_up, &user, "the sign-up token");
    }
    for minted_by in urls {
        let token = user.log_in(minted_by);
        for base in urls {
            assert_works(
                base,
                &token,
                &user,
                &format!("a token minted by {minted_by}"),
            );
        }
    }
}

/// A logout through one instance is refused by every instance at once (no cache anywhere).
pub fn logout_crosses(urls: &[String]) {
    let user = User::new("out");
    user.sign_up(&urls[0]);
    for (i, through) in urls.iter().enumerate() {
        let token = user.log_in(&urls[(i + 1) % urls.len()]);
        let other = user.log_in(through);
        for base in urls {
            assert_works(base, &token, &user, "before the logout");
        }
        expect(
            call(through, "POST", "/api/auth/logout", Some(&token), None),
            200,
            "successfully logged out",
            &format!("logout through {through}"),
        );
        for base in urls {
            assert_dead(base, &token, &format!("after a logout through {through}"));
            // Only that session ended.
            assert_works(base, &other, &user, "another session of the user");
        }
    }
}

/// A password change through one instance ends the user's other sessions on every instance,
/// keeps the session that made it, and only the new password logs in.
pub fn password_change_crosses(urls: &[String]) {
    let user = User::new("pwd");
    user.sign_up(&urls[0]);
    let others: Vec<String> = urls.iter().map(|base| user.log_in(base)).collect();
    let changer = &urls[1];
    let current = user.log_in(changer);
    let new_password = "cluster-horse-2";
    expect(
        call(
            changer,
            "POST",
            "/api/auth/profile/edit",
            Some(&current),
            Some(
                json!({"first_name": "Sam", "last_name": "Cluster", "location": null,
                        "bio": null, "birth_date": null,
                        "password": new_password, "password_conf": new_password}),
            ),
        ),
        200,
        "user profile updated",
        &format!("password change through {changer}"),
    );
    for base in urls {
        for (minted_by, token) in urls.iter().zip(&others) {
            assert_dead(
                base,
                token,
                &format!("a session opened through {minted_by}, after a password change through {changer}"),
            );
        }
        assert_works(
            base,
            &current,
            &user,
            "the session that changed the password",
        );
    }
    expect(
        log_in(&urls[0], &user.email, &user.password),
        401,
        "invalid credentials",
        "the old password",
    );
    let changed = User {
        password: new_password.to_owned(),
        ..user
    };
    for base in urls {
        changed.log_in(base);
    }
}

/// An admin's `PATCH /api/config` through one instance is what every instance applies at its
/// next request: registration switched off through one is refused by the others.
pub fn config_crosses(urls: &[String], admin_token: &str) {
    let before = config(&urls[0]);
    let switch = RegistrationSwitch::set(&urls[0], admin_token, false);
    let user = User::new("cfg");
    for base in urls {
        assert_eq!(
            config(base)["is_registration_enabled"],
            false,
            "{base} after PATCH through {}",
            urls[0]
        );
        expect(
            call(
                base,
                "POST",
                "/api/auth/register",
                None,
                Some(user.registration()),
            ),
            403,
            "error, registration is disabled",
            &format!(
                "registering through {base} after it was closed through {}",
                urls[0]
            ),
        );
    }
    // And back, through another instance.
    patch_registration(&urls[1], admin_token, true);
    for base in urls {
        assert_eq!(config(base)["is_registration_enabled"], true, "{base}");
    }
    drop(switch);
    assert_eq!(config(&urls[1]), before, "the configuration is as it was");
}

pub(super) fn png(seed: u8) -> Vec<u8> {
    let image = image::RgbImage::from_fn(24, 16, |x, y| {
        image::Rgb([(x * 10) as u8 ^ seed, (y * 15) as u8, seed])
    });
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(image)
        .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
        .expect("png");
    out
}

#[track_caller]
pub(super) fn upload(base: &str, token: &str, content: &[u8]) {
    let answer = send(
        base,
        "POST",
        "/api/auth/picture",
        Some(token),
        Some(&multipart_content_type()),
        file_body("me.png", content),
    );
    let body = answer.json();
    assert_eq!(
        (answer.status, body["message"].as_str()),
        (200, Some("user picture updated")),
        "upload through {base}: {body}"
    );
}

/// Every instance serves the same picture (bytes and ETag); returns them.
#[track_caller]
pub(super) fn served_everywhere(urls: &[String], user: &User) -> (Vec<u8>, String) {
    let path = format!("/api/users/{}/picture", user.name);
    let first = send(&urls[0], "GET", &path, None, None, Vec::new());
    assert_eq!(first.status, 200, "{}{path}", urls[0]);
    assert_eq!(first.content_type.as_deref(), Some("image/png"));
    let etag = first.etag.clone().expect("an ETag");
    for base in &urls[1..] {
        let answer = send(base, "GET", &path, None, None, Vec::new());
        assert_eq!(answer.status, 200, "{base}{path}");
        assert_eq!(answer.etag.as_deref(), Some(etag.as_str()), "{base}{path}");
        assert!(answer.body == first.body, "{base}{path}: other bytes");
    }
    (first.body, etag)
}

/// A picture uploaded through one instance is served by every other, the same bytes under the
/// same ETag; a replacement through another instance replaces it everywhere.
pub fn pictures_cross(urls: &[String]) {
    let user = User::new("pic");
    let token = user.sign_up(&urls[0]);
    upload(&urls[0], &token, &png(1));
    let (bytes, etag) = served_everywhere(urls, &user);
    let decoded = image::load_from_memory(&bytes).expect("a picture");
    assert_eq!((decoded.width(), decoded.height()), (24, 16));

    upload(&urls[1], &token, &png(2));
    let (replaced, new_etag) = served_everywhere(urls, &user);
    assert_ne!(new_etag, etag, "a new picture, a new ETag");
    assert!(replaced != bytes);
}

/// `attempts` concurrent registrations of one name and address (in varying case), spread over
/// the instances: exactly one 201, every other a 400 "sorry, that user already exists", no 5xx.
pub fn registration_race(urls: &[String], attempts: usize) {
    let user = User::new("race");
    let barrier = Barrier::new(attempts);
    // (instance, name sent, status, answer)
    let answers: Vec<(String, String, u16, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..attempts)
            .map(|i| {
                let base = &urls[i % urls.len()];
                let (barrier, user) = (&barrier, &user);
                scope.spawn(move || {
                    let (name, email) = if i % 3 == 1 {
                        (user.name.to_uppercase(), user.email.to_uppercase())
                    } else {
                        (user.name.clone(), user.email.clone())
                    };
                    let body = json!({"username": name, "email": email,
                        "password": user.password, "password_conf": user.password});
                    barrier.wait();
                    let (status, body) = call(base, "POST", "/api/auth/register", None, Some(body));
                    (base.clone(), name, status, body)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a client thread"))
            .collect()
    });
    let winners: Vec<_> = answers.iter().filter(|(_, _, s, _)| *s == 201).collect();
    let losers: Vec<_> = answers.iter().filter(|(_, _, s, _)| *s != 201).collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one registration wins: {answers:?}"
    );
    // A loser is told the user exists, or, when the burst from this one client is larger
    // than `registration.per_client`, that it must wait: attempts in flight count.
    for (base, _, status, body) in &losers {
        let answer = (*status, body["message"].as_str());
        assert!(
            answer == (400, Some(ALREADY_EXISTS)) || answer == (429, Some(TOO_MANY)),
            "a racing duplicate through {base}: {body}"
        );
    }
    // The account is as the winner spelled it; logins match the address in any case.
    let (_, name, _, body) = winners[0];
    let winner = User {
        name: name.clone(),
        ..user
    };
    let token = body["auth_token"].as_str().expect("a token");
    for base in urls {
        assert_works(base, token, &winner, "the winner's token");
    }
    winner.log_in(&urls[urls.len() - 1]);
}

/// Failed logins through all instances count together: with `limit` failures per account,
/// spread over the instances, the next attempt is refused by every instance.
pub fn throttling_counts_together(urls: &[String], limit: u32) {
    // An address with no account: counted the same way, and nobody is locked out.
    let email = format!("nobody{}@example.com", random_hex(6));
    for i in 0..limit as usize {
        let base = &urls[i % urls.len()];
        expect(
            log_in(base, &email, "wrong-password"),
            401,
            "invalid credentials",
            &format!("failure {} of {limit}, through {base}", i + 1),
        );
    }
    for base in urls {
        expect(
            log_in(base, &email, "wrong-password"),
            429,
            TOO_MANY,
            &format!("after {limit} failures in total, through {base}"),
        );
    }
}
