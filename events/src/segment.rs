//! The condition language of rule-based segments (`segment_defined.data.rule`).
//!
//! A rule is JSON, so it needs no parser of its own and errors can name the exact place
//! (`/rule/all/1/value`):
//!
//! ```json
//! {"all": [
//!   {"field": "days_since_last_purchase", "op": ">=", "value": 90},
//!   {"field": "orders", "op": ">=", "value": 3},
//!   {"field": "communities", "op": ">=", "value": 1}
//! ]}
//! ```
//!
//! - `{"all": [rule…]}`, `{"any": [rule…]}`, `{"not": rule}` combine rules.
//! - `{"field": F, "op": OP, "value": V}` compares one profile field; `orders`, `refunds`
//!   and `revenue` take `"within_days": N` (behaviour in the last N days) and `revenue`
//!   needs `"currency"`.
//!
//! Every field, its kind and its operators are in [`FIELDS`]; `docs/segments.md` is the
//! user's reference. Evaluation lives in `rapport-projections` (`segments`).

use rust_decimal::Decimal;
use serde_json::Value;

use crate::error::{Errors, ValidationErrors};

/// Deepest nesting of `all`/`any`/`not`.
pub const RULE_DEPTH_MAX: usize = 8;
/// Most conditions in one rule.
pub const RULE_CONDITIONS_MAX: usize = 64;
/// Most values in one `in` list (an audience of named customers, such as an alert's
/// exposed buyers).
pub const IN_VALUES_MAX: usize = 10_000;
/// Longest window, in days (ten years).
pub const WINDOW_DAYS_MAX: u32 = 3_660;

/// Lifecycle states a rule may name (the projections crate checks it agrees).
pub const LIFECYCLE_STATES: &[&str] = &[
    "prospect",
    "new",
    "active",
    "reactivated",
    "at_risk",
    "dormant",
    "churned",
];
/// Relationship kinds a rule may name.
pub const RELATIONSHIPS: &[&str] = &["prospect", "customer", "user"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A count or amount: `=`, `!=`, `>`, `>=`, `<`, `<=`.
    Number,
    /// Whole days since something; absent (never happened) compares false.
    Days,
    /// A string: `=`, `!=`, `in`.
    Text,
    /// A set of strings: `contains`, and the number operators on its size.
    Set,
    Bool,
}

macro_rules! fields {
    ($( $variant:ident = $name:literal, $kind:ident, $windowed:literal, $doc:literal; )*) => {
        /// A profile field a condition can test.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Field { $( #[doc = $doc] $variant, )* }

        /// Every field: name, kind, whether it takes `within_days`, what it means.
        pub const FIELDS: &[(Field, &str, Kind, bool, &str)] = &[
            $( (Field::$variant, $name, Kind::$kind, $windowed, $doc), )*
        ];
    };
}

fields! {
    Orders = "orders", Number, true, "Purchases with a positive amount (in the window, if given).";
    Revenue = "revenue", Number, true, "Purchases minus refunds in `currency` (in the window, if given).";
    Refunds = "refunds", Number, true, "Refunds (in the window, if given).";
    DaysSinceLastPurchase = "days_since_last_purchase", Days, false, "Whole days since the last purchase.";
    DaysSinceFirstPurchase = "days_since_first_purchase", Days, false, "Whole days since the first purchase.";
    DaysSinceLastSeen = "days_since_last_seen", Days, false, "Whole days since the customer's latest event.";
    DaysSinceLastContact = "days_since_last_contact", Days, false, "Whole days since the firm last reached out.";
    Contacts = "contacts", Number, false, "Times the firm reached out.";
    ComplaintsOpen = "complaints_open", Number, false, "Complaints not yet resolved.";
    ComplaintsResolved = "complaints_resolved", Number, false, "Complaints resolved.";
    Posts = "posts", Number, false, "Community posts written.";
    Referrals = "referrals", Number, false, "Customers this one referred.";
    RefereesWhoBought = "referees_who_bought", Number, false, "Referees who bought at least once.";
    RepliesReceived = "replies_received", Number, false, "Replies to the customer's posts.";
    EchoesReceived = "echoes_received", Number, false, "Echoes of the customer's complaints.";
    MentionsReceived = "mentions_received", Number, false, "Mentions of the customer in posts.";
    Influence = "influence", Number, false, "The influence score (docs/projections.md).";
    Communities = "communities", Set, false, "Communities the customer is in.";
    Tags = "tags", Set, false, "Tags given at registration.";
    Lifecycle = "lifecycle", Text, false, "Lifecycle state (docs/projections.md).";
    Relationship = "relationship", Text, false, "`prospect`, `customer` or `user`.";
    Region = "region", Text, false, "Region given at registration.";
    Channel = "channel", Text, false, "Channel given at registration.";
    LastCampaign = "last_campaign", Text, false, "Campaign of the latest outreach.";
    LastOutcome = "last_outcome", Text, false, "Outcome of the latest outreach.";
    Erased = "erased", Bool, false, "The customer's personal data was erased.";
    Customer = "customer", Text, false, "The customer's id (with `in`: a fixed list of customers, such as an alert's exposed buyers).";
}

