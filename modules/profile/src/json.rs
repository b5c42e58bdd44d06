//! The field readers of the edit payloads.

use kernel::users::DATE_FORMATS;
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

/// FitTrackee 1.x's preferences beyond 0.5's four (docs/users-api.md, "FitTrackee 1.x's
/// keys"), each optional. The two Stride keeps must hold one of their values; the others must
/// have the JSON type FitTrackee 1.x's client sends (it always sends them), and are dropped.
/// Anything else is "invalid payload".
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Preferences1x {
    pub date_format: Option<&'static str>,
    pub use_dark_mode: Option<Option<bool>>,
}

/// The keys of FitTrackee 1.x's preferences that Stride does not keep, and their JSON types.
const UNKEPT_BOOLEANS: [&str; 6] = [
    "display_ascent",
    "hide_profile_in_users_directory",
    "manually_approves_followers",
    "split_workout_charts",
    "start_elevation_at_zero",
    "use_raw_gpx_speed",
];
const UNKEPT_STRINGS: [&str; 8] = [
    "analysis_visibility",
    "calories_visibility",
    "hr_visibility",
    "map_visibility",
    "media_visibility",
    "missing_elevations_processing",
    "segments_creation_event",
    "workouts_visibility",
];

impl Preferences1x {
    pub fn read(body: &Map<String, Value>) -> Result<Preferences1x, ApiError> {
        let typed = UNKEPT_BOOLEANS
            .iter()
            .all(|key| body.get(*key).is_none_or(Value::is_boolean))
            && UNKEPT_STRINGS
                .iter()
                .all(|key| body.get(*key).is_none_or(Value::is_string));
        if !typed {
            return Err(ApiError::invalid_payload());
        }
        let date_format = match body.get("date_format") {
            None => None,
            Some(Value::String(sent)) => Some(
                DATE_FORMATS
                    .into_iter()
                    .find(|known| known == sent)
                    .ok_or_else(ApiError::invalid_payload)?,
            ),
            Some(_) => return Err(ApiError::invalid_payload()),
        };
        let use_dark_mode = match body.get("use_dark_mode") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::Bool(on)) => Some(Some(*on)),
            Some(_) => return Err(ApiError::invalid_payload()),
        };
        Ok(Preferences1x {
            date_format,
            use_dark_mode,
        })
    }
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

    #[test]
    fn preferences_1x() {
        let read = |v: serde_json::Value| Preferences1x::read(v.as_object().expect("object"));
        assert_eq!(read(json!({})).ok(), Some(Preferences1x::default()));
        assert_eq!(
            read(json!({"date_format": "date_string", "use_dark_mode": null,
                        "display_ascent": false, "map_visibility": "public"}))
            .ok(),
            Some(Preferences1x {
                date_format: Some("date_string"),
                use_dark_mode: Some(None)
            })
        );
        for bad in [
            json!({"date_format": "dd.MM.yyyy"}),
            json!({"date_format": null}),
            json!({"use_dark_mode": "true"}),
            json!({"display_ascent": "yes"}),
            json!({"workouts_visibility": null}),
            json!({"segments_creation_event": 1}),
        ] {
            assert!(read(bad.clone()).is_err(), "{bad}");
        }
    }
}
