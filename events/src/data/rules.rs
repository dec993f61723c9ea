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
