//! Dates as FitTrackee's API writes them: RFC 1123, "Sun, 14 Jul 2019 14:09:58 GMT", the way
//! Flask renders datetimes.

use time::macros::format_description;
use time::OffsetDateTime;

pub fn http_date(at: OffsetDateTime) -> String {
    let format = format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    at.format(&format).unwrap_or_default()
}

/// An instant stored as Unix seconds, as an HTTP date.
pub fn http_date_from_unix(seconds: i64) -> String {
    OffsetDateTime::from_unix_timestamp(seconds)
        .map(http_date)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn as_flask_writes_them() {
        assert_eq!(
            super::http_date_from_unix(1_563_113_398),
            "Sun, 14 Jul 2019 14:09:58 GMT"
        );
    }
}
