//! Consent and the marketing contacts it governs, kept as history in a profile's
//! [`Outreach`], so "could we contact her on 1 March?" is answered at any time, and a
//! contact is judged by the consent in force when it was made, whatever arrived later.

use rapport_events::data::{ConsentChannel, Purpose};

use super::*;

/// One consent change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsentChange {
    pub at: DateTime<Utc>,
    pub channel: ConsentChannel,
    pub purpose: Purpose,
    pub given: bool,
    pub source: Option<CompactString>,
}

/// A marketing contact (one with a campaign) on a channel consent governs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarketingContact {
    pub at: DateTime<Utc>,
    pub channel: ConsentChannel,
    pub campaign: CompactString,
}

/// Inserts `x` after everything at or before its time: history stays in time order
/// however late an event arrives, and equal times keep their arrival order.
pub(super) fn insert_by_time<T>(v: &mut Vec<T>, x: T, at: impl Fn(&T) -> DateTime<Utc>) {
    let t = at(&x);
    let i = v.partition_point(|y| at(y) <= t);
    v.insert(i, x);
}

impl Profile {
    /// Whether consent for `purpose` on `channel` was in force at `t` (the last change at
    /// or before `t`; none means no).
    pub fn consents(&self, channel: ConsentChannel, purpose: Purpose, t: DateTime<Utc>) -> bool {
        self.outreach.as_ref().is_some_and(|o| {
            o.consent
                .iter()
                .take_while(|c| c.at <= t)
                .filter(|c| c.channel == channel && c.purpose == purpose)
                .last()
                .is_some_and(|c| c.given)
        })
    }

    /// The channels the customer may be contacted on for marketing at `t`.
    pub fn marketing_channels(&self, t: DateTime<Utc>) -> Vec<ConsentChannel> {
        ConsentChannel::ALL
            .into_iter()
            .filter(|c| self.consents(*c, Purpose::Marketing, t))
            .collect()
    }

    /// Consent changes up to `t`, in time order.
    pub fn consent_history(&self, t: DateTime<Utc>) -> &[ConsentChange] {
        self.outreach.as_ref().map_or(&[], |o| {
            let n = o.consent.partition_point(|c| c.at <= t);
            &o.consent[..n]
        })
    }

    /// Marketing contacts up to `t` made on a channel without marketing consent then.
    pub fn contacts_without_consent(
        &self,
        t: DateTime<Utc>,
    ) -> impl Iterator<Item = &MarketingContact> {
        self.outreach
            .iter()
            .flat_map(|o| o.marketing.iter())
            .take_while(move |m| m.at <= t)
            .filter(|m| !self.consents(m.channel, Purpose::Marketing, m.at))
    }
}
