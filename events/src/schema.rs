//! JSON Schemas of the wire format, generated from the types in this crate.
//!
//! `events/schema/` holds one file per event type and version (`purchase.v1.json`) plus
//! the envelope (`envelope.json`) and the recorded form (`recorded.json`). The test
//! `tests/schema.rs` fails when a committed file differs from what the code generates;
//! `RAPPORT_UPDATE_SCHEMAS=1 cargo test -p rapport-events` rewrites them.

use schemars::{schema_for, Schema};

use crate::{
    data::*,
    envelope::{EventInput, RecordedEvent},
};

/// Every schema file: (file name, schema).
pub fn all() -> Vec<(String, Schema)> {
    let mut out = vec![
        ("envelope.json".to_string(), schema_for!(EventInput)),
        ("recorded.json".to_string(), schema_for!(RecordedEvent)),
    ];
    for ty in EventType::ALL {
        for v in ty.known_versions() {
            out.push((format!("{}.v{v}.json", ty.as_str()), data_schema(*ty, v)));
        }
    }
    out
}

/// The schema of `data` for one type and version.
pub fn data_schema(ty: EventType, version: u16) -> Schema {
    // Older versions whose struct changed since.
    if (ty, version) == (EventType::Purchase, 1) {
        return schema_for!(old::PurchaseV1);
    }
    if (ty, version) == (EventType::Purchase, 2) {
        return schema_for!(old::PurchaseV2);
    }
    match ty {
        EventType::CustomerRegistered => schema_for!(CustomerRegistered),
        EventType::ProfileUpdated => schema_for!(ProfileUpdated),
        EventType::Purchase => schema_for!(Purchase),
        EventType::Refund => schema_for!(Refund),
        EventType::Referral => schema_for!(Referral),
        EventType::Complaint => schema_for!(Complaint),
        EventType::ComplaintResolved => schema_for!(ComplaintResolved),
        EventType::Post => schema_for!(Post),
        EventType::CommunityJoined | EventType::CommunityLeft => schema_for!(Community),
        EventType::Contacted => schema_for!(Contacted),
        EventType::PersonalDataErased => schema_for!(PersonalDataErased),
        EventType::SegmentDefined => schema_for!(SegmentDefined),
        EventType::SegmentRetired => schema_for!(SegmentRetired),
        EventType::AlertAcknowledged | EventType::AlertResolved | EventType::ProblemResolved => {
            schema_for!(AlertAction)
        }
        EventType::AlertAssigned => schema_for!(AlertAssigned),
        EventType::AlertReviewed => schema_for!(AlertReviewed),
        EventType::AlertMerged => schema_for!(AlertMerged),
        EventType::ProblemOpened => schema_for!(ProblemOpened),
        EventType::ProblemLinked => schema_for!(ProblemLinked),
        EventType::ClockTicked => schema_for!(ClockTicked),
        EventType::IdentifierAdded => schema_for!(IdentifierAdded),
        EventType::CustomersMerged => schema_for!(CustomersMerged),
        EventType::CustomersUnmerged => schema_for!(CustomersUnmerged),
        EventType::IdentityRulesDefined => schema_for!(IdentityRulesDefined),
        EventType::ConsentGiven | EventType::ConsentWithdrawn => schema_for!(Consent),
        EventType::AgentJoined => schema_for!(AgentJoined),
        EventType::AgentLeft => schema_for!(AgentLeft),
        EventType::CommissionPaid => schema_for!(CommissionPaid),
    }
}
