//! The field readers of the edit payloads.

use kernel::ApiError;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use time::macros::format_description;
use time::Date;

/// `YYYY-MM-DD`, the only form the edit endpoint takes and the form it is stored in.
pub fn parse_birth_date(raw: &str) -> Option<String> {
    let date = Date::parse(raw, format_description!("[year]-[month]-[day]")).ok()?;
    Some(date.to_string())
}

/// A required key of a given JSON type; anything else is "invalid payload".
pub fn field<T: DeserializeOwned>(body: &Map<String, Value>, key: &str) -> Result<T, ApiError> {
    body.get(key)
        .and_then(|v| T::deserialize(v).ok())
        .ok_or_else(ApiError::invalid_payload)
}

/// A required key holding a string or null.
pub fn nullable_string(body: &Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    field(body, key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn birth_dates() {
        assert_eq!(
            parse_birth_date("1985-07-04").as_deref(),
            Some("1985-07-04")
        );
        for bad in ["1985-02-30", "04/07/1985", "1985-7-4x", "", "tomorrow"] {
            assert_eq!(parse_birth_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn fields() {
        let body = json!({"a": null, "b": "x", "c": 3, "d": true});
        let body = body.as_object().expect("object");
        assert_eq!(nullable_string(body, "a").ok(), Some(None));
        assert_eq!(nullable_string(body, "b").ok(), Some(Some("x".into())));
        assert!(nullable_string(body, "c").is_err());
        assert!(nullable_string(body, "missing").is_err());
        assert_eq!(field::<bool>(body, "d").ok(), Some(true));
        assert!(field::<bool>(body, "b").is_err());
    }
}
