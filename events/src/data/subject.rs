//! What an event is about: a customer, or for operator and system events a segment, an
//! alert, a problem or a clock; it decides the stream.

use super::EventType;

/// What an event is about, which decides its stream and the envelope field that names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectKind {
    /// `customer` names it; stream `customer-<id>`.
    Customer,
    /// `subject` names a segment; stream `segment-<id>`.
    Segment,
    /// `subject` names an alert; stream `alert-<id>`.
    Alert,
    /// `subject` names a problem; stream `problem-<id>`.
    Problem,
    /// `subject` names a clock (`deadlines`); stream `clock-<id>`.
    Clock,
    /// `subject` names a set of rules (`identity`); stream `rules-<id>`.
    Rules,
}

/// What one event is about: a customer, a segment or an alert, by id. The store keeps the
/// id in one column whatever the kind (the event's type says which); the wire names it
/// `customer` or `subject`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    Customer(String),
    Segment(String),
    Alert(String),
    Problem(String),
    Clock(String),
    Rules(String),
}

impl Subject {
    /// The subject of an event of type `ty` whose stored id is `id`.
    pub fn of(ty: EventType, id: String) -> Subject {
        match ty.subject_kind() {
            SubjectKind::Customer => Subject::Customer(id),
            SubjectKind::Segment => Subject::Segment(id),
            SubjectKind::Alert => Subject::Alert(id),
            SubjectKind::Problem => Subject::Problem(id),
            SubjectKind::Clock => Subject::Clock(id),
            SubjectKind::Rules => Subject::Rules(id),
        }
    }

    pub fn kind(&self) -> SubjectKind {
        match self {
            Subject::Customer(_) => SubjectKind::Customer,
            Subject::Segment(_) => SubjectKind::Segment,
            Subject::Alert(_) => SubjectKind::Alert,
            Subject::Problem(_) => SubjectKind::Problem,
            Subject::Clock(_) => SubjectKind::Clock,
            Subject::Rules(_) => SubjectKind::Rules,
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Subject::Customer(id)
            | Subject::Segment(id)
            | Subject::Alert(id)
            | Subject::Problem(id)
            | Subject::Clock(id)
            | Subject::Rules(id) => id,
        }
    }

    /// The customer, when the subject is one.
    pub fn customer(&self) -> Option<&str> {
        match self {
            Subject::Customer(id) => Some(id),
            _ => None,
        }
    }

    /// The stream its events land in: `<kind>-<id>`.
    pub fn stream(&self) -> String {
        format!("{}{}", self.kind().stream_prefix(), self.id())
    }

    /// The two envelope fields of the wire and of `FoldEvent`: `customer` (empty for
    /// operator events) and `subject` (only for them).
    pub fn into_fields(self) -> (String, Option<String>) {
        match self {
            Subject::Customer(id) => (id, None),
            Subject::Segment(id)
            | Subject::Alert(id)
            | Subject::Problem(id)
            | Subject::Clock(id)
            | Subject::Rules(id) => (String::new(), Some(id)),
        }
    }

    /// The name of the envelope field the wire gives the id of an event of type `ty`.
    pub fn field_name(ty: EventType) -> &'static str {
        match ty.subject_kind() {
            SubjectKind::Customer => "customer",
            _ => "subject",
        }
    }
}

impl SubjectKind {
    pub fn stream_prefix(self) -> &'static str {
        match self {
            SubjectKind::Customer => "customer-",
            SubjectKind::Segment => "segment-",
            SubjectKind::Alert => "alert-",
            SubjectKind::Problem => "problem-",
            SubjectKind::Clock => "clock-",
            SubjectKind::Rules => "rules-",
        }
    }
}
