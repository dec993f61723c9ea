//! Purchases and refunds packed for memory: `Money3` (24 bytes) and `Moment`.

use super::*;

/// One purchase or refund, as the analytics need it: when, how much, in which currency,
/// packed in 24 bytes (a `DateTime`, a `Decimal` and three bytes would take 32; a million
/// customers hold millions of these).
///
/// Exact for every time `DateTime<Utc>` can hold and every `Decimal`; the currency must
/// be three capital letters (what the event model accepts), 5 bits each. The words:
/// - 0: the decimal's mantissa, low 64 bits;
/// - 1: its high 32 bits, the scale (5 bits), the sign, the currency (15 bits) and the
///   top 11 bits of the seconds;
/// - 2: the low 33 bits of the seconds and the nanoseconds (31 bits: a leap second's run
///   past 10^9).
///
/// Seconds are since the epoch plus 2^43 (chrono's range, ±262,143 years, is ±8.3·10^12
/// seconds; 2^43 is 8.8·10^12).
///
/// Serialized as the three words: snapshots hold millions of these. Text took most of the
/// time of writing and loading them; the seconds, nanoseconds, the decimal's 16 bytes and
/// the currency's 3 that replaced it were still 6% of loading a million customers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Money3(pub(super) [u64; 3]);

pub(super) const SECONDS_BIAS: i64 = 1 << 43;
pub(super) const LOW_SECONDS_BITS: u32 = 33;

impl Money3 {
    /// `None` if the currency is not three capital letters.
    pub fn new(at: DateTime<Utc>, amount: Decimal, currency: [u8; 3]) -> Option<Money3> {
        let mut code = 0u64;
        for c in currency {
            if !c.is_ascii_uppercase() {
                return None;
            }
            code = code * 26 + u64::from(c - b'A');
        }
        let mantissa = amount.mantissa().unsigned_abs();
        let seconds = (at.timestamp() + SECONDS_BIAS) as u64;
        let nanos = u64::from(at.timestamp_subsec_nanos());
        Some(Money3([
            mantissa as u64,
            (mantissa >> 64) as u64
                | u64::from(amount.scale()) << 32
                | u64::from(amount.is_sign_negative()) << 37
                | code << 38
                | (seconds >> LOW_SECONDS_BITS) << 53,
            (seconds & ((1 << LOW_SECONDS_BITS) - 1)) | nanos << LOW_SECONDS_BITS,
        ]))
    }

    /// The packed time: seconds since the epoch plus [`SECONDS_BIAS`], and nanoseconds.
    pub(super) fn biased_seconds_and_nanos(w: &[u64; 3]) -> (u64, u32) {
        let seconds = (w[1] >> 53) << LOW_SECONDS_BITS | (w[2] & ((1 << LOW_SECONDS_BITS) - 1));
        (seconds, (w[2] >> LOW_SECONDS_BITS) as u32)
    }

    pub fn at(&self) -> DateTime<Utc> {
        let (seconds, nanos) = Money3::biased_seconds_and_nanos(&self.0);
        DateTime::from_timestamp(seconds as i64 - SECONDS_BIAS, nanos)
            .expect("packed from a DateTime")
    }

    /// The time as a number that orders as the times do: for comparing purchases with each
    /// other and with a time without building a `DateTime` each time (a query compares
    /// millions).
    pub fn moment(&self) -> Moment {
        let (seconds, nanos) = Money3::biased_seconds_and_nanos(&self.0);
        Moment::new(seconds, nanos)
    }

    pub fn amount(&self) -> Decimal {
        let w = self.0[1];
        Decimal::from_parts(
            self.0[0] as u32,
            (self.0[0] >> 32) as u32,
            w as u32,
            (w >> 37) & 1 == 1,
            ((w >> 32) & 0x1f) as u32,
        )
    }

    /// The currency code as three ASCII bytes.
    pub fn currency_code(&self) -> [u8; 3] {
        let mut code = (self.0[1] >> 38) & 0x7fff;
        let mut out = [0u8; 3];
        for c in out.iter_mut().rev() {
            *c = b'A' + (code % 26) as u8;
            code /= 26;
        }
        out
    }

    /// Whether its currency is `code`, without reading the code as a string.
    pub fn is_in(&self, code: &str) -> bool {
        code.as_bytes() == self.currency_code()
    }

    /// The currency code.
    pub fn currency(&self) -> &'static str {
        let c = self.currency_code();
        let i =
            ((c[0] - b'A') as usize * 26 + (c[1] - b'A') as usize) * 26 + (c[2] - b'A') as usize;
        CURRENCY_CODES[i].as_str()
    }
}

/// A time as [`Money3::moment`] gives it: biased seconds, then nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Moment(pub(super) u128);

impl Moment {
    pub(super) fn new(biased_seconds: u64, nanos: u32) -> Moment {
        Moment(u128::from(biased_seconds) << 32 | u128::from(nanos))
    }

    /// Nanoseconds from `earlier` to this (negative when it is later): exact, and with no
    /// calendar arithmetic.
    pub fn nanos_since(self, earlier: Moment) -> i128 {
        let (s, n) = ((self.0 >> 32) as i128, (self.0 & 0xFFFF_FFFF) as i128);
        let (es, en) = ((earlier.0 >> 32) as i128, (earlier.0 & 0xFFFF_FFFF) as i128);
        (s - es) * 1_000_000_000 + (n - en)
    }
}

impl From<DateTime<Utc>> for Moment {
    fn from(t: DateTime<Utc>) -> Moment {
        Moment::new(
            (t.timestamp() + SECONDS_BIAS) as u64,
            t.timestamp_subsec_nanos(),
        )
    }
}

/// Every code of three capital letters, as strings, so a packed currency can be lent as a
/// `&'static str` (17,576 of them, 52 KB).
pub(super) static CURRENCY_CODES: [Code; 26 * 26 * 26] = {
    let mut out = [Code([0; 3]); 26 * 26 * 26];
    let mut i = 0;
    while i < out.len() {
        out[i] = Code([
            b'A' + (i / 676) as u8,
            b'A' + (i / 26 % 26) as u8,
            b'A' + (i % 26) as u8,
        ]);
        i += 1;
    }
    out
};

#[derive(Clone, Copy)]
pub(super) struct Code(pub(super) [u8; 3]);

impl Code {
    pub(super) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("capital letters")
    }
}

impl std::fmt::Debug for Money3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Money3")
            .field("at", &self.at())
            .field("amount", &self.amount())
            .field("currency", &self.currency())
            .finish()
    }
}

/// Written as its three words (postcard: three varints), and checked when read back: a
/// scale over 28, a currency past "ZZZ" or a time chrono cannot hold is refused.
impl Serialize for Money3 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Money3 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Money3, D::Error> {
        let words = <[u64; 3]>::deserialize(d)?;
        Money3::from_words(words)
            .ok_or_else(|| serde::de::Error::custom("not a packed amount, currency and time"))
    }
}

impl Money3 {
    pub(super) fn from_words(w: [u64; 3]) -> Option<Money3> {
        let scale = (w[1] >> 32) & 0x1f;
        let code = (w[1] >> 38) & 0x7fff;
        if scale > 28 || code >= 26 * 26 * 26 {
            return None;
        }
        let (seconds, nanos) = Money3::biased_seconds_and_nanos(&w);
        DateTime::from_timestamp(seconds as i64 - SECONDS_BIAS, nanos)?;
        Some(Money3(w))
    }
}
