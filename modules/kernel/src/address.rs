//! Email addresses as Stride takes them: only addresses the courier can deliver through any
//! relay, one account per mailbox however it is spelled. The rules (README.md, "Email
//! addresses"):
//!
//! 1. No invisible or control character anywhere: controls, format characters (zero-width
//!    characters, bidi controls, the soft hyphen, …), default-ignorable code points (variation
//!    selectors, Hangul fillers), spaces of any kind, private-use and unassigned code points.
//! 2. The address is folded with Unicode NFKC: compatibility forms (fullwidth `ｓａｍ＠…`,
//!    ligatures) become the ordinary characters, and composed and decomposed spellings one.
//! 3. The local part is an RFC 5322 dot-atom of ASCII characters, 64 bytes at most: quoted
//!    local parts and non-ASCII local parts (which need SMTPUTF8 on every relay) are refused.
//! 4. The domain is a host name: no IP literal (`[127.0.0.1]`) or bare address, at least two
//!    labels, a top-level label of letters. Internationalised domains are processed with UTS 46
//!    (the `idna` crate): `bücher.example`, `BÜCHER.example` and `xn--bcher-kva.example` are
//!    one domain, compared and delivered as A-labels.
//! 5. No label of the domain mixes scripts (UTS 39 "highly restrictive": Latin with Cyrillic
//!    is refused, Latin with Han and Japanese kana is not), and a Cyrillic or Greek label made
//!    only of letters that look Latin (`раураl`) is refused unless the top-level label is of the
//!    same script and not itself made only of such letters (`рф` vouches, `һс` does not).
//! 6. lettre, which the courier sends with, must take the address as it is stored and as it is
//!    delivered.

use std::str::FromStr;

use icu_normalizer::ComposingNormalizerBorrowed;
use icu_properties::props::{DefaultIgnorableCodePoint, GeneralCategory, Script};
use icu_properties::script::ScriptWithExtensions;
use icu_properties::{CodePointMapData, CodePointSetData};
use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};
use lettre::message::Mailbox;
use lettre::Address;

use crate::error::Failure;

/// RFC 5321: a path holds at most 256 octets, brackets included.
pub const MAX_LENGTH: usize = 254;
/// RFC 5321 §4.5.3.1.1.
pub const MAX_LOCAL_LENGTH: usize = 64;
/// Longer input is refused before any Unicode processing.
const MAX_INPUT: usize = 1024;

/// An address that passed the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// What the account shows: the folded local part, and the domain as typed when it is ASCII
    /// or in its Unicode form (lower case, NFC) when it is not.
    pub stored: String,
    /// What accounts are unique by: the local part in lower case, the domain in A-labels.
    pub key: String,
    /// What the courier sends to: the local part, the domain in A-labels. ASCII.
    pub delivery: String,
}

/// Why an address was refused (the client gets one line for all; tests and logs tell them
/// apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    TooLong,
    Invisible(char),
    NoAt,
    QuotedLocalPart,
    LocalPart,
    DomainLiteral,
    Domain,
    TopLevel,
    MixedScripts,
    LookAlike,
    Mailer,
}

