//! Workout statistics shown on a profile. Stride has no workouts module yet, so every user has
//! the empty summary; a future module fills it by managing a `WorkoutStatsSource`, without the
//! profile module knowing it exists.

use std::sync::Arc;

use rocket::request::{FromRequest, Outcome, Request};
use serde_json::{json, Value};

use crate::db::Db;

#[derive(Debug, Clone, PartialEq)]
pub struct WorkoutSummary {
    pub nb_workouts: i64,
    pub nb_sports: i64,
    pub records: Vec<Value>,
    pub sports_list: Vec<i64>,
    /// Kilometres.
    pub total_distance: f64,
    /// Seconds.
    pub total_duration: i64,
}

impl Default for WorkoutSummary {
    fn default() -> Self {
        WorkoutSummary {
            nb_workouts: 0,
            nb_sports: 0,
            records: Vec::new(),
            sports_list: Vec::new(),
            total_distance: 0.0,
            total_duration: 0,
        }
    }
}

impl WorkoutSummary {
    /// The profile keys, FitTrackee's way (`total_duration` as "H:MM:SS").
    pub fn to_json(&self) -> Value {
        let d = self.total_duration.max(0);
        json!({
            "nb_workouts": self.nb_workouts,
            "nb_sports": self.nb_sports,
            "records": self.records,
            "sports_list": self.sports_list,
            "total_distance": self.total_distance,
            "total_duration": format!("{}:{:02}:{:02}", d / 3600, d / 60 % 60, d % 60),
        })
    }
}

#[rocket::async_trait]
pub trait WorkoutStats: Send + Sync + 'static {
    async fn summary(&self, db: &Db, user_id: i64) -> Result<WorkoutSummary, sqlx::Error>;
}

/// Managed by whichever module records workouts.
#[derive(Clone)]
pub struct WorkoutStatsSource(pub Arc<dyn WorkoutStats>);

/// The statistics source of this server: the managed one, or none (every summary empty).
pub struct Stats(Option<WorkoutStatsSource>);

impl Stats {
    pub async fn summary(&self, db: &Db, user_id: i64) -> Result<WorkoutSummary, sqlx::Error> {
        match &self.0 {
            Some(source) => source.0.summary(db, user_id).await,
            None => Ok(WorkoutSummary::default()),
        }
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Stats {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        Outcome::Success(Stats(
            request.rocket().state::<WorkoutStatsSource>().cloned(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_summary_is_fittrackee_new_user() {
        assert_eq!(
            WorkoutSummary::default().to_json(),
            json!({"nb_workouts": 0, "nb_sports": 0, "records": [], "sports_list": [],
                   "total_distance": 0.0, "total_duration": "0:00:00"})
        );
        let s = WorkoutSummary {
            total_duration: 6 * 3600 + 50 * 60 + 27,
            ..Default::default()
        };
        assert_eq!(s.to_json()["total_duration"], "6:50:27");
    }
}
