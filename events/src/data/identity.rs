//! Payloads of identity: the identifiers a customer is known by (a phone number, an
//! e-mail, a WeChat openid …) and the merges and unmerges of customers who are one person.
//!
//! An identifier's value is personal (sealed with the customer's key). What the folds see
//! is its blind index: a keyed hash of the normalised value that Rapport computes when it
//! records the event, so two customers holding the same phone number can be found without
//! the number itself ever being stored in plain text.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::rules::{customer_id, id, short, text};
use crate::error::Errors;

/// The kinds of identifier a customer can be known by.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum IdentifierKind {
    /// A phone number, normalised to E.164 (`+8613800138000`).
    Phone,
    /// An e-mail address, trimmed and lower-cased.
    Email,
    /// A WeChat openid (one per official account or mini-program).
    WechatOpenid,
    /// A WeChat unionid (one per person across a firm's WeChat apps).
    WechatUnionid,
    /// A membership or loyalty card number.
    Member,
    /// An id in another system (`shopify:12345`).
    External,
}

impl IdentifierKind {
    pub const ALL: [IdentifierKind; 6] = [
        IdentifierKind::Phone,
        IdentifierKind::Email,
        IdentifierKind::WechatOpenid,
        IdentifierKind::WechatUnionid,
        IdentifierKind::Member,
        IdentifierKind::External,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IdentifierKind::Phone => "phone",
            IdentifierKind::Email => "email",
            IdentifierKind::WechatOpenid => "wechat_openid",
            IdentifierKind::WechatUnionid => "wechat_unionid",
            IdentifierKind::Member => "member",
            IdentifierKind::External => "external",
        }
    }

    pub fn parse(s: &str) -> Option<IdentifierKind> {
        IdentifierKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The value in the one form its blind index is computed from, or why it is no
    /// identifier of this kind. Phone numbers: E.164 (spaces, dashes, dots and brackets
    /// dropped; a leading `00` read as `+`); e-mails: trimmed and lower-cased; other kinds:
    /// trimmed.
    pub fn normalise(self, value: &str) -> Result<String, &'static str> {
        let v = value.trim();
        if v.is_empty() {
            return Err("must not be empty");
        }
        match self {
            IdentifierKind::Phone => {
                let mut digits: String = v
                    .chars()
                    .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')' | '\u{a0}'))
                    .collect();
                if let Some(rest) = digits.strip_prefix("00") {
                    digits = format!("+{rest}");
                }
                let Some(number) = digits.strip_prefix('+') else {
                    return Err("must be a phone number in international form: `+`, the country code, the number");
                };
                let ok = (8..=15).contains(&number.len())
                    && number.bytes().all(|b| b.is_ascii_digit())
                    && !number.starts_with('0');
                if !ok {
                    return Err("must be a phone number in E.164 form: `+` and 8 to 15 digits, the first not 0");
                }
                Ok(digits)
            }
            IdentifierKind::Email => {
                let v = v.to_lowercase();
                match v.split_once('@') {
                    Some((local, domain))
                        if !local.is_empty()
                            && !domain.is_empty()
                            && !domain.contains('@')
                            && !v.chars().any(char::is_whitespace) =>
                    {
                        Ok(v)
                    }
                    _ => Err("must be an e-mail address (`name@domain`)"),
                }
            }
            IdentifierKind::WechatOpenid
            | IdentifierKind::WechatUnionid
            | IdentifierKind::Member
            | IdentifierKind::External => Ok(v.to_owned()),
        }
    }
}

impl BlockedValue {
    /// What staff see of a value: its last four characters.
    pub fn hint_of(normalised: &str) -> String {
        let chars: Vec<char> = normalised.chars().collect();
        let tail: String = chars[chars.len().saturating_sub(4)..].iter().collect();
        format!("…{tail}")
    }
}

impl std::fmt::Display for IdentifierKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How identifiers of one kind take part in automatic merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KindRule {
    /// Whether two customers holding the same value of this kind are merged.
    pub merge: bool,
    /// Most distinct values of this kind one person holds; a merge beyond it is refused.
    pub limit: u32,
    /// Lower is stronger: when a person is worked out again, links through stronger kinds
    /// are made first.
    pub priority: u8,
}

/// A value that links nobody (a shop's shared tablet, a placeholder number).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockedValue {
    pub kind: IdentifierKind,
    /// The value, as staff give it: Rapport records its blind index and hint instead, and
    /// drops the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The blind index of the normalised value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    /// What staff see of it: its last characters (`…0000`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// Staff defined the identity rules: how each kind merges and which values are blocked.
/// Kinds not named keep their defaults; the list of blocked values replaces the last one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityRulesDefined {
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub kinds: std::collections::BTreeMap<IdentifierKind, KindRule>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocked: Vec<BlockedValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

/// Placeholder values no client should link people by, whatever the rules: an identifier
/// with one of these (after normalising) is recorded without a blind index, so it links
/// nobody and cannot be looked up.
pub const PLACEHOLDER_VALUES: &[&str] = &[
    "0",
    "anonymous",
    "unknown",
    "none",
    "null",
    "n/a",
    "na",
    "test",
    "guest",
    "-",
];

