//! The list's query string, read as the contract says (docs/users-api.md, §3): `page` and
//! `per_page` in decimal digits from 1 to 2^63 − 1 (`per_page` capped at 50), `q` a literal
//! substring, `order_by` and `order` from fixed lists (anything else means registration order).
//! Any other bad value is FitTrackee's 400 `invalid payload`. Rocket reads the query leniently:
//! unknown parameters are ignored, and a parameter given twice counts as it was first given (as
//! Flask's `request.args.get` does).

use kernel::users::{Listing, Order};
use kernel::ApiError;

/// Users per page when the client does not say, and at most.
const PER_PAGE: i64 = 10;
const MAX_PER_PAGE: i64 = 50;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    page: i64,
    per_page: i64,
    q: Option<String>,
    order: Order,
}

impl ListQuery {
    pub fn listing(&self) -> Listing<'_> {
        Listing {
            contains: self.q.as_deref(),
            order: self.order,
            page: self.page,
            per_page: self.per_page,
        }
    }

    /// From the route's query parameters, as given; 400 `invalid payload` for a bad number.
    pub fn from_values(
        page: Option<&str>,
        per_page: Option<&str>,
        q: Option<&str>,
        order_by: Option<&str>,
        order: Option<&str>,
    ) -> Result<ListQuery, ApiError> {
        let pairs = [
            ("page", page),
            ("per_page", per_page),
            ("q", q),
            ("order_by", order_by),
            ("order", order),
        ];
        let pairs = pairs
            .into_iter()
            .filter_map(|(name, value)| Some((name.to_owned(), value?.to_owned())));
        ListQuery::parse(pairs).ok_or_else(ApiError::invalid_payload)
    }

    /// From (name, value) pairs, the first of each name counting.
    fn parse(pairs: impl Iterator<Item = (String, String)>) -> Option<ListQuery> {
        let (mut page, mut per_page, mut q, mut order_by, mut order) =
            (None, None, None, None, None);
        for (name, value) in pairs {
            let slot = match name.as_str() {
                "page" => &mut page,
                "per_page" => &mut per_page,
                "q" => &mut q,
                "order_by" => &mut order_by,
                "order" => &mut order,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(value);
            }
        }
        let page = page.map_or(Some(1), |p| positive(&p))?;
        let per_page = per_page.map_or(Some(PER_PAGE), |p| positive(&p))?;
        let descending = match order.as_deref() {
            None | Some("asc") => Some(false),
            Some("desc") => Some(true),
            // Any other value cancels the sort.
            Some(_) => None,
        };
        let order = match (order_by.as_deref(), descending) {
            (Some("username"), Some(descending)) => Order::Username { descending },
            (Some("created_at"), Some(descending)) => Order::CreatedAt { descending },
            (Some("admin"), Some(descending)) => Order::Admin { descending },
            // Every Stride user has recorded no workouts: registration order either way.
            _ => Order::Registration,
        };
        Some(ListQuery {
            page,
            per_page: per_page.min(MAX_PER_PAGE),
            q: q.filter(|q| !q.is_empty()),
            order,
        })
    }
}

/// Decimal digits only, 1 to 2^63 − 1.
fn positive(value: &str) -> Option<i64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse::<i64>().ok().filter(|n| *n >= 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &[(&str, &str)]) -> Option<ListQuery> {
        ListQuery::parse(
            query
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
        )
    }

    #[test]
    fn defaults_and_caps() {
        let q = parse(&[]).expect("defaults");
        assert_eq!(
            (q.page, q.per_page, q.q, q.order),
            (1, 10, None, Order::Registration)
        );
        assert_eq!(parse(&[("per_page", "100")]).expect("capped").per_page, 50);
        let huge = parse(&[("page", "9223372036854775807")]).expect("the largest page");
        assert_eq!(huge.page, i64::MAX);
        assert_eq!(parse(&[("q", "")]).expect("empty q").q, None);
        assert_eq!(parse(&[("unknown", "x")]), parse(&[]));
        assert_eq!(
            parse(&[("page", "2"), ("page", "x")]).expect("first").page,
            2
        );
    }

    #[test]
    fn bad_numbers_are_refused() {
        for bad in [
            "0",
            "-1",
            "abc",
            "1.5",
            "1e2",
            "",
            " 1",
            "+1",
            "9223372036854775808",
        ] {
            assert_eq!(parse(&[("page", bad)]), None, "page={bad}");
            assert_eq!(parse(&[("per_page", bad)]), None, "per_page={bad}");
        }
    }

    #[test]
    fn orders() {
        let order = |by: &str, dir: Option<&str>| {
            let mut pairs = vec![("order_by", by)];
            pairs.extend(dir.map(|d| ("order", d)));
            parse(&pairs).expect("valid").order
        };
        assert_eq!(
            order("username", None),
            Order::Username { descending: false }
        );
        assert_eq!(
            order("username", Some("desc")),
            Order::Username { descending: true }
        );
        assert_eq!(
            order("created_at", Some("asc")),
            Order::CreatedAt { descending: false }
        );
        assert_eq!(
            order("admin", Some("desc")),
            Order::Admin { descending: true }
        );
        assert_eq!(order("workouts_count", Some("desc")), Order::Registration);
        assert_eq!(order("username", Some("DESC")), Order::Registration);
        assert_eq!(order("USERNAME", None), Order::Registration);
        assert_eq!(order("email", None), Order::Registration);
        assert_eq!(order("", None), Order::Registration);
    }
}
