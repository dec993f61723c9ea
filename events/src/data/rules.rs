//! The checks every payload's fields go through: lengths, emptiness, control characters.

use super::{ID_LEN_MAX, LIST_LEN_MAX, SHORT_LEN_MAX, TEXT_LEN_MAX};
use crate::error::Errors;

fn has_control(s: &str) -> bool {
    s.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
}

pub(crate) fn id(e: &mut Errors, path: &str, v: &str) {
    if v.trim().is_empty() {
        e.push(path, "must not be empty");
    } else if v.len() > ID_LEN_MAX {
        e.push(path, format!("must be at most {ID_LEN_MAX} bytes"));
    } else if v.chars().any(|c| c.is_control()) {
        e.push(path, "must not contain control characters");
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
