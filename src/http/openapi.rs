//! `GET /openapi.json`: OpenAPI 3.1. Query parameters and request bodies are the JSON
//! Schemas of the types requests are read into (derived with schemars, bounds and
//! enumerations included), so the document cannot drift from what the handlers accept;
//! event payloads come from the `events` crate's own schemas. The table below adds what a
//! type cannot say: method, path, roles, which fields of a shared query a route reads,
//! and what it answers. `tests/api` checks every documented route is routed; the
//! Schemathesis run in `tests/it/process/schemathesis.rs` checks the server against it.

use axum::Json;
use rapport_events::EventType;
use schemars::{JsonSchema, Schema};
use serde_json::{json, Map, Value};

use super::{
    agents::AgentQuery,
    alerts::{AlertQuery, SubscribeQuery as AlertSubscribeQuery},
    communities::CommunityQuery,
    customers::LifecycleChangesQuery,
    events::{AppendQuery, ReadAllQuery, ReadStreamQuery, SubscribeQuery},
    exposure::ExposureSegment,
    privacy::{AuditQuery, CreateKey},
    problems::ProblemQuery,
    query::ReadQuery,
    segments::{ChangesQuery, DiffQuery},
    webhooks::{Create as WebhookCreate, Replay as WebhookReplay},
};

/// A query string: the schema of the type it is read into, and the fields of it this
/// route reads (every field when empty).
type Params = (fn() -> Schema, &'static [&'static str]);

/// What a request body is.
#[derive(Clone, Copy)]
pub(super) enum Body {
    None,
    /// Events to append: the envelope, an array, NDJSON or CloudEvents.
    Events,
    /// The payload of an operator event of this type, less `requested_by` (the caller's
    /// key id, set by Rapport); `with_id`: plus an optional `id` of what it creates.
    Payload {
        ty: EventType,
        with_id: bool,
    },
    /// A JSON object read into a type.
    Type(fn() -> Schema),
}

/// What a successful answer is.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Answer {
    Json,
    /// JSON, or CSV with `format=csv`.
    JsonOrCsv,
    /// Server-Sent Events.
    Sse,
    /// Prometheus text.
    Text,
    /// No body.
    Empty,
}

pub(super) struct Op {
    pub(super) method: &'static str,
    pub(super) path: &'static str,
    pub(super) summary: &'static str,
    pub(super) roles: &'static str,
    pub(super) query: Option<Params>,
    pub(super) body: Body,
    pub(super) ok: u16,
    pub(super) answer: Answer,
    /// What a success leads to (OpenAPI links, for clients and Schemathesis's stateful
    /// phase): (operationId, path parameter, where its value is in the answer).
    pub(super) links: &'static [(&'static str, &'static str, &'static str)],
    /// The fields a JSON answer always has (its schema requires them; Schemathesis checks
    /// every answer against it). Their own shapes are not described.
    pub(super) returns: &'static [&'static str],
}

impl Op {
    const GET: Op = Op {
        method: "get",
        path: "",
        summary: "",
        roles: READ,
        query: None,
        body: Body::None,
        ok: 200,
        answer: Answer::Json,
        links: &[],
        returns: &[],
    };
}

fn schema<T: JsonSchema>() -> Schema {
    schemars::SchemaGenerator::default().into_root_schema_for::<T>()
}

const READ: &str = "support, analyst, admin";
const RESPOND: &str = "support, admin";
const ADMIN: &str = "admin";
/// Time travel: the state after a log position, as known at a time, with only the
/// events that occurred by a time.
const TIME_TRAVEL: [&str; 3] = ["as_of_position", "known_at", "valid_at"];
const READ_Q: fn() -> Schema = schema::<ReadQuery>;

macro_rules! fields {
    ($($f:literal),* $(; $tt:expr)?) => {{
        const F: &[&str] = &[$($f,)* $($tt[0], $tt[1], $tt[2])?];
        F
    }};
}