pub fn parse(raw: &str) -> Result<Parsed, Refusal> {
    if raw.len() > MAX_INPUT {
        return Err(Refusal::TooLong);
    }
    if let Some(c) = raw.chars().find(|c| invisible(*c)) {
        return Err(Refusal::Invisible(c));
    }
    let folded = ComposingNormalizerBorrowed::new_nfkc().normalize(raw);
    // Folding can make a space out of a compatibility character.
    if let Some(c) = folded.chars().find(|c| invisible(*c)) {
        return Err(Refusal::Invisible(c));
    }
    let (local, domain) = folded.rsplit_once('@').ok_or(Refusal::NoAt)?;
    if local.starts_with('"') {
        return Err(Refusal::QuotedLocalPart);
    }
    if local.len() > MAX_LOCAL_LENGTH || !dot_atom(local) {
        return Err(Refusal::LocalPart);
    }
    if domain.starts_with('[') {
        return Err(Refusal::DomainLiteral);
    }
    let ascii = ascii_domain(domain).ok_or(Refusal::Domain)?;
    let labels: Vec<&str> = ascii.split('.').collect();
    let Some((top, _)) = labels.split_last().filter(|(_, rest)| !rest.is_empty()) else {
        return Err(Refusal::Domain);
    };
    let (unicode, checked) = Uts46::new().to_unicode(
        ascii.as_bytes(),
        AsciiDenyList::STD3,
        Hyphens::CheckFirstLast,
    );
    checked.map_err(|_| Refusal::Domain)?;
    let unicode_labels: Vec<&str> = unicode.split('.').collect();
    let unicode_top = unicode_labels.last().copied().unwrap_or_default();
    let top_ok = (top.len() >= 2 && top.bytes().all(|b| b.is_ascii_alphabetic()))
        || (top.starts_with("xn--") && unicode_top.chars().all(char::is_alphabetic));
    if !top_ok {
        return Err(Refusal::TopLevel);
    }
    // A top-level label of that script vouches for the others, unless it is itself all
    // look-alikes (`һс` reads as `hc`).
    let top_script = single_script(unicode_top).filter(|_| !looks_latin(unicode_top));
    for label in &unicode_labels {
        if !highly_restrictive(label) {
            return Err(Refusal::MixedScripts);
        }
        if looks_latin(label) && (top_script.is_none() || top_script != single_script(label)) {
            return Err(Refusal::LookAlike);
        }
    }
    let delivery = format!("{local}@{ascii}");
    if delivery.len() > MAX_LENGTH {
        return Err(Refusal::TooLong);
    }
    let stored_domain = if domain.is_ascii() {
        domain
    } else {
        unicode.as_ref()
    };
    let stored = format!("{local}@{stored_domain}");
    if !lettre_takes(&stored) || !lettre_takes(&delivery) {
        return Err(Refusal::Mailer);
    }
    Ok(Parsed {
        key: format!("{}@{ascii}", local.to_ascii_lowercase()),
        stored,
        delivery,
    })
}

/// The address the courier hands to the SMTP server for a stored recipient: the domain in
/// A-labels, so that no relay needs SMTPUTF8 for an internationalised domain.
pub fn delivery_address(recipient: &str) -> Result<Address, Failure> {
    let mailbox = Mailbox::from_str(recipient).map_err(|e| Failure::new("recipient", e))?;
    let (user, domain) = (mailbox.email.user(), mailbox.email.domain());
    if domain.is_ascii() {
        return Ok(mailbox.email);
    }
    let ascii = ascii_domain(domain)
        .ok_or_else(|| Failure::new("recipient", "not a deliverable domain"))?;
    Address::new(user, ascii).map_err(|e| Failure::new("recipient", e))
}

/// The domain in A-labels, lower case; `None` when it is not a host name (STD3 rules, no
/// leading or trailing hyphen in a label, DNS lengths, no empty label, no root dot).
fn ascii_domain(domain: &str) -> Option<String> {
    let ascii = Uts46::new()
        .to_ascii(
            domain.as_bytes(),
            AsciiDenyList::STD3,
            Hyphens::CheckFirstLast,
            DnsLength::Verify,
        )
        .ok()?;
    Some(ascii.to_ascii_lowercase())
}

fn lettre_takes(address: &str) -> bool {
    Address::from_str(address).is_ok() && Mailbox::from_str(address).is_ok()
}

/// RFC 5322 `dot-atom-text` over ASCII.
fn dot_atom(local: &str) -> bool {
    let atext = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b);
    !local.is_empty()
        && local
            .split('.')
            .all(|atom| !atom.is_empty() && atom.bytes().all(atext))
}

/// A character that shows nothing, or not what it is: refused anywhere in an address.
pub fn invisible(c: char) -> bool {
    let category = CodePointMapData::<GeneralCategory>::new().get(c);
    matches!(
        category,
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::Surrogate
            | GeneralCategory::PrivateUse
            | GeneralCategory::Unassigned
            | GeneralCategory::SpaceSeparator
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
    ) || CodePointSetData::new::<DefaultIgnorableCodePoint>().contains(c)
        // Blank, yet a symbol: BRAILLE PATTERN BLANK, and the Hangul and halfwidth fillers'
        // look-alike.
        || c == '\u{2800}'
}

