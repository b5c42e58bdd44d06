//! The throwaway accounts the checks make, and what they check of a token.

#[allow(unused_imports)]
use super::*;

pub(super) fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).expect("OS randomness");
    buffer.iter().map(|b| format!("{b:02x}")).collect()
}

/// A throwaway account the checks make: `<prefix><random>` (at most 12 characters, as
/// usernames are), at example.com.
pub(super) struct User {
    pub(super) name: String,
    pub(super) email: String,
    pub(super) password: String,
}

impl User {
    pub(super) fn new(prefix: &str) -> User {
        assert!(prefix.len() <= 4);
        let name = format!("{prefix}{}", random_hex(4));
        User {
            email: format!("{name}@example.com"),
            name,
            password: PASSWORD.to_owned(),
        }
    }

    pub(super) fn registration(&self) -> Value {
        json!({"username": self.name, "email": self.email,
               "password": self.password, "password_conf": self.password})
    }

    /// Registers through `base`; the session token.
    #[track_caller]
    pub(super) fn sign_up(&self, base: &str) -> String {
        let body = expect(
            call(
                base,
                "POST",
                "/api/auth/register",
                None,
                Some(self.registration()),
            ),
            201,
            "successfully registered",
            &format!("registering {} through {base}", self.name),
        );
        body["auth_token"].as_str().expect("a token").to_owned()
    }

    #[track_caller]
    pub(super) fn log_in(&self, base: &str) -> String {
        let body = expect(
            log_in(base, &self.email, &self.password),
            200,
            "successfully logged in",
            &format!("{} logging in through {base}", self.name),
        );
        body["auth_token"].as_str().expect("a token").to_owned()
    }
}

pub(super) fn log_in(base: &str, email: &str, password: &str) -> (u16, Value) {
    call(
        base,
        "POST",
        "/api/auth/login",
        None,
        Some(json!({"email": email, "password": password})),
    )
}

/// The token reads `user`'s profile through `base`.
#[track_caller]
pub(super) fn assert_works(base: &str, token: &str, user: &User, context: &str) {
    let (status, body) = call(base, "GET", "/api/auth/profile", Some(token), None);
    assert_eq!(status, 200, "{context}: {base}: {body}");
    assert_eq!(
        body["data"]["username"],
        user.name.as_str(),
        "{context}: {base}"
    );
}

/// The token is refused through `base`, as a session that no longer exists.
#[track_caller]
pub(super) fn assert_dead(base: &str, token: &str, context: &str) {
    expect(
        call(base, "GET", "/api/auth/profile", Some(token), None),
        401,
        "provide a valid auth token",
        &format!("{context}: {base}"),
    );
}
