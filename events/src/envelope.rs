//! The envelope: what a client sends ([`EventInput`]), what is validated and stored
//! ([`Event`]), and what readers get back ([`RecordedEvent`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, SecondsFormat, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::{
    data::{self, EventData, EventType, IdentifierKind, Subject, SubjectKind},
    error::{Errors, FieldError, ValidationErrors},
    personal::PersonalView,
};

/// Longest customer id, in bytes.
pub const CUSTOMER_ID_LEN_MAX: usize = data::ID_LEN_MAX;
/// Most metadata entries per event.
pub const METADATA_ENTRIES_MAX: usize = 32;
/// Earliest and latest accepted `occurred_at` years.
pub const OCCURRED_YEAR_MIN: i32 = 1900;
pub const OCCURRED_YEAR_MAX: i32 = 9999;
/// How far past the time it is recorded an event may say it occurred, in hours (clocks
/// differ; a day covers every time zone's idea of "today"). One event dated 9999 would
/// otherwise move every projection's business clock there.
pub const OCCURRED_AHEAD_HOURS_MAX: i64 = 24;

/// Refuses events that say they occurred more than [`OCCURRED_AHEAD_HOURS_MAX`] after
/// `now` (the time they are recorded), naming `<prefix>/occurred_at`; `prefix_of` gives
/// the path of an event by its place in `events` (`/3` in a batch, `` for one event).
pub fn check_not_ahead(
    events: &[Event],
    now: DateTime<Utc>,
    prefix_of: impl Fn(usize) -> String,
) -> Result<(), ValidationErrors> {
    let limit = now + chrono::Duration::hours(OCCURRED_AHEAD_HOURS_MAX);
    let errs: Vec<FieldError> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.occurred_at > limit)
        .map(|(i, e)| {
            FieldError::new(
                format!("{}/occurred_at", prefix_of(i)),
                format!(
                    "{} is more than {OCCURRED_AHEAD_HOURS_MAX} hours after now ({}): an event cannot have occurred in the future",
                    format_time(&e.occurred_at),
                    format_time(&now)
                ),
            )
        })
        .collect();
    if errs.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors(errs))
    }
}

/// An event as a client sends it (Rapport's own JSON form).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventInput {
    /// UUID; the idempotency key. Generated (UUIDv7) when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// The event type, e.g. `purchase`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Version of `data`'s shape; the type's current version when absent.
    #[serde(default)]
    pub version: Option<u16>,
    /// The customer the event is about; decides the stream. Required for every type
    /// except operator events (`segment_*`, `alert_*`), which name a `subject` instead.
    #[serde(default)]
    pub customer: Option<String>,
    /// Operator events only: the segment or alert id they are about.
    #[serde(default)]
    pub subject: Option<String>,
    /// Instead of `customer`: the customer is whoever holds this identifier (a till that
    /// knows only a phone number). Rapport records the event under an id derived from the
    /// identifier's blind index (`docs/identity.md`).
    #[serde(default)]
    pub identified_by: Option<IdentifiedBy>,
    /// Business time: when it happened (RFC 3339 with offset).
    pub occurred_at: String,
    /// The type's payload; see `events/schema/<type>.v<version>.json`.
    #[schemars(with = "serde_json::Value")]
    pub data: Box<RawValue>,
    /// Free-form string tags (source, correlation_id …). Never put personal data here.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// An identifier naming an event's customer (see [`EventInput::identified_by`]).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentifiedBy {
    pub kind: IdentifierKind,
    pub value: String,
}

/// Marks the `customer` of a validated event that names its customer by an identifier:
/// `MARK kind:normalised value`. Customer ids may not hold control characters, so it is
/// never a real id; the log replaces it before anything is stored.
pub const IDENTIFIED_BY_MARK: char = '\u{1}';

/// The identifier a validated event's `customer` names, when it names one.
pub fn identified_by(customer: &str) -> Option<(IdentifierKind, &str)> {
    let rest = customer.strip_prefix(IDENTIFIED_BY_MARK)?;
    let (kind, value) = rest.split_once(':')?;
    Some((IdentifierKind::parse(kind)?, value))
}

/// A validated event in canonical form: what the store keeps (before encryption).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: Uuid,
    pub data: EventData,
    /// The subject's id: the customer, or for operator events the segment or alert (the
    /// wire calls it `subject` then). The store keeps it in one column either way.
    pub customer: String,
    pub occurred_at: DateTime<Utc>,
    pub metadata: BTreeMap<String, String>,
}

impl Event {
    pub fn event_type(&self) -> EventType {
        self.data.event_type()
    }

    /// What the event is about (the `customer` field holds its id whatever its kind).
    pub fn subject(&self) -> Subject {
        Subject::of(self.event_type(), self.customer.clone())
    }

