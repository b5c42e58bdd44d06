//! Validated domain types, parsed at the boundary: past a handler's first lines an invalid
//! username, email or password cannot exist. Failures are FitTrackee's lines, each ending in
//! "\n", so a handler can join them in the contract's order.

use std::fmt;

use crate::address;

/// Passwords longer than this are refused before any hashing: argon2 on a megabyte is a
/// denial of service, and NIST SP 800-63B asks for at least 64.
pub const MAX_PASSWORD_LENGTH: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

/// An address that passed `crate::address`'s rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    stored: String,
    key: String,
}

/// A new password that passed the policy. Debug never shows it.
#[derive(Clone)]
pub struct Password(String);

pub const USERNAME_LENGTH: &str = "username: 3 to 12 characters required\n";
pub const USERNAME_CHARACTERS: &str =
    "username: only alphanumeric characters and the underscore character \"_\" allowed\n";
pub const EMAIL_INVALID: &str = "email: valid email must be provided\n";
pub const PASSWORDS_DIFFER: &str = "password: password and password confirmation do not match\n";
/// A password zxcvbn scores below `passwords.min_strength`: on a breached-password list, a
/// dictionary word or name, the account's own name or address, or a keyboard, date or repeated
/// pattern (NIST SP 800-63B 5.1.1.2).
pub const PASSWORD_GUESSABLE: &str = "password: this password is too common or too easy to guess\n";

