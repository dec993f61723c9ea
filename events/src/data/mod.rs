//! The typed payload (`data`) of every event type, per version, with its rules.
//!
//! Decoding goes `(type, version, JSON text)` → the struct of that version → upcast to the
//! current version → [`EventData`]. Old versions keep decoding forever: their golden
//! examples live in `events/golden/` and `tests/golden.rs` checks them.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::{
    error::{Errors, ValidationErrors},
    money::{Currency, Money},
};

mod agents;
mod consent;
mod identity;
pub mod old;
mod rules;
mod staff;
mod subject;

pub use agents::{AgentJoined, AgentLeft, CommissionBasis, CommissionPaid};
pub use consent::{Consent, ConsentChannel, Purpose};
pub use identity::{
    is_placeholder, BlockedValue, CustomersMerged, CustomersUnmerged, IdentifierAdded,
    IdentifierKind, IdentityRulesDefined, KindRule, PLACEHOLDER_VALUES,
};
pub(crate) use rules::{customer_id, id};
pub use rules::{is_invisible, personal_looking_id};
use rules::{list, opt_short, opt_text, short, text};
pub use staff::*;
pub use subject::{Subject, SubjectKind};

/// Longest identifier (customer, order, complaint, post, community, sku …), in bytes.
pub const ID_LEN_MAX: usize = 128;
/// Longest short string (name, email, product, channel …), in bytes.
pub const SHORT_LEN_MAX: usize = 512;
/// Longest free text (complaint, post), in bytes.
pub const TEXT_LEN_MAX: usize = 16 * 1024;
/// Most entries in any list (items, tags, mentions) or map (traits).
pub const LIST_LEN_MAX: usize = 1000;

macro_rules! event_types {
    ($( $variant:ident = $name:literal, $current:literal, $doc:literal; )*) => {
        /// Every event type Rapport knows. The name is the wire `type`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum EventType { $( #[doc = $doc] $variant, )* }

        impl EventType {
            pub const ALL: &'static [EventType] = &[$(EventType::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self { $(EventType::$variant => $name,)* }
            }

            pub fn parse(s: &str) -> Option<EventType> {
                match s { $($name => Some(EventType::$variant),)* _ => None }
            }

            /// The version new events of this type are written in.
            pub fn current_version(self) -> u16 {
                match self { $(EventType::$variant => $current,)* }
            }
        }
    };
}

event_types! {
    CustomerRegistered = "customer_registered", 1, "A customer became known (sign-up, first order, import).";
    ProfileUpdated = "profile_updated", 1, "Traits of the customer changed.";
    Purchase = "purchase", 3, "An order was paid.";
    Refund = "refund", 1, "Money for an order went back to the customer.";
    Referral = "referral", 1, "The customer (referrer) brought in another (referee).";
    Complaint = "complaint", 1, "The customer complained about something.";
    ComplaintResolved = "complaint_resolved", 1, "A complaint was closed.";
    Post = "post", 1, "The customer posted in a community.";
    CommunityJoined = "community_joined", 1, "The customer joined a community.";
    CommunityLeft = "community_left", 1, "The customer left a community.";
    Contacted = "contacted", 1, "The firm reached out to the customer.";
    PersonalDataErased = "personal_data_erased", 1, "System event: the customer's personal data was crypto-shredded.";
    SegmentDefined = "segment_defined", 1, "Operator event: a rule-based segment was defined or redefined.";
    SegmentRetired = "segment_retired", 1, "Operator event: a segment was retired; its members all exit.";
    AlertAcknowledged = "alert_acknowledged", 1, "Operator event: staff acknowledged an early-warning alert.";
    AlertResolved = "alert_resolved", 1, "Operator event: staff resolved an early-warning alert.";
    AlertAssigned = "alert_assigned", 1, "Operator event: an alert was given to a staff member to handle.";
    AlertReviewed = "alert_reviewed", 1, "Operator event: staff said whether an alert was a group complaint.";
    AlertMerged = "alert_merged", 1, "Operator event: an alert was merged into another (the same group complaint).";
    ProblemOpened = "problem_opened", 1, "Operator event: staff opened a problem (a root cause).";
    ProblemLinked = "problem_linked", 1, "Operator event: an alert or a complaint was linked to a problem.";
    ProblemResolved = "problem_resolved", 1, "Operator event: a problem was resolved, and with it its alerts and complaints.";
    ClockTicked = "clock_ticked", 1, "System event: the deadline clock reached its `occurred_at` without customer events.";
    IdentifierAdded = "identifier_added", 1, "The customer is known by one more identifier (phone, e-mail, WeChat id, member number …).";
    CustomersMerged = "customers_merged", 1, "System event: staff merged another customer into this one (one person).";
    CustomersUnmerged = "customers_unmerged", 1, "System event: staff undid a merge: this customer and another are two people.";
    ConsentGiven = "consent_given", 1, "The customer consented to be contacted on a channel for a purpose.";
    ConsentWithdrawn = "consent_withdrawn", 1, "The customer withdrew consent to be contacted on a channel for a purpose.";
    IdentityRulesDefined = "identity_rules_defined", 1, "Operator event: staff defined how identifiers merge customers and which values are blocked.";
    AgentJoined = "agent_joined", 1, "The customer became an agent (a reseller paid by commission), perhaps under an upline and for a fee.";
    AgentLeft = "agent_left", 1, "The agent left the programme.";
    CommissionPaid = "commission_paid", 1, "The firm paid the agent a commission, for retail sales, recruitment or the team's sales.";
}

