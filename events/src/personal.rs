//! Which fields hold personal data. Declared here, per event type, never guessed at run time.
//!
//! The store takes the personal fields out of `data` before it writes ([`split`]), encrypts
//! them with the customer's data key, and puts them back when a reader may see them
//! ([`merge`]). `docs/privacy.md` lists the same fields; a test keeps the two in step.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::data::EventType;

/// Trait names whose values are *not* personal; every other trait value is.
/// Coarse facts used for segmenting stay readable after an erasure.
pub const NON_PERSONAL_TRAITS: &[&str] = &[
    "country", "region", "language", "currency", "tier", "channel", "source", "segment",
];

/// How the personal fields of a recorded event are shown to its reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PersonalView {
    /// Decrypted (roles `support` and `admin`).
    Plain,
    /// Replaced by stable per-customer pseudonyms (role `analyst`).
    Pseudonymised,
    /// Left out: the reader may not see them.
    Withheld,
    /// Left out: the customer's key was destroyed (crypto-shredded); they cannot come back.
    Erased,
    /// Left out: the stored ciphertext or the customer's data key was damaged, so they
    /// cannot be opened. Nothing was erased; the event's other fields are intact.
    Damaged,
}

/// The top-level `data` fields of `ty` that are personal.
pub fn personal_fields(ty: EventType) -> &'static [&'static str] {
    match ty {
        EventType::CustomerRegistered => &["name", "email", "phone"],
        EventType::Refund | EventType::AgentLeft => &["reason"],
        EventType::Complaint => &["text"],
        EventType::ComplaintResolved => &["resolution"],
        EventType::Post => &["text"],
        EventType::IdentifierAdded => &["value"],
        EventType::ProfileUpdated
        | EventType::Purchase
        | EventType::Referral
        | EventType::CommunityJoined
        | EventType::CommunityLeft
        | EventType::Contacted
        | EventType::PersonalDataErased
        | EventType::SegmentDefined
        | EventType::SegmentRetired
        | EventType::AlertAcknowledged
        | EventType::AlertResolved
        | EventType::AlertAssigned
        | EventType::AlertReviewed
        | EventType::AlertMerged
        | EventType::ProblemOpened
        | EventType::ProblemLinked
        | EventType::ProblemResolved
        | EventType::ClockTicked
        | EventType::CustomersMerged
        | EventType::CustomersUnmerged
        | EventType::IdentityRulesDefined
        | EventType::ConsentGiven
        | EventType::ConsentWithdrawn
        | EventType::AgentJoined
        | EventType::CommissionPaid => &[],
    }
}

/// Whether `ty`'s `data` has a `traits` map whose values are personal (see [`NON_PERSONAL_TRAITS`]).
pub fn has_personal_traits(ty: EventType) -> bool {
    ty == EventType::ProfileUpdated
}

/// Whether events of this type can carry personal data at all.
pub fn may_carry_personal(ty: EventType) -> bool {
    !personal_fields(ty).is_empty() || has_personal_traits(ty)
}

/// The personal values taken out of one event's `data`: `{"name": …, "traits": {"email": …}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonalFields(pub Map<String, Value>);