/// The scripts a character belongs to (its Script_Extensions), or none for characters of
/// every script (digits, the hyphen, combining marks).
fn scripts(c: char) -> Vec<Script> {
    let extensions = ScriptWithExtensions::new().get_script_extensions_val(c);
    let scripts: Vec<Script> = extensions.iter().collect();
    if scripts
        .iter()
        .any(|s| *s == Script::Common || *s == Script::Inherited)
    {
        Vec::new()
    } else {
        scripts
    }
}

/// UTS 39 §5.2 "highly restrictive": all characters of one script, or all within Latin + Han +
/// Hiragana + Katakana, Latin + Han + Bopomofo, or Latin + Han + Hangul.
fn highly_restrictive(label: &str) -> bool {
    let sets: Vec<Vec<Script>> = label
        .chars()
        .map(scripts)
        .filter(|s| !s.is_empty())
        .collect();
    let Some(first) = sets.first() else {
        return true;
    };
    let single = first
        .iter()
        .any(|script| sets.iter().all(|set| set.contains(script)));
    const COVERS: [&[Script]; 3] = [
        &[
            Script::Latin,
            Script::Han,
            Script::Hiragana,
            Script::Katakana,
        ],
        &[Script::Latin, Script::Han, Script::Bopomofo],
        &[Script::Latin, Script::Han, Script::Hangul],
    ];
    single
        || COVERS.iter().any(|cover| {
            sets.iter()
                .all(|set| set.iter().any(|script| cover.contains(script)))
        })
}

/// The one script a label is written in, if it is one.
fn single_script(label: &str) -> Option<Script> {
    let mut found = None;
    for set in label.chars().map(scripts).filter(|s| !s.is_empty()) {
        match (found, set.as_slice()) {
            (None, [script]) => found = Some(*script),
            (Some(f), [script]) if f == *script => {}
            _ => return None,
        }
    }
    found
}

/// Cyrillic and Greek lower-case letters that pass for Latin ones (from Unicode's
/// confusables.txt, the ones browsers check domain names against).
const LATIN_LOOK_ALIKES: &str = "аеёіїјорсуухѕһӏԁԛԝԍҽѵѡъьгпкмнтвюүӧӱ\
                                 αοριυνκτχεηγωϲϳς";

