//! Validated domain types, parsed at the boundary: past a handler's first lines an invalid
//! username, email or password cannot exist. Failures are FitTrackee's lines, each ending in
//! "\n", so a handler can join them in the contract's order.

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

use crate::config::MAX_PASSWORD_LENGTH;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

/// A new password that passed the policy. Debug never shows it.
#[derive(Clone)]
pub struct Password(String);

pub const USERNAME_LENGTH: &str = "username: 3 to 12 characters required\n";
pub const USERNAME_CHARACTERS: &str =
    "username: only alphanumeric characters and the underscore character \"_\" allowed\n";
pub const EMAIL_INVALID: &str = "email: valid email must be provided\n";
pub const PASSWORDS_DIFFER: &str = "password: password and password confirmation do not match\n";

impl Username {
    /// All the lines that apply, in FitTrackee's order.
    pub fn parse(raw: &str) -> Result<Username, Vec<&'static str>> {
        let mut errors = Vec::new();
        if !(3..=12).contains(&raw.chars().count()) {
            errors.push(USERNAME_LENGTH);
        }
        if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            errors.push(USERNAME_CHARACTERS);
        }
        if errors.is_empty() {
            Ok(Username(raw.to_owned()))
        } else {
            Err(errors)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// FitTrackee's email pattern (fittrackee/users/utils.py), so that what one accepts the other
/// accepts, plus RFC 5321's length limit.
static EMAIL_PATTERN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"^(([^<>()\[\]\\.,;:\s@"]+(\.[^<>()\[\]\\.,;:\s@"]+)*)|(".+"))@((\[[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\])|(([a-zA-Z\-0-9]+\.)+[a-zA-Z]{2,}))$"#,
    )
    .expect("the email pattern compiles")
});

impl Email {
    pub fn parse(raw: &str) -> Result<Email, &'static str> {
        if raw.len() <= 254 && EMAIL_PATTERN.is_match(raw) {
            Ok(Email(raw.to_owned()))
        } else {
            Err(EMAIL_INVALID)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form emails are compared and kept unique by: addresses match case-insensitively.
    pub fn key(&self) -> String {
        email_key(&self.0)
    }
}

/// Case-insensitive identity of an address, for lookups of addresses that were never validated
/// (a login attempt).
pub fn email_key(raw: &str) -> String {
    raw.trim().to_lowercase()
}

impl Password {
    /// Checks a new password and its confirmation. Lines in FitTrackee's order; a password over
    /// 128 characters is refused here, before anything hashes it.
    pub fn parse(
        raw: &str,
        confirmation: &str,
        min_length: usize,
    ) -> Result<Password, Vec<String>> {
        let mut errors = Vec::new();
        if raw != confirmation {
            errors.push(PASSWORDS_DIFFER.to_owned());
        }
        let length = raw.chars().count();
        if length < min_length {
            errors.push(format!("password: {min_length} characters required\n"));
        }
        if length > MAX_PASSWORD_LENGTH {
            errors.push(format!(
                "password: {MAX_PASSWORD_LENGTH} characters maximum\n"
            ));
        }
        if errors.is_empty() {
            Ok(Password(raw.to_owned()))
        } else {
            Err(errors)
        }
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert!(Username::parse("sam_R1").is_ok());
        assert_eq!(Username::parse("ab").unwrap_err(), vec![USERNAME_LENGTH]);
        assert_eq!(
            Username::parse("abcdefghijklm").unwrap_err(),
            vec![USERNAME_LENGTH]
        );
        assert_eq!(
            Username::parse("a b c").unwrap_err(),
            vec![USERNAME_CHARACTERS]
        );
        assert_eq!(
            Username::parse("").unwrap_err(),
            vec![USERNAME_LENGTH, USERNAME_CHARACTERS]
        );
        assert_eq!(
            Username::parse("élodie").unwrap_err(),
            vec![USERNAME_CHARACTERS]
        );
    }

    #[test]
    fn emails() {
        for ok in [
            "a@b.co",
            "first.last@sub.example.org",
            "\"odd user\"@example.com",
            "x@[1.2.3.4]",
        ] {
            assert!(Email::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "plain", "a@b", "a@@b.co", "a b@c.de", "a@b.c", "<a>@b.co",
        ] {
            assert_eq!(Email::parse(bad).unwrap_err(), EMAIL_INVALID, "{bad}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(&long).is_err());
        assert_eq!(
            Email::parse("Sam@Example.COM")
                .map(|e| e.key())
                .ok()
                .as_deref(),
            Some("sam@example.com")
        );
    }

    #[test]
    fn passwords() {
        assert!(Password::parse("12345678", "12345678", 8).is_ok());
        assert_eq!(
            Password::parse("1234567", "7654321", 8).unwrap_err(),
            vec![
                PASSWORDS_DIFFER.to_owned(),
                "password: 8 characters required\n".to_owned()
            ]
        );
        assert_eq!(
            Password::parse("short", "short", 12).unwrap_err(),
            vec!["password: 12 characters required\n".to_owned()]
        );
        let long = "x".repeat(129);
        assert_eq!(
            Password::parse(&long, &long, 8).unwrap_err(),
            vec!["password: 128 characters maximum\n".to_owned()]
        );
        assert_eq!(
            format!("{:?}", Password::parse("secret123", "secret123", 8).ok()),
            "Some(Password(***))"
        );
    }
}