type Links = &'static [(&'static str, &'static str, &'static str)];
const SEGMENT_LINKS: Links = &[
    ("get_v1_segments_id", "id", "$response.body#/segment"),
    (
        "get_v1_segments_id_members",
        "id",
        "$response.body#/segment",
    ),
    ("put_v1_segments_id", "id", "$response.body#/segment"),
    ("delete_v1_segments_id", "id", "$response.body#/segment"),
];
const PROBLEM_LINKS: Links = &[
    ("get_v1_problems_id", "id", "$response.body#/problem"),
    ("post_v1_problems_id_links", "id", "$response.body#/problem"),
    (
        "post_v1_problems_id_resolve",
        "id",
        "$response.body#/problem",
    ),
];
/// From the list to the first alert listed: what support staff do with it.
const ALERT_LINKS: Links = &[
    ("get_v1_alerts_id", "id", "$response.body#/alerts/0/id"),
    (
        "post_v1_alerts_id_acknowledge",
        "id",
        "$response.body#/alerts/0/id",
    ),
    (
        "post_v1_alerts_id_resolve",
        "id",
        "$response.body#/alerts/0/id",
    ),
    (
        "post_v1_alerts_id_assign",
        "id",
        "$response.body#/alerts/0/id",
    ),
    (
        "post_v1_alerts_id_review",
        "id",
        "$response.body#/alerts/0/id",
    ),
    (
        "post_v1_alerts_id_merge",
        "id",
        "$response.body#/alerts/0/id",
    ),
    (
        "get_v1_alerts_id_exposure",
        "id",
        "$response.body#/alerts/0/id",
    ),
    (
        "post_v1_alerts_id_exposure_segment",
        "id",
        "$response.body#/alerts/0/id",
    ),
];
const WEBHOOK_LINKS: Links = &[
    ("get_v1_webhooks_id", "id", "$response.body#/webhook/id"),
    ("delete_v1_webhooks_id", "id", "$response.body#/webhook/id"),
    (
        "post_v1_webhooks_id_resume",
        "id",
        "$response.body#/webhook/id",
    ),
    (
        "post_v1_webhooks_id_replay",
        "id",
        "$response.body#/webhook/id",
    ),
];

