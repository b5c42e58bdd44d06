//! Languages, parsed at the boundary.
//!
//! - [`LanguageTag`]: what a user may keep as their `language` preference. FitTrackee 0.5
//!   stores what it is sent; Stride stores what is sent when it is a language tag (`en`, `fr`,
//!   `fr-CA`, `pt_BR`, `zh-Hans`: a primary subtag of 1 to 8 ASCII letters, then subtags of 1 to
//!   8 ASCII letters or digits after `-` or `_`, 50 characters at most) and refuses anything
//!   else with [`LANGUAGE_INVALID`].
//! - [`Language`]: what Stride writes in (English or French), chosen from a stored preference
//!   or an `Accept-Language` header. Both are total: any text, including values stored before
//!   the rule above or written into the database by hand, gives a language and never a panic.

use rocket::request::{FromRequest, Outcome, Request};

/// The line a preference that is not a language tag gets (README.md, "Where Stride differs").
pub const LANGUAGE_INVALID: &str =
    "language: valid language tag (such as en, fr or fr-CA) required\n";

/// The longest tag kept: FitTrackee's column width.
pub const LANGUAGE_TAG_MAX: usize = 50;

/// A well-formed language tag, kept as it was sent (tags compare case-insensitively).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LanguageTag(String);

impl LanguageTag {
    pub fn parse(raw: &str) -> Result<LanguageTag, &'static str> {
        if raw.len() > LANGUAGE_TAG_MAX {
            return Err(LANGUAGE_INVALID);
        }
        let mut subtags = raw.split(['-', '_']);
        let primary = subtags.next().unwrap_or_default();
        let primary_ok =
            (1..=8).contains(&primary.len()) && primary.bytes().all(|b| b.is_ascii_alphabetic());
        let rest_ok = subtags
            .all(|s| (1..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric()));
        if primary_ok && rest_ok {
            Ok(LanguageTag(raw.to_owned()))
        } else {
            Err(LANGUAGE_INVALID)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A language Stride writes emails and pages in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Language {
    #[default]
    English,
    French,
}

impl Language {
    /// The folder name of its templates (`templates/email/{code}/…`).
    pub fn code(self) -> &'static str {
        match self {
            Language::English => "en",
            Language::French => "fr",
        }
    }

    /// The language of one tag, by its primary subtag; English for anything Stride does not
    /// write in, and for text that is no tag at all.
    pub fn of_tag(tag: &str) -> Option<Language> {
        let primary = tag.trim().split(['-', '_']).next().unwrap_or_default();
        if ["fr", "fra", "fre"]
            .iter()
            .any(|fr| primary.eq_ignore_ascii_case(fr))
        {
            Some(Language::French)
        } else if ["en", "eng"]
            .iter()
            .any(|en| primary.eq_ignore_ascii_case(en))
        {
            Some(Language::English)
        } else {
            None
        }
    }

    /// The language for a user, from the stored preference, whatever the column holds.
    pub fn of_user(stored: Option<&str>) -> Language {
        stored.and_then(Language::of_tag).unwrap_or_default()
    }

    /// The language an `Accept-Language` header (RFC 9110 §12.5.4) prefers among those Stride
    /// writes: the one with the highest weight (the first of equals), English when none is
    /// acceptable. Entries that do not parse are skipped.
    pub fn from_accept_language(header: &str) -> Language {
        let mut best: Option<(u16, Language)> = None;
        // A header is at most what the HTTP layer let in; the entries looked at are bounded
        // all the same.
        for entry in header.split(',').take(64) {
            let mut parts = entry.split(';');
            let tag = parts.next().unwrap_or_default().trim();
            let mut weight = Some(1000);
            for parameter in parts {
                let Some((name, value)) = parameter.split_once('=') else {
                    weight = None;
                    break;
                };
                if name.trim().eq_ignore_ascii_case("q") {
                    weight = quality(value.trim());
                }
            }
            let (Some(weight), Some(language)) = (weight, Language::of_tag(tag)) else {
                continue;
            };
            if weight > 0 && best.is_none_or(|(w, _)| weight > w) {
                best = Some((weight, language));
            }
        }
        best.map(|(_, language)| language).unwrap_or_default()
    }
}

/// An RFC 9110 weight in thousandths: `0`, `0.5`, `0.125`, `1`, `1.000`.
fn quality(value: &str) -> Option<u16> {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths: u16 = format!("{fraction:0<3}").parse().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// The browser's language (`Accept-Language`), as a request guard; English without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrowserLanguage(pub Language);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for BrowserLanguage {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        // Several header lines are one list (RFC 9110 §5.3).
        let values: Vec<&str> = request.headers().get("Accept-Language").collect();
        Outcome::Success(BrowserLanguage(Language::from_accept_language(
            &values.join(","),
        )))
    }
}

