//! Exact money: a decimal that never passes through `f64`, and an ISO 4217-shaped currency code.

use std::{fmt, str::FromStr};

use rust_decimal::Decimal;
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// A non-negative exact decimal amount. On the wire it is a string (`"129.90"`) or a
/// JSON number (`129.90`); both are parsed from their text, never through a float, and
/// the scale is kept (`"129.90"` stays `"129.90"`). It is always written back as a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(pub Decimal);

/// Largest number of digits after the decimal point we accept.
pub const MONEY_SCALE_MAX: u32 = 8;

/// Largest amount one event may carry: 10^12 (a trillion) in any currency. With at most
/// `MONEY_SCALE_MAX` decimal places an amount's mantissa is under 10^20, and a `Decimal`
/// holds mantissas up to 2^96 − 1 (about 7.9·10^28): any sum of fewer than 790 million
/// amounts (a customer's revenue, a cohort's, a segment's) is exact and cannot overflow.
/// Folds read a stored amount above it as no amount, so data written before the limit
/// cannot overflow a projection either.
pub const AMOUNT_MAX: Decimal = Decimal::from_parts(0xD4A5_1000, 0xE8, 0, false, 0);

impl Money {
    pub fn parse(text: &str) -> Result<Money, &'static str> {
        let text = text.trim();
        // No exponent, and no sign: "-0" is zero but would not be kept as sent.
        if text.is_empty() || text.contains(['e', 'E']) || text.starts_with('-') {
            return Err("must be a non-negative decimal");
        }
        let d = Decimal::from_str_exact(text).map_err(|_| "must be a non-negative decimal")?;
        if d.scale() > MONEY_SCALE_MAX {
            return Err("must have at most 8 decimal places");
        }
        if d > AMOUNT_MAX {
            return Err("must be at most 1000000000000 (10^12)");
        }
        Ok(Money(d))
    }

    pub fn decimal(self) -> Decimal {
        self.0
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for Money {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Money::parse(s)
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A borrowed raw value gives us the number's own text, so `0.1` stays exactly `0.1`.
        let raw: Box<RawValue> = Deserialize::deserialize(d)?;
        let text = raw.get();
        let text = if text.starts_with('"') {
            serde_json::from_str::<String>(text).map_err(de::Error::custom)?
        } else if text.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
            text.to_owned()
        } else {
            return Err(de::Error::custom(
                "must be a non-negative decimal (a string or a number)",
            ));
        };
        Money::parse(&text).map_err(de::Error::custom)
    }
}

impl schemars::JsonSchema for Money {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Money".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Non-negative exact decimal, as a string (preferred) or a JSON number; at most 8 decimal places and at most 10^12; never read through a float.",
            "oneOf": [
                {"type": "string", "pattern": "^[0-9]+(\\.[0-9]{1,8})?$"},
                {"type": "number", "minimum": 0, "maximum": 1_000_000_000_000u64}
            ]
        })
    }
}

/// A three-letter upper-case currency code (ISO 4217 shape, e.g. `CNY`, `GBP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Currency([u8; 3]);

impl Currency {
    pub fn parse(s: &str) -> Result<Currency, &'static str> {
        let b = s.as_bytes();
        if b.len() == 3 && b.iter().all(|c| c.is_ascii_uppercase()) {
            Ok(Currency([b[0], b[1], b[2]]))
        } else {
            Err("must be a three-letter upper-case currency code such as \"CNY\"")
        }
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII upper-case letters ever get in.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Currency::parse(&s).map_err(de::Error::custom)
    }
}

impl schemars::JsonSchema for Currency {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Currency".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "pattern": "^[A-Z]{3}$", "description": "ISO 4217 currency code"})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regression_minus_zero_is_refused_not_rewritten_to_zero() {
        // Found by the property test in events/tests/no_panic.rs: "-0" was accepted and
        // stored as "0", so the amount was not kept as sent.
        assert!(Money::parse("-0").is_err());
        assert_eq!(AMOUNT_MAX, Decimal::from(1_000_000_000_000u64));
        assert!(Money::parse("1000000000000").is_ok());
        assert!(Money::parse("1000000000000.00000000").is_ok());
        assert_eq!(
            Money::parse("1000000000000.00000001"),
            Err("must be at most 1000000000000 (10^12)")
        );
        assert!(Money::parse("79228162514264337593543950335").is_err());
        assert!(Money::parse("-0.00").is_err());
        assert_eq!(Money::parse("0.00").unwrap().to_string(), "0.00");
    }

    #[derive(Deserialize)]
    struct Holder {
        amount: Money,
    }

    fn amount(json: &str) -> Result<String, String> {
        serde_json::from_str::<Holder>(json)
            .map(|h| h.amount.to_string())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn numbers_and_strings_keep_their_exact_text() {
        assert_eq!(amount(r#"{"amount": "129.90"}"#).unwrap(), "129.90");
        assert_eq!(amount(r#"{"amount": 129.90}"#).unwrap(), "129.90");
        assert_eq!(amount(r#"{"amount": 0.1}"#).unwrap(), "0.1");
        assert_eq!(
            amount(r#"{"amount": 999999999999.99999999}"#).unwrap(),
            "999999999999.99999999"
        );
    }

    #[test]
    fn negative_exponent_and_garbage_are_rejected() {
        for bad in [
            r#""-1""#,
            "-0.5",
            "1e3",
            r#""abc""#,
            "true",
            "null",
            r#""""#,
            r#""1.123456789""#,
        ] {
            let e = amount(&format!(r#"{{"amount": {bad}}}"#)).unwrap_err();
            assert!(e.contains("decimal"), "{bad}: {e}");
        }
    }

    #[test]
    fn currency_is_three_upper_case_letters() {
        assert!(Currency::parse("CNY").is_ok());
        assert!(Currency::parse("cny").is_err());
        assert!(Currency::parse("EURO").is_err());
    }
}