pub(super) const OPS: &[Op] = &[
    Op { path: "/healthz", summary: "Liveness", roles: "open", returns: &["status"], ..Op::GET },
    Op { path: "/readyz", summary: "Readiness (503 while shutting down, while the read model is more than 10,000 events behind the store, or when it has stopped)", roles: "open", ..Op::GET },
    Op { path: "/metrics", summary: "Prometheus metrics", answer: Answer::Text, ..Op::GET },
    Op { path: "/openapi.json", summary: "This document", roles: "open", returns: &["openapi", "info", "paths", "components"], ..Op::GET },
    Op { method: "post", path: "/v1/events", summary: "Append one event, a JSON array, NDJSON, or CloudEvents (single or batch). The support role may append complaint_resolved and contacted only; an ingest key may not give expected_version", roles: "ingest, admin, support", query: Some((schema::<AppendQuery>, &[])), body: Body::Events, ok: 201, returns: &["events", "last_position", "positions"], ..Op::GET },
    Op { path: "/v1/events", summary: "The global log, paged", query: Some((schema::<ReadAllQuery>, &[])), returns: &["events", "last_position"], ..Op::GET },
    Op { path: "/v1/events/subscribe", summary: "Server-Sent Events: catch-up from `after` (or Last-Event-ID), then live. A key holds at most 32 live feeds open at once (429 past it)", query: Some((schema::<SubscribeQuery>, &[])), answer: Answer::Sse, ..Op::GET },
    Op { path: "/v1/streams/{stream}", summary: "One stream, paged", query: Some((schema::<ReadStreamQuery>, &[])), returns: &["stream", "events"], ..Op::GET },
    Op { method: "post", path: "/v1/keys", summary: "Create an API key; the token is shown once", roles: ADMIN, body: Body::Type(schema::<CreateKey>), ok: 201, links: &[("delete_v1_keys_id", "id", "$response.body#/key/id")], returns: &["key", "token"], ..Op::GET },
    Op { path: "/v1/keys", summary: "List API keys (never their secrets)", roles: ADMIN, returns: &["keys"], ..Op::GET },
    Op { method: "delete", path: "/v1/keys/{id}", summary: "Revoke an API key", roles: ADMIN, ok: 204, answer: Answer::Empty, ..Op::GET },
    Op { path: "/v1/customers", summary: "People (an id merged into another is listed under it), paged. identifier (kind:value, e.g. phone:+8613800138000) is for support and admin only (403 for analysts)", query: Some((READ_Q, fields!["identifier", "status", "community", "segment", "sort", "cursor", "limit", "as_of", "min_position"; TIME_TRAVEL])), returns: &["customers", "total"], ..Op::GET },
    Op { path: "/v1/customers/{id}", summary: "The profile of the person the id belongs to (all its ids' events together), with `person` {id, ids, merged_into, links (cause, joined, refused)}, identifiers as the caller may see them, and `consent` (per channel and purpose, marketing_channels, history, contacts_without_consent) as of the time asked", query: Some((READ_Q, fields!["as_of", "min_position"; TIME_TRAVEL])), returns: &["id", "orders", "revenue", "lifecycle", "person", "consent"], ..Op::GET },
    Op { path: "/v1/audit", summary: "The audit log of personal-data reads, newest first: who (key_id, role), when, through what (profile, timeline, events, subject_export, alert), which customers", roles: ADMIN, query: Some((schema::<AuditQuery>, &[])), returns: &["entries"], ..Op::GET },
    Op { method: "post", path: "/v1/webhooks", summary: "Subscribe a URL to changes (segment.entered, segment.exited, alert.raised, alert.escalated, alert.overdue, alert.resolved, lifecycle.changed); answers the subscription and its signing secret (shown once). Internal addresses are refused (400 /url) unless configured", roles: ADMIN, body: Body::Type(schema::<WebhookCreate>), ok: 201, links: WEBHOOK_LINKS, returns: &["webhook", "secret"], ..Op::GET },
    Op { path: "/v1/webhooks", summary: "Webhook subscriptions with their delivery state (cursor, delivered, failures, last_error, status)", roles: ADMIN, returns: &["webhooks"], ..Op::GET },
    Op { path: "/v1/webhooks/{id}", summary: "One webhook subscription and its delivery state", roles: ADMIN, ..Op::GET },
    Op { method: "delete", path: "/v1/webhooks/{id}", summary: "Unsubscribe", roles: ADMIN, ok: 204, answer: Answer::Empty, ..Op::GET },
    Op { method: "post", path: "/v1/webhooks/{id}/resume", summary: "Resume a parked subscription from where it stopped", roles: ADMIN, ..Op::GET },
    Op { method: "post", path: "/v1/webhooks/{id}/replay", summary: "Deliver again every change caused by events after a log position; 409 feed_truncated when a feed no longer holds them", roles: ADMIN, body: Body::Type(schema::<WebhookReplay>), ..Op::GET },
    Op { method: "post", path: "/v1/customers/{id}/merge", summary: "Staff merge another customer into this one (one person); 409 already_one_person", roles: RESPOND, body: Body::Payload { ty: EventType::CustomersMerged, with_id: false }, ..Op::GET },
    Op { method: "post", path: "/v1/customers/{id}/unmerge", summary: "Staff say this customer and another are two people, from now on", roles: RESPOND, body: Body::Payload { ty: EventType::CustomersUnmerged, with_id: false }, ..Op::GET },
    Op { path: "/v1/identity/rules", summary: "The identity rules in force: per kind {merge, limit, priority}, how many values are blocked", returns: &["kinds", "blocked"], ..Op::GET },
    Op { method: "put", path: "/v1/identity/rules", summary: "Define the identity rules; blocked values are kept only as blind indexes", roles: ADMIN, body: Body::Payload { ty: EventType::IdentityRulesDefined, with_id: false }, ..Op::GET },
    Op { path: "/v1/customers/{id}/timeline", summary: "The customer's events, newest first", query: Some((READ_Q, fields!["cursor", "limit", "min_position"])), returns: &["customer", "events"], ..Op::GET },
    Op { path: "/v1/rfm", summary: "RFM scores and segments (bom=true: a UTF-8 byte-order mark before the CSV)", query: Some((READ_Q, fields!["as_of", "currency", "format", "bom", "min_position"])), answer: Answer::JsonOrCsv, returns: &["as_of", "currency", "customers", "segments"], ..Op::GET },
    Op { path: "/v1/rfm/grid", summary: "RFM summary without a row per customer: customers and net revenue per recency × frequency cell (`grid`, recency 5 first) and per segment", query: Some((READ_Q, fields!["as_of", "currency", "min_position"])), returns: &["as_of", "currency", "grid", "segments"], ..Op::GET },
    Op { path: "/v1/cohorts", summary: "Monthly acquisition cohorts: retention and revenue, for the latest `months` months (default 36; buyers of earlier cohorts are counted in `earlier_customers`)", query: Some((READ_Q, fields!["period", "months", "as_of", "min_position"])), returns: &["as_of", "cohorts", "months"], ..Op::GET },
    Op { path: "/v1/lifecycle/by-month", summary: "Buyers by lifecycle state at the end of every month, from the first purchase to as_of, the latest `months` months at most (default 36)", query: Some((READ_Q, fields!["months", "as_of", "min_position"; TIME_TRAVEL])), returns: &["as_of", "months"], ..Op::GET },
    Op { path: "/v1/reactivation", summary: "Dormant customers ranked by the expected value of winning them back, with the parts of the score and the channels each may be contacted on for marketing (marketing_channels). reachable=true: only customers with a marketing channel; CSV holds every candidate", query: Some((READ_Q, fields!["as_of", "limit", "currency", "reachable", "format", "bom", "min_position"])), answer: Answer::JsonOrCsv, returns: &["as_of", "currency", "customers", "total"], ..Op::GET },
    Op { path: "/v1/campaigns", summary: "Outreach campaigns: contacts, reactivations after outreach, and contacts made on a channel without the customer's marketing consent then (contacted_without_consent)", query: Some((READ_Q, fields!["as_of", "min_position"])), returns: &["as_of", "campaigns"], ..Op::GET },
    Op { method: "post", path: "/v1/segments", summary: "Define a rule-based segment (condition language: docs/segments.md). 409 if the id exists", roles: "analyst, admin", body: Body::Payload { ty: EventType::SegmentDefined, with_id: true }, ok: 201, links: SEGMENT_LINKS, returns: &["segment", "position"], ..Op::GET },
    Op { path: "/v1/segments", summary: "Segments with their member counts and `last_change` (the feed's cursor)", query: Some((READ_Q, fields!["min_position"])), returns: &["segments"], ..Op::GET },
    Op { path: "/v1/lifecycle/changes", summary: "Server-Sent Events: lifecycle changes (from, to, cause event or time, the event that caused it) after `after` (or Last-Event-ID), then live; the feed Kafka publishes on rapport.customers", query: Some((schema::<LifecycleChangesQuery>, &[])), answer: Answer::Sse, ..Op::GET },
    Op { path: "/v1/segments/changes", summary: "Server-Sent Events: membership changes (entered / exited, with the event that caused them) after `after` (or Last-Event-ID), then live", query: Some((schema::<ChangesQuery>, &[])), answer: Answer::Sse, ..Op::GET },
    Op { path: "/v1/segments/{id}", summary: "One segment's definition and member count", query: Some((READ_Q, fields!["min_position"])), returns: &["id", "name", "rule", "members"], ..Op::GET },
    Op { method: "put", path: "/v1/segments/{id}", summary: "Define or redefine a segment (a new revision); members are re-evaluated", roles: "analyst, admin", body: Body::Payload { ty: EventType::SegmentDefined, with_id: false }, ..Op::GET },
    Op { method: "delete", path: "/v1/segments/{id}", summary: "Retire a segment; every member exits", roles: "analyst, admin", ..Op::GET },
    Op { path: "/v1/segments/{id}/members", summary: "Members, paged by customer id (JSON), or all of them as CSV for marketing tools, each with marketing_channels. reachable=true: only members with a marketing channel; text fields a spreadsheet would run as formulas start with a quote", query: Some((READ_Q, fields!["reachable", "format", "bom", "cursor", "limit", "min_position"])), answer: Answer::JsonOrCsv, returns: &["segment", "members"], ..Op::GET },
    Op { path: "/v1/segments/{id}/diff", summary: "Who entered and who left a segment between two points: log positions, or times read as business time (basis=recorded reads them as recording time)", query: Some((schema::<DiffQuery>, &[])), returns: &["segment", "entered", "exited"], ..Op::GET },
    Op { path: "/v1/agents/networks", summary: "Agent networks (a top-level agent and everything under it), highest pyramid risk first: participants, levels, retail sales against agents' own purchases, commissions by basis and the share paid for recruitment, entry fees, growth of recruits against retail, agents who stocked and left, the criteria met (signs), risk level, evidence and alert", query: Some((schema::<AgentQuery>, &[])), returns: &["networks", "total"], ..Op::GET },
    Op { path: "/v1/agents/networks/{root}", summary: "One agent network with its figures and its agents level by level (up to 1,000)", query: Some((schema::<AgentQuery>, fields!["min_position"; TIME_TRAVEL])), ..Op::GET },
    Op { path: "/v1/agents/{id}", summary: "One agent: upline chain, depth, direct and total downline, retail sales to end customers, own purchases, sell-through (all time and the latest 3 months), entry fees, commissions by basis, quiet or left with stock; and its network's risk", query: Some((schema::<AgentQuery>, fields!["min_position"; TIME_TRAVEL])), ..Op::GET },
    Op { path: "/v1/communities", summary: "Communities with members now, joined and left in all, active members (posted or bought in the window), posts and complaints in the window, complaint rate, members' revenue all time and in the window, its trend against the window before, dormant or at-risk members, open alerts touching it; largest first by `sort`", query: Some((schema::<CommunityQuery>, &[])), returns: &["communities", "total"], ..Op::GET },
    Op { path: "/v1/communities/{id}", summary: "One community: its summary, the latest 12 months (joined, left, members at the end, posts, complaints, members' revenue), leaders by posts, replies received, echoes received and influence, and its dormant or at-risk members, most spent first", query: Some((schema::<CommunityQuery>, fields!["window_months", "as_of", "min_position"; TIME_TRAVEL])), returns: &["id", "members"], ..Op::GET },
    Op { path: "/v1/alerts", summary: "Early-warning alerts, oldest update first. assignee: a key id, or me", query: Some((schema::<AlertQuery>, &[])), returns: &["alerts", "total"], links: ALERT_LINKS, ..Op::GET },
    Op { path: "/v1/alerts/subscribe", summary: "Server-Sent Events: alert changes (raised, updated, escalated, acknowledged, resolved, reopened, assigned, reviewed, merged, linked, overdue) with the alert, after `after` (or Last-Event-ID), then live", query: Some((schema::<AlertSubscribeQuery>, &[])), answer: Answer::Sse, ..Op::GET },
    Op { path: "/v1/alerts/verdicts", summary: "The detector's precision on staff's verdicts, per level reached", query: Some((schema::<AlertQuery>, fields!["min_position"])), returns: &["verdicts"], ..Op::GET },
    Op { path: "/v1/alerts/{id}", summary: "One alert with its evidence and its graph (graph.nodes: the customers of its timeline in the order they first appear, with the step at which they do; graph.edges: referral, replied to, mentioned, echoed or a shared community between them; a network alert: its first agents and who recruited whom; evidence.said: the evidence sentences as message ids with arguments); support and admin also get the phrases its complaints share and the texts of its first 50 complaints", query: Some((schema::<AlertQuery>, fields!["min_position"; TIME_TRAVEL])), returns: &["id", "kind", "level", "status", "customers", "evidence", "graph"], ..Op::GET },
    Op { method: "post", path: "/v1/alerts/{id}/acknowledge", summary: "Acknowledge an alert; recorded as an event", roles: RESPOND, body: Body::Payload { ty: EventType::AlertAcknowledged, with_id: false }, ..Op::GET },
    Op { method: "post", path: "/v1/alerts/{id}/resolve", summary: "Resolve an alert; recorded as an event", roles: RESPOND, body: Body::Payload { ty: EventType::AlertResolved, with_id: false }, ..Op::GET },
    Op { method: "post", path: "/v1/alerts/{id}/assign", summary: "Give an alert to a staff member (a support or admin key id)", roles: RESPOND, body: Body::Payload { ty: EventType::AlertAssigned, with_id: false }, ..Op::GET },
    Op { method: "post", path: "/v1/alerts/{id}/review", summary: "Say whether the alert was right", roles: RESPOND, body: Body::Payload { ty: EventType::AlertReviewed, with_id: false }, ..Op::GET },
    Op { method: "post", path: "/v1/alerts/{id}/merge", summary: "Merge this alert into another (the same group complaint); 409 if this one is already merged", roles: RESPOND, body: Body::Payload { ty: EventType::AlertMerged, with_id: false }, ..Op::GET },
    Op { path: "/v1/alerts/{id}/exposure", summary: "Customers who bought the alert's SKU, product or batch, or at its store, from exposure_days before its first complaint and have not complained in it, most money first, with their community reach", query: Some((READ_Q, fields!["format", "bom", "limit", "min_position"])), answer: Answer::JsonOrCsv, returns: &["alert", "customers", "total"], ..Op::GET },
    Op { method: "post", path: "/v1/alerts/{id}/exposure/segment", summary: "Make the exposed customers a segment (customer in [...]); 409 if the id exists or nobody is exposed", body: Body::Type(schema::<ExposureSegment>), ok: 201, ..Op::GET },
    Op { method: "post", path: "/v1/problems", summary: "Open a problem (a root cause)", roles: RESPOND, body: Body::Payload { ty: EventType::ProblemOpened, with_id: true }, ok: 201, links: PROBLEM_LINKS, returns: &["problem", "position"], ..Op::GET },
    Op { path: "/v1/problems", summary: "Problems, newest first", query: Some((schema::<ProblemQuery>, &[])), returns: &["problems"], ..Op::GET },
    Op { path: "/v1/problems/{id}", summary: "One problem with its alerts", query: Some((schema::<ProblemQuery>, fields!["min_position"])), returns: &["id", "title", "status", "alerts"], ..Op::GET },
    Op { method: "post", path: "/v1/problems/{id}/links", summary: "Link an alert or one complaint to a problem; 409 if the problem is resolved", roles: RESPOND, body: Body::Payload { ty: EventType::ProblemLinked, with_id: false }, ..Op::GET },
    Op { method: "post", path: "/v1/problems/{id}/resolve", summary: "Resolve a problem: its alerts are resolved and its open complaints get complaint_resolved on their customers' streams, in one append", roles: RESPOND, body: Body::Payload { ty: EventType::ProblemResolved, with_id: false }, ..Op::GET },
    Op { method: "delete", path: "/v1/customers/{id}/personal-data", summary: "Erase a customer's personal data (crypto-shredding)", roles: ADMIN, ..Op::GET },
    Op { path: "/v1/customers/{id}/export", summary: "Everything held about a customer, decrypted (access and portability)", roles: RESPOND, returns: &["customer", "events", "personal_data"], ..Op::GET },
];

