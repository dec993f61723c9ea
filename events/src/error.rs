//! Validation errors that name the field (as a JSON pointer) and the rule it broke.

use std::fmt;

/// One broken rule at one place in the input, e.g. `/3/data/amount: must be a non-negative decimal`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// JSON pointer into the request body (batch index first for batches).
    pub path: String,
    /// The rule, phrased so that `path: rule` reads as a sentence.
    pub rule: String,
}

impl FieldError {
    pub fn new(path: impl Into<String>, rule: impl Into<String>) -> Self {
        FieldError {
            path: path.into(),
            rule: rule.into(),
        }
    }

    /// The same error, seen from one level up (e.g. the batch index `3`).
    pub fn under(mut self, prefix: &str) -> Self {
        self.path = format!("{prefix}{}", self.path);
        self
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "/"
        } else {
            &self.path
        };
        write!(f, "{path}: {}", self.rule)
    }
}

/// Every rule a rejected input broke (at least one), in input order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors(pub Vec<FieldError>);

/// How many field errors one rejection reports at most; the rest are counted, not listed.
pub const FIELD_ERRORS_MAX: usize = 20;

impl ValidationErrors {
    pub fn one(path: impl Into<String>, rule: impl Into<String>) -> Self {
        ValidationErrors(vec![FieldError::new(path, rule)])
    }

    pub fn under(self, prefix: &str) -> Self {
        ValidationErrors(self.0.into_iter().map(|e| e.under(prefix)).collect())
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().take(FIELD_ERRORS_MAX).enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        if self.0.len() > FIELD_ERRORS_MAX {
            write!(f, "; and {} more", self.0.len() - FIELD_ERRORS_MAX)?;
        }
        Ok(())
    }
}

/// Collects errors while a validator walks a value.
#[derive(Default)]
pub(crate) struct Errors(pub Vec<FieldError>);

impl Errors {
    pub(crate) fn push(&mut self, path: impl Into<String>, rule: impl Into<String>) {
        self.0.push(FieldError::new(path, rule));
    }

    pub(crate) fn into_result(self) -> Result<(), ValidationErrors> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(self.0))
        }
    }
}