impl Field {
    pub fn name(self) -> &'static str {
        FIELDS
            .iter()
            .find(|f| f.0 == self)
            .map(|f| f.1)
            .unwrap_or("?")
    }
    pub fn kind(self) -> Kind {
        FIELDS
            .iter()
            .find(|f| f.0 == self)
            .map(|f| f.2)
            .unwrap_or(Kind::Number)
    }
    fn windowed(self) -> bool {
        FIELDS.iter().any(|f| f.0 == self && f.3)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    In,
    Contains,
}

const OPS: &[(Op, &str)] = &[
    (Op::Eq, "="),
    (Op::Ne, "!="),
    (Op::Gt, ">"),
    (Op::Gte, ">="),
    (Op::Lt, "<"),
    (Op::Lte, "<="),
    (Op::In, "in"),
    (Op::Contains, "contains"),
];

impl Op {
    pub fn as_str(self) -> &'static str {
        OPS.iter().find(|o| o.0 == self).map(|o| o.1).unwrap_or("?")
    }

    /// Compares two ordered values with a number operator (`in`/`contains` never match).
    pub fn compare<T: PartialOrd>(self, left: T, right: T) -> bool {
        match self {
            Op::Eq => left == right,
            Op::Ne => left != right,
            Op::Gt => left > right,
            Op::Gte => left >= right,
            Op::Lt => left < right,
            Op::Lte => left <= right,
            Op::In | Op::Contains => false,
        }
    }
}

/// The right-hand side of a condition, typed by the field's kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operand {
    Number(Decimal),
    Text(String),
    Texts(Vec<String>),
    Bool(bool),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub field: Field,
    pub op: Op,
    pub value: Operand,
    pub within_days: Option<u32>,
    /// For `revenue`: the ISO 4217 currency.
    pub currency: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    All(Vec<Rule>),
    Any(Vec<Rule>),
    Not(Box<Rule>),
    Condition(Condition),
}

impl Rule {
    /// Parses and checks a rule; errors are JSON pointers relative to the rule.
    pub fn parse(v: &Value) -> Result<Rule, ValidationErrors> {
        let mut e = Errors::default();
        let mut conditions = 0;
        let rule = parse(v, "", 0, &mut conditions, &mut e);
        if conditions > RULE_CONDITIONS_MAX {
            e.push(
                "",
                format!("must have at most {RULE_CONDITIONS_MAX} conditions"),
            );
        }
        e.into_result()?;
        rule.ok_or_else(|| ValidationErrors::one("", "invalid rule"))
    }

    /// Every condition, depth first.
    pub fn conditions(&self) -> Vec<&Condition> {
        let mut out = Vec::new();
        fn walk<'a>(r: &'a Rule, out: &mut Vec<&'a Condition>) {
            match r {
                Rule::All(rs) | Rule::Any(rs) => rs.iter().for_each(|r| walk(r, out)),
                Rule::Not(r) => walk(r, out),
                Rule::Condition(c) => out.push(c),
            }
        }
        walk(self, &mut out);
        out
    }
}

fn parse(v: &Value, path: &str, depth: usize, n: &mut usize, e: &mut Errors) -> Option<Rule> {
    let Some(obj) = v.as_object() else {
        e.push(path, "must be an object: {\"all\": […]}, {\"any\": […]}, {\"not\": …} or a condition {\"field\", \"op\", \"value\"}");
        return None;
    };
    if depth >= RULE_DEPTH_MAX {
        e.push(path, format!("rules nest at most {RULE_DEPTH_MAX} deep"));
        return None;
    }
    for combinator in ["all", "any"] {
        if let Some(list) = obj.get(combinator) {
            if obj.len() != 1 {
                e.push(
                    path,
                    format!("`{combinator}` must be the object's only key"),
                );
                return None;
            }
            let p = format!("{path}/{combinator}");
            let Some(list) = list.as_array().filter(|l| !l.is_empty()) else {
                e.push(&p, "must be a non-empty array of rules");
                return None;
            };
            let rules: Vec<Option<Rule>> = list
                .iter()
                .enumerate()
                .map(|(i, r)| parse(r, &format!("{p}/{i}"), depth + 1, n, e))
                .collect();
            let rules: Option<Vec<Rule>> = rules.into_iter().collect();
            return rules.map(|rs| {
                if combinator == "all" {
                    Rule::All(rs)
                } else {
                    Rule::Any(rs)
                }
            });
        }
    }
    if let Some(inner) = obj.get("not") {
        if obj.len() != 1 {
            e.push(path, "`not` must be the object's only key");
            return None;
        }
        return parse(inner, &format!("{path}/not"), depth + 1, n, e)
            .map(|r| Rule::Not(Box::new(r)));
    }
    *n += 1;
    condition(obj, path, e).map(Rule::Condition)
}