/// Schemas that refer to definitions (`#/$defs/X`) have them moved to the document's
/// components, where such a reference resolves in OpenAPI.
struct Components(Map<String, Value>);

impl Components {
    fn hoist(&mut self, schema: Schema) -> Value {
        let mut v = schema.to_value();
        if let Some(o) = v.as_object_mut() {
            o.remove("$schema");
            if let Some(Value::Object(defs)) = o.remove("$defs") {
                for (name, mut def) in defs {
                    repoint(&mut def);
                    self.0.entry(name).or_insert(def);
                }
            }
        }
        repoint(&mut v);
        v
    }
}

fn repoint(v: &mut Value) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get_mut("$ref") {
                if let Some(name) = r.strip_prefix("#/$defs/") {
                    *r = format!("#/components/schemas/{name}");
                }
            }
            o.values_mut().for_each(repoint);
        }
        Value::Array(a) => a.iter_mut().for_each(repoint),
        _ => {}
    }
}

/// A property's schema as a query parameter's: a missing parameter is how `None` is
/// said, so `null` is not one of its values.
fn non_null(mut s: Value) -> Value {
    if let Some(o) = s.as_object_mut() {
        if let Some(Value::Array(types)) = o.get("type") {
            let kept: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
            o.insert(
                "type".into(),
                match kept.as_slice() {
                    [one] => one.clone(),
                    _ => Value::Array(kept),
                },
            );
        }
        if o.get("default") == Some(&Value::Null) {
            o.remove("default");
        }
        o.remove("description");
    }
    s
}

