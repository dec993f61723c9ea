//! CloudEvents 1.0 (structured JSON mode) mapped onto Rapport's model, both ways.
//!
//! In: `specversion` must be `1.0`; `type` is `purchase`, `rapport.purchase` or any
//! dotted name whose last segment is a Rapport type (`com.shop.purchase`); `subject` is
//! the customer; `time` is `occurred_at` (required by Rapport); `data` is the payload
//! (JSON only: `data_base64` is refused). `id` becomes the event id when it is a UUID,
//! otherwise the UUIDv5 of `source` + `id` (CloudEvents makes the pair unique), so a
//! redelivered CloudEvent deduplicates. `source`, the original `id` and every string
//! extension attribute land in `metadata`; the extension `rapportversion` sets `version`.

use std::collections::BTreeMap;

use serde_json::{value::RawValue, Map, Value};
use uuid::Uuid;

use crate::{
    envelope::{format_time, EventInput, IdSource, RecordedEvent},
    error::{FieldError, ValidationErrors},
    Event,
};

/// Namespace for ids derived from (source, id) pairs. Never change it: ids depend on it.
pub const CLOUDEVENTS_ID_NAMESPACE: Uuid =
    Uuid::from_u128(0x6f0c_2a1e_4d7b_4b8e_9a51_7d0e_2c3b_91a4);

const CORE: &[&str] = &[
    "specversion",
    "id",
    "source",
    "type",
    "subject",
    "time",
    "datacontenttype",
    "dataschema",
    "data",
    "data_base64",
];

fn to_input(obj: &Map<String, Value>) -> Result<EventInput, ValidationErrors> {
    let mut errs = Vec::new();
    let mut string = |k: &str, required: bool| -> Option<String> {
        match obj.get(k) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            None if !required => None,
            None => {
                errs.push(FieldError::new(format!("/{k}"), "is required"));
                None
            }
            Some(_) => {
                errs.push(FieldError::new(
                    format!("/{k}"),
                    "must be a non-empty string",
                ));
                None
            }
        }
    };
    let spec = string("specversion", true);
    let id = string("id", true);
    let source = string("source", true);
    let ty = string("type", true);
    let subject = string("subject", true);
    let time = string("time", true);
    let ct = string("datacontenttype", false);
    if let Some(s) = &spec {
        if s != "1.0" {
            errs.push(FieldError::new("/specversion", "must be \"1.0\""));
        }
    }
    if let Some(ct) = &ct {
        let base = ct.split(';').next().unwrap_or_default().trim();
        if base != "application/json" && !base.ends_with("+json") {
            errs.push(FieldError::new(
                "/datacontenttype",
                "must be application/json (or a +json type)",
            ));
        }
    }
    if obj.contains_key("data_base64") {
        errs.push(FieldError::new(
            "/data_base64",
            "binary data is not accepted; send JSON in `data`",
        ));
    }
    let data = match obj.get("data") {
        Some(v @ Value::Object(_)) => Some(v),
        Some(_) => {
            errs.push(FieldError::new("/data", "must be a JSON object"));
            None
        }
        None => {
            errs.push(FieldError::new("/data", "is required"));
            None
        }
    };
    let mut metadata = BTreeMap::new();
    let mut version = None;
    for (k, v) in obj {
        if CORE.contains(&k.as_str()) {
            continue;
        }
        match (k.as_str(), v) {
            ("rapportversion", Value::Number(n)) => {
                version = n.as_u64().and_then(|n| u16::try_from(n).ok())
            }
            ("rapportversion", Value::String(s)) => version = s.parse().ok(),
            (_, Value::String(s)) => {
                metadata.insert(k.clone(), s.clone());
            }
            (_, Value::Number(_) | Value::Bool(_)) => {
                metadata.insert(k.clone(), v.to_string());
            }
            _ => errs.push(FieldError::new(
                format!("/{k}"),
                "extension attributes must be strings, numbers or booleans",
            )),
        }
    }
    if !errs.is_empty() {
        return Err(ValidationErrors(errs));
    }
    let (id, source, ty, subject, time, data) = (
        id.unwrap(),
        source.unwrap(),
        ty.unwrap(),
        subject.unwrap(),
        time.unwrap(),
        data.unwrap(),
    );
    let event_id = match Uuid::parse_str(&id) {
        Ok(u) => u,
        Err(_) => Uuid::new_v5(
            &CLOUDEVENTS_ID_NAMESPACE,
            format!("{source}\n{id}").as_bytes(),
        ),
    };
    metadata.insert("source".into(), source);
    metadata.insert("ce_id".into(), id);
    let short_type = ty.rsplit('.').next().unwrap_or(&ty).to_owned();
    let data = RawValue::from_string(data.to_string())
        .map_err(|e| ValidationErrors::one("/data", e.to_string()))?;
    Ok(EventInput {
        id: Some(event_id.to_string()),
        event_type: short_type,
        version,
        // Clients send only customer events (operator events are Rapport's own).
        customer: Some(subject),
        subject: None,
        identified_by: None,
        occurred_at: time,
        data,
        metadata,
    })
}

