//! `Payload<T>`: a JSON request body that is a JSON object and fits `T`, or a 400 "invalid
//! payload" (413 past the `json` limit). Unlike Rocket's `Json<T>`, a field of the wrong type is
//! a 400, never a 422, and a top-level array is not taken for a struct.
//!
//! Whatever `T` is, a body is also refused when it does not say it is JSON (`Content-Type`
//! `application/json` or `application/…+json`, as Flask's `get_json` wants), when an object
//! holds a key twice, when any string or key holds a NUL character (no PostgreSQL text can),
//! or when it nests deeper than serde_json's limit of 128, even inside a field `T` ignores.

use std::collections::HashSet;
use std::fmt;

use rocket::data::{self, Data, FromData, Limits};
use rocket::http::ContentType;
use rocket::request::Request;
use serde::de::{self as serde_de, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::error::ApiError;

pub struct Payload<T>(pub T);

#[rocket::async_trait]
impl<'r, T: DeserializeOwned> FromData<'r> for Payload<T> {
    type Error = ApiError;

    async fn from_data(request: &'r Request<'_>, data: Data<'r>) -> data::Outcome<'r, Self> {
        if !request.content_type().is_some_and(is_json) {
            return data::Outcome::Error(ApiError::invalid_payload().stash(request));
        }
        let limit = request.limits().get("json").unwrap_or(Limits::JSON);
        let bytes = match data.open(limit).into_bytes().await {
            Ok(bytes) if bytes.is_complete() => bytes.into_inner(),
            Ok(_) => return data::Outcome::Error(ApiError::payload_too_large().stash(request)),
            Err(e) if ApiError::is_timeout(&e) => {
                return data::Outcome::Error(ApiError::request_timeout().stash(request))
            }
            Err(_) => return data::Outcome::Error(ApiError::invalid_payload().stash(request)),
        };
        match parse(&bytes) {
            Some(value) => data::Outcome::Success(Payload(value)),
            None => data::Outcome::Error(ApiError::invalid_payload().stash(request)),
        }
    }
}

/// `application/json`, or a JSON-based type such as `application/merge-patch+json`.
fn is_json(content_type: &ContentType) -> bool {
    content_type.top() == "application"
        && (content_type.sub() == "json" || content_type.sub().as_str().ends_with("+json"))
}

/// Parses a JSON object into `T`; anything else (not JSON, not an object, a missing field, a
/// wrong type, a duplicate key, a NUL character, too deep) is `None`.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first != b'{' {
        return None;
    }
    // Two passes over at most `limits.json` bytes: the first judges the whole document, fields
    // `T` would skip included; the second builds `T`.
    serde_json::from_slice::<Sound>(bytes).ok()?;
    serde_json::from_slice(bytes).ok()
}

/// A JSON document with no duplicate key and no NUL character anywhere. Its visitor recurses
/// through serde_json, whose depth limit bounds the recursion.
struct Sound;

impl<'de> Deserialize<'de> for Sound {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Sound, D::Error> {
        deserializer.deserialize_any(SoundVisitor)
    }
}

struct SoundVisitor;

fn without_nul<E: serde_de::Error>(text: &str) -> Result<Sound, E> {
    if text.contains('\0') {
        Err(E::custom("NUL character"))
    } else {
        Ok(Sound)
    }
}

impl<'de> Visitor<'de> for SoundVisitor {
    type Value = Sound;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: serde_de::Error>(self, _: bool) -> Result<Sound, E> {
        Ok(Sound)
    }

    fn visit_i64<E: serde_de::Error>(self, _: i64) -> Result<Sound, E> {
        Ok(Sound)
    }

    fn visit_u64<E: serde_de::Error>(self, _: u64) -> Result<Sound, E> {
        Ok(Sound)
    }

    fn visit_f64<E: serde_de::Error>(self, _: f64) -> Result<Sound, E> {
        Ok(Sound)
    }

    fn visit_unit<E: serde_de::Error>(self) -> Result<Sound, E> {
        Ok(Sound)
    }