fn parameters((schema_of, fields): Params) -> Vec<Value> {
    let s = schema_of().to_value();
    let required: Vec<&str> = s["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(props) = s["properties"].as_object() else {
        return Vec::new();
    };
    props
        .iter()
        .filter(|(name, _)| fields.is_empty() || fields.contains(&name.as_str()))
        .map(|(name, prop)| {
            let mut p = json!({
                "name": name,
                "in": "query",
                "required": required.contains(&name.as_str()),
                "schema": non_null(prop.clone()),
            });
            if let Some(d) = prop.get("description") {
                p["description"] = d.clone();
            }
            p
        })
        .collect()
}

fn request_body(body: Body, components: &mut Components) -> Option<Value> {
    let schema = match body {
        Body::None => return None,
        Body::Events => {
            let one = json!({"$ref": "#/components/schemas/EventInput"});
            return Some(json!({"required": true, "content": {
                "application/json": {"schema": {"oneOf": [one, {"type": "array", "items": one}]}},
                "application/x-ndjson": {"schema": {"type": "string"}},
                "application/cloudevents+json": {"schema": {"type": "object"}},
                "application/cloudevents-batch+json": {"schema": {"type": "array"}},
            }}));
        }
        Body::Payload { ty, with_id } => {
            let mut v = components.hoist(rapport_events::schema::data_schema(ty, 1));
            if let Some(o) = v.as_object_mut() {
                o.remove("title");
                if let Some(Value::Object(props)) = o.get_mut("properties") {
                    props.remove("requested_by");
                    if with_id {
                        props.insert("id".into(), json!({"type": "string", "description": "The id of what is created; generated when absent"}));
                    }
                }
                if let Some(Value::Array(req)) = o.get_mut("required") {
                    req.retain(|r| r != "requested_by");
                }
            }
            v
        }
        Body::Type(schema_of) => {
            let mut v = components.hoist(schema_of());
            if let Some(o) = v.as_object_mut() {
                o.remove("title");
            }
            v
        }
    };
    // An operator action's body may be left out when nothing in it is required (it reads
    // as `{}`).
    let required = schema["required"].as_array().is_some_and(|r| !r.is_empty());
    let required = required || matches!(body, Body::Type(_));
    Some(json!({"required": required, "content": {"application/json": {"schema": schema}}}))
}