impl EventType {
    /// System events are written by Rapport itself (through its own endpoints), never
    /// accepted from clients, so nobody can forge an erasure record.
    pub fn is_system(self) -> bool {
        matches!(
            self,
            EventType::PersonalDataErased
                | EventType::ClockTicked
                | EventType::CustomersMerged
                | EventType::CustomersUnmerged
        ) || self.is_operator()
    }

    /// Whether the event's `occurred_at` is business time: when something happened between
    /// the firm and the customer. System and operator events record when Rapport or staff
    /// acted (an erasure is stamped with the wall clock of the request): they move no
    /// projection's business clock and are no customer activity.
    pub fn records_business_time(self) -> bool {
        !self.is_system()
    }

    /// Events that apply to every business time, whenever they were written: a segment
    /// definition (a rule defined today can be asked about last March) and an erasure
    /// (once erased, no view of the past shows the data). A `valid_at` fold keeps them
    /// whatever their `occurred_at`, and they do not count in a state's `occurred_max`.
    pub fn applies_at_every_valid_time(self) -> bool {
        matches!(
            self,
            EventType::SegmentDefined | EventType::PersonalDataErased
        )
    }

    /// Operator events record what staff did (define a segment, acknowledge an alert).
    /// They are about a segment or an alert, not a customer, and never move the business
    /// clock of projections (their `occurred_at` is when staff acted).
    pub fn is_operator(self) -> bool {
        self.subject_kind() != SubjectKind::Customer
    }

    pub fn subject_kind(self) -> SubjectKind {
        match self {
            EventType::SegmentDefined | EventType::SegmentRetired => SubjectKind::Segment,
            EventType::AlertAcknowledged
            | EventType::AlertResolved
            | EventType::AlertAssigned
            | EventType::AlertReviewed
            | EventType::AlertMerged => SubjectKind::Alert,
            EventType::ProblemOpened | EventType::ProblemLinked | EventType::ProblemResolved => {
                SubjectKind::Problem
            }
            EventType::ClockTicked => SubjectKind::Clock,
            EventType::IdentityRulesDefined => SubjectKind::Rules,
            _ => SubjectKind::Customer,
        }
    }

