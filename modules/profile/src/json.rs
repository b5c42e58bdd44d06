//! The profile as FitTrackee serialises it, and the field readers of the edit payloads.

use kernel::dates::{http_date, http_date_from_unix};
use kernel::stats::WorkoutSummary;
use kernel::users::User;
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

fn birth_date_json(stored: Option<&str>) -> Value {
    stored
        .and_then(|d| Date::parse(d, format_description!("[year]-[month]-[day]")).ok())
        .map_or(Value::Null, |d| http_date(d.midnight().assume_utc()).into())
}

pub fn profile_json(user: &User, summary: &WorkoutSummary) -> Value {
    let mut data = serde_json::json!({
        "admin": user.admin,
        "bio": user.bio,
        "birth_date": birth_date_json(user.birth_date.as_deref()),
        "created_at": http_date_from_unix(user.created_at),
        "email": user.email,
        "first_name": user.first_name,
        "imperial_units": user.imperial_units,
        "language": user.language,
        "last_name": user.last_name,
        "location": user.location,
        "picture": user.picture,
        "timezone": user.timezone,
        "username": user.username,
        "weekm": user.weekm,
    });
    if let (Value::Object(data), Value::Object(stats)) = (&mut data, summary.to_json()) {
        data.extend(stats);
    }
    data
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
    fn dates_as_flask_writes_them() {
        assert_eq!(
            http_date_from_unix(1_563_113_398),
            "Sun, 14 Jul 2019 14:09:58 GMT"
        );
        assert_eq!(
            birth_date_json(Some("1960-02-29")),
            json!("Mon, 29 Feb 1960 00:00:00 GMT")
        );
        assert_eq!(birth_date_json(None), Value::Null);
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
