//! Upcasting: an event's `data` written in an older version of its type, brought to the
//! version the code reads, one version at a time.
//!
//! Upcasters work on the JSON object, not on typed structs, because they run in two places
//! with different amounts of data:
//! - on append, when a client sends an old version ([`crate::EventData::decode`]);
//! - on read, when the log holds events written before a type changed (the service's
//!   `Log::open`). There they run *after* the personal fields were decrypted and merged
//!   back, so a field can move between personal and public shapes; but a reader that may
//!   not see personal data (or an erased customer) hands them an object without those
//!   fields. **An upcaster must therefore treat every personal field as optional.**
//!
//! When a type gains a version: bump its version in `data/mod.rs`, keep the old golden
//! examples and the old struct for its schema (`data/old.rs`), and add the upcaster to
//! `STANDARD`; `tests` below refuse a type whose versions cannot all be reached. A
//! version that only adds optional fields is listed in `ADDITIVE` too: its old data is
//! read as it is.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::EventType;

/// One step: `data` of `(event_type, from)` rewritten in place into version `from + 1`.
#[derive(Clone, Copy)]
pub struct Upcaster {
    pub event_type: EventType,
    pub from: u16,
    pub apply: fn(&mut Map<String, Value>) -> Result<(), String>,
}

impl std::fmt::Debug for Upcaster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} v{} → v{}", self.event_type, self.from, self.from + 1)
    }
}

/// The upcasters of every type Rapport has ever changed.
const STANDARD: &[Upcaster] = &[
    Upcaster {
        event_type: EventType::Purchase,
        from: 1,
        apply: unchanged,
    },
    Upcaster {
        event_type: EventType::Purchase,
        from: 2,
        apply: unchanged,
    },
];

/// Versions that only added optional fields: data of `(type, from)` is valid as it is in
/// `from + 1`, so reading it needs no rewriting and the read path keeps its fast decoding.
/// (`purchase` v2 added `store` and `items[].batch`, v3 `sold_by`.)
const ADDITIVE: &[(EventType, u16)] = &[(EventType::Purchase, 1), (EventType::Purchase, 2)];

fn unchanged(_: &mut Map<String, Value>) -> Result<(), String> {
    Ok(())
}

/// Why an event could not be brought to the version the code reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpcastError {
    #[error("version {found} of `{event_type}` is newer than this code reads (up to {known}); upgrade Rapport")]
    Newer {
        event_type: EventType,
        found: u16,
        known: u16,
    },
    #[error("no upcaster from version {from} of `{event_type}`")]
    Missing { event_type: EventType, from: u16 },
    #[error("upcasting version {from} of `{event_type}`: {why}")]
    Failed {
        event_type: EventType,
        from: u16,
        why: String,
    },
    #[error("data of `{0}` is not a JSON object")]
    NotAnObject(EventType),
}

/// A chain of upcasters. The service uses [`Upcasters::standard`]; tests hand in their own
/// to exercise a schema change that has not happened yet.
#[derive(Debug, Clone)]
pub struct Upcasters {
    steps: Cow<'static, [Upcaster]>,
}

impl Default for Upcasters {
    fn default() -> Self {
        Upcasters::standard()
    }
}

impl Upcasters {
    pub fn standard() -> Upcasters {
        Upcasters {
            steps: Cow::Borrowed(STANDARD),
        }
    }

    pub fn new(steps: Vec<Upcaster>) -> Upcasters {
        Upcasters {
            steps: Cow::Owned(steps),
        }
    }

    fn step(&self, ty: EventType, from: u16) -> Option<&Upcaster> {
        self.steps
            .iter()
            .find(|u| u.event_type == ty && u.from == from)
    }

    /// The version events of `ty` are read in: the type's current version, or further if
    /// this chain goes beyond it.
    pub fn target(&self, ty: EventType) -> u16 {
        self.steps
            .iter()
            .filter(|u| u.event_type == ty)
            .map(|u| u.from + 1)
            .fold(ty.current_version(), u16::max)
    }

    /// Whether `data` of `(ty, version)` needs rewriting (cheap; the read path asks
    /// first): not when every step to the target only added optional fields.
    pub fn needed(&self, ty: EventType, version: u16) -> bool {
        let target = self.target(ty);
        version > target || (version..target).any(|v| !ADDITIVE.contains(&(ty, v)))
    }