impl PersonalFields {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every personal string value with its path (`/name`, `/traits/email`).
    pub fn strings(&self) -> Vec<(String, &str)> {
        let mut out = Vec::new();
        for (k, v) in &self.0 {
            match v {
                Value::String(s) => out.push((format!("/{k}"), s.as_str())),
                Value::Object(m) => {
                    for (k2, v2) in m {
                        if let Value::String(s) = v2 {
                            out.push((format!("/{k}/{k2}"), s.as_str()));
                        }
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// The same shape with every string replaced by `f(path, value)`.
    pub fn map_strings(&self, mut f: impl FnMut(&str, &str) -> String) -> PersonalFields {
        let mut out = Map::new();
        for (k, v) in &self.0 {
            let nv = match v {
                Value::String(s) => Value::String(f(&format!("/{k}"), s)),
                Value::Object(m) => Value::Object(
                    m.iter()
                        .map(|(k2, v2)| {
                            let s = v2.as_str().unwrap_or_default();
                            (k2.clone(), Value::String(f(&format!("/{k}/{k2}"), s)))
                        })
                        .collect(),
                ),
                other => other.clone(),
            };
            out.insert(k.clone(), nv);
        }
        PersonalFields(out)
    }
}

/// Splits a payload into its public JSON and its personal fields' JSON, straight from the
/// struct (no detour through a `Value`). Equivalent to [`split`] on [`EventData::to_json`]:
/// a test checks that both agree for every golden example.
pub fn split_data(data: &crate::EventData) -> (String, Option<String>) {
    use crate::data::*;
    use crate::EventData as D;
    use serde::Serialize;

    fn json<T: Serialize>(v: &T) -> String {
        serde_json::to_string(v).expect("event data serializes to JSON")
    }
    fn some_personal<T: Serialize>(v: T, empty: bool) -> Option<String> {
        (!empty).then(|| json(&v))
    }
    #[derive(Serialize)]
    struct Text<'a> {
        text: &'a str,
    }
    match data {
        D::CustomerRegistered(d) => {
            #[derive(Serialize)]
            struct Public<'a> {
                #[serde(skip_serializing_if = "Option::is_none")]
                region: &'a Option<String>,
                #[serde(skip_serializing_if = "Option::is_none")]
                channel: &'a Option<String>,
                #[serde(skip_serializing_if = "<[String]>::is_empty")]
                tags: &'a [String],
            }
            #[derive(Serialize)]
            struct Personal<'a> {
                #[serde(skip_serializing_if = "Option::is_none")]
                name: &'a Option<String>,
                #[serde(skip_serializing_if = "Option::is_none")]
                email: &'a Option<String>,
                #[serde(skip_serializing_if = "Option::is_none")]
                phone: &'a Option<String>,
            }
            let empty = d.name.is_none() && d.email.is_none() && d.phone.is_none();
            (
                json(&Public {
                    region: &d.region,
                    channel: &d.channel,
                    tags: &d.tags,
                }),
                some_personal(
                    Personal {
                        name: &d.name,
                        email: &d.email,
                        phone: &d.phone,
                    },
                    empty,
                ),
            )
        }
        D::ProfileUpdated(d) => {
            let (public, personal): (Vec<_>, Vec<_>) = d
                .traits
                .iter()
                .partition(|(k, _)| NON_PERSONAL_TRAITS.contains(&k.as_str()));
            let public: std::collections::BTreeMap<_, _> = public.into_iter().collect();
            let personal: std::collections::BTreeMap<_, _> = personal.into_iter().collect();
            #[derive(Serialize)]
            struct Traits<'a> {
                traits: std::collections::BTreeMap<&'a String, &'a String>,
            }
            let empty = personal.is_empty();
            (
                json(&Traits { traits: public }),
                some_personal(Traits { traits: personal }, empty),
            )
        }
        D::Refund(d) => {
            #[derive(Serialize)]
            struct Public<'a> {
                order_id: &'a str,
                amount: &'a crate::Money,
                #[serde(skip_serializing_if = "Option::is_none")]
                currency: &'a Option<crate::Currency>,
            }
            #[derive(Serialize)]
            struct Personal<'a> {
                reason: &'a str,
            }
            (
                json(&Public {
                    order_id: &d.order_id,
                    amount: &d.amount,
                    currency: &d.currency,
                }),
                d.reason.as_deref().map(|r| json(&Personal { reason: r })),
            )
        }
        D::AgentLeft(d) => {
            #[derive(Serialize)]
            struct Personal<'a> {
                reason: &'a str,
            }
            (
                "{}".to_owned(),
                d.reason.as_deref().map(|r| json(&Personal { reason: r })),
            )
        }
        D::Complaint(d) => {
            #[derive(Serialize)]
            struct Public<'a> {
                complaint_id: &'a str,
                about: &'a About,
                #[serde(skip_serializing_if = "Option::is_none")]
                category: &'a Option<String>,
                #[serde(skip_serializing_if = "Option::is_none")]
                severity: &'a Option<u8>,
                #[serde(skip_serializing_if = "Option::is_none")]
                channel: &'a Option<String>,
            }
            let public = Public {
                complaint_id: &d.complaint_id,
                about: &d.about,
                category: &d.category,
                severity: &d.severity,
                channel: &d.channel,
            };
            (json(&public), Some(json(&Text { text: &d.text })))
        }
        D::ComplaintResolved(d) => {
            #[derive(Serialize)]
            struct Public<'a> {
                complaint_id: &'a str,
                #[serde(skip_serializing_if = "Option::is_none")]
                satisfied: &'a Option<bool>,
            }
            #[derive(Serialize)]
            struct Personal<'a> {
                resolution: &'a str,
            }
            (
                json(&Public {
                    complaint_id: &d.complaint_id,
                    satisfied: &d.satisfied,
                }),
                d.resolution
                    .as_deref()
                    .map(|r| json(&Personal { resolution: r })),
            )
        }
        D::Post(d) => {
            #[derive(Serialize)]
            struct Public<'a> {
                post_id: &'a str,
                community: &'a str,
                #[serde(skip_serializing_if = "Option::is_none")]
                reply_to: &'a Option<String>,
                #[serde(skip_serializing_if = "Option::is_none")]
                echoes: &'a Option<String>,
                #[serde(skip_serializing_if = "<[String]>::is_empty")]
                mentions: &'a [String],
            }
            let public = Public {
                post_id: &d.post_id,
                community: &d.community,
                reply_to: &d.reply_to,
                echoes: &d.echoes,
                mentions: &d.mentions,
            };
            (json(&public), Some(json(&Text { text: &d.text })))
        }
        D::IdentifierAdded(d) => {
            #[derive(Serialize)]
            struct Public<'a> {
                kind: IdentifierKind,
                #[serde(skip_serializing_if = "Option::is_none")]
                index: &'a Option<String>,
                #[serde(skip_serializing_if = "Option::is_none")]
                source: &'a Option<String>,
            }
            #[derive(Serialize)]
            struct Personal<'a> {
                value: &'a str,
            }
            let public = Public {
                kind: d.kind,
                index: &d.index,
                source: &d.source,
            };
            (json(&public), Some(json(&Personal { value: &d.value })))
        }
        other => {
            debug_assert!(!may_carry_personal(other.event_type()));
            (other.to_json_string(), None)
        }
    }
}

