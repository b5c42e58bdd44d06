//! FitTrackee's success envelope, `{"data": …, "status": "success"}` (with `message` when
//! given), written straight from a serializable value. `json!({"data": value})` serializes the
//! value into a second JSON value before the response serializes that one again; for the user
//! object (the profile, the most frequent authenticated request) the copies cost more than the
//! session check (BENCHMARKS.md, "What the run says"). The keys come in the order a
//! `serde_json` map gives them, so a client sees the same bytes either way.

use rocket::response::content::RawJson;
use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::error::{ApiError, ApiResult};

struct Success<'a, T> {
    data: &'a T,
    message: Option<&'a str>,
}

impl<T: Serialize> Serialize for Success<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("data", self.data)?;
        if let Some(message) = self.message {
            map.serialize_entry("message", message)?;
        }
        map.serialize_entry("status", "success")?;
        map.end()
    }
}

/// The response `{"data": data, "message": message, "status": "success"}`, `message` left out
/// when none.
pub fn success<T: Serialize>(data: &T, message: Option<&str>) -> ApiResult<RawJson<String>> {
    serde_json::to_string(&Success { data, message })
        .map(RawJson)
        .map_err(|e| ApiError::internal("writing a response", e))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    /// The envelope is the bytes of the JSON value `json!` builds, with and without a message.
    #[test]
    fn the_envelope_is_what_json_gives() {
        let data = json!({"b": [1, 2], "a": "x"});
        let written = super::success(&data, None).expect("written").0;
        let value = json!({"status": "success", "data": data});
        assert_eq!(written, value.to_string());
        let written = super::success(&data, Some("done")).expect("written").0;
        let value = json!({"status": "success", "data": data, "message": "done"});
        assert_eq!(written, value.to_string());
    }
}