    pub fn known_versions(self) -> std::ops::RangeInclusive<u16> {
        1..=self.current_version()
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerRegistered {
    /// Personal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Personal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Personal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileUpdated {
    /// Trait name → value. Values are personal unless the name is one of
    /// [`crate::personal::NON_PERSONAL_TRAITS`].
    pub traits: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Item {
    pub sku: String,
    /// A positive count.
    pub quantity: u32,
    pub unit_price: Money,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// The production batch or lot (version 2), so that an alert about a batch finds
    /// who bought it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Purchase {
    pub order_id: String,
    pub amount: Money,
    pub currency: Currency,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<Item>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// The store (shop, branch, online store) that sold it (version 2), so that an alert
    /// about a store finds who bought there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// The customer id of the agent credited with the sale (version 3). A purchase by an
    /// agent is the agent's own purchase (stock or own use), whoever sold it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sold_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Refund {
    pub order_id: String,
    pub amount: Money,
    /// The order's currency when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<Currency>,
    /// Personal (free text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Referral {
    /// The customer id of the person referred; the event's `customer` is the referrer.
    pub referee: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

/// What a complaint is about; at least one field is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct About {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Complaint {
    pub complaint_id: String,
    pub about: About,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// 1 (minor) to 5 (severe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<u8>,
    /// Personal (free text).
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComplaintResolved {
    pub complaint_id: String,
    /// Personal (free text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub satisfied: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Post {
    pub post_id: String,
    pub community: String,
    /// Personal (free text).
    pub text: String,
    /// The post id this post replies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// A complaint id this post supports ("me too").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub echoes: Option<String>,
    /// Customer ids mentioned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Community {
    pub community: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Contacted {
    pub channel: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonalDataErased {
    /// Id of the API key that asked for the erasure (not a person's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    /// Generation of the destroyed data key.
    pub key_generation: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentDefined {
    /// A short display name.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The membership rule, in the condition language of `docs/segments.md`
    /// (see [`crate::segment::Rule`]).
    #[schemars(with = "serde_json::Value")]
    pub rule: serde_json::Value,
    /// Id of the API key that defined it (not a person's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentRetired {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

/// Staff acted on an alert (acknowledged, resolved) or resolved a problem.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertAction {
    /// Id of the API key that acted (not a person's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    /// Staff's note. Not encrypted: it belongs to no customer, so it must not carry
    /// personal data (documented in `docs/privacy.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A decoded, validated payload in its current version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventData {
    CustomerRegistered(CustomerRegistered),
    ProfileUpdated(ProfileUpdated),
    Purchase(Purchase),
    Refund(Refund),
    Referral(Referral),
    Complaint(Complaint),
    ComplaintResolved(ComplaintResolved),
    Post(Post),
    CommunityJoined(Community),
    CommunityLeft(Community),
    Contacted(Contacted),
    PersonalDataErased(PersonalDataErased),
    SegmentDefined(SegmentDefined),
    SegmentRetired(SegmentRetired),
    AlertAcknowledged(AlertAction),
    AlertResolved(AlertAction),
    AlertAssigned(AlertAssigned),
    AlertReviewed(AlertReviewed),
    AlertMerged(AlertMerged),
    ProblemOpened(ProblemOpened),
    ProblemLinked(ProblemLinked),
    ProblemResolved(AlertAction),
    ClockTicked(ClockTicked),
    IdentifierAdded(IdentifierAdded),
    CustomersMerged(CustomersMerged),
    CustomersUnmerged(CustomersUnmerged),
    IdentityRulesDefined(IdentityRulesDefined),
    ConsentGiven(Consent),
    ConsentWithdrawn(Consent),
    AgentJoined(AgentJoined),
    AgentLeft(AgentLeft),
    CommissionPaid(CommissionPaid),
}

fn decode_as<T: DeserializeOwned>(text: &str) -> Result<T, ValidationErrors> {
    // Fast path without path tracking; only a failure pays for a second, tracked parse.
    if let Ok(v) = serde_json::from_str(text) {
        return Ok(v);
    }
    let de = &mut serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let mut path = pointer_of(e.path());
        let msg = e.inner().to_string();
        // serde_json appends " at line L column C"; the path already says where.
        let msg = match msg.rfind(" at line ") {
            Some(i) => msg[..i].to_owned(),
            None => msg,
        };
        // A missing field is named by the path too, as every other field error is.
        if let Some(field) = msg
            .strip_prefix("missing field `")
            .and_then(|m| m.strip_suffix('`'))
        {
            path = format!("{path}/{field}");
            return ValidationErrors::one(path, "is required");
        }
        ValidationErrors::one(path, msg)
    })?;
    // One JSON value only: trailing text is refused, never ignored.
    de.end()
        .map_err(|e| ValidationErrors::one("", format!("trailing text after the data: {e}")))?;
    Ok(value)
}

/// Turns serde_path_to_error's `a.b[3].c` into a JSON pointer `/a/b/3/c`.
fn pointer_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        out.push('/');
        match seg {
            Segment::Seq { index } => out.push_str(&index.to_string()),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                out.push_str(&key.replace('~', "~0").replace('/', "~1"))
            }
            Segment::Unknown => out.push('?'),
        }
    }
    out
}

impl EventData {
    /// Decodes `data` of `(ty, version)` from its JSON text, upcasts it to the current
    /// version and checks every rule. Paths in errors are relative to `data`.
    pub fn decode(ty: EventType, version: u16, text: &str) -> Result<EventData, ValidationErrors> {
        if !ty.known_versions().contains(&version) {
            return Err(ValidationErrors::one(
                "",
                format!(
                    "unknown version {version} of `{ty}` (known: 1 to {})",
                    ty.current_version()
                ),
            ));
        }
        // An old version is brought to the current one by the same JSON upcasters that the
        // read path uses (`upcast.rs`), then decoded as the current version.
        let upcast;
        let text = if version < ty.current_version() {
            let mut v: serde_json::Value = decode_as(text)?;
            crate::upcast::Upcasters::standard()
                .upcast(ty, version, &mut v)
                .map_err(|e| ValidationErrors::one("", e.to_string()))?;
            upcast = v.to_string();
            upcast.as_str()
        } else {
            text
        };
        let data = match ty {
            EventType::CustomerRegistered => EventData::CustomerRegistered(decode_as(text)?),
            EventType::ProfileUpdated => EventData::ProfileUpdated(decode_as(text)?),
            EventType::Purchase => EventData::Purchase(decode_as(text)?),
            EventType::Refund => EventData::Refund(decode_as(text)?),
            EventType::Referral => EventData::Referral(decode_as(text)?),
            EventType::Complaint => EventData::Complaint(decode_as(text)?),
            EventType::ComplaintResolved => EventData::ComplaintResolved(decode_as(text)?),
            EventType::Post => EventData::Post(decode_as(text)?),
            EventType::CommunityJoined => EventData::CommunityJoined(decode_as(text)?),
            EventType::CommunityLeft => EventData::CommunityLeft(decode_as(text)?),
            EventType::Contacted => EventData::Contacted(decode_as(text)?),
            EventType::PersonalDataErased => EventData::PersonalDataErased(decode_as(text)?),
            EventType::SegmentDefined => EventData::SegmentDefined(decode_as(text)?),
            EventType::SegmentRetired => EventData::SegmentRetired(decode_as(text)?),
            EventType::AlertAcknowledged => EventData::AlertAcknowledged(decode_as(text)?),
            EventType::AlertResolved => EventData::AlertResolved(decode_as(text)?),
            EventType::AlertAssigned => EventData::AlertAssigned(decode_as(text)?),
            EventType::AlertReviewed => EventData::AlertReviewed(decode_as(text)?),
            EventType::AlertMerged => EventData::AlertMerged(decode_as(text)?),
            EventType::ProblemOpened => EventData::ProblemOpened(decode_as(text)?),
            EventType::ProblemLinked => EventData::ProblemLinked(decode_as(text)?),
            EventType::ProblemResolved => EventData::ProblemResolved(decode_as(text)?),
            EventType::ClockTicked => EventData::ClockTicked(decode_as(text)?),
            EventType::IdentifierAdded => EventData::IdentifierAdded(decode_as(text)?),
            EventType::CustomersMerged => EventData::CustomersMerged(decode_as(text)?),
            EventType::CustomersUnmerged => EventData::CustomersUnmerged(decode_as(text)?),
            EventType::IdentityRulesDefined => EventData::IdentityRulesDefined(decode_as(text)?),
            EventType::ConsentGiven => EventData::ConsentGiven(decode_as(text)?),
            EventType::ConsentWithdrawn => EventData::ConsentWithdrawn(decode_as(text)?),
            EventType::AgentJoined => EventData::AgentJoined(decode_as(text)?),
            EventType::AgentLeft => EventData::AgentLeft(decode_as(text)?),
            EventType::CommissionPaid => EventData::CommissionPaid(decode_as(text)?),
        };
        data.validate()?;
        Ok(data)
    }

    pub fn event_type(&self) -> EventType {
        match self {
            EventData::CustomerRegistered(_) => EventType::CustomerRegistered,
            EventData::ProfileUpdated(_) => EventType::ProfileUpdated,
            EventData::Purchase(_) => EventType::Purchase,
            EventData::Refund(_) => EventType::Refund,
            EventData::Referral(_) => EventType::Referral,
            EventData::Complaint(_) => EventType::Complaint,
            EventData::ComplaintResolved(_) => EventType::ComplaintResolved,
            EventData::Post(_) => EventType::Post,
            EventData::CommunityJoined(_) => EventType::CommunityJoined,
            EventData::CommunityLeft(_) => EventType::CommunityLeft,
            EventData::Contacted(_) => EventType::Contacted,
            EventData::PersonalDataErased(_) => EventType::PersonalDataErased,
            EventData::SegmentDefined(_) => EventType::SegmentDefined,
            EventData::SegmentRetired(_) => EventType::SegmentRetired,
            EventData::AlertAcknowledged(_) => EventType::AlertAcknowledged,
            EventData::AlertResolved(_) => EventType::AlertResolved,
            EventData::AlertAssigned(_) => EventType::AlertAssigned,
            EventData::AlertReviewed(_) => EventType::AlertReviewed,
            EventData::AlertMerged(_) => EventType::AlertMerged,
            EventData::ProblemOpened(_) => EventType::ProblemOpened,
            EventData::ProblemLinked(_) => EventType::ProblemLinked,
            EventData::ProblemResolved(_) => EventType::ProblemResolved,
            EventData::ClockTicked(_) => EventType::ClockTicked,
            EventData::IdentifierAdded(_) => EventType::IdentifierAdded,
            EventData::CustomersMerged(_) => EventType::CustomersMerged,
            EventData::CustomersUnmerged(_) => EventType::CustomersUnmerged,
            EventData::IdentityRulesDefined(_) => EventType::IdentityRulesDefined,
            EventData::ConsentGiven(_) => EventType::ConsentGiven,
            EventData::ConsentWithdrawn(_) => EventType::ConsentWithdrawn,
            EventData::AgentJoined(_) => EventType::AgentJoined,
            EventData::AgentLeft(_) => EventType::AgentLeft,
            EventData::CommissionPaid(_) => EventType::CommissionPaid,
        }
    }

    /// The canonical JSON text of the payload, written straight from the struct.
    pub fn to_json_string(&self) -> String {
        let s = match self {
            EventData::CustomerRegistered(d) => serde_json::to_string(d),
            EventData::ProfileUpdated(d) => serde_json::to_string(d),
            EventData::Purchase(d) => serde_json::to_string(d),
            EventData::Refund(d) => serde_json::to_string(d),
            EventData::Referral(d) => serde_json::to_string(d),
            EventData::Complaint(d) => serde_json::to_string(d),
            EventData::ComplaintResolved(d) => serde_json::to_string(d),
            EventData::Post(d) => serde_json::to_string(d),
            EventData::CommunityJoined(d) | EventData::CommunityLeft(d) => serde_json::to_string(d),
            EventData::Contacted(d) => serde_json::to_string(d),
            EventData::PersonalDataErased(d) => serde_json::to_string(d),
            EventData::SegmentDefined(d) => serde_json::to_string(d),
            EventData::SegmentRetired(d) => serde_json::to_string(d),
            EventData::AlertAcknowledged(d)
            | EventData::AlertResolved(d)
            | EventData::ProblemResolved(d) => serde_json::to_string(d),
            EventData::AlertAssigned(d) => serde_json::to_string(d),
            EventData::AlertReviewed(d) => serde_json::to_string(d),
            EventData::AlertMerged(d) => serde_json::to_string(d),
            EventData::ProblemOpened(d) => serde_json::to_string(d),
            EventData::ProblemLinked(d) => serde_json::to_string(d),
            EventData::ClockTicked(d) => serde_json::to_string(d),
            EventData::IdentifierAdded(d) => serde_json::to_string(d),
            EventData::CustomersMerged(d) => serde_json::to_string(d),
            EventData::CustomersUnmerged(d) => serde_json::to_string(d),
            EventData::IdentityRulesDefined(d) => serde_json::to_string(d),
            EventData::ConsentGiven(d) | EventData::ConsentWithdrawn(d) => serde_json::to_string(d),
            EventData::AgentJoined(d) => serde_json::to_string(d),
            EventData::AgentLeft(d) => serde_json::to_string(d),
            EventData::CommissionPaid(d) => serde_json::to_string(d),
        };
        s.expect("event data serializes to JSON")
    }

    /// The canonical JSON of the payload (current version; money as strings).
    pub fn to_json(&self) -> serde_json::Value {
        let v = match self {
            EventData::CustomerRegistered(d) => serde_json::to_value(d),
            EventData::ProfileUpdated(d) => serde_json::to_value(d),
            EventData::Purchase(d) => serde_json::to_value(d),
            EventData::Refund(d) => serde_json::to_value(d),
            EventData::Referral(d) => serde_json::to_value(d),
            EventData::Complaint(d) => serde_json::to_value(d),
            EventData::ComplaintResolved(d) => serde_json::to_value(d),
            EventData::Post(d) => serde_json::to_value(d),
            EventData::CommunityJoined(d) | EventData::CommunityLeft(d) => serde_json::to_value(d),
            EventData::Contacted(d) => serde_json::to_value(d),
            EventData::PersonalDataErased(d) => serde_json::to_value(d),
            EventData::SegmentDefined(d) => serde_json::to_value(d),
            EventData::SegmentRetired(d) => serde_json::to_value(d),
            EventData::AlertAcknowledged(d)
            | EventData::AlertResolved(d)
            | EventData::ProblemResolved(d) => serde_json::to_value(d),
            EventData::AlertAssigned(d) => serde_json::to_value(d),
            EventData::AlertReviewed(d) => serde_json::to_value(d),
            EventData::AlertMerged(d) => serde_json::to_value(d),
            EventData::ProblemOpened(d) => serde_json::to_value(d),
            EventData::ProblemLinked(d) => serde_json::to_value(d),
            EventData::ClockTicked(d) => serde_json::to_value(d),
            EventData::IdentifierAdded(d) => serde_json::to_value(d),
            EventData::CustomersMerged(d) => serde_json::to_value(d),
            EventData::CustomersUnmerged(d) => serde_json::to_value(d),
            EventData::IdentityRulesDefined(d) => serde_json::to_value(d),
            EventData::ConsentGiven(d) | EventData::ConsentWithdrawn(d) => serde_json::to_value(d),
            EventData::AgentJoined(d) => serde_json::to_value(d),
            EventData::AgentLeft(d) => serde_json::to_value(d),
            EventData::CommissionPaid(d) => serde_json::to_value(d),
        };
        // Plain structs of strings, numbers and maps with string keys always serialize.
        v.expect("event data serializes to JSON")
    }

    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut e = Errors::default();
        match self {
            EventData::CustomerRegistered(d) => {
                opt_short(&mut e, "/name", &d.name);
                opt_short(&mut e, "/email", &d.email);
                if let Some(email) = &d.email {
                    if !email.contains('@') {
                        e.push("/email", "must be an e-mail address (contain `@`)");
                    }
                }
                opt_short(&mut e, "/phone", &d.phone);
                opt_short(&mut e, "/region", &d.region);
                opt_short(&mut e, "/channel", &d.channel);
                list(&mut e, "/tags", &d.tags, SHORT_LEN_MAX);
            }
            EventData::ProfileUpdated(d) => {
                if d.traits.is_empty() {
                    e.push("/traits", "must have at least one trait");
                }
                if d.traits.len() > LIST_LEN_MAX {
                    e.push(
                        "/traits",
                        format!("must have at most {LIST_LEN_MAX} traits"),
                    );
                }
                for (k, v) in &d.traits {
                    let p = format!("/traits/{k}");
                    if k.is_empty() || k.len() > ID_LEN_MAX {
                        e.push(&p, format!("trait names must be 1 to {ID_LEN_MAX} bytes"));
                    }
                    short(&mut e, &p, v, true);
                }
            }
            EventData::Purchase(d) => {
                id(&mut e, "/order_id", &d.order_id);
                opt_short(&mut e, "/channel", &d.channel);
                opt_short(&mut e, "/store", &d.store);
                if let Some(a) = &d.sold_by {
                    customer_id(&mut e, "/sold_by", a);
                }
                if d.items.len() > LIST_LEN_MAX {
                    e.push("/items", format!("must have at most {LIST_LEN_MAX} items"));
                }
                for (i, item) in d.items.iter().enumerate() {
                    id(&mut e, &format!("/items/{i}/sku"), &item.sku);
                    if item.quantity == 0 {
                        e.push(format!("/items/{i}/quantity"), "must be a positive integer");
                    }
                    opt_short(&mut e, &format!("/items/{i}/product"), &item.product);
                    opt_short(&mut e, &format!("/items/{i}/category"), &item.category);
                    opt_short(&mut e, &format!("/items/{i}/batch"), &item.batch);
                }
            }
            EventData::Refund(d) => {
                id(&mut e, "/order_id", &d.order_id);
                opt_text(&mut e, "/reason", &d.reason);
            }
            EventData::Referral(d) => {
                customer_id(&mut e, "/referee", &d.referee);
                opt_short(&mut e, "/channel", &d.channel);
            }
            EventData::Complaint(d) => {
                id(&mut e, "/complaint_id", &d.complaint_id);
                let a = &d.about;
                if [&a.product, &a.sku, &a.batch, &a.store, &a.topic]
                    .iter()
                    .all(|f| f.is_none())
                {
                    e.push(
                        "/about",
                        "must name at least one of product, sku, batch, store, topic",
                    );
                }
                for (name, f) in [
                    ("product", &a.product),
                    ("sku", &a.sku),
                    ("batch", &a.batch),
                    ("store", &a.store),
                    ("topic", &a.topic),
                ] {
                    opt_short(&mut e, &format!("/about/{name}"), f);
                }
                opt_short(&mut e, "/category", &d.category);
                if let Some(s) = d.severity {
                    if !(1..=5).contains(&s) {
                        e.push("/severity", "must be an integer from 1 to 5");
                    }
                }
                text(&mut e, "/text", &d.text);
                opt_short(&mut e, "/channel", &d.channel);
            }
            EventData::ComplaintResolved(d) => {
                id(&mut e, "/complaint_id", &d.complaint_id);
                opt_text(&mut e, "/resolution", &d.resolution);
            }
            EventData::Post(d) => {
                id(&mut e, "/post_id", &d.post_id);
                id(&mut e, "/community", &d.community);
                text(&mut e, "/text", &d.text);
                if let Some(r) = &d.reply_to {
                    id(&mut e, "/reply_to", r);
                }
                if let Some(c) = &d.echoes {
                    id(&mut e, "/echoes", c);
                }
                list(&mut e, "/mentions", &d.mentions, ID_LEN_MAX);
                for (i, m) in d.mentions.iter().enumerate() {
                    if let Some(why) = rules::personal_looking_id(m) {
                        e.push(format!("/mentions/{i}"), why);
                    }
                }
            }
            EventData::CommunityJoined(d) | EventData::CommunityLeft(d) => {
                id(&mut e, "/community", &d.community)
            }
            EventData::Contacted(d) => {
                short(&mut e, "/channel", &d.channel, false);
                opt_short(&mut e, "/campaign", &d.campaign);
                opt_short(&mut e, "/outcome", &d.outcome);
            }
            EventData::PersonalDataErased(_) | EventData::SegmentRetired(_) => {}
            EventData::SegmentDefined(d) => {
                short(&mut e, "/name", &d.name, false);
                opt_text(&mut e, "/description", &d.description);
                if let Err(errs) = crate::segment::Rule::parse(&d.rule) {
                    e.0.extend(errs.under("/rule").0);
                }
            }
            EventData::AlertAcknowledged(d)
            | EventData::AlertResolved(d)
            | EventData::ProblemResolved(d) => {
                opt_text(&mut e, "/note", &d.note);
            }
            EventData::AlertAssigned(d) => staff::check_assigned(&mut e, d),
            EventData::AlertReviewed(d) => staff::check_reviewed(&mut e, d),
            EventData::AlertMerged(d) => staff::check_merged(&mut e, d),
            EventData::ProblemOpened(d) => staff::check_opened(&mut e, d),
            EventData::ProblemLinked(d) => staff::check_linked(&mut e, d),
            EventData::ClockTicked(_) => {}
            EventData::IdentifierAdded(d) => identity::check_identifier(&mut e, d),
            EventData::CustomersMerged(d) => identity::check_merged(&mut e, d),
            EventData::CustomersUnmerged(d) => identity::check_unmerged(&mut e, d),
            EventData::IdentityRulesDefined(d) => identity::check_rules(&mut e, d),
            EventData::ConsentGiven(d) | EventData::ConsentWithdrawn(d) => {
                consent::check(&mut e, d)
            }
            EventData::AgentJoined(d) => agents::check_joined(&mut e, d),
            EventData::AgentLeft(d) => agents::check_left(&mut e, d),
            EventData::CommissionPaid(d) => agents::check_commission(&mut e, d),
        }
        e.into_result()
    }
}