/// A label wholly of Cyrillic or Greek letters that each look Latin: `раураl`, `ехатрlе`.
fn looks_latin(label: &str) -> bool {
    let script = single_script(label);
    (script == Some(Script::Cyrillic) || script == Some(Script::Greek))
        && label
            .chars()
            .filter(|c| c.is_alphabetic())
            .all(|c| LATIN_LOOK_ALIKES.contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(raw: &str) -> Option<String> {
        parse(raw).ok().map(|p| p.stored)
    }

    fn key(raw: &str) -> Option<String> {
        parse(raw).ok().map(|p| p.key)
    }

    #[test]
    fn ordinary_addresses_are_kept_as_typed() {
        for ok in [
            "a@b.co",
            "sam@example.com",
            "Sam.Smith@Example.COM",
            "first.last@sub.example.org",
            "o'brien+fit@example.ie",
            "x_y-z@a-b.example",
            "!#$%&'*+-/=?^_`{|}~@example.com",
            "user@123.example",
            "user@xn--bcher-kva.example",
        ] {
            assert_eq!(stored(ok).as_deref(), Some(ok), "{ok}");
        }
        assert_eq!(
            key("Sam.Smith@Example.COM").as_deref(),
            Some("sam.smith@example.com")
        );
    }

    #[test]
    fn what_the_mailer_cannot_use_is_refused() {
        for (bad, why) in [
            ("z@[127.0.0.1]", Refusal::DomainLiteral),
            ("z@[IPv6:::1]", Refusal::DomainLiteral),
            ("z@127.0.0.1", Refusal::TopLevel),
            ("\"odd user\"@example.com", Refusal::Invisible(' ')),
            ("\"sam\"@example.com", Refusal::QuotedLocalPart),
            ("élodie@example.com", Refusal::LocalPart),
            ("sam..x@example.com", Refusal::LocalPart),
            (".sam@example.com", Refusal::LocalPart),
            ("sam.@example.com", Refusal::LocalPart),
            ("@example.com", Refusal::LocalPart),
            ("sam@", Refusal::Domain),
            ("sam@example", Refusal::Domain),
            ("sam@example.com.", Refusal::Domain),
            ("sam@.example.com", Refusal::Domain),
            ("sam@-example.com", Refusal::Domain),
            ("sam@example-.com", Refusal::Domain),
            ("sam@exa_mple.com", Refusal::Domain),
            ("sam@example.c", Refusal::TopLevel),
            ("sam@example.c0m", Refusal::TopLevel),
            ("sam", Refusal::NoAt),
            ("a@b@example.com", Refusal::LocalPart),
            ("<a>@b.co", Refusal::LocalPart),
        ] {
            assert_eq!(parse(bad), Err(why), "{bad}");
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert_eq!(parse(&long_local), Err(Refusal::LocalPart));
        let long = format!("{}@{}.com", "a".repeat(64), "b".repeat(60));
        assert!(parse(&long).is_ok());
        let too_long = format!("a@{}.com", vec!["b".repeat(60); 5].join("."));
        assert_eq!(parse(&too_long), Err(Refusal::Domain));
        assert_eq!(parse(&"a".repeat(2000)), Err(Refusal::TooLong));
    }

    #[test]
    fn invisible_and_control_characters_are_refused() {
        for c in [
            '\u{0}',
            '\u{7}',
            '\t',
            '\n',
            '\u{7f}',
            '\u{85}',
            '\u{a0}',
            '\u{ad}',
            '\u{34f}',
            '\u{61c}',
            '\u{115f}',
            '\u{180e}',
            '\u{200b}',
            '\u{200c}',
            '\u{200d}',
            '\u{200e}',
            '\u{200f}',
            '\u{202a}',
            '\u{202e}',
            '\u{2028}',
            '\u{2060}',
            '\u{2066}',
            '\u{2069}',
            '\u{2800}',
            '\u{3000}',
            '\u{3164}',
            '\u{fe0f}',
            '\u{feff}',
            '\u{ffa0}',
            '\u{e000}',
            '\u{e0041}',
            '\u{e0100}',
            '\u{10ffff}',
        ] {
            for at in [
                format!("s{c}am@example.com"),
                format!("sam{c}@example.com"),
                format!("sam@ex{c}ample.com"),
                format!("sam@bü{c}cher.example"),
                format!("{c}sam@example.com"),
                format!("sam@example.com{c}"),
            ] {
                assert_eq!(parse(&at), Err(Refusal::Invisible(c)), "{at:?}");
            }
        }
    }

    #[test]
    fn one_mailbox_one_key_however_spelled() {
        let same = |a: &str, b: &str| {
            assert!(key(a).is_some(), "{a}");
            assert_eq!(key(a), key(b), "{a} / {b}");
        };
        // Internationalised domains: Unicode, upper case, A-labels, decomposed.
        same("user@bücher.example", "user@xn--bcher-kva.example");
        same("user@BÜCHER.example", "user@bücher.example");
        same("user@bu\u{308}cher.example", "user@bücher.example");
        same("USER@XN--BCHER-KVA.EXAMPLE", "user@bücher.example");
        // Fullwidth forms and the ideographic full stop fold to ASCII.
        same("ｓａｍ＠ｅｘａｍｐｌｅ．ｃｏｍ", "sam@example.com");
        same("sam@example。com", "sam@example.com");
        same("ﬁnn@example.com", "finn@example.com");
        assert_eq!(
            key("user@bücher.example").as_deref(),
            Some("user@xn--bcher-kva.example")
        );
        assert_eq!(
            stored("user@BÜCHER.example").as_deref(),
            Some("user@bücher.example")
        );
        assert_eq!(
            parse("user@bücher.example")
                .map(|p| p.delivery)
                .ok()
                .as_deref(),
            Some("user@xn--bcher-kva.example")
        );
        assert_eq!(
            stored("ｓａｍ＠ｅｘａｍｐｌｅ．ｃｏｍ").as_deref(),
            Some("sam@example.com")
        );
        // Other scripts, each label in one.
        for ok in [
            "ivan@пример.рф",
            "ivan@пример.com",
            "user@例え.jp",
            "user@テスト.jp",
            "user@mañana.com",
            "user@straße.de",
            "user@ελληνικά.gr",
            "user@中国.cn",
            "user@東京abc.jp",
            "user@한국.kr",
            "user@σορ.gr",
        ] {
            assert!(parse(ok).is_ok(), "{ok}: {:?}", parse(ok));
        }
    }

    #[test]
    fn look_alikes_are_refused() {
        for (bad, why) in [
            // Latin and Cyrillic in one label ("а" is U+0430).
            ("sam@exаmple.com", Refusal::MixedScripts),
            ("sam@gооgle.com", Refusal::MixedScripts),
            ("sam@example.cоm", Refusal::MixedScripts),
            // Latin and Greek ("ο" is U+03BF).
            ("sam@gοogle.com", Refusal::MixedScripts),
            // Wholly Cyrillic, every letter a Latin look-alike, under a Latin TLD.
            ("sam@раураl.com", Refusal::MixedScripts),
            ("sam@рауа.com", Refusal::LookAlike),
            ("sam@раура1.com", Refusal::LookAlike),
            ("sam@ехаmрlе.com", Refusal::MixedScripts),
            ("sam@ехре.com", Refusal::LookAlike),
            ("sam@οικο.com", Refusal::LookAlike),
            // A top-level label of look-alikes vouches for nothing, itself included (found by
            // the look-alike property: `aa.һс` read as `aa.hc`).
            ("aa0@aa.һс", Refusal::LookAlike),
            // The lunate sigma `ϲ` (a `c`) folds to the final sigma `ς` under NFKC: found by
            // the same property.
            ("sam@0-0ϲ0.com", Refusal::LookAlike),
            ("sam@рауа.һс", Refusal::LookAlike),
            // Cyrillic in the local part is not ASCII.
            ("sаm@example.com", Refusal::LocalPart),
        ] {
            assert_eq!(parse(bad), Err(why), "{bad}");
        }
        // The same label under a top-level label of its own script is a word of that language.
        assert!(parse("sam@рауа.рф").is_ok());
    }

    #[test]
    fn lettre_takes_what_is_accepted() {
        for ok in ["user@bücher.example", "ivan@пример.рф", "a@b.co"] {
            let parsed = parse(ok).expect("accepted");
            assert!(Address::from_str(&parsed.stored).is_ok());
            assert!(Address::from_str(&parsed.delivery).is_ok());
            assert!(parsed.delivery.is_ascii());
        }
        assert_eq!(
            delivery_address("user@bücher.example")
                .map(|a| a.to_string())
                .ok(),
            Some("user@xn--bcher-kva.example".to_owned())
        );
        assert_eq!(
            delivery_address("sam@example.com")
                .map(|a| a.to_string())
                .ok(),
            Some("sam@example.com".to_owned())
        );
        assert!(delivery_address("\"odd user\"@example.com").is_err());
    }
}

/// The rules over generated input.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Characters that hide in an address.
    const INVISIBLE: &[char] = &[
        '\u{200b}',
        '\u{200c}',
        '\u{200d}',
        '\u{ad}',
        '\u{202e}',
        '\u{2066}',
        '\u{feff}',
        '\u{a0}',
        '\u{2060}',
        '\u{fe0f}',
        '\u{34f}',
        '\u{180e}',
        '\u{3164}',
        '\u{e0041}',
    ];

    /// Cyrillic and Greek letters for the Latin ones they pass for.
    fn look_alikes(c: char) -> &'static [char] {
        match c {
            'a' => &['а', 'α'],
            'c' => &['с', 'ϲ'],
            'd' => &['ԁ'],
            'e' => &['е', 'ҽ'],
            'h' => &['һ'],
            'i' => &['і', 'ι'],
            'j' => &['ј', 'ϳ'],
            'l' => &['ӏ'],
            'o' => &['о', 'ο'],
            'p' => &['р', 'ρ'],
            'q' => &['ԛ'],
            's' => &['ѕ'],
            'v' => &['ν', 'ѵ'],
            'w' => &['ԝ', 'ѡ'],
            'x' => &['х', 'χ'],
            'y' => &['у', 'γ'],
            _ => &[],
        }
    }

    fn ordinary() -> impl Strategy<Value = String> {
        let local = "[a-z0-9]{1,10}([._+-][a-z0-9]{1,8}){0,2}";
        let domain = "[a-z0-9]{1,10}(-[a-z0-9]{1,6})?\\.[a-z]{2,6}";
        (local, domain).prop_map(|(l, d)| format!("{l}@{d}"))
    }

    /// An ordinary address, and the same with invisible characters put in, letters swapped for
    /// Cyrillic or Greek look-alikes, or characters swapped for their fullwidth forms.
    fn tricked() -> impl Strategy<Value = (String, String)> {
        let edit = (any::<usize>(), 0..3u8, any::<usize>());
        (ordinary(), proptest::collection::vec(edit, 1..4)).prop_map(|(address, edits)| {
            let mut chars: Vec<char> = address.chars().collect();
            for (at, kind, pick) in edits {
                let at = at % chars.len();
                match kind {
                    0 => chars.insert(at, INVISIBLE[pick % INVISIBLE.len()]),
                    1 => {
                        let choices = look_alikes(chars[at]);
                        if !choices.is_empty() {
                            chars[at] = choices[pick % choices.len()];
                        }
                    }
                    _ => {
                        if let Some(wide) = u32::from(chars[at])
                            .checked_add(0xFEE0)
                            .filter(|_| chars[at].is_ascii_graphic())
                            .and_then(char::from_u32)
                        {
                            chars[at] = wide;
                        }
                    }
                }
            }
            (address, chars.into_iter().collect())
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn anything_accepted_is_deliverable(raw in prop_oneof![
            proptest::collection::vec(any::<char>(), 0..60).prop_map(String::from_iter),
            "\\PC{0,12}@\\PC{0,12}\\.\\PC{0,6}",
            ordinary(),
            tricked().prop_map(|(_, tricked)| tricked),
        ]) {
            if let Ok(parsed) = parse(&raw) {
                prop_assert!(Address::from_str(&parsed.stored).is_ok(), "{:?}", parsed);
                prop_assert!(Address::from_str(&parsed.delivery).is_ok(), "{:?}", parsed);
                prop_assert!(Mailbox::from_str(&parsed.stored).is_ok(), "{:?}", parsed);
                prop_assert!(parsed.delivery.is_ascii(), "{:?}", parsed);
                prop_assert!(parsed.delivery.len() <= MAX_LENGTH);
                prop_assert!(!parsed.stored.chars().any(invisible));
                prop_assert_eq!(delivery_address(&parsed.stored).map(|a| a.to_string()).ok(),
                    Some(parsed.delivery.clone()));
                // The stored form is its own parse: stable.
                prop_assert_eq!(parse(&parsed.stored).map(|p| p.key), Ok(parsed.key.clone()));
                prop_assert_eq!(parse(&parsed.delivery).map(|p| p.key), Ok(parsed.key.clone()));
            }
        }

        #[test]
        fn ordinary_addresses_are_accepted_as_typed(address in ordinary()) {
            let parsed = parse(&address);
            prop_assert!(parsed.is_ok(), "{} {:?}", address, parsed);
            let parsed = parsed.expect("checked");
            prop_assert_eq!(&parsed.stored, &address);
            prop_assert_eq!(&parsed.key, &address.to_lowercase());
        }

        #[test]
        fn look_alikes_are_refused_or_the_same_account((address, tricked) in tricked()) {
            if let Ok(parsed) = parse(&tricked) {
                prop_assert_eq!(&parsed.key, &address, "{:?} accepted as another account", tricked);
            }
        }
    }
}