/// Takes the personal fields out of `data` (canonical JSON of `ty`). Returns them, or
/// `None` when there are none in this event.
pub fn split(ty: EventType, data: &mut Value) -> Option<PersonalFields> {
    let obj = data.as_object_mut()?;
    let mut out = Map::new();
    for f in personal_fields(ty) {
        if let Some(v) = obj.remove(*f) {
            out.insert((*f).to_owned(), v);
        }
    }
    if has_personal_traits(ty) {
        if let Some(Value::Object(traits)) = obj.get_mut("traits") {
            let keys: Vec<String> = traits
                .keys()
                .filter(|k| !NON_PERSONAL_TRAITS.contains(&k.as_str()))
                .cloned()
                .collect();
            let mut personal = Map::new();
            for k in keys {
                if let Some(v) = traits.remove(&k) {
                    personal.insert(k, v);
                }
            }
            if !personal.is_empty() {
                out.insert("traits".into(), Value::Object(personal));
            }
        }
    }
    (!out.is_empty()).then_some(PersonalFields(out))
}

/// Puts personal fields back into `data` (the inverse of [`split`]).
pub fn merge(data: &mut Value, personal: &PersonalFields) {
    let Some(obj) = data.as_object_mut() else {
        return;
    };
    for (k, v) in &personal.0 {
        match (obj.get_mut(k), v) {
            (Some(Value::Object(existing)), Value::Object(more)) => {
                for (k2, v2) in more {
                    existing.insert(k2.clone(), v2.clone());
                }
            }
            _ => {
                obj.insert(k.clone(), v.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_direct_split_agrees_with_the_value_split_on_every_golden_example() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/golden");
        for entry in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            let ev = crate::parse_one(&text, &mut uuid::Uuid::nil, true).unwrap();
            let mut via_value = ev.data.to_json();
            let personal = split(ev.event_type(), &mut via_value);
            let (public, direct_personal) = split_data(&ev.data);
            assert_eq!(
                serde_json::from_str::<serde_json::Value>(&public).unwrap(),
                via_value,
                "{text}"
            );
            let direct_personal =
                direct_personal.map(|p| serde_json::from_str::<Map<String, Value>>(&p).unwrap());
            assert_eq!(direct_personal, personal.map(|p| p.0), "{text}");
        }
    }

    #[test]
    fn split_then_merge_gives_back_the_data() {
        let original =
            json!({"traits": {"country": "UK", "email": "a@b.c", "birthday": "1990-01-01"}});
        let mut data = original.clone();
        let p = split(EventType::ProfileUpdated, &mut data).unwrap();
        assert_eq!(data, json!({"traits": {"country": "UK"}}));
        assert_eq!(p.strings().len(), 2);
        merge(&mut data, &p);
        assert_eq!(data, original);
    }

    #[test]
    fn a_purchase_has_nothing_personal() {
        let mut data = json!({"order_id": "o", "amount": "1", "currency": "CNY"});
        assert!(split(EventType::Purchase, &mut data).is_none());
    }

    #[test]
    fn a_complaint_loses_its_text_only() {
        let mut data = json!({"complaint_id": "k", "about": {"sku": "s"}, "text": "soured milk"});
        let p = split(EventType::Complaint, &mut data).unwrap();
        assert_eq!(data, json!({"complaint_id": "k", "about": {"sku": "s"}}));
        assert_eq!(p.strings(), vec![("/text".to_string(), "soured milk")]);
    }
}
