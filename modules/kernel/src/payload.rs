//! `Payload<T>`: a JSON request body that is a JSON object and fits `T`, or a 400 "invalid
//! payload" (413 past the `json` limit). Unlike Rocket's `Json<T>`, a field of the wrong type is
//! a 400, never a 422, and a top-level array is not taken for a struct. A NUL character
//! (`\u0000`) anywhere is refused too: PostgreSQL cannot store one in text, and no field has a
//! use for it.

use rocket::data::{self, Data, FromData, Limits};
use rocket::request::Request;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

pub struct Payload<T>(pub T);

#[rocket::async_trait]
impl<'r, T: DeserializeOwned> FromData<'r> for Payload<T> {
    type Error = ApiError;

    async fn from_data(request: &'r Request<'_>, data: Data<'r>) -> data::Outcome<'r, Self> {
        let limit = request.limits().get("json").unwrap_or(Limits::JSON);
        let bytes = match data.open(limit).into_bytes().await {
            Ok(bytes) if bytes.is_complete() => bytes.into_inner(),
            Ok(_) => return data::Outcome::Error(ApiError::payload_too_large().stash(request)),
            Err(_) => return data::Outcome::Error(ApiError::invalid_payload().stash(request)),
        };
        match parse(&bytes) {
            Some(value) => data::Outcome::Success(Payload(value)),
            None => data::Outcome::Error(ApiError::invalid_payload().stash(request)),
        }
    }
}

/// Parses a JSON object into `T`; anything else (not JSON, not an object, a missing field, a
/// wrong type, a duplicate key, a NUL character) is `None`.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first != b'{' || escapes_nul(bytes) {
        return None;
    }
    serde_json::from_slice(bytes).ok()
}

/// Whether JSON text holds the escape `\u0000`, the only way JSON writes a NUL (a raw one is
/// invalid JSON). Outside strings a backslash is invalid too, so every backslash met here starts
/// an escape, and skipping the character after it keeps `\\u0000` (a backslash, then
/// `u0000`) apart.
fn escapes_nul(bytes: &[u8]) -> bool {
    let mut rest = bytes;
    while let Some(at) = rest.iter().position(|&b| b == b'\\') {
        let escape = &rest[at + 1..];
        if escape.starts_with(b"u0000") {
            return true;
        }
        rest = escape.get(1..).unwrap_or_default();
    }
    false
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
        assert!(parse::<Login>(br#"{"email": "a\u0000b"}"#).is_none());
        assert!(parse::<Login>(br#"{"email": "a", "x": ["\u0000"]}"#).is_none());
        assert!(
            parse::<Login>(br#"{"email": "a\\u0000b"}"#).is_some(),
            "an escaped backslash"
        );
        assert!(parse::<Login>(br#"{"email": "\"\\\u0000"}"#).is_none());
        assert!(parse::<Login>(br#"{"email": "\u00001"}"#).is_none());
        assert!(parse::<Login>(br#"{"email": "\u0001"}"#).is_some());
        let deep = format!(
            "{{\"email\": \"a\", \"x\": {}{}}}",
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        // Skipping an unknown field does not recurse: harmless, accepted.
        assert!(parse::<Login>(deep.as_bytes()).is_some());
        // Building a value does, and serde_json stops at depth 128 instead of overflowing.
        let map = parse::<serde_json::Map<String, serde_json::Value>>(deep.as_bytes());
        assert!(map.is_none());
    }
}
