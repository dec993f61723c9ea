//! Events as the projections read them: the envelope fields a fold uses and a typed view of
//! the payload ([`Facts`]), decoded straight from the stored JSON text.
//!
//! A [`RecordedEvent`] carries its payload as a `serde_json::Value` tree, which is what
//! readers of the API and exports need. A fold needs a handful of fields per event, and
//! building then freeing a tree per event would be most of a replay's cost. The views here are lenient the way the folds always were: a field that is
//! absent (a personal field withheld from projections, a field an older version lacked) is
//! `None` or empty; fields the projections do not read are skipped while decoding.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{de, Deserialize, Deserializer};
use uuid::Uuid;

use crate::{money::Money, EventType, RecordedEvent};

/// An event as a projection folds it.
#[derive(Debug, Clone, PartialEq)]
pub struct FoldEvent {
    pub position: u64,
    pub id: Uuid,
    pub event_type: EventType,
    /// The customer the event is about; empty for operator events.
    pub customer: String,
    /// Operator events only: the segment or alert id.
    pub subject: Option<String>,
    pub occurred_at: DateTime<Utc>,
    pub data: Facts,
}

impl FoldEvent {
    /// The fold's view of an event read through the API's form (tests, and events that
    /// needed upcasting or decryption on the way).
    pub fn from_recorded(ev: &RecordedEvent) -> Result<FoldEvent, serde_json::Error> {
        Ok(FoldEvent {
            position: ev.position,
            id: ev.id,
            event_type: ev.event_type,
            customer: ev.customer.clone(),
            subject: ev.subject.clone(),
            occurred_at: ev.occurred_at,
            data: Facts::from_value(ev.event_type, &ev.data)?,
        })
    }
}

/// What the projections read of each event type's payload.
#[derive(Debug, Clone, PartialEq)]
pub enum Facts {
    CustomerRegistered(Registered),
    ProfileUpdated(Traits),
    Purchase(Purchase),
    Refund(Refund),
    Referral(Referral),
    Complaint(Complaint),
    ComplaintResolved(Resolved),
    Post(Post),
    CommunityJoined(Community),
    CommunityLeft(Community),
    Contacted(Contacted),
    PersonalDataErased,
    SegmentDefined(SegmentDefined),
    SegmentRetired,
    AlertAcknowledged(AlertAction),
    AlertResolved(AlertAction),
    AlertAssigned(AlertAssigned),
    AlertReviewed(AlertReviewed),
    AlertMerged(AlertMerged),
    ProblemOpened(ProblemOpened),
    ProblemLinked(ProblemLinked),
    ProblemResolved(AlertAction),
    ClockTicked,
    IdentifierAdded(Identifier),
    CustomersMerged(Merged),
    CustomersUnmerged(Unmerged),
    IdentityRulesDefined(crate::data::IdentityRulesDefined),
    ConsentGiven(ConsentFacts),
    ConsentWithdrawn(ConsentFacts),
    AgentJoined(AgentJoined),
    AgentLeft,
    CommissionPaid(Commission),
}

impl Facts {
    /// Decodes the payload of a `ty` event, in its current version, from JSON text.
    pub fn decode(ty: EventType, text: &str) -> Result<Facts, serde_json::Error> {
        Facts::decode_with(ty, &mut serde_json::Deserializer::from_str(text))
    }

    /// The same from a JSON value.
    pub fn from_value(ty: EventType, v: &serde_json::Value) -> Result<Facts, serde_json::Error> {
        Facts::decode_with(ty, v)
    }