/// Maps field names of Rapport's own errors (`/customer`) back onto CloudEvents names (`/subject`).
fn rename_paths(e: ValidationErrors) -> ValidationErrors {
    ValidationErrors(
        e.0.into_iter()
            .map(|mut f| {
                for (ours, theirs) in [
                    ("/customer", "/subject"),
                    ("/occurred_at", "/time"),
                    ("/version", "/rapportversion"),
                ] {
                    if f.path == ours {
                        f.path = theirs.to_owned();
                    }
                }
                f
            })
            .collect(),
    )
}

/// Parses one structured-mode CloudEvent.
pub fn parse_one(text: &str, ids: &mut dyn IdSource) -> Result<Event, ValidationErrors> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| ValidationErrors::one("", format!("invalid JSON: {e}")))?;
    let Value::Object(obj) = v else {
        return Err(ValidationErrors::one(
            "",
            "a CloudEvent must be a JSON object",
        ));
    };
    to_input(&obj)?.validate(ids, false).map_err(rename_paths)
}

/// Parses a batch (`application/cloudevents-batch+json`: a JSON array). All or nothing.
pub fn parse_batch(text: &str, ids: &mut dyn IdSource) -> Result<Vec<Event>, ValidationErrors> {
    let items: Vec<&RawValue> = serde_json::from_str(text).map_err(|e| {
        ValidationErrors::one("", format!("a CloudEvents batch must be a JSON array: {e}"))
    })?;
    let mut out = Vec::with_capacity(items.len());
    let mut errs = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match parse_one(item.get(), ids) {
            Ok(ev) => out.push(ev),
            Err(e) => errs.extend(e.under(&format!("/{i}")).0),
        }
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(ValidationErrors(errs))
    }
}

/// A recorded event as a structured-mode CloudEvent (for Kafka and SSE consumers that
/// speak CloudEvents). `source` is `rapport`, and the store fields are extensions.
pub fn from_recorded(ev: &RecordedEvent, source: &str) -> Value {
    let mut v = serde_json::json!({
        "specversion": "1.0",
        "id": ev.id.to_string(),
        "source": source,
        "type": format!("rapport.{}", ev.event_type),
        "subject": ev.subject.as_deref().unwrap_or(&ev.customer),
        "time": format_time(&ev.occurred_at),
        "datacontenttype": "application/json",
        "data": ev.data,
        "rapportversion": ev.version,
        "rapportposition": ev.position,
        "rapportstream": ev.stream,
    });
    if let Some(p) = ev.personal {
        v["rapportpersonal"] = serde_json::to_value(p).unwrap_or_default();
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> impl FnMut() -> Uuid {
        || Uuid::from_u128(7)
    }

    const CE: &str = r#"{"specversion":"1.0","id":"order-77-paid","source":"/shop/eu","type":"com.shop.purchase",
        "subject":"c-1042","time":"2026-03-01T10:00:00Z","datacontenttype":"application/json",
        "correlationid":"x-1","data":{"order_id":"o-77","amount":"129.90","currency":"CNY"}}"#;

    #[test]
    fn a_cloudevent_maps_onto_the_model() {
        let ev = parse_one(CE, &mut ids()).unwrap();
        assert_eq!(ev.customer, "c-1042");
        assert_eq!(ev.metadata["source"], "/shop/eu");
        assert_eq!(ev.metadata["correlationid"], "x-1");
        assert_eq!(
            ev.id,
            Uuid::new_v5(&CLOUDEVENTS_ID_NAMESPACE, b"/shop/eu\norder-77-paid")
        );
        // Redelivery of the same CloudEvent gets the same id, so it deduplicates.
        assert_eq!(parse_one(CE, &mut ids()).unwrap().id, ev.id);
    }

    #[test]
    fn cloudevent_errors_use_cloudevents_names() {
        let bad = CE
            .replace(r#""subject":"c-1042","#, "")
            .replace("\"1.0\"", "\"0.3\"");
        let e = parse_one(&bad, &mut ids()).unwrap_err();
        let paths: Vec<_> = e.0.iter().map(|f| f.to_string()).collect();
        assert_eq!(
            paths,
            ["/subject: is required", "/specversion: must be \"1.0\""]
                .map(String::from)
                .to_vec(),
            "{paths:?}"
        );
    }
}