    /// Rewrites `data` of `(ty, version)` into [`Upcasters::target`] and returns that version.
    pub fn upcast(
        &self,
        ty: EventType,
        version: u16,
        data: &mut Value,
    ) -> Result<u16, UpcastError> {
        let target = self.target(ty);
        if version > target {
            return Err(UpcastError::Newer {
                event_type: ty,
                found: version,
                known: target,
            });
        }
        let obj = data.as_object_mut().ok_or(UpcastError::NotAnObject(ty))?;
        let mut v = version;
        while v < target {
            let step = self.step(ty, v).ok_or(UpcastError::Missing {
                event_type: ty,
                from: v,
            })?;
            (step.apply)(obj).map_err(|why| UpcastError::Failed {
                event_type: ty,
                from: v,
                why,
            })?;
            v += 1;
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rename_outcome(d: &mut Map<String, Value>) -> Result<(), String> {
        if let Some(o) = d.remove("outcome") {
            d.insert("result".into(), o);
        }
        Ok(())
    }

    fn wrap_result(d: &mut Map<String, Value>) -> Result<(), String> {
        match d.remove("result") {
            Some(Value::String(s)) => {
                d.insert("result".into(), json!({"label": s}));
                Ok(())
            }
            Some(other) => Err(format!("result is {other}, not a string")),
            None => Ok(()),
        }
    }

    fn contacted_v3() -> Upcasters {
        Upcasters::new(vec![
            Upcaster {
                event_type: EventType::Contacted,
                from: 2,
                apply: wrap_result,
            },
            Upcaster {
                event_type: EventType::Contacted,
                from: 1,
                apply: rename_outcome,
            },
        ])
    }

    #[test]
    fn every_version_of_every_type_reaches_the_current_one_with_the_standard_chain() {
        let chain = Upcasters::standard();
        for &ty in EventType::ALL {
            assert_eq!(chain.target(ty), ty.current_version(), "{ty}");
            for v in 1..ty.current_version() {
                assert!(chain.step(ty, v).is_some(), "no upcaster from {ty} v{v}");
            }
        }
    }

    #[test]
    fn an_old_version_goes_through_every_step_from_where_it_is() {
        for (from, mut d) in [
            (1, json!({"channel": "sms", "outcome": "replied"})),
            (2, json!({"channel": "sms", "result": "replied"})),
        ] {
            let v = contacted_v3()
                .upcast(EventType::Contacted, from, &mut d)
                .unwrap();
            assert_eq!(v, 3, "from v{from}");
            assert_eq!(
                d,
                json!({"channel": "sms", "result": {"label": "replied"}}),
                "from v{from}"
            );
        }
    }

    #[test]
    fn the_current_version_and_other_types_are_left_alone() {
        let chain = contacted_v3();
        let mut d = json!({"channel": "sms", "result": {"label": "x"}});
        assert!(!chain.needed(EventType::Contacted, 3));
        assert_eq!(chain.upcast(EventType::Contacted, 3, &mut d.clone()), Ok(3));
        d = json!({"post_id": "p", "community": "g", "text": "t"});
        let before = d.clone();
        assert_eq!(chain.upcast(EventType::Post, 1, &mut d), Ok(1));
        assert_eq!(d, before);
    }

    #[test]
    fn a_version_newer_than_the_code_is_refused() {
        let err = Upcasters::standard()
            .upcast(EventType::Post, 2, &mut json!({}))
            .unwrap_err();
        assert_eq!(
            err,
            UpcastError::Newer {
                event_type: EventType::Post,
                found: 2,
                known: 1
            }
        );
        assert!(Upcasters::standard().needed(EventType::Post, 2));
    }

    #[test]
    fn a_version_that_only_added_optional_fields_is_read_as_it_is() {
        let chain = Upcasters::standard();
        assert!(!chain.needed(EventType::Purchase, 1));
        assert!(!chain.needed(EventType::Purchase, 2));
        let mut d = json!({"order_id": "o-1", "amount": "1.00", "currency": "CNY"});
        let before = d.clone();
        assert_eq!(chain.upcast(EventType::Purchase, 1, &mut d), Ok(3));
        assert_eq!(d, before);
    }

    #[test]
    fn a_gap_in_the_chain_and_a_failing_step_are_errors() {
        let gap = Upcasters::new(vec![Upcaster {
            event_type: EventType::Contacted,
            from: 2,
            apply: wrap_result,
        }]);
        assert_eq!(
            gap.upcast(EventType::Contacted, 1, &mut json!({})),
            Err(UpcastError::Missing {
                event_type: EventType::Contacted,
                from: 1
            })
        );
        let err = contacted_v3()
            .upcast(EventType::Contacted, 2, &mut json!({"result": 7}))
            .unwrap_err();
        assert!(matches!(err, UpcastError::Failed { from: 2, .. }), "{err}");
    }
}
