//! The checks every payload's fields go through: lengths, emptiness, control characters.

use super::{ID_LEN_MAX, LIST_LEN_MAX, SHORT_LEN_MAX, TEXT_LEN_MAX};
use crate::error::Errors;

fn has_control(s: &str) -> bool {
    s.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
}

/// Characters that print as nothing or reorder text (zero-width spaces and joiners,
/// bidirectional controls, the byte-order mark, soft hyphens): two ids that differ only
/// by them look the same and would be two customers.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

pub(crate) fn id(e: &mut Errors, path: &str, v: &str) {
    if v.trim().is_empty() {
        e.push(path, "must not be empty");
    } else if v.len() > ID_LEN_MAX {
        e.push(path, format!("must be at most {ID_LEN_MAX} bytes"));
    } else if v.chars().any(|c| c.is_control()) {
        e.push(path, "must not contain control characters");
    } else if v.chars().any(is_invisible) {
        e.push(
            path,
            "must not contain invisible characters (zero-width, bidirectional controls)",
        );
    } else if v.trim() != v {
        e.push(path, "must not begin or end with white space");
    }
}

/// Why a customer id looks like personal data, if it does: an e-mail address, a phone
/// number in international form, or a mainland China mobile number. Customer ids are
/// stored in clear and outlive an erasure, so they must be pseudonymous; a number or an
/// address belongs in `identifier_added` (or names the customer through `identified_by`).
pub fn personal_looking_id(v: &str) -> Option<&'static str> {
    let compact: String = v
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let email = v
        .split_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
    let e164 = compact
        .strip_prefix('+')
        .is_some_and(|n| digits(n) && (8..=15).contains(&n.len()));
    let cn_mobile = compact.len() == 11
        && digits(&compact)
        && compact.starts_with('1')
        && matches!(compact.as_bytes()[1], b'3'..=b'9');
    (email || e164 || cn_mobile).then_some(
        "looks like an e-mail address or a phone number; customer ids are kept in clear and survive an erasure, so use a pseudonymous id and record the address or number with `identifier_added` (or name the customer with `identified_by`)",
    )
}

/// A customer id: an id that is not personal-looking.
pub(crate) fn customer_id(e: &mut Errors, path: &str, v: &str) {
    id(e, path, v);
    if let Some(why) = personal_looking_id(v) {
        e.push(path, why);
    }
}

pub(crate) fn short(e: &mut Errors, path: &str, v: &str, allow_empty: bool) {
    if !allow_empty && v.trim().is_empty() {
        e.push(path, "must not be empty");
    } else if v.len() > SHORT_LEN_MAX {
        e.push(path, format!("must be at most {SHORT_LEN_MAX} bytes"));
    } else if v.chars().any(|c| c.is_control()) {
        e.push(path, "must not contain control characters");
    }
}

pub(crate) fn opt_short(e: &mut Errors, path: &str, v: &Option<String>) {
    if let Some(v) = v {
        short(e, path, v, false);
    }
}

pub(crate) fn text(e: &mut Errors, path: &str, v: &str) {
    if v.trim().is_empty() {
        e.push(path, "must not be empty");
    } else if v.len() > TEXT_LEN_MAX {
        e.push(path, format!("must be at most {TEXT_LEN_MAX} bytes"));
    } else if has_control(v) {
        e.push(
            path,
            "must not contain control characters other than tab and newline",
        );
    }
}

pub(crate) fn opt_text(e: &mut Errors, path: &str, v: &Option<String>) {
    if let Some(v) = v {
        text(e, path, v);
    }
}

pub(crate) fn list(e: &mut Errors, path: &str, v: &[String], each_max: usize) {
    if v.len() > LIST_LEN_MAX {
        e.push(path, format!("must have at most {LIST_LEN_MAX} entries"));
    }
    for (i, s) in v.iter().enumerate() {
        if s.trim().is_empty() || s.len() > each_max || s.chars().any(|c| c.is_control()) {
            e.push(
                format!("{path}/{i}"),
                format!("must be 1 to {each_max} bytes without control characters"),
            );
        }
    }
}