    /// The stream the event lands in: see [`stream_of`].
    pub fn stream(&self) -> String {
        stream_of(self.event_type().subject_kind(), &self.customer)
    }
}

/// The stream of a customer's events: `customer-<customer id>`.
pub fn stream_for(customer: &str) -> String {
    stream_of(SubjectKind::Customer, customer)
}

/// The one stream rule: `<kind>-<subject id>` with the prefixes `customer-`, `segment-`,
/// `alert-`. Prefixes never overlap, so a stream name says what it is about.
pub fn stream_of(kind: SubjectKind, subject: &str) -> String {
    format!("{}{subject}", kind.stream_prefix())
}

/// Where ids come from when a client sends none. Injected, so tests are deterministic.
pub trait IdSource {
    fn next_id(&mut self) -> Uuid;
}

impl<F: FnMut() -> Uuid> IdSource for F {
    fn next_id(&mut self) -> Uuid {
        self()
    }
}

/// Formats a time the way Rapport writes every timestamp: UTC, `Z`, only the fractional
/// digits needed.
pub fn format_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

pub(crate) fn parse_time(e: &mut Errors, path: &str, s: &str) -> Option<DateTime<Utc>> {
    match DateTime::parse_from_rfc3339(s) {
        Ok(t) => {
            let t = t.with_timezone(&Utc);
            if !(OCCURRED_YEAR_MIN..=OCCURRED_YEAR_MAX).contains(&t.year()) {
                e.push(
                    path,
                    format!(
                        "must be between the years {OCCURRED_YEAR_MIN} and {OCCURRED_YEAR_MAX}"
                    ),
                );
                return None;
            }
            Some(t)
        }
        Err(_) => {
            e.push(
                path,
                "must be an RFC 3339 timestamp with an offset, e.g. 2026-03-01T10:00:00Z",
            );
            None
        }
    }
}

impl EventInput {
    /// Validates and canonicalises. Errors are relative to this event (`/data/amount`).
    pub fn validate(
        self,
        ids: &mut dyn IdSource,
        allow_system: bool,
    ) -> Result<Event, ValidationErrors> {
        let mut e = Errors::default();
        let id = match &self.id {
            None => Some(ids.next_id()),
            Some(s) => match Uuid::parse_str(s) {
                Ok(u) if !u.is_nil() => Some(u),
                _ => {
                    e.push("/id", "must be a UUID (not the nil UUID)");
                    None
                }
            },
        };
        let ty = match EventType::parse(&self.event_type) {
            Some(t) if t.is_system() && !allow_system => {
                e.push(
                    "/type",
                    format!("`{t}` is written by Rapport itself and cannot be sent"),
                );
                None
            }
            Some(t) => Some(t),
            None => {
                let known: Vec<_> = EventType::ALL
                    .iter()
                    .filter(|t| !t.is_system())
                    .map(|t| t.as_str())
                    .collect();
                e.push(
                    "/type",
                    format!(
                        "unknown event type `{}` (known: {})",
                        self.event_type,
                        known.join(", ")
                    ),
                );
                None
            }
        };
        // Customer events name a `customer`, operator events a `subject`; never both.
        let operator = ty.map(EventType::is_operator);
        let (want, other) = if operator == Some(true) {
            ("subject", "customer")
        } else {
            ("customer", "subject")
        };
        let (given, unwanted) = if operator == Some(true) {
            (&self.subject, &self.customer)
        } else {
            (&self.customer, &self.subject)
        };
        let mut identified = None;
        match (given, &self.identified_by) {
            (Some(_), Some(_)) => e.push(
                "/identified_by",
                format!("name the customer by `{want}` or by `identified_by`, not both"),
            ),
            (Some(v), None) if operator == Some(true) => data::id(&mut e, &format!("/{want}"), v),
            (Some(v), None) => data::customer_id(&mut e, &format!("/{want}"), v),
            (None, Some(_)) if operator == Some(true) => e.push(
                "/identified_by",
                "is not allowed here (this event type names a `subject`)",
            ),
            (None, Some(by)) => match by.kind.normalise(&by.value) {
                Err(why) => e.push("/identified_by/value", why),
                Ok(v) if data::is_placeholder(&v) => e.push(
                    "/identified_by/value",
                    "is a placeholder (`0000`, `anonymous` …) and names nobody",
                ),
                Ok(v) => identified = Some(format!("{IDENTIFIED_BY_MARK}{}:{v}", by.kind)),
            },
            (None, None) => e.push(format!("/{want}"), "is required"),
        }
        if unwanted.is_some() {
            e.push(
                format!("/{other}"),
                format!("is not allowed here (this event type names a `{want}`)"),
            );
        }
        let occurred_at = parse_time(&mut e, "/occurred_at", &self.occurred_at);
        if self.metadata.len() > METADATA_ENTRIES_MAX {
            e.push(
                "/metadata",
                format!("must have at most {METADATA_ENTRIES_MAX} entries"),
            );
        }
        for (k, v) in &self.metadata {
            if k.is_empty() || k.len() > 64 || v.len() > data::SHORT_LEN_MAX {
                e.push(
                    format!("/metadata/{k}"),
                    format!(
                        "keys must be 1 to 64 bytes and values at most {} bytes",
                        data::SHORT_LEN_MAX
                    ),
                );
            }
        }
        let data = ty.and_then(|ty| {
            let version = self.version.unwrap_or(ty.current_version());
            match EventData::decode(ty, version, self.data.get()) {
                Ok(d) => Some(d),
                Err(errs) => {
                    e.0.extend(errs.under("/data").0);
                    None
                }
            }
        });
        e.into_result()?;
        match (id, data, occurred_at) {
            (Some(id), Some(data), Some(occurred_at)) => Ok(Event {
                id,
                data,
                customer: if operator == Some(true) {
                    self.subject.unwrap_or_default()
                } else {
                    identified.or(self.customer).unwrap_or_default()
                },
                occurred_at,
                metadata: self.metadata,
            }),
            // Every `None` above pushed an error, so `into_result` returned already.
            _ => Err(ValidationErrors::one("", "invalid event")),
        }
    }
}

