//! Payloads of what staff do with alerts and problems (operator events), and of the
//! deadline clock's tick (a system event). None of them belongs to a customer, so none is
//! encrypted: notes and reasons must not carry personal data (`docs/privacy.md`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::rules::{id, opt_text, short, text};
use crate::error::Errors;

/// An alert was given to a staff member to handle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertAssigned {
    /// Id of the API key of the staff member who owns the alert from now on.
    pub assignee: String,
    /// Id of the API key that assigned it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Whether an alert was right.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// It was a group complaint.
    Confirmed,
    /// It was not a group complaint (a coincidence, one noisy customer, an outage …).
    NotGroupComplaint,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Confirmed => "confirmed",
            Verdict::NotGroupComplaint => "not_group_complaint",
        }
    }
}

/// Staff said whether an alert was right; the latest verdict counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertReviewed {
    pub verdict: Verdict,
    /// Why: what staff found.
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

/// The alert (the event's subject) turned out to be the same group complaint as `into`:
/// its complaints, customers and echoes join `into`, and it is closed as merged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertMerged {
    pub into: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A problem (a root cause behind one or more alerts and complaints) was opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProblemOpened {
    /// A short title ("Batch L0421 stored damp").
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// An alert or a single complaint was linked to the problem; exactly one of the two.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProblemLinked {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complaint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

/// The deadline clock: time passed without customer events. Written by Rapport's
/// scheduler when a deadline falls due, never by clients; its `occurred_at` is the time
/// that has been reached, so deadlines replay identically.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClockTicked {}

pub(super) fn check_assigned(e: &mut Errors, d: &AlertAssigned) {
    id(e, "/assignee", &d.assignee);
    opt_text(e, "/note", &d.note);
}

pub(super) fn check_reviewed(e: &mut Errors, d: &AlertReviewed) {
    text(e, "/reason", &d.reason);
}

pub(super) fn check_merged(e: &mut Errors, d: &AlertMerged) {
    id(e, "/into", &d.into);
    opt_text(e, "/note", &d.note);
}

pub(super) fn check_opened(e: &mut Errors, d: &ProblemOpened) {
    short(e, "/title", &d.title, false);
    opt_text(e, "/note", &d.note);
}

pub(super) fn check_linked(e: &mut Errors, d: &ProblemLinked) {
    match (&d.alert, &d.complaint) {
        (Some(a), None) => id(e, "/alert", a),
        (None, Some(c)) => id(e, "/complaint", c),
        _ => e.push("/alert", "name exactly one of `alert` and `complaint`"),
    }
}
