//! Consent as specifications: its history answers for any time, a marketing contact is
//! judged by the consent in force when it was made, and a person's consent is its ids'.

use chrono::{DateTime, Duration, Utc};
use rapport_events::{data::ConsentChannel, EventType, Facts, FoldEvent};
use rapport_projections::{reactivation, Projection, ReadState};
use serde_json::{json, Value};

fn day(d: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap() + Duration::days(d)
}

fn fold(events: &[(EventType, &str, i64, Value)]) -> ReadState {
    let mut st = ReadState::new(Default::default(), Default::default());
    for (i, (ty, who, d, data)) in events.iter().enumerate() {
        st.apply(&FoldEvent {
            position: i as u64 + 1,
            id: uuid::Uuid::from_u128(i as u128 + 1),
            event_type: *ty,
            customer: who.to_string(),
            subject: None,
            occurred_at: day(*d),
            data: Facts::from_value(*ty, data).unwrap(),
        });
    }
    st
}

fn given(channel: &str) -> Value {
    json!({"channel": channel, "purpose": "marketing", "source": "checkout_form"})
}

#[test]
fn consent_is_answered_for_any_time_from_its_history() {
    use EventType::*;
    let st = fold(&[
        (ConsentGiven, "ann", 10, given("sms")),
        (ConsentGiven, "ann", 10, given("email")),
        (ConsentWithdrawn, "ann", 40, given("sms")),
    ]);
    let p = st.customers.get("ann").unwrap();
    assert!(
        p.marketing_channels(day(5)).is_empty(),
        "before she said anything"
    );
    assert_eq!(
        p.marketing_channels(day(20)),
        [ConsentChannel::Sms, ConsentChannel::Email]
    );
    assert_eq!(p.marketing_channels(day(41)), [ConsentChannel::Email]);
    assert_eq!(p.consent_history(day(41)).len(), 3);
}

#[test]
fn a_late_withdrawal_counts_from_when_it_happened() {
    use EventType::*;
    // The withdrawal on day 30 is recorded after the day-50 campaign contact.
    let st = fold(&[
        (ConsentGiven, "bo", 10, given("sms")),
        (
            Contacted,
            "bo",
            50,
            json!({"channel": "sms", "campaign": "spring"}),
        ),
        (ConsentWithdrawn, "bo", 30, given("sms")),
        (
            Contacted,
            "bo",
            20,
            json!({"channel": "SMS", "campaign": "winter"}),
        ),
        (
            Contacted,
            "bo",
            55,
            json!({"channel": "letter", "campaign": "spring"}),
        ),
        (Contacted, "bo", 56, json!({"channel": "sms"})),
    ]);
    let p = st.customers.get("bo").unwrap();
    let without: Vec<&str> = p
        .contacts_without_consent(day(60))
        .map(|m| m.campaign.as_str())
        .collect();
    assert_eq!(
        without,
        ["spring"],
        "winter was sent with consent; letters and service messages are not governed"
    );
    let campaigns = reactivation::campaigns(&st.customers, &Default::default(), day(60));
    let spring = campaigns.iter().find(|c| c.campaign == "spring").unwrap();
    assert_eq!(spring.contacted_without_consent, 1);
    let winter = campaigns.iter().find(|c| c.campaign == "winter").unwrap();
    assert_eq!(winter.contacted_without_consent, 0);
}

#[test]
fn a_persons_consent_is_the_latest_of_its_ids() {
    use EventType::*;
    let st = fold(&[
        (ConsentGiven, "till-1", 10, given("sms")),
        (ConsentWithdrawn, "wx-1", 20, given("sms")),
        (ConsentGiven, "wx-1", 21, given("wechat")),
        (
            CustomersMerged,
            "till-1",
            22,
            json!({"merged": "wx-1", "reason": "same card"}),
        ),
    ]);
    let p = st.customers.person("wx-1").unwrap();
    assert_eq!(p.marketing_channels(day(30)), [ConsentChannel::Wechat]);
    assert_eq!(
        st.customers
            .get("till-1")
            .unwrap()
            .marketing_channels(day(30)),
        [ConsentChannel::Sms],
        "the id alone still says what it was told"
    );
}
