//! How times are written in snapshots.
//!
//! chrono writes a `DateTime` as RFC 3339 text in every format, binary ones included, and
//! parsing two or three million of those was a tenth of loading a million-customer state.
//! In binary formats (postcard: `is_human_readable()` is false) these write seconds since
//! the epoch and nanoseconds instead, exact for every `DateTime<Utc>`. In JSON they write
//! what chrono writes, so the JSON parts of a snapshot and the API are unchanged.
//!
//! Use as `#[serde(with = "crate::wire::time")]` (or `opt_time`), or wrap in [`Time`] where
//! a time sits inside a collection.

use chrono::{DateTime, Utc};
use serde::{de::Error as _, Deserialize, Deserializer, Serialize, Serializer};

/// A time that serializes as [`time`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Time(pub DateTime<Utc>);

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        time::serialize(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Time, D::Error> {
        time::deserialize(d).map(Time)
    }
}

pub mod time {
    use super::*;

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            t.serialize(s)
        } else {
            (t.timestamp(), t.timestamp_subsec_nanos()).serialize(s)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        if d.is_human_readable() {
            DateTime::deserialize(d)
        } else {
            let (seconds, nanos) = <(i64, u32)>::deserialize(d)?;
            DateTime::from_timestamp(seconds, nanos)
                .ok_or_else(|| D::Error::custom("a time out of range"))
        }
    }
}

pub mod opt_time {
    use super::*;

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        t.map(Time).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        Ok(Option::<Time>::deserialize(d)?.map(|t| t.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Both {
        #[serde(with = "time")]
        at: DateTime<Utc>,
        #[serde(with = "opt_time")]
        maybe: Option<DateTime<Utc>>,
    }

    fn t(seconds: i64, nanos: u32) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, nanos).unwrap()
    }

    #[test]
    fn binary_formats_get_seconds_and_nanoseconds_and_every_time_comes_back() {
        for at in [
            t(0, 0),
            t(1_700_000_000, 123_456_789),
            t(-1, 999_999_999),
            t(1_483_228_799, 1_500_000_000), // a leap second
            DateTime::<Utc>::MIN_UTC,
            DateTime::<Utc>::MAX_UTC,
        ] {
            let v = Both {
                at,
                maybe: Some(at),
            };
            let bytes = postcard::to_stdvec(&v).unwrap();
            assert!(bytes.len() <= 2 * 16, "{} bytes", bytes.len());
            assert_eq!(postcard::from_bytes::<Both>(&bytes).unwrap(), v);
        }
        let none = Both {
            at: t(5, 0),
            maybe: None,
        };
        assert_eq!(postcard::to_stdvec(&none).unwrap(), [10, 0, 0]);
    }

    #[test]
    fn json_gets_what_chrono_writes() {
        let v = Both {
            at: t(1_700_000_000, 0),
            maybe: None,
        };
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"at":"2023-11-14T22:13:20Z","maybe":null}"#
        );
        let back: Both = serde_json::from_str(
            r#"{"at":"2023-11-14T22:13:20Z","maybe":"2023-11-14T22:13:21.5Z"}"#,
        )
        .unwrap();
        assert_eq!(back.maybe, Some(t(1_700_000_001, 500_000_000)));
    }

    #[test]
    fn a_time_out_of_range_is_refused() {
        let bytes = postcard::to_stdvec(&(i64::MAX, 0u32, None::<(i64, u32)>)).unwrap();
        assert!(postcard::from_bytes::<Both>(&bytes).is_err());
        let bytes = postcard::to_stdvec(&(0i64, 2_000_000_000u32, None::<(i64, u32)>)).unwrap();
        assert!(postcard::from_bytes::<Both>(&bytes).is_err());
    }
}
