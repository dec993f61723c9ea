//! What every read endpoint shares: the query string (`ReadQuery`), the wait for
//! `min_position`, and the state a request reads (the live one, or a past one for
//! `as_of_position`, `known_at`, `valid_at`).

use axum::extract::Query;
use chrono::{DateTime, NaiveDate, Utc};
use rapport_projections::{rfm, ReadState};
use serde::Deserialize;

use super::{ApiError, AppState};

const LIST_LIMIT_DEFAULT: usize = 50;
const LIST_LIMIT_MAX: usize = 1000;

/// A CSV field, quoted when it must be.
/// A text field of a CSV row: quoted when it needs to be, and neutralised when a
/// spreadsheet would read it as a formula (see [`crate::export::csv_safe`]).
pub(super) fn csv(s: &str) -> String {
    let s = crate::export::csv_safe(s);
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.into_owned()
    }
}

/// The start of a CSV answer: a UTF-8 byte-order mark when asked (`bom=true`), so that
/// Excel on a Chinese-locale Windows reads the file as UTF-8.
pub(crate) fn csv_start(q: &ReadQuery) -> String {
    if q.bom == Some(true) {
        "\u{FEFF}".to_owned()
    } else {
        String::new()
    }
}

#[derive(Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReadQuery {
    pub(super) min_position: Option<u64>,
    #[serde(default)]
    #[schemars(schema_with = "crate::http::query::time_param")]
    pub(super) as_of: Option<String>,
    // Time travel (see `crate::fold::time_travel`).
    pub(super) as_of_position: Option<u64>,
    #[serde(default)]
    #[schemars(schema_with = "crate::http::query::time_param")]
    pub(super) known_at: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "crate::http::query::time_param")]
    pub(super) valid_at: Option<String>,
    // Lists.
    /// Only customers in this lifecycle state.
    #[schemars(extend("enum" = ["prospect", "new", "active", "reactivated", "at_risk", "dormant", "churned"]))]
    pub(super) status: Option<String>,
    pub(super) community: Option<String>,
    pub(super) segment: Option<String>,
    #[schemars(extend("enum" = ["id", "revenue", "last_seen", "influence"]))]
    pub(super) sort: Option<String>,
    /// Reactivation and segment members: `true` leaves out customers with no channel
    /// they consented to be contacted on for marketing.
    pub(super) reachable: Option<bool>,
    /// `kind:value`: only the people holding this identifier (support, admin).
    pub(super) identifier: Option<String>,
    pub(super) cursor: Option<String>,
    #[schemars(range(min = 1, max = LIST_LIMIT_MAX))]
    pub(super) limit: Option<usize>,
    // RFM and cohorts.
    pub(super) currency: Option<String>,
    #[schemars(extend("enum" = ["month"]))]
    pub(super) period: Option<String>,
    /// Cohorts and lifecycle by month: how many of the latest months.
    #[schemars(range(min = 1, max = rapport_projections::cohorts::MONTHS_MAX))]
    pub(super) months: Option<u32>,
    #[schemars(extend("enum" = ["json", "csv"]))]
    pub(super) format: Option<String>,
    /// CSV only: begin with a UTF-8 byte-order mark.
    pub(super) bom: Option<bool>,
}

/// The schema of a time in a query (`as_of`, `known_at`, `valid_at`): what
/// [`parse_as_of`] reads.
pub(crate) fn time_param(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "anyOf": [{"format": "date-time"}, {"format": "date"}],
        "description": "An RFC 3339 time, or a date YYYY-MM-DD (midnight UTC)",
    })
}

pub(crate) type Q = Result<Query<ReadQuery>, axum::extract::rejection::QueryRejection>;

pub(super) fn query(q: Q) -> Result<ReadQuery, ApiError> {
    q.map(|Query(q)| q).map_err(ApiError::query)
}

pub fn parse_as_of(s: &str) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc())
        .map_err(|_| ApiError::bad("as_of", "must be an RFC 3339 time or a date YYYY-MM-DD"))
}

/// The page size asked for, within 1 to [`LIST_LIMIT_MAX`].
pub(super) fn page_limit(q: &ReadQuery) -> Result<usize, ApiError> {
    limit_within(q.limit, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX)
}

/// `limit` within 1 to `max`, `default` when absent.
pub(super) fn limit_within(
    limit: Option<usize>,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match limit.unwrap_or(default) {
        l @ 1.. if l <= max => Ok(l),
        _ => Err(ApiError::bad("limit", format!("must be 1 to {max}"))),
    }
}

/// The offset a list's `cursor` stands for (0 without one): lists page by position in
/// their order.
pub(super) fn offset_cursor(cursor: Option<&str>) -> Result<usize, ApiError> {
    cursor.map_or(Ok(0), |c| {
        c.parse()
            .map_err(|_| ApiError::bad("cursor", "must be a cursor returned by this endpoint"))
    })
}