    fn visit_str<E: serde_de::Error>(self, text: &str) -> Result<Sound, E> {
        without_nul(text)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Sound, A::Error> {
        while items.next_element::<Sound>()?.is_some() {}
        Ok(Sound)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Sound, A::Error> {
        let mut keys = HashSet::new();
        while let Some(key) = entries.next_key::<String>()? {
            without_nul(&key)?;
            if !keys.insert(key) {
                return Err(serde_de::Error::custom("duplicate key"));
            }
            entries.next_value::<Sound>()?;
        }
        Ok(Sound)
    }
}

#[cfg(test)]
mod tests {
    use super::parse;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    struct Login {
        #[allow(dead_code)]
        email: String,
    }

    #[test]
    fn only_objects_that_fit() {
        assert!(parse::<Login>(br#" {"email": "a@b.c", "extra": 1}"#).is_some());
        assert!(parse::<Login>(br#"["a@b.c"]"#).is_none());
        assert!(parse::<Login>(br#"{"email": 3}"#).is_none());
        assert!(parse::<Login>(br#"{"email": null}"#).is_none());
        assert!(parse::<Login>(br#"{"email": "a", "email": "b"}"#).is_none());
        assert!(parse::<Login>(b"{\"email\": \"\xff\"}").is_none());
        assert!(parse::<Login>(b"").is_none());
        // Duplicates and NULs are refused in what `T` would skip or keep as a map, too.
        type Map = serde_json::Map<String, serde_json::Value>;
        assert!(parse::<Map>(br#"{"email": "a", "email": "a"}"#).is_none());
        assert!(parse::<Login>(br#"{"email": "a", "x": {"k": 1, "k": 2}}"#).is_none());
        assert!(parse::<Login>(br#"{"email": "a\u0000b"}"#).is_none());
        assert!(parse::<Login>(br#"{"email": "a", "x": ["\u0000"]}"#).is_none());
        assert!(parse::<Login>(br#"{"email": "a", "\u0000": 1}"#).is_none());
        // Escaped, a backslash and a zero are just text.
        assert!(parse::<Login>(br#"{"email": "a\\u0000b"}"#).is_some());
        // Text that is not UTF-8 is refused even where `T` does not look.
        assert!(parse::<Login>(b"{\"email\": \"a\", \"x\": \"\xff\"}").is_none());
        // serde_json stops at depth 128 instead of overflowing the stack, wherever the depth is.
        let deep = |depth: usize| {
            format!(
                "{{\"email\": \"a\", \"x\": {}{}}}",
                "[".repeat(depth),
                "]".repeat(depth)
            )
        };
        assert!(parse::<Login>(deep(100).as_bytes()).is_some());
        assert!(parse::<Login>(deep(10_000).as_bytes()).is_none());
        assert!(parse::<Map>(deep(10_000).as_bytes()).is_none());
    }
}

/// `parse` over generated inputs: it always answers, and what it accepts is a JSON object.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use serde::Deserialize;
    use serde_json::{Map, Value};

    use super::parse;

    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct Login {
        email: String,
        password: String,
    }

    /// JSON values of every kind, nested a few levels. Numbers are ones that print and parse
    /// back exactly.
    fn json_value() -> impl Strategy<Value = Value> {
        let text = proptest::collection::vec(any::<char>(), 0..12).prop_map(String::from_iter);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (-4000i32..4000).prop_map(|n| Value::from(f64::from(n) / 8.0)),
            text.clone().prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                proptest::collection::btree_map(text.clone(), inner, 0..6)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    fn has_nul(value: &Value) -> bool {
        match value {
            Value::String(s) => s.contains('\0'),
            Value::Array(items) => items.iter().any(has_nul),
            Value::Object(entries) => entries.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
            _ => false,
        }
    }

    /// What `parse` accepted must be exactly what serde_json reads from the bytes: an object.
    fn accepted_is_the_object(bytes: &[u8]) -> Result<(), TestCaseError> {
        if let Some(map) = parse::<Map<String, Value>>(bytes) {
            let value: Value = serde_json::from_slice(bytes)
                .map_err(|e| TestCaseError::fail(format!("accepted, yet not JSON: {e}")))?;
            prop_assert_eq!(Value::Object(map), value);
        }
        if let Some(value) = parse::<Value>(bytes) {
            prop_assert!(value.is_object(), "accepted {}", value);
        }
        let _ = parse::<Login>(bytes);
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn any_bytes_get_an_answer(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            accepted_is_the_object(&bytes)?;
        }

        #[test]
        fn damaged_json_gets_an_answer(
            value in json_value(),
            damage in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        ) {
            let mut bytes = Value::Object(Map::from_iter([("k".to_owned(), value)]))
                .to_string()
                .into_bytes();
            for (at, byte) in damage {
                let at = at % bytes.len();
                bytes[at] = byte;
            }
            accepted_is_the_object(&bytes)?;
        }

        #[test]
        fn json_is_accepted_exactly_when_it_is_a_sound_object(
            value in json_value(),
            blank in "[ \t\r\n]{0,3}",
        ) {
            let text = format!("{blank}{value}{blank}");
            let parsed = parse::<Value>(text.as_bytes());
            prop_assert_eq!(parsed.is_some(), value.is_object() && !has_nul(&value), "{}", text);
            if let Some(parsed) = parsed {
                prop_assert_eq!(parsed, value);
            }
        }
    }
}