/// Whether `text` could be part of a username: ASCII letters, digits and `_` only (a search
/// for anything else matches no one).
pub fn username_text(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl Username {
    /// All the lines that apply, in FitTrackee's order.
    pub fn parse(raw: &str) -> Result<Username, Vec<&'static str>> {
        let mut errors = Vec::new();
        if !(3..=12).contains(&raw.chars().count()) {
            errors.push(USERNAME_LENGTH);
        }
        if raw.is_empty() || !username_text(raw) {
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

impl Email {
    /// An address the courier can deliver, folded to one spelling (`crate::address` has the
    /// rules); anything else is FitTrackee's one email line.
    pub fn parse(raw: &str) -> Result<Email, &'static str> {
        let parsed = address::parse(raw).map_err(|_| EMAIL_INVALID)?;
        Ok(Email {
            stored: parsed.stored,
            key: parsed.key,
        })
    }

    /// The address as the account keeps and shows it.
    pub fn as_str(&self) -> &str {
        &self.stored
    }

    /// The form emails are compared and kept unique by: the local part case-insensitively,
    /// the domain in A-labels, after NFKC folding.
    pub fn key(&self) -> String {
        self.key.clone()
    }
}

/// The identity of an address that was never validated (a login, a reset request): the key of
/// the account it names. Text that is no address under the current rules (an account made under
/// earlier ones, or anything) keeps the earlier key, trimmed and lower-cased, so that such an
/// account can still log in.
pub fn email_key(raw: &str) -> String {
    let raw = raw.trim();
    match Email::parse(raw) {
        Ok(email) => email.key,
        Err(_) => raw.to_lowercase(),
    }
}

/// Longest time zone name kept, as FitTrackee's column.
pub const TIMEZONE_MAX: usize = 50;

/// A time zone as the preferences keep it: 1 to 50 characters; otherwise its line.
pub fn timezone(raw: &str) -> Result<(), String> {
    if raw.trim().is_empty() || raw.chars().count() > TIMEZONE_MAX {
        Err(format!(
            "timezone: 1 to {TIMEZONE_MAX} characters required\n"
        ))
    } else {
        Ok(())
    }
}

/// Why a new password is refused. Its `line` is FitTrackee's message; a caller that needs to
/// tell the cases apart (a page choosing its own words) matches on the variant, never on the
/// line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordProblem {
    /// The password and its confirmation differ.
    Differ,
    /// Shorter than `passwords.min_length`.
    TooShort { min_length: usize },
    /// Longer than [`MAX_PASSWORD_LENGTH`].
    TooLong,
    /// zxcvbn scores it below `passwords.min_strength` (`Passwords::screen`).
    Guessable,
}

impl PasswordProblem {
    pub fn line(&self) -> String {
        match self {
            PasswordProblem::Differ => PASSWORDS_DIFFER.to_owned(),
            PasswordProblem::TooShort { min_length } => {
                format!("password: {min_length} characters required\n")
            }
            PasswordProblem::TooLong => {
                format!("password: {MAX_PASSWORD_LENGTH} characters maximum\n")
            }
            PasswordProblem::Guessable => PASSWORD_GUESSABLE.to_owned(),
        }
    }
}

impl Password {
    /// Checks a new password and its confirmation. Problems in FitTrackee's order; a password
    /// over 128 characters is refused here, before anything hashes it.
    pub fn parse(
        raw: &str,
        confirmation: &str,
        min_length: usize,
    ) -> Result<Password, Vec<PasswordProblem>> {
        let mut errors = Vec::new();
        if raw != confirmation {
            errors.push(PasswordProblem::Differ);
        }
        let length = raw.chars().count();
        if length < min_length {
            errors.push(PasswordProblem::TooShort { min_length });
        }
        if length > MAX_PASSWORD_LENGTH {
            errors.push(PasswordProblem::TooLong);
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

    /// zxcvbn's score, 0 to 4, counting `context` (the account's own names and address) as
    /// known words. It costs about 0.1 ms for a usual password and up to about 5 ms at 128
    /// characters: callers run it off the async workers (`Passwords::screen`).
    pub fn strength(&self, context: &[&str]) -> u8 {
        zxcvbn::zxcvbn(&self.0, context).score().into()
    }
}

/// What zxcvbn should treat as known words for an account: its name, its address and the
/// address's local part.
pub fn account_words(username: &str, email: &str) -> Vec<String> {
    let mut words = vec![username.to_owned(), email.to_owned()];
    if let Some((local, _)) = email.rsplit_once('@') {
        words.push(local.to_owned());
    }
    words
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// zxcvbn is Stride's patch of the published crate (vendor/zxcvbn/STRIDE-PATCH.md: its word
    /// lists held in less memory). Its estimates are the published 3.1.1's, which gave these
    /// (and the same on 3,007 generated passwords, as the patch's notes say): list words, a word
    /// and digits, words run together, random strings, a reversed word beside an account word,
    /// l33t, the empty string and one character repeated.
    #[test]
    fn strength_is_the_published_zxcvbn_s() {
        let context = ["quokka_user", "quokka@example.com", "quokka"];
        for (password, score, guesses) in [
            ("aronalquokka", 1, 617_800),
            ("gertrudis", 1, 3_608),
            ("DwAJJHoyRCWd0", 4, 9_360_100_000_000),
            ("brewton", 1, 5_631),
            ("rourke9149", 3, 117_204_200),
            ("kcolbgibquokka", 1, 818_600),
            ("5lmiC@dJcx#zLEVfO%Ly0r", 4, u64::MAX),
            (
                "gemstonescallaghanaragonesejoshua",
                4,
                1_288_899_013_861_600,
            ),
            ("Unv@Rnish3D", 2, 9_198_217),
            ("dissolvesolearymingledissing", 4, 22_693_272_065_807_680),
            ("password", 0, 3),
            ("Tr0ub4dor&3", 4, 100_000_000_001),
            ("correcthorsebatterystaple", 4, 273_500_327_700_640),
            ("bench-quokka-zephyr", 4, 50_420_800_000_000),
            ("", 0, 0),
        ] {
            let estimate = zxcvbn::zxcvbn(password, &context);
            assert_eq!(
                (u8::from(estimate.score()), estimate.guesses()),
                (score, guesses),
                "{password}"
            );
        }
    }

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
            "user@bücher.example",
        ] {
            assert!(Email::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "plain",
            "a@b",
            "a@@b.co",
            "a b@c.de",
            "a@b.c",
            "<a>@b.co",
            // FitTrackee takes these; lettre cannot send to them, or they pass for another.
            "\"odd user\"@example.com",
            "x@[1.2.3.4]",
            "sam\u{200b}@example.com",
            "sam@exаmple.com",
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
    fn lookups_find_the_folded_account() {
        for (typed, key) in [
            ("sam@example.com", "sam@example.com"),
            ("  Sam@Example.COM ", "sam@example.com"),
            ("ｓａｍ＠ｅｘａｍｐｌｅ．ｃｏｍ", "sam@example.com"),
            ("user@BÜCHER.example", "user@xn--bcher-kva.example"),
            ("user@xn--bcher-kva.example", "user@xn--bcher-kva.example"),
            // Accounts made under FitTrackee's pattern keep their key.
            ("\"Odd User\"@example.com", "\"odd user\"@example.com"),
            ("X@[1.2.3.4]", "x@[1.2.3.4]"),
            ("Élodie@Example.com", "élodie@example.com"),
            ("not an address", "not an address"),
        ] {
            assert_eq!(email_key(typed), key, "{typed}");
        }
    }

    fn lines(problems: Vec<PasswordProblem>) -> Vec<String> {
        problems.iter().map(PasswordProblem::line).collect()
    }

    #[test]
    fn passwords() {
        assert!(Password::parse("12345678", "12345678", 8).is_ok());
        assert_eq!(
            lines(Password::parse("1234567", "7654321", 8).unwrap_err()),
            vec![
                PASSWORDS_DIFFER.to_owned(),
                "password: 8 characters required\n".to_owned()
            ]
        );
        assert_eq!(
            lines(Password::parse("short", "short", 12).unwrap_err()),
            vec!["password: 12 characters required\n".to_owned()]
        );
        let long = "x".repeat(129);
        assert_eq!(
            lines(Password::parse(&long, &long, 8).unwrap_err()),
            vec!["password: 128 characters maximum\n".to_owned()]
        );
        assert_eq!(
            format!("{:?}", Password::parse("secret123", "secret123", 8).ok()),
            "Some(Password(***))"
        );
    }

    #[test]
    fn strength() {
        let score = |raw: &str, context: &[&str]| Password(raw.into()).strength(context);
        // On the breached-password list, a dictionary word, a keyboard walk, a repeat.
        for weak in [
            "12345678",
            "password123",
            "azertyuiop",
            "motdepasse",
            "aaaaaaaaaaaa",
        ] {
            assert!(score(weak, &[]) < 2, "{weak}");
        }
        for strong in ["correct-horse", "Tr0ub4dor&3", "fjdk29sl-q"] {
            assert!(score(strong, &[]) >= 2, "{strong}");
        }
        // The account's own name is a known word.
        let words = account_words("zorbwix93", "zorbwix93@example.com");
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        assert!(score("zorbwix93", &[]) >= 2);
        assert!(score("zorbwix93", &words) < 2);
        assert_eq!(words, ["zorbwix93", "zorbwix93@example.com", "zorbwix93"]);
    }
}

/// The same contract, over generated inputs.
#[cfg(test)]
mod properties {
    use std::sync::LazyLock;

    use proptest::prelude::*;
    use regex::Regex;

    use super::*;

    /// What a username is, said another way.
    static USERNAME: LazyLock<Regex> =
        LazyLock::new(|| Regex::new("^[A-Za-z0-9_]{3,12}$").expect("the pattern compiles"));

    /// Any text: every character, NUL and newlines included.
    fn text(max: usize) -> impl Strategy<Value = String> {
        proptest::collection::vec(any::<char>(), 0..=max).prop_map(String::from_iter)
    }

    /// A password policy's minimum, then a password (any length, or one at a boundary: the
    /// minimum, or the 128 maximum), and a confirmation (the same, or anything).
    fn password_case() -> impl Strategy<Value = (usize, String, String)> {
        (1usize..=MAX_PASSWORD_LENGTH, any::<bool>(), text(140)).prop_flat_map(
            |(min_length, same, other)| {
                let length = prop_oneof![
                    0usize..=140,
                    min_length.saturating_sub(1)..=min_length + 1,
                    MAX_PASSWORD_LENGTH - 1..=MAX_PASSWORD_LENGTH + 2,
                ];
                let password = length.prop_flat_map(|n| {
                    proptest::collection::vec(any::<char>(), n).prop_map(String::from_iter)
                });
                (Just(min_length), password).prop_map(move |(min_length, password)| {
                    let confirmation = if same {
                        password.clone()
                    } else {
                        other.clone()
                    };
                    (min_length, password, confirmation)
                })
            },
        )
    }

    /// Mostly near-usernames (allowed characters, and a few others), sometimes anything.
    fn username_like() -> impl Strategy<Value = String> {
        prop_oneof![
            "[A-Za-z0-9_]{0,15}",
            "[A-Za-z0-9_ .@\\-éß\u{0}\n]{0,15}",
            text(20),
        ]
    }

    /// A well-formed address: dot-separated atoms of the characters RFC 5322 allows unquoted,
    /// at a domain of letter-digit-hyphen labels (a letter or digit at each end, and no hyphens
    /// in the third and fourth places: RFC 5891 reserves those labels, `xn--` for punycode,
    /// and `Xn--a` is no valid one) ending in an alphabetic top-level domain.
    fn address() -> impl Strategy<Value = String> {
        let atom = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~\\-]{1,16}";
        let local = proptest::collection::vec(atom, 1..4).prop_map(|atoms| atoms.join("."));
        let label = "[A-Za-z0-9]([A-Za-z0-9\\-]{0,18}[A-Za-z0-9])?"
            .prop_filter("a reserved label", |l: &String| l.get(2..4) != Some("--"));
        let labels = proptest::collection::vec(label, 1..4);
        let domain = (labels, "[A-Za-z]{2,10}")
            .prop_map(|(labels, top)| format!("{}.{top}", labels.join(".")));
        (local, domain).prop_map(|(local, domain)| format!("{local}@{domain}"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn usernames_are_3_to_12_ascii_word_characters(raw in username_like()) {
            let mut expected = Vec::new();
            if !(3..=12).contains(&raw.chars().count()) {
                expected.push(USERNAME_LENGTH);
            }
            if raw.is_empty() || !raw.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                expected.push(USERNAME_CHARACTERS);
            }
            prop_assert_eq!(expected.is_empty(), USERNAME.is_match(&raw));
            match Username::parse(&raw) {
                Ok(username) => {
                    prop_assert!(expected.is_empty(), "accepted {:?}", raw);
                    prop_assert_eq!(username.as_str(), raw.as_str());
                }
                Err(lines) => prop_assert_eq!(lines, expected),
            }
        }

        #[test]
        fn any_text_is_an_email_or_the_email_line(raw in text(300)) {
            match Email::parse(&raw) {
                Ok(email) => {
                    let stored = email.as_str();
                    prop_assert!(stored.len() <= 254 && stored.contains('@'), "accepted {:?}", raw);
                    prop_assert_eq!(Email::parse(stored).map(|e| e.key()), Ok(email.key()));
                }
                Err(line) => prop_assert_eq!(line, EMAIL_INVALID),
            }
        }

        #[test]
        fn well_formed_addresses_are_accepted(address in address()) {
            let email = Email::parse(&address);
            prop_assert!(email.is_ok(), "refused {:?}", address);
            let email = email.expect("checked");
            prop_assert_eq!(email.as_str(), address.as_str());
            prop_assert_eq!(email.key(), address.to_lowercase());
        }

        #[test]
        fn addresses_over_254_bytes_are_refused(local in "[a-z]{64}", labels in "[a-z]{190,250}") {
            let address = format!("{local}@{labels}.com");
            prop_assert_eq!(Email::parse(&address).err(), Some(EMAIL_INVALID));
        }

        #[test]
        fn password_lines_come_in_order((min_length, raw, confirmation) in password_case()) {
            let length = raw.chars().count();
            let mut expected = Vec::new();
            if raw != confirmation {
                expected.push(PASSWORDS_DIFFER.to_owned());
            }
            if length < min_length {
                expected.push(format!("password: {min_length} characters required\n"));
            }
            if length > MAX_PASSWORD_LENGTH {
                expected.push(format!("password: {MAX_PASSWORD_LENGTH} characters maximum\n"));
            }
            match Password::parse(&raw, &confirmation, min_length) {
                Ok(password) => {
                    prop_assert!(expected.is_empty(), "accepted {:?}", raw);
                    prop_assert_eq!(password.into_inner(), raw);
                }
                Err(problems) => prop_assert_eq!(
                    problems.iter().map(PasswordProblem::line).collect::<Vec<_>>(),
                    expected
                ),
            }
        }
    }
}