fn condition(
    obj: &serde_json::Map<String, Value>,
    path: &str,
    e: &mut Errors,
) -> Option<Condition> {
    for k in obj.keys() {
        if !["field", "op", "value", "within_days", "currency"].contains(&k.as_str()) {
            e.push(
                format!("{path}/{k}"),
                "unknown key (a condition has field, op, value, and optionally within_days and currency)",
            );
        }
    }
    let field = match obj.get("field").and_then(Value::as_str) {
        Some(name) => match FIELDS.iter().find(|f| f.1 == name) {
            Some(f) => Some(f.0),
            None => {
                let known: Vec<&str> = FIELDS.iter().map(|f| f.1).collect();
                e.push(
                    format!("{path}/field"),
                    format!("unknown field `{name}` (known: {})", known.join(", ")),
                );
                None
            }
        },
        None => {
            e.push(format!("{path}/field"), "is required (a string)");
            None
        }
    };
    let op = match obj.get("op").and_then(Value::as_str) {
        Some(s) => match OPS.iter().find(|o| o.1 == s) {
            Some(o) => Some(o.0),
            None => {
                e.push(
                    format!("{path}/op"),
                    "must be one of =, !=, >, >=, <, <=, in, contains",
                );
                None
            }
        },
        None => {
            e.push(format!("{path}/op"), "is required (a string)");
            None
        }
    };
    let (field, op) = (field?, op?);
    let kind = field.kind();
    let number_ops = [Op::Eq, Op::Ne, Op::Gt, Op::Gte, Op::Lt, Op::Lte];
    let allowed: &[Op] = match kind {
        Kind::Number | Kind::Days => &number_ops,
        Kind::Set => &[
            Op::Contains,
            Op::Eq,
            Op::Ne,
            Op::Gt,
            Op::Gte,
            Op::Lt,
            Op::Lte,
        ],
        Kind::Text => &[Op::Eq, Op::Ne, Op::In],
        Kind::Bool => &[Op::Eq, Op::Ne],
    };
    if !allowed.contains(&op) {
        let names: Vec<&str> = allowed.iter().map(|o| o.as_str()).collect();
        e.push(
            format!("{path}/op"),
            format!("`{}` takes {}", field.name(), names.join(", ")),
        );
        return None;
    }
    let within_days = match obj.get("within_days") {
        None => None,
        Some(_) if !field.windowed() => {
            e.push(
                format!("{path}/within_days"),
                "only orders, refunds and revenue take a window",
            );
            None
        }
        Some(v) => match v.as_u64() {
            Some(d) if d >= 1 && d <= WINDOW_DAYS_MAX as u64 => Some(d as u32),
            _ => {
                e.push(
                    format!("{path}/within_days"),
                    format!("must be a whole number of days from 1 to {WINDOW_DAYS_MAX}"),
                );
                None
            }
        },
    };
    let currency = match (field, obj.get("currency")) {
        (Field::Revenue, Some(Value::String(c)))
            if c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()) =>
        {
            Some(c.clone())
        }
        (Field::Revenue, _) => {
            e.push(
                format!("{path}/currency"),
                "is required for revenue: an ISO 4217 code such as CNY",
            );
            None
        }
        (_, Some(_)) => {
            e.push(format!("{path}/currency"), "only revenue takes a currency");
            None
        }
        (_, None) => None,
    };
    let vpath = format!("{path}/value");
    let Some(v) = obj.get("value") else {
        e.push(&vpath, "is required");
        return None;
    };
    let value = match (kind, op) {
        (Kind::Set, Op::Contains) => text(v, &vpath, e).map(Operand::Text),
        (Kind::Number | Kind::Days | Kind::Set, _) => {
            let d = match v {
                Value::Number(n) => n.to_string().parse::<Decimal>().ok(),
                Value::String(s) => s.parse::<Decimal>().ok(),
                _ => None,
            };
            match d {
                Some(d) if kind == Kind::Days && (d.is_sign_negative() || !d.fract().is_zero()) => {
                    e.push(&vpath, "must be a whole, non-negative number of days");
                    None
                }
                Some(d) => Some(Operand::Number(d)),
                None => {
                    e.push(&vpath, "must be a number (or a decimal string)");
                    None
                }
            }
        }
        (Kind::Text, Op::In) => match v.as_array() {
            Some(items) if items.len() > IN_VALUES_MAX => {
                e.push(&vpath, format!("must hold at most {IN_VALUES_MAX} values"));
                None
            }
            Some(items) if !items.is_empty() => {
                let texts: Option<Vec<String>> = items
                    .iter()
                    .enumerate()
                    .map(|(i, x)| text(x, &format!("{vpath}/{i}"), e))
                    .collect();
                // Sorted, so a long list is searched, not scanned.
                texts.map(|mut t| {
                    t.sort();
                    t.dedup();
                    Operand::Texts(t)
                })
            }
            _ => {
                e.push(&vpath, "must be a non-empty array of strings");
                None
            }
        },
        (Kind::Text, _) => text(v, &vpath, e).map(Operand::Text),
        (Kind::Bool, _) => match v.as_bool() {
            Some(b) => Some(Operand::Bool(b)),
            None => {
                e.push(&vpath, "must be true or false");
                None
            }
        },
    };
    let value = value?;
    let allowed_values = match field {
        Field::Lifecycle => Some(LIFECYCLE_STATES),
        Field::Relationship => Some(RELATIONSHIPS),
        _ => None,
    };
    if let Some(allowed_values) = allowed_values {
        let given: Vec<&String> = match &value {
            Operand::Text(t) => vec![t],
            Operand::Texts(ts) => ts.iter().collect(),
            _ => vec![],
        };
        for t in given {
            if !allowed_values.contains(&t.as_str()) {
                e.push(
                    &vpath,
                    format!("`{t}` is not one of {}", allowed_values.join(", ")),
                );
                return None;
            }
        }
    }
    Some(Condition {
        field,
        op,
        value,
        within_days,
        currency,
    })
}

