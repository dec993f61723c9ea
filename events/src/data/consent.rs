//! Consent to be contacted: given or withdrawn, per channel and purpose, with where it was
//! recorded. PIPL and the GDPR ask consent for marketing to be specific and withdrawable,
//! so every change is an event and its history is kept, not only the current state.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::rules::short;
use crate::error::Errors;

/// A way of reaching a customer that consent governs.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ConsentChannel {
    Sms,
    Email,
    /// WeChat and WeCom messages.
    Wechat,
    PhoneCall,
}

impl ConsentChannel {
    pub const ALL: [ConsentChannel; 4] = [
        ConsentChannel::Sms,
        ConsentChannel::Email,
        ConsentChannel::Wechat,
        ConsentChannel::PhoneCall,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConsentChannel::Sms => "sms",
            ConsentChannel::Email => "email",
            ConsentChannel::Wechat => "wechat",
            ConsentChannel::PhoneCall => "phone_call",
        }
    }

    /// The channel a `contacted` event's free-text `channel` names, when consent governs
    /// it (`sms`, `email`/`e-mail`, `wechat`/`wecom`, `phone`/`call`/`phone_call`; any
    /// case). Other channels (a letter, a visit) are not governed by these consents.
    pub fn of_contact(channel: &str) -> Option<ConsentChannel> {
        match channel.trim().to_ascii_lowercase().as_str() {
            "sms" | "text" => Some(ConsentChannel::Sms),
            "email" | "e-mail" | "mail" => Some(ConsentChannel::Email),
            "wechat" | "wecom" | "weixin" => Some(ConsentChannel::Wechat),
            "phone" | "call" | "phone_call" | "telephone" => Some(ConsentChannel::PhoneCall),
            _ => None,
        }
    }
}

/// What contact the consent is for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Offers, campaigns, reactivation.
    Marketing,
    /// About the customer's own orders and complaints.
    Service,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Marketing => "marketing",
            Purpose::Service => "service",
        }
    }
}

/// The customer gave or withdrew consent (`consent_given`, `consent_withdrawn`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Consent {
    pub channel: ConsentChannel,
    pub purpose: Purpose,
    /// Where it was recorded: `checkout_form`, `wechat_menu`, `till`, `unsubscribe_link` …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

pub(super) fn check(e: &mut Errors, d: &Consent) {
    if let Some(s) = &d.source {
        short(e, "/source", s, false);
    }
}

#[cfg(test)]
mod tests {
    use super::ConsentChannel::*;

    #[test]
    fn contact_channels_are_read_as_the_consent_channels_they_are() {
        let of = super::ConsentChannel::of_contact;
        assert_eq!(of("SMS"), Some(Sms));
        assert_eq!(of("WeCom"), Some(Wechat));
        assert_eq!(of("e-mail"), Some(Email));
        assert_eq!(of("phone"), Some(PhoneCall));
        assert_eq!(of("letter"), None);
    }
}
