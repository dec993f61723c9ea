//! `GET /openapi.json`: OpenAPI 3.1, generated from the route table below and the JSON
//! Schemas the `events` crate derives from its types. `tests/api` checks that every
//! documented route exists and that every route is documented.

use axum::Json;
use serde_json::{json, Map, Value};

/// (method, path, summary, roles, request body schema, success status)
type Route = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    u16,
);

pub(super) const ROUTES: &[Route] = &[
    ("get", "/healthz", "Liveness", "open", None, 200),
    ("get", "/readyz", "Readiness (503 while shutting down or while the read model is more than 10,000 events behind the store)", "open", None, 200),
    ("get", "/metrics", "Prometheus metrics", "support, analyst, admin", None, 200),
    ("get", "/openapi.json", "This document", "open", None, 200),
    ("post", "/v1/events", "Append one event, a JSON array, NDJSON, or CloudEvents (single or batch). Query: stream, expected_version (any | no_stream | N). The support role may append complaint_resolved and contacted only", "ingest, admin, support", Some("EventInput"), 201),
    ("get", "/v1/events", "The global log, paged. Query: after (position), limit", "support, analyst, admin", None, 200),
    ("get", "/v1/events/subscribe", "Server-Sent Events: catch-up from `after` (or Last-Event-ID), then live. A key holds at most 32 live feeds open at once (429 past it)", "support, analyst, admin", None, 200),
    ("get", "/v1/streams/{stream}", "One stream, paged. Query: from_version, limit", "support, analyst, admin", None, 200),
    ("post", "/v1/keys", "Create an API key: {\"role\": ..., \"label\": ...}; the token is shown once", "admin", None, 201),
    ("get", "/v1/keys", "List API keys (never their secrets)", "admin", None, 200),
    ("delete", "/v1/keys/{id}", "Revoke an API key", "admin", None, 204),
    ("get", "/v1/customers", "People (an id merged into another is listed under it), paged. Query: identifier (kind:value, e.g. phone:+8613800138000; support and admin only: 403 for analysts), status (lifecycle), community, segment, sort (id | revenue | last_seen | influence), cursor, limit, as_of, min_position", "support, analyst, admin", None, 200),
    ("get", "/v1/customers/{id}", "The profile of the person the id belongs to (all its ids' events together), with `person` {id, ids, merged_into, links (cause, joined, refused)}, identifiers as the caller may see them, and `consent` (per channel and purpose, marketing_channels, history, contacts_without_consent) as of the time asked. Query: as_of, as_of_position, known_at, valid_at, min_position", "support, analyst, admin", None, 200),
    ("get", "/v1/audit", "The audit log of personal-data reads, newest first: who (key_id, role), when, through what (profile, timeline, events, subject_export, alert), which customers. Query: customer, key_id, limit (1 to 10,000; 100)", "admin", None, 200),
    ("post", "/v1/webhooks", "Subscribe a URL to changes: {\"url\", \"events\": [segment.entered | segment.exited | alert.raised | alert.escalated | alert.overdue | alert.resolved | lifecycle.changed], \"segment\"?}; answers the subscription and its signing secret (shown once). Internal addresses are refused (400 /url) unless configured", "admin", None, 201),
    ("get", "/v1/webhooks", "Webhook subscriptions with their delivery state (cursor, delivered, failures, last_error, status)", "admin", None, 200),
    ("get", "/v1/webhooks/{id}", "One webhook subscription and its delivery state", "admin", None, 200),
    ("delete", "/v1/webhooks/{id}", "Unsubscribe", "admin", None, 204),
    ("post", "/v1/webhooks/{id}/resume", "Resume a parked subscription from where it stopped", "admin", None, 200),
    ("post", "/v1/webhooks/{id}/replay", "Deliver again every change caused by events after a log position: {\"from_position\"}; 409 feed_truncated when a feed no longer holds them", "admin", None, 200),
    ("post", "/v1/customers/{id}/merge", "Staff merge another customer into this one (one person): {\"merged\", \"reason\"}; 409 already_one_person", "support, admin", None, 200),
    ("post", "/v1/customers/{id}/unmerge", "Staff say this customer and another are two people, from now on: {\"other\", \"reason\"}", "support, admin", None, 200),
    ("get", "/v1/identity/rules", "The identity rules in force: per kind {merge, limit, priority}, how many values are blocked", "support, analyst, admin", None, 200),
    ("put", "/v1/identity/rules", "Define the identity rules: {\"kinds\"?: {KIND: {merge, limit, priority}}, \"blocked\"?: [{kind, value}]}; values are kept only as blind indexes", "admin", None, 200),
    ("get", "/v1/customers/{id}/timeline", "The customer's events, newest first. Query: cursor, limit, min_position", "support, analyst, admin", None, 200),
    ("get", "/v1/rfm", "RFM scores and segments. Query: as_of, currency, format=csv, bom=true (a UTF-8 byte-order mark before the CSV), min_position", "support, analyst, admin", None, 200),
    ("get", "/v1/rfm/grid", "RFM summary without a row per customer: customers and net revenue per recency × frequency cell (`grid`, recency 5 first) and per segment. Query: as_of, currency, min_position", "support, analyst, admin", None, 200),
    ("get", "/v1/cohorts", "Monthly acquisition cohorts: retention and revenue, for the latest `months` months (1–240, default 36; buyers of earlier cohorts are counted in `earlier_customers`). Query: period=month, months, as_of, min_position", "support, analyst, admin", None, 200),
    ("get", "/v1/lifecycle/by-month", "Buyers by lifecycle state at the end of every month, from the first purchase to as_of, the latest `months` months at most (1–240, default 36). Query: months, as_of, as_of_position, known_at, valid_at, min_position", "support, analyst, admin", None, 200),
    ("get", "/v1/reactivation", "Dormant customers ranked by the expected value of winning them back, with the parts of the score and the channels each may be contacted on for marketing (marketing_channels). Query: as_of, limit, currency, reachable=true (only customers with a marketing channel), format (json or csv: every candidate), bom=true (CSV: a UTF-8 byte-order mark), min_position", "support, analyst, admin", None, 200),
    ("get", "/v1/campaigns", "Outreach campaigns: contacts, reactivations after outreach, and contacts made on a channel without the customer's marketing consent then (contacted_without_consent). Query: as_of, min_position", "support, analyst, admin", None, 200),
    ("post", "/v1/segments", "Define a rule-based segment: {\"id\"?, \"name\", \"description\"?, \"rule\"} (condition language: docs/segments.md). 409 if the id exists", "analyst, admin", None, 201),
    ("get", "/v1/segments", "Segments with their member counts and `last_change` (the feed's cursor). Query: min_position", "support, analyst, admin", None, 200),
    ("get", "/v1/lifecycle/changes", "Server-Sent Events: lifecycle changes (from, to, cause event or time, the event that caused it) after `after` (or Last-Event-ID), then live; the feed Kafka publishes on rapport.customers. Query: after, to", "support, analyst, admin", None, 200),
    ("get", "/v1/segments/changes", "Server-Sent Events: membership changes (entered / exited, with the event that caused them) after `after` (or Last-Event-ID), then live. Query: after, segment", "support, analyst, admin", None, 200),
    ("get", "/v1/segments/{id}", "One segment's definition and member count. Query: min_position", "support, analyst, admin", None, 200),
    ("put", "/v1/segments/{id}", "Define or redefine a segment (a new revision); members are re-evaluated", "analyst, admin", None, 200),
    ("delete", "/v1/segments/{id}", "Retire a segment; every member exits", "analyst, admin", None, 200),
    ("get", "/v1/segments/{id}/members", "Members, paged by customer id (JSON), or all of them as CSV for marketing tools, each with marketing_channels. Query: reachable=true (only members with a marketing channel), format=json|csv, bom=true (CSV: a UTF-8 byte-order mark), cursor, limit, min_position; text fields a spreadsheet would run as formulas start with a quote", "support, analyst, admin", None, 200),
    ("get", "/v1/agents/networks", "Agent networks (a top-level agent and everything under it), highest pyramid risk first: participants, levels, retail sales against agents' own purchases, commissions by basis and the share paid for recruitment, entry fees, growth of recruits against retail, agents who stocked and left, the criteria met (signs), risk level, evidence and alert. Query: risk (at least: watch | warning | critical), min_participants, cursor, limit (1 to 500), min_position; time travel: as_of_position, known_at, valid_at", "support, analyst, admin", None, 200),
    ("get", "/v1/agents/networks/{root}", "One agent network with its figures and its agents level by level (up to 1,000). Query: min_position; time travel: as_of_position, known_at, valid_at", "support, analyst, admin", None, 200),
    ("get", "/v1/agents/{id}", "One agent: upline chain, depth, direct and total downline, retail sales to end customers, own purchases, sell-through (all time and the latest 3 months), entry fees, commissions by basis, quiet or left with stock; and its network's risk. Query: min_position; time travel: as_of_position, known_at, valid_at", "support, analyst, admin", None, 200),
    ("get", "/v1/communities", "Communities with members now, joined and left in all, active members (posted or bought in the window), posts and complaints in the window, complaint rate (complaints in the window per member), members' revenue all time and in the window, its trend against the window before, dormant or at-risk members, open alerts touching it. Query: sort (size | activity | revenue | complaint_rate; largest first), window_months (1 to 24, default 3), cursor, limit (1 to 500), as_of, min_position; time travel: as_of_position, known_at, valid_at", "support, analyst, admin", None, 200),
    ("get", "/v1/communities/{id}", "One community: its summary, the latest 12 months (joined, left, members at the end, posts, complaints, members' revenue), leaders by posts, replies received, echoes received and influence, and its dormant or at-risk members, most spent first. Query: window_months, as_of, min_position; time travel: as_of_position, known_at, valid_at", "support, analyst, admin", None, 200),
    ("get", "/v1/alerts", "Early-warning alerts, oldest update first. Query: status (open | acknowledged | resolved | merged), level (at least: watch | warning | critical), kind (group_complaint | spike | pyramid_risk), assignee (a key id, or me), overdue (true | false), after (updated after this position), limit, min_position; time travel: as_of_position, known_at, valid_at", "support, analyst, admin", None, 200),
    ("get", "/v1/alerts/subscribe", "Server-Sent Events: alert changes (raised, updated, escalated, acknowledged, resolved, reopened, assigned, reviewed, merged, linked, overdue) with the alert, after `after` (or Last-Event-ID), then live", "support, analyst, admin", None, 200),
    ("get", "/v1/alerts/verdicts", "The detector's precision on staff's verdicts, per level reached. Query: min_position", "support, analyst, admin", None, 200),
    ("get", "/v1/alerts/{id}", "One alert with its evidence and its graph (graph.nodes: the customers of its timeline in the order they first appear, with the step of the timeline at which they do; graph.edges: referral, replied to, mentioned, echoed or a shared community between them; a network alert: its first agents and who recruited whom; evidence.said: the evidence sentences as message ids with arguments, for other languages); support and admin also get the phrases its complaints share and the texts of its first 50 complaints (evidence.shared_phrases, evidence.complaint_texts). Query: min_position; time travel: as_of_position, known_at, valid_at", "support, analyst, admin", None, 200),
    ("post", "/v1/alerts/{id}/acknowledge", "Acknowledge an alert: {\"note\"?}; recorded as an event", "support, admin", None, 200),
    ("post", "/v1/alerts/{id}/resolve", "Resolve an alert: {\"note\"?}; recorded as an event", "support, admin", None, 200),
    ("post", "/v1/alerts/{id}/assign", "Give an alert to a staff member: {\"assignee\" (a support or admin key id), \"note\"?}", "support, admin", None, 200),
    ("post", "/v1/alerts/{id}/review", "Say whether the alert was right: {\"verdict\": \"confirmed\" | \"not_group_complaint\", \"reason\"}", "support, admin", None, 200),
    ("post", "/v1/alerts/{id}/merge", "Merge this alert into another (the same group complaint): {\"into\", \"note\"?}; 409 if this one is already merged", "support, admin", None, 200),
    ("get", "/v1/alerts/{id}/exposure", "Customers who bought the alert's SKU, product or batch, or at its store, from exposure_days before its first complaint and have not complained in it, most money first, with their community reach. Query: format=json|csv, bom=true, limit, min_position", "support, analyst, admin", None, 200),
    ("post", "/v1/alerts/{id}/exposure/segment", "Make the exposed customers a segment (customer in [...]): {\"id\", \"name\"?}; 409 if the id exists or nobody is exposed", "support, analyst, admin", None, 201),
    ("post", "/v1/problems", "Open a problem (a root cause): {\"id\"?, \"title\", \"note\"?}", "support, admin", None, 201),
    ("get", "/v1/problems", "Problems, newest first. Query: status (open | resolved), min_position", "support, analyst, admin", None, 200),
    ("get", "/v1/problems/{id}", "One problem with its alerts. Query: min_position", "support, analyst, admin", None, 200),
    ("post", "/v1/problems/{id}/links", "Link an alert or one complaint to a problem: {\"alert\"} or {\"complaint\"}; 409 if the problem is resolved", "support, admin", None, 200),
    ("post", "/v1/problems/{id}/resolve", "Resolve a problem: its alerts are resolved and its open complaints get complaint_resolved on their customers' streams, in one append: {\"note\"?}", "support, admin", None, 200),
    ("get", "/v1/segments/{id}/diff", "Who entered and who left a segment between two points. Query: from, to (log positions, or times read as business time; basis=recorded reads them as recording time), min_position", "support, analyst, admin", None, 200),
    ("delete", "/v1/customers/{id}/personal-data", "Erase a customer's personal data (crypto-shredding)", "admin", None, 200),
    ("get", "/v1/customers/{id}/export", "Everything held about a customer, decrypted (access and portability)", "support, admin", None, 200),
];