fn syntax_error(path: String, e: serde_json::Error) -> ValidationErrors {
    ValidationErrors(vec![FieldError::new(path, format!("invalid JSON: {e}"))])
}

/// Parses one event in Rapport's JSON form. `allow_system` admits system event types
/// (only Rapport's own endpoints and trusted imports set it).
pub fn parse_one(
    text: &str,
    ids: &mut dyn IdSource,
    allow_system: bool,
) -> Result<Event, ValidationErrors> {
    // Fast path without path tracking; only a failure pays for a second, tracked parse.
    if let Ok(input) = serde_json::from_str::<EventInput>(text) {
        return input.validate(ids, allow_system);
    }
    let de = &mut serde_json::Deserializer::from_str(text);
    let input: EventInput = match serde_path_to_error::deserialize(&mut *de) {
        // Only one JSON value: a second one after it (or any other trailing text) is an
        // error, never silently dropped.
        Ok(i) => match de.end() {
            Ok(()) => i,
            Err(e) => return Err(syntax_error(String::new(), e)),
        },
        Err(err) => {
            let path: String = err.path().iter().map(|s| format!("/{s}")).collect();
            let inner = err.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                return Err(syntax_error(String::new(), inner));
            }
            let msg = inner.to_string();
            let msg = msg
                .rfind(" at line ")
                .map(|i| msg[..i].to_owned())
                .unwrap_or(msg);
            return Err(ValidationErrors::one(path, msg));
        }
    };
    input.validate(ids, allow_system)
}

/// Parses a batch: a JSON array of events, a single JSON object, or (with `ndjson`) one
/// event per line. A path's first segment is the index in the array (for NDJSON, the
/// line number minus one). Any error rejects the whole batch.
pub fn parse_batch(
    body: &str,
    ndjson: bool,
    ids: &mut dyn IdSource,
    allow_system: bool,
) -> Result<Vec<Event>, ValidationErrors> {
    let mut out = Vec::new();
    let mut errs = Vec::new();
    let mut one =
        |i: usize, text: &str, errs: &mut Vec<FieldError>| match parse_one(text, ids, allow_system)
        {
            Ok(ev) => out.push(ev),
            Err(e) => errs.extend(e.under(&format!("/{i}")).0),
        };
    if ndjson {
        for (i, line) in body.lines().enumerate() {
            if !line.trim().is_empty() {
                one(i, line, &mut errs);
            }
        }
    } else if body.trim_start().starts_with('[') {
        let items: Vec<&RawValue> =
            serde_json::from_str(body).map_err(|e| syntax_error(String::new(), e))?;
        for (i, item) in items.iter().enumerate() {
            one(i, item.get(), &mut errs);
        }
    } else {
        return parse_one(body, ids, allow_system).map(|e| vec![e]);
    }
    if !errs.is_empty() {
        return Err(ValidationErrors(errs));
    }
    Ok(out)
}