/// Whether a normalised value is a placeholder: in [`PLACEHOLDER_VALUES`], or one
/// character repeated (`0000`, `+8611111111`'s digits all one).
pub fn is_placeholder(normalised: &str) -> bool {
    let v = normalised.trim_start_matches('+').to_lowercase();
    let mut chars = v.chars();
    let first = chars.next();
    PLACEHOLDER_VALUES.contains(&v.as_str())
        || v.split_once('@')
            .is_some_and(|(l, _)| PLACEHOLDER_VALUES.contains(&l))
        || first.is_some_and(|f| chars.all(|c| c == f))
}

/// The customer is known by one more identifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentifierAdded {
    pub kind: IdentifierKind,
    /// Personal. Normalised by kind before it is indexed (see `docs/identity.md`).
    pub value: String,
    /// The blind index of the normalised value: a keyed hash Rapport computes when it
    /// records the event (any value a client sends is replaced). Not personal by itself,
    /// and forgotten by every projection when the customer is erased.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    /// Where the identifier was learnt (`pos`, `wechat`, `web` …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Staff said two customers are one person: `merged` joins the event's customer (the
/// survivor), whose id the person is known by from now on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomersMerged {
    /// The customer id merged into the event's customer.
    pub merged: String,
    /// Why: what staff checked. Must not carry personal data (it is not encrypted).
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

/// Staff said a merge was wrong: the event's customer and `other` are two people, and are
/// never merged again, by staff's earlier merge or by any shared identifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomersUnmerged {
    pub other: String,
    /// Why. Must not carry personal data (it is not encrypted).
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

pub(super) fn check_identifier(e: &mut Errors, d: &IdentifierAdded) {
    short(e, "/value", &d.value, false);
    if let Err(why) = d.kind.normalise(&d.value) {
        e.push("/value", why);
    }
    if let Some(s) = &d.source {
        short(e, "/source", s, false);
    }
}

pub(super) fn check_merged(e: &mut Errors, d: &CustomersMerged) {
    customer_id(e, "/merged", &d.merged);
    text(e, "/reason", &d.reason);
}

pub(super) fn check_unmerged(e: &mut Errors, d: &CustomersUnmerged) {
    customer_id(e, "/other", &d.other);
    text(e, "/reason", &d.reason);
}

pub(super) fn check_rules(e: &mut Errors, d: &IdentityRulesDefined) {
    for (kind, rule) in &d.kinds {
        if rule.limit == 0 {
            e.push(format!("/kinds/{kind}/limit"), "must be at least 1");
        }
    }
    if d.blocked.len() > super::LIST_LEN_MAX {
        e.push(
            "/blocked",
            format!("must have at most {} values", super::LIST_LEN_MAX),
        );
    }
    for (i, b) in d.blocked.iter().enumerate() {
        match (&b.value, &b.index) {
            (Some(v), _) => {
                if let Err(why) = b.kind.normalise(v) {
                    e.push(format!("/blocked/{i}/value"), why);
                }
            }
            (None, Some(index)) => id(e, &format!("/blocked/{i}/index"), index),
            (None, None) => e.push(format!("/blocked/{i}/value"), "is required"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::IdentifierKind::*;

    #[test]
    fn phone_numbers_are_normalised_to_e164() {
        assert_eq!(
            Phone.normalise(" +86 138-0013-8000 ").unwrap(),
            "+8613800138000"
        );
        assert_eq!(
            Phone.normalise("0086 (138) 0013 8000").unwrap(),
            "+8613800138000"
        );
        assert!(Phone.normalise("13800138000").is_err(), "no country code");
        assert!(Phone.normalise("+86 abc").is_err());
        assert!(Phone.normalise("+0123456789").is_err());
    }

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        assert_eq!(
            Email.normalise("  Li.Na@Example.COM ").unwrap(),
            "li.na@example.com"
        );
        assert!(Email.normalise("nobody").is_err());
        assert!(Email.normalise("a b@c").is_err());
        assert!(Email.normalise("@c").is_err());
    }

    #[test]
    fn personal_looking_customer_ids_are_told_from_pseudonymous_ones() {
        use crate::data::personal_looking_id as p;
        for bad in [
            "li.na@example.cn",
            "+86 138 0013 8000",
            "13800138000",
            "+44 7700 900123",
        ] {
            assert!(p(bad).is_some(), "{bad}");
        }
        for ok in [
            "c-1",
            "12346",
            "3445678",
            "10234567",
            "M0001310",
            "shop@home",
            "ix-3fa2",
        ] {
            assert!(p(ok).is_none(), "{ok}");
        }
    }

    #[test]
    fn placeholders_are_told_from_values() {
        assert!(super::is_placeholder("0000"));
        assert!(
            !super::is_placeholder("+8600000000"),
            "86 then zeros is a number"
        );
        assert!(super::is_placeholder("+1111111111"));
        assert!(super::is_placeholder("anonymous@shop.example"));
        assert!(super::is_placeholder("Unknown"));
        assert!(!super::is_placeholder("M-0042"));
    }

    #[test]
    fn other_kinds_are_trimmed_only() {
        assert_eq!(Member.normalise(" M-0042 ").unwrap(), "M-0042");
        assert!(WechatOpenid.normalise("  ").is_err());
    }
}