/// The currency asked for, else the one most purchases up to `as_of` were in.
pub(super) fn currency(
    q: &ReadQuery,
    c: &rapport_projections::Customers,
    as_of: DateTime<Utc>,
) -> String {
    q.currency
        .clone()
        .or_else(|| rfm::main_currency(c, as_of))
        .unwrap_or_else(|| "CNY".into())
}

/// The state a query reads: the live one, or a past one (time travel).
pub(super) enum View<'a> {
    Live(tokio::sync::RwLockReadGuard<'a, ReadState>),
    Past(std::sync::Arc<ReadState>),
}

impl std::ops::Deref for View<'_> {
    type Target = ReadState;
    fn deref(&self) -> &ReadState {
        match self {
            View::Live(g) => g,
            View::Past(s) => s,
        }
    }
}

impl View<'_> {
    pub(super) fn is_past(&self) -> bool {
        matches!(self, View::Past(_))
    }
}

/// Waits for `min_position`, then picks the state to read: live, or as it was after
/// `as_of_position` / at `known_at`, with only events that occurred by `valid_at`. The
/// reference time `as_of` defaults to `valid_at`, else the latest event time of that state.
pub(super) async fn view<'a>(
    state: &'a AppState,
    q: &ReadQuery,
) -> Result<(View<'a>, DateTime<Utc>), ApiError> {
    let live_as_of = prepare(state, q).await?;
    let valid_at = q
        .valid_at
        .as_deref()
        .map(|s| parse_time_param("valid_at", s))
        .transpose()?;
    let position = match (q.as_of_position, &q.known_at) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad(
                "known_at",
                "give as_of_position or known_at, not both",
            ))
        }
        (Some(p), None) => Some(p),
        (None, Some(t)) => {
            let t = parse_time_param("known_at", t)?;
            Some(crate::fold::time_travel::position_known_at(&state.log, t).await?)
        }
        (None, None) => None,
    };
    if position.is_none() && valid_at.is_none() {
        return Ok((View::Live(state.read_model.state.read().await), live_as_of));
    }
    let last = state.log.last_position();
    let position = position.unwrap_or(last);
    if position > last {
        return Err(ApiError::bad(
            "as_of_position",
            format!("is beyond the last position of the log ({last})"),
        ));
    }
    let past = state
        .read_model
        .time_travel
        .state_at(position, valid_at)
        .await?;
    let as_of = match (&q.as_of, valid_at) {
        (Some(s), _) => parse_as_of(s)?,
        (None, Some(t)) => t,
        (None, None) => past.segments.clock().unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
    };
    Ok((View::Past(past), as_of))
}

fn parse_time_param(field: &str, s: &str) -> Result<DateTime<Utc>, ApiError> {
    parse_as_of(s)
        .map_err(|_| ApiError::bad(field, "must be an RFC 3339 time or a date YYYY-MM-DD"))
}

/// Waits for `min_position`, then resolves `as_of`.
/// Waits (bounded) until the read model has applied `min_position`; 503 after that.
pub(super) async fn wait_min_position(
    state: &AppState,
    min_position: Option<u64>,
) -> Result<(), ApiError> {
    if let Some(p) = min_position {
        // Positions come from appends, so one beyond the end of the log is a mistake; it
        // is waited for all the same (bounded), as another writer's event may not have
        // reached this server yet (a shared KurrentDB).
        let wait = state.read_model.min_position_wait;
        if tokio::time::timeout(wait, state.log.wait_for_position(p))
            .await
            .is_err()
        {
            return Err(ApiError::bad(
                "min_position",
                format!(
                    "is beyond the end of the log (last position {}); give a position an append answered",
                    state.log.last_position()
                ),
            ));
        }
        // A stopped read model will not get there: say so at once.
        let stopped =
            p > state.read_model.applied_position() && state.read_model.stopped().is_some();
        if stopped || !state.read_model.wait_for(p).await {
            if let Some(why) = state.read_model.stopped() {
                return Err(ApiError::Unavailable(format!(
                    "the read model stopped at position {} and will not reach min_position {p}: {why}",
                    state.read_model.applied_position()
                )));
            }
            return Err(ApiError::Unavailable(format!(
                "the read model has applied position {} and did not reach min_position {p} within {} ms; retry",
                state.read_model.applied_position(),
                state.read_model.min_position_wait.as_millis()
            )));
        }
    }
    Ok(())
}

pub(super) async fn prepare(state: &AppState, q: &ReadQuery) -> Result<DateTime<Utc>, ApiError> {
    wait_min_position(state, q.min_position).await?;
    match &q.as_of {
        Some(s) => parse_as_of(s),
        None => Ok(state
            .read_model
            .latest
            .read()
            .await
            .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)),
    }
}