/// An event as readers get it back, with what the store added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RecordedEvent {
    /// Global position in the log: gapless, from 1.
    pub position: u64,
    pub stream: String,
    /// Version within the stream, from 0.
    pub stream_version: u64,
    /// When the store recorded it (the store's clock; not used by projections).
    pub recorded_at: DateTime<Utc>,
    pub id: Uuid,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub version: u16,
    /// The customer the event is about; empty (and left out) for operator events.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub customer: String,
    /// Operator events only: the segment or alert id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub occurred_at: DateTime<Utc>,
    /// The payload in its current version. Personal fields appear as `personal` says.
    pub data: serde_json::Value,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Present when the event type has personal fields: how they are shown here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub personal: Option<PersonalView>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> impl FnMut() -> Uuid {
        let mut n = 0u128;
        move || {
            n += 1;
            Uuid::from_u128(n)
        }
    }

    fn rules(body: &str) -> Vec<String> {
        match parse_batch(body, false, &mut ids(), false) {
            Ok(_) => vec![],
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    const GOOD: &str = r#"{"type":"purchase","customer":"c-1","occurred_at":"2026-03-01T10:00:00+08:00","data":{"order_id":"o-1","amount":"129.90","currency":"CNY"}}"#;

    #[test]
    fn a_valid_purchase_is_canonicalised() {
        let ev = parse_one(GOOD, &mut ids(), false).unwrap();
        assert_eq!(ev.id, Uuid::from_u128(1));
        assert_eq!(format_time(&ev.occurred_at), "2026-03-01T02:00:00Z");
        assert_eq!(ev.data.to_json()["amount"], "129.90");
        assert_eq!(ev.stream(), "customer-c-1");
    }

    #[test]
    fn errors_name_the_batch_index_and_field() {
        let bad = GOOD.replace(r#""129.90""#, r#""-5""#);
        let body = format!("[{GOOD},{GOOD},{GOOD},{bad}]");
        assert_eq!(
            rules(&body),
            ["/3/data/amount: must be a non-negative decimal"]
        );
    }

    #[test]
    fn unknown_fields_types_and_missing_fields_are_named() {
        let typo = GOOD.replace("order_id", "order");
        assert!(
            rules(&format!("[{typo}]"))[0].starts_with("/0/data/order: unknown field `order`"),
            "{:?}",
            rules(&format!("[{typo}]"))
        );
        let ty = GOOD.replace("purchase", "purchse");
        assert!(rules(&format!("[{ty}]"))[0].starts_with("/0/type: unknown event type `purchse`"));
        let no_customer = GOOD.replace(r#""customer":"c-1","#, "");
        assert_eq!(
            rules(&format!("[{no_customer}]")),
            ["/0/customer: is required"]
        );
    }

    #[test]
    fn system_types_cannot_be_sent_by_clients() {
        let body = r#"{"type":"personal_data_erased","customer":"c","occurred_at":"2026-01-01T00:00:00Z","data":{"key_generation":1}}"#;
        assert!(rules(body)[0].contains("written by Rapport itself"));
        assert!(parse_one(body, &mut ids(), true).is_ok());
    }

    #[test]
    fn operator_events_name_a_subject_and_land_in_its_stream() {
        let seg = r#"{"type":"segment_defined","subject":"lapsed","occurred_at":"2026-01-01T00:00:00Z","data":{"name":"Lapsed","rule":{"field":"orders","op":">","value":0}}}"#;
        let ev = parse_one(seg, &mut ids(), true).unwrap();
        assert_eq!(ev.stream(), "segment-lapsed");
        let both = seg.replace(
            r#""subject":"lapsed""#,
            r#""subject":"lapsed","customer":"c""#,
        );
        let e = parse_one(&both, &mut ids(), true).unwrap_err();
        assert_eq!(
            e.0[0].to_string(),
            "/customer: is not allowed here (this event type names a `subject`)"
        );
        let bad_rule = seg.replace(r#""op":">""#, r#""op":"~""#);
        let e = parse_one(&bad_rule, &mut ids(), true).unwrap_err();
        assert_eq!(e.0[0].path, "/data/rule/op");
    }

    #[test]
    fn ndjson_paths_are_line_numbers_minus_one() {
        let bad = GOOD.replace("2026-03-01T10:00:00+08:00", "yesterday");
        let body = format!("{GOOD}\n\n{bad}\n");
        let e = parse_batch(&body, true, &mut ids(), false).unwrap_err();
        assert_eq!(e.0[0].path, "/2/occurred_at");
    }

    #[test]
    fn complaint_rules() {
        let c = r#"{"type":"complaint","customer":"c","occurred_at":"2026-01-01T00:00:00Z","data":{"complaint_id":"k","about":{},"severity":9,"text":" "}}"#;
        assert_eq!(
            rules(c),
            [
                "/data/about: must name at least one of product, sku, batch, store, topic",
                "/data/severity: must be an integer from 1 to 5",
                "/data/text: must not be empty"
            ]
        );
    }
}