fn text(v: &Value, path: &str, e: &mut Errors) -> Option<String> {
    match v.as_str() {
        Some(s) if !s.is_empty() && s.len() <= crate::data::SHORT_LEN_MAX => Some(s.to_owned()),
        _ => {
            e.push(path, "must be a non-empty string");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(v: Value) -> Vec<String> {
        match Rule::parse(&v) {
            Ok(_) => vec![],
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn the_dormant_regulars_rule_parses() {
        let r = Rule::parse(&json!({"all": [
            {"field": "days_since_last_purchase", "op": ">=", "value": 90},
            {"field": "orders", "op": ">=", "value": 3},
            {"field": "communities", "op": ">=", "value": 1},
            {"field": "revenue", "within_days": 365, "currency": "GBP", "op": ">", "value": "100.50"}
        ]}))
        .unwrap();
        assert_eq!(r.conditions().len(), 4);
        assert_eq!(
            r.conditions()[3].value,
            Operand::Number("100.50".parse().unwrap())
        );
    }

    #[test]
    fn errors_name_the_place_and_the_rule() {
        assert_eq!(
            errors(json!({"all": [{"field": "orders", "op": ">=", "value": 3},
                                   {"field": "lifecycle", "op": "=", "value": "asleep"}]})),
            ["/all/1/value: `asleep` is not one of prospect, new, active, reactivated, at_risk, dormant, churned"]
        );
        assert_eq!(
            errors(json!({"field": "orderz", "op": ">", "value": 1}))[0]
                .split(" (known")
                .next()
                .unwrap(),
            "/field: unknown field `orderz`"
        );
        assert_eq!(
            errors(json!({"field": "days_since_last_purchase", "op": ">", "value": -1})),
            ["/value: must be a whole, non-negative number of days"]
        );
        assert_eq!(
            errors(json!({"field": "posts", "within_days": 7, "op": ">", "value": 1})),
            ["/within_days: only orders, refunds and revenue take a window"]
        );
        assert_eq!(
            errors(json!({"field": "revenue", "op": ">", "value": 1})),
            ["/currency: is required for revenue: an ISO 4217 code such as CNY"]
        );
        assert_eq!(
            errors(json!({"any": []})),
            ["/any: must be a non-empty array of rules"]
        );
        assert_eq!(
            errors(json!({"field": "region", "op": ">", "value": "x"})),
            ["/op: `region` takes =, !=, in"]
        );
    }

    #[test]
    fn depth_and_size_are_bounded() {
        let mut r = json!({"field": "orders", "op": ">", "value": 0});
        for _ in 0..RULE_DEPTH_MAX {
            r = json!({ "not": r });
        }
        assert!(errors(r)[0].contains("nest at most"));
        let many: Vec<Value> = (0..=RULE_CONDITIONS_MAX)
            .map(|_| json!({"field": "orders", "op": ">", "value": 0}))
            .collect();
        assert_eq!(
            errors(json!({ "all": many })),
            [format!(
                "/: must have at most {RULE_CONDITIONS_MAX} conditions"
            )]
        );
    }
}