    fn decode_with<'de, D: Deserializer<'de>>(ty: EventType, d: D) -> Result<Facts, D::Error> {
        Ok(match ty {
            EventType::CustomerRegistered => {
                Facts::CustomerRegistered(Deserialize::deserialize(d)?)
            }
            EventType::ProfileUpdated => Facts::ProfileUpdated(Deserialize::deserialize(d)?),
            EventType::Purchase => Facts::Purchase(Deserialize::deserialize(d)?),
            EventType::Refund => Facts::Refund(Deserialize::deserialize(d)?),
            EventType::Referral => Facts::Referral(Deserialize::deserialize(d)?),
            EventType::Complaint => Facts::Complaint(Deserialize::deserialize(d)?),
            EventType::ComplaintResolved => Facts::ComplaintResolved(Deserialize::deserialize(d)?),
            EventType::Post => Facts::Post(Deserialize::deserialize(d)?),
            EventType::CommunityJoined => Facts::CommunityJoined(Deserialize::deserialize(d)?),
            EventType::CommunityLeft => Facts::CommunityLeft(Deserialize::deserialize(d)?),
            EventType::Contacted => Facts::Contacted(Deserialize::deserialize(d)?),
            EventType::PersonalDataErased => {
                de::IgnoredAny::deserialize(d)?;
                Facts::PersonalDataErased
            }
            EventType::SegmentDefined => Facts::SegmentDefined(Deserialize::deserialize(d)?),
            EventType::SegmentRetired => {
                de::IgnoredAny::deserialize(d)?;
                Facts::SegmentRetired
            }
            EventType::AlertAcknowledged => Facts::AlertAcknowledged(Deserialize::deserialize(d)?),
            EventType::AlertResolved => Facts::AlertResolved(Deserialize::deserialize(d)?),
            EventType::AlertAssigned => Facts::AlertAssigned(Deserialize::deserialize(d)?),
            EventType::AlertReviewed => Facts::AlertReviewed(Deserialize::deserialize(d)?),
            EventType::AlertMerged => Facts::AlertMerged(Deserialize::deserialize(d)?),
            EventType::ProblemOpened => Facts::ProblemOpened(Deserialize::deserialize(d)?),
            EventType::ProblemLinked => Facts::ProblemLinked(Deserialize::deserialize(d)?),
            EventType::ProblemResolved => Facts::ProblemResolved(Deserialize::deserialize(d)?),
            EventType::IdentifierAdded => Facts::IdentifierAdded(Deserialize::deserialize(d)?),
            EventType::CustomersMerged => Facts::CustomersMerged(Deserialize::deserialize(d)?),
            EventType::CustomersUnmerged => Facts::CustomersUnmerged(Deserialize::deserialize(d)?),
            EventType::IdentityRulesDefined => {
                Facts::IdentityRulesDefined(Deserialize::deserialize(d)?)
            }
            EventType::ConsentGiven => Facts::ConsentGiven(Deserialize::deserialize(d)?),
            EventType::ConsentWithdrawn => Facts::ConsentWithdrawn(Deserialize::deserialize(d)?),
            EventType::ClockTicked => {
                de::IgnoredAny::deserialize(d)?;
                Facts::ClockTicked
            }
            EventType::AgentJoined => Facts::AgentJoined(Deserialize::deserialize(d)?),
            EventType::AgentLeft => {
                de::IgnoredAny::deserialize(d)?;
                Facts::AgentLeft
            }
            EventType::CommissionPaid => Facts::CommissionPaid(Deserialize::deserialize(d)?),
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Registered {
    pub region: Option<String>,
    pub channel: Option<String>,
    pub tags: Vec<String>,
}

/// Trait values: the personal ones are absent from a fold (withheld).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Traits {
    pub traits: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Purchase {
    #[serde(deserialize_with = "amount")]
    pub amount: Option<Decimal>,
    #[serde(deserialize_with = "currency")]
    pub currency: Option<[u8; 3]>,
    pub items: Vec<Item>,
    pub store: Option<String>,
    /// The agent credited with the sale.
    pub sold_by: Option<String>,
    /// A commission names the order it was paid on (agents read it). Inline up to 24
    /// bytes: read for every purchase, it costs no allocation.
    pub order_id: Option<compact_str::CompactString>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Item {
    pub sku: Option<String>,
    pub quantity: Option<u64>,
    #[serde(deserialize_with = "amount")]
    pub unit_price: Option<Decimal>,
    pub product: Option<String>,
    pub category: Option<String>,
    pub batch: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Refund {
    #[serde(deserialize_with = "amount")]
    pub amount: Option<Decimal>,
    #[serde(deserialize_with = "currency")]
    pub currency: Option<[u8; 3]>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Referral {
    pub referee: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Complaint {
    pub complaint_id: Option<String>,
    pub about: About,
    pub category: Option<String>,
    /// 1 (minor) to 5 (severe).
    pub severity: Option<u8>,
    /// Personal: present only while the customer's key exists and the reader may see it.
    pub text: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct About {
    pub product: Option<String>,
    pub sku: Option<String>,
    pub batch: Option<String>,
    pub store: Option<String>,
    pub topic: Option<String>,
}

impl About {
    /// `(field, value)` of the fields that are set, in the order `product`, `sku`,
    /// `batch`, `store`, `topic`.
    pub fn fields(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("product", &self.product),
            ("sku", &self.sku),
            ("batch", &self.batch),
            ("store", &self.store),
            ("topic", &self.topic),
        ]
        .into_iter()
        .filter_map(|(f, v)| v.as_deref().map(|v| (f, v)))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Resolved {
    pub complaint_id: Option<String>,
    pub satisfied: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Post {
    pub post_id: Option<String>,
    /// Inline up to 24 bytes (no allocation per post).
    pub community: Option<compact_str::CompactString>,
    pub reply_to: Option<String>,
    pub echoes: Option<String>,
    pub mentions: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Community {
    pub community: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Contacted {
    pub channel: Option<String>,
    pub campaign: Option<String>,
    pub outcome: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SegmentDefined {
    pub name: Option<String>,
    pub description: Option<String>,
    pub rule: serde_json::Value,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct AlertAction {
    pub requested_by: Option<String>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct AlertAssigned {
    pub assignee: Option<String>,
    pub requested_by: Option<String>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct AlertReviewed {
    pub verdict: Option<crate::data::Verdict>,
    pub reason: Option<String>,
    pub requested_by: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct AlertMerged {
    pub into: Option<String>,
    pub requested_by: Option<String>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ProblemOpened {
    pub title: Option<String>,
    pub requested_by: Option<String>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ProblemLinked {
    pub alert: Option<String>,
    pub complaint: Option<String>,
    pub requested_by: Option<String>,
}

/// A money string as an exact decimal, read without an allocation. A value that is not
/// money is absent, as a fold over JSON values always treated it.
fn amount<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    read_str(d, |t| Money::parse(t).ok().map(Money::decimal))
}

/// A currency code of three capital letters (what the event model accepts), or absent.
fn currency<'de, D: Deserializer<'de>>(d: D) -> Result<Option<[u8; 3]>, D::Error> {
    read_str(d, |t| {
        <[u8; 3]>::try_from(t.as_bytes())
            .ok()
            .filter(|c| c.iter().all(u8::is_ascii_uppercase))
    })
}

/// Hands a string value to `f` where it lies (no copy); anything that is not a string
/// gives `None`.
fn read_str<'de, D, T, F>(d: D, f: F) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    F: FnOnce(&str) -> Option<T>,
{
    struct V<F>(F);
    impl<'de, T, F: FnOnce(&str) -> Option<T>> de::Visitor<'de> for V<F> {
        type Value = Option<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
            Ok((self.0)(s))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(V(f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_purchase_is_read_from_text_and_from_a_value_alike() {
        let v = json!({"order_id": "o-1", "amount": "12.50", "currency": "GBP",
            "items": [{"sku": "S1", "quantity": 2, "unit_price": "6.25", "category": "mugs"}]});
        let from_text = Facts::decode(EventType::Purchase, &v.to_string()).unwrap();
        assert_eq!(
            from_text,
            Facts::from_value(EventType::Purchase, &v).unwrap()
        );
        let Facts::Purchase(p) = from_text else {
            panic!("a purchase: {from_text:?}")
        };
        assert_eq!(p.amount, Some(Decimal::new(1250, 2)));
        assert_eq!(p.currency, Some(*b"GBP"));
        assert_eq!(p.items[0].sku.as_deref(), Some("S1"));
        assert_eq!(p.items[0].quantity, Some(2));
        assert_eq!(p.items[0].product, None);
    }

    #[test]
    fn withheld_and_unreadable_fields_are_absent_not_errors() {
        // A complaint's text is withheld from most readers; a money value that is not
        // money reads as no amount (a fold over values skipped it the same way).
        let c = Facts::decode(
            EventType::Complaint,
            r#"{"complaint_id":"k","about":{"batch":"L1","sku":"S"}}"#,
        )
        .unwrap();
        let Facts::Complaint(c) = c else { panic!() };
        assert_eq!(c.text, None);
        assert_eq!(
            c.about.fields().collect::<Vec<_>>(),
            [("sku", "S"), ("batch", "L1")]
        );
        let r = Facts::decode(EventType::Refund, r#"{"amount":"lots","currency":null}"#).unwrap();
        assert_eq!(r, Facts::Refund(Refund::default()));
        assert!(Facts::decode(EventType::Referral, r#"{"referee":"#).is_err());
    }
}

/// An identifier as the folds see it: its kind and blind index, never its value.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Identifier {
    pub kind: crate::data::IdentifierKind,
    #[serde(default)]
    pub index: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Merged {
    pub merged: String,
    #[serde(default)]
    pub requested_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Unmerged {
    pub other: String,
}

/// A consent change as the folds see it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ConsentFacts {
    pub channel: crate::data::ConsentChannel,
    pub purpose: crate::data::Purpose,
    #[serde(default)]
    pub source: Option<String>,
}

/// An agent joining as the folds see it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct AgentJoined {
    pub upline: Option<String>,
    #[serde(deserialize_with = "amount")]
    pub fee: Option<Decimal>,
    #[serde(deserialize_with = "currency")]
    pub currency: Option<[u8; 3]>,
    pub tier: Option<String>,
}

/// A commission as the folds see it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Commission {
    #[serde(deserialize_with = "amount")]
    pub amount: Option<Decimal>,
    #[serde(deserialize_with = "currency")]
    pub currency: Option<[u8; 3]>,
    pub basis: crate::data::CommissionBasis,
    #[serde(default)]
    pub recruit: Option<String>,
    #[serde(default)]
    pub order_id: Option<compact_str::CompactString>,
}
