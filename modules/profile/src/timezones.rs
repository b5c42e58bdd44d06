//! `GET /api/auth/timezones`: the time zones FitTrackee 1.x's preferences page offers. No
//! authentication, as FitTrackee's. Served whether or not `cookies.enabled` is on: it tells
//! nothing of any account, and a FitTrackee 0.5 client never calls it (docs/users-api.md,
//! "FitTrackee 1.x's keys").

use rocket::get;
use rocket::serde::json::{json, Value};

/// The IANA time zone database's zones and links (tzdata 2025b, `tzdata.zi`, without
/// `Factory`), one a line, in byte order. The preferences keep any name of 1 to 50 characters
/// (`kernel::validate::timezone`), as FitTrackee 0.5 does: this is the list to choose from,
/// not a check.
const TIMEZONES: &str = include_str!("timezones.txt");

#[get("/timezones")]
pub fn timezones() -> Value {
    let names: Vec<&str> = TIMEZONES.lines().filter(|l| !l.is_empty()).collect();
    json!({ "status": "success", "timezones": names })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_sorted_and_valid() {
        let names: Vec<&str> = TIMEZONES.lines().collect();
        assert!(names.len() > 500);
        assert!(names.windows(2).all(|w| w[0] < w[1]));
        assert!(names.contains(&"Europe/Paris") && names.contains(&"UTC"));
        for name in names {
            assert!(kernel::validate::timezone(name).is_ok(), "{name}");
        }
    }
}