fn responses(op: &Op) -> Value {
    let error = json!({"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    let json_ok = if op.returns.is_empty() {
        json!({})
    } else {
        let props: Map<String, Value> = op
            .returns
            .iter()
            .map(|f| ((*f).to_owned(), json!({})))
            .collect();
        json!({"type": "object", "required": op.returns, "properties": props})
    };
    let content = match op.answer {
        Answer::Json => json!({"application/json": {"schema": json_ok}}),
        Answer::JsonOrCsv => {
            json!({"application/json": {"schema": json_ok}, "text/csv": {"schema": {"type": "string"}}})
        }
        Answer::Sse => json!({"text/event-stream": {"schema": {"type": "string"}}}),
        Answer::Text => json!({"text/plain": {"schema": {"type": "string"}}}),
        Answer::Empty => Value::Null,
    };
    let mut ok = json!({"description": "Success"});
    if !content.is_null() {
        ok["content"] = content;
    }
    if !op.links.is_empty() {
        let links: Map<String, Value> = op
            .links
            .iter()
            .map(|(target, param, expr)| {
                (
                    (*target).to_owned(),
                    json!({"operationId": target, "parameters": {*param: expr}}),
                )
            })
            .collect();
        ok["links"] = Value::Object(links);
    }
    let mut out = Map::new();
    out.insert(op.ok.to_string(), ok);
    // Every route answers 404 to a path it does not know and 400 to a query it does not
    // take; the rest by what the route does.
    let mut errors = vec![400, 404];
    if op.roles != "open" {
        errors.extend([401, 403, 503]);
    }
    if op.path == "/readyz" {
        errors.push(503);
    }
    if op.method != "get" {
        errors.extend([409, 413, 507]);
    }
    if op.answer == Answer::Sse {
        errors.push(429);
    }
    for status in errors {
        out.insert(status.to_string(), error.clone());
    }
    Value::Object(out)
}

pub(super) fn document() -> Value {
    let mut components = Components(Map::new());
    let mut paths = Map::new();
    for op in OPS {
        let mut o = json!({
            "summary": op.summary,
            "description": format!("Roles: {}.", op.roles),
            "operationId": operation_id(op),
            "responses": responses(op),
        });
        if op.roles != "open" {
            o["security"] = json!([{"bearer": []}]);
        }
        if let Some(body) = request_body(op.body, &mut components) {
            o["requestBody"] = body;
        }
        let mut params: Vec<Value> = op
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| {
                let mut p = json!({"name": name, "in": "path", "required": true, "schema": {"type": "string", "minLength": 1}});
                if let Some(e) = path_example(op.path) {
                    p["example"] = e.into();
                }
                p
            })
            .collect();
        params.extend(op.query.map(parameters).unwrap_or_default());
        if !params.is_empty() {
            o["parameters"] = Value::Array(params);
        }
        let entry = paths
            .entry(op.path.to_string())
            .or_insert_with(|| json!({}));
        entry[op.method] = o;
    }
    for (name, schema) in rapport_events::schema::all() {
        let key = match name.as_str() {
            "envelope.json" => "EventInput".to_string(),
            "recorded.json" => "RecordedEvent".to_string(),
            other => other.trim_end_matches(".json").replace('.', "_"),
        };
        let v = components.hoist(schema);
        components.0.insert(key, v);
    }
    components.0.insert(
        "Error".into(),
        json!({"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
            "code": {"type": "string"}, "message": {"type": "string"},
            "details": {"type": "array", "items": {"type": "object", "properties": {"path": {"type": "string"}, "rule": {"type": "string"}}}}}}}}),
    );
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Rapport", "version": env!("CARGO_PKG_VERSION"), "description": "Event-sourced customer-community CRM"},
        "components": {"schemas": components.0, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": paths,
    })
}

/// An example of the id a path takes, as the examples in `docs/` name them.
fn path_example(path: &str) -> Option<&'static str> {
    let resource = path.trim_start_matches("/v1/").split('/').next()?;
    Some(match resource {
        "customers" => "c-1",
        "streams" => "customer-c-1",
        "segments" => "buyers",
        "problems" => "mould",
        "communities" => "g-1",
        "agents" => "c-1",
        _ => return None,
    })
}

/// `get /v1/alerts/{id}` → `get_v1_alerts_id`.
fn operation_id(op: &Op) -> String {
    let path: String = op
        .path
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let mut id = format!("{}{}", op.method, path);
    while id.contains("__") {
        id = id.replace("__", "_");
    }
    id.trim_end_matches('_').to_owned()
}

pub(super) async fn openapi_json() -> Json<Value> {
    Json(document())
}