pub(super) fn document() -> Value {
    let mut paths = Map::new();
    for (method, path, summary, roles, body, status) in ROUTES {
        let mut op = json!({
            "summary": summary,
            "description": format!("Roles: {roles}."),
            "responses": {
                status.to_string(): {"description": "Success"},
                "4XX": {"description": "Client error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            },
        });
        if *roles != "open" {
            op["security"] = json!([{"bearer": []}]);
        }
        if let Some(schema) = body {
            op["requestBody"] = json!({"required": true, "content": {
                "application/json": {"schema": {"oneOf": [{"$ref": format!("#/components/schemas/{schema}")}, {"type": "array", "items": {"$ref": format!("#/components/schemas/{schema}")}}]}},
                "application/x-ndjson": {"schema": {"type": "string"}},
                "application/cloudevents+json": {"schema": {"type": "object"}},
                "application/cloudevents-batch+json": {"schema": {"type": "array"}},
            }});
        }
        let params: Vec<Value> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        if !params.is_empty() {
            op["parameters"] = Value::Array(params);
        }
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[*method] = op;
    }
    let mut schemas = Map::new();
    for (name, schema) in rapport_events::schema::all() {
        let mut v = schema.to_value();
        if let Some(o) = v.as_object_mut() {
            o.remove("$schema");
        }
        let key = match name.as_str() {
            "envelope.json" => "EventInput".to_string(),
            "recorded.json" => "RecordedEvent".to_string(),
            other => other.trim_end_matches(".json").replace('.', "_"),
        };
        schemas.insert(key, v);
    }
    schemas.insert(
        "Error".into(),
        json!({"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
            "code": {"type": "string"}, "message": {"type": "string"},
            "details": {"type": "array", "items": {"type": "object", "properties": {"path": {"type": "string"}, "rule": {"type": "string"}}}}}}}}),
    );
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Rapport", "version": env!("CARGO_PKG_VERSION"), "description": "Event-sourced customer-community CRM"},
        "components": {"schemas": schemas, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": paths,
    })
}

pub(super) async fn openapi_json() -> Json<Value> {
    Json(document())
}