/// How long something lasts (a link, in an email), in words, in `lang` (`en` or `fr`).
pub fn duration_in_words(seconds: u64, lang: &str) -> String {
    let fr = lang == "fr";
    let (n, one, many) = if seconds.is_multiple_of(3600) {
        (
            seconds / 3600,
            if fr { "une heure" } else { "an hour" },
            if fr { "heures" } else { "hours" },
        )
    } else if seconds.is_multiple_of(60) {
        (
            seconds / 60,
            if fr { "une minute" } else { "a minute" },
            "minutes",
        )
    } else {
        (
            seconds,
            if fr { "une seconde" } else { "a second" },
            if fr { "secondes" } else { "seconds" },
        )
    };
    if n == 1 {
        one.to_owned()
    } else {
        format!("{n} {many}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_words() {
        assert_eq!(duration_in_words(3600, "en"), "an hour");
        assert_eq!(duration_in_words(3600, "fr"), "une heure");
        assert_eq!(duration_in_words(7200, "en"), "2 hours");
        assert_eq!(duration_in_words(1800, "fr"), "30 minutes");
        assert_eq!(duration_in_words(60, "en"), "a minute");
        assert_eq!(duration_in_words(90, "fr"), "90 secondes");
    }

    #[test]
    fn tags() {
        for ok in [
            "en",
            "fr",
            "FR",
            "fr-CA",
            "pt_BR",
            "zh-Hans",
            "zh_Hans",
            "sr-Latn-RS",
            "x-klingon",
            "de-CH-1996",
        ] {
            assert_eq!(
                LanguageTag::parse(ok).map(|t| t.into_inner()),
                Ok(ok.to_owned())
            );
        }
        let long = format!("en{}", "-abcdefgh".repeat(6));
        for bad in [
            "",
            " ",
            "fr ",
            " fr",
            "é",
            "fré",
            "fr-",
            "-fr",
            "fr--CA",
            "fr_",
            "français",
            "fr-abcdefghi",
            "1fr",
            "fr;q=1",
            "fr,en",
            "fr\u{0}",
            "fr\n",
            "\u{200b}fr",
            "*",
            "<script>",
            long.as_str(),
        ] {
            assert_eq!(LanguageTag::parse(bad), Err(LANGUAGE_INVALID), "{bad:?}");
        }
    }

    #[test]
    fn stored_preferences_whatever_they_are() {
        for (stored, language) in [
            (Some("fr"), Language::French),
            (Some("FR-ca"), Language::French),
            (Some("fra"), Language::French),
            (Some(" fr "), Language::French),
            (Some("fr_BE"), Language::French),
            (Some("de"), Language::English),
            (Some("français"), Language::English),
            (Some("frx"), Language::English),
            (Some(""), Language::English),
            (None, Language::English),
            // What used to panic: a multi-byte character across the second byte.
            (Some("aé"), Language::English),
            (Some("é"), Language::English),
            (Some("\u{1F600}"), Language::English),
            (Some("f\u{301}r"), Language::English),
        ] {
            assert_eq!(Language::of_user(stored), language, "{stored:?}");
        }
    }

    #[test]
    fn accept_language() {
        for (header, language) in [
            ("fr", Language::French),
            ("fr-FR,fr;q=0.9,en;q=0.5", Language::French),
            ("en-US,en;q=0.9,fr;q=0.8", Language::English),
            ("de, fr;q=0.5", Language::French),
            ("de", Language::English),
            ("fr;q=0", Language::English),
            ("en;q=0.2, fr;q=0.7", Language::French),
            ("en;q=0.7, fr;q=0.7", Language::English),
            ("fr;q=2", Language::English),
            ("fr;q=0.1234", Language::English),
            ("fr;q=", Language::English),
            ("fr;garbage", Language::English),
            ("*", Language::English),
            ("", Language::English),
            (";;;,,,", Language::English),
            ("é", Language::English),
            ("aé,fr", Language::French),
            ("\u{1F600};q=0.9, fr;q=0.8", Language::French),
            ("FR-ca ; Q = 0.5", Language::French),
        ] {
            assert_eq!(
                Language::from_accept_language(header),
                language,
                "{header:?}"
            );
        }
        assert_eq!(quality("1.000"), Some(1000));
        assert_eq!(quality("0.05"), Some(50));
        assert_eq!(quality("1.001"), None);
        assert_eq!(quality("-0"), None);
    }
}

/// The same, over generated text: nothing panics, and what is accepted is what the rule says.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::collection::vec(any::<char>(), 0..80).prop_map(String::from_iter),
            "[a-zA-Z]{1,8}([-_][a-zA-Z0-9]{1,8}){0,4}",
            "[a-zé\u{301}\u{200b}_;=,. -]{0,20}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn any_text_is_a_language_and_maybe_a_tag(raw in text()) {
            let _ = Language::of_user(Some(&raw));
            let _ = Language::from_accept_language(&raw);
            let _ = Language::of_tag(&raw);
            if let Ok(tag) = LanguageTag::parse(&raw) {
                prop_assert!(raw.is_ascii() && raw.len() <= LANGUAGE_TAG_MAX);
                prop_assert!(raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
                prop_assert_eq!(tag.as_str(), raw.as_str());
            }
        }
    }
}
