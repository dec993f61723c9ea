//! Communities as specifications.

use chrono::{DateTime, Duration, Utc};
use rapport_events::{EventType, Facts, FoldEvent};
use serde_json::{json, Value};
use uuid::Uuid;

use super::view::Context;
use crate::{LifecycleConfig, Projection, ReadState};

struct Log(Vec<FoldEvent>);

impl Log {
    fn push(&mut self, days: i64, ty: EventType, who: &str, data: Value) {
        let position = self.0.len() as u64 + 1;
        let at = DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap() + Duration::days(days);
        self.0.push(FoldEvent {
            position,
            id: Uuid::from_u128(position as u128),
            event_type: ty,
            customer: who.into(),
            subject: None,
            occurred_at: at,
            data: Facts::from_value(ty, &data).unwrap(),
        });
    }
    fn fold(&self) -> ReadState {
        let mut st = ReadState::new(LifecycleConfig::default(), Default::default());
        for e in &self.0 {
            st.apply(e);
        }
        st
    }
}

#[test]
fn a_community_shows_its_members_over_time_its_leaders_and_its_complaints() {
    let mut log = Log(vec![]);
    for (d, who) in [(0, "ann"), (1, "bo"), (2, "cy"), (40, "di")] {
        log.push(
            d,
            EventType::CommunityJoined,
            who,
            json!({"community": "tea-lovers"}),
        );
    }
    log.push(
        3,
        EventType::Purchase,
        "ann",
        json!({"order_id": "o1", "amount": "100.00", "currency": "CNY"}),
    );
    log.push(
        50,
        EventType::Post,
        "ann",
        json!({"post_id": "p1", "community": "tea-lovers", "text": "new harvest"}),
    );
    log.push(
        51,
        EventType::Post,
        "bo",
        json!({"post_id": "p2", "community": "tea-lovers", "text": "yes", "reply_to": "p1"}),
    );
    log.push(
        52,
        EventType::Complaint,
        "cy",
        json!({"complaint_id": "k1", "about": {"batch": "L1"}, "text": "stale"}),
    );
    log.push(
        53,
        EventType::Post,
        "di",
        json!({"post_id": "p3", "community": "tea-lovers", "text": "me too", "echoes": "k1"}),
    );
    log.push(
        54,
        EventType::CommunityLeft,
        "bo",
        json!({"community": "tea-lovers"}),
    );
    let st = log.fold();
    let c = st.communities.get("tea-lovers").unwrap();
    let cx = Context::new(
        &st.customers,
        &st.warnings,
        st.segments.config(),
        st.communities.clock().unwrap(),
        1,
    );
    let s = c.summary("tea-lovers", &cx);
    assert_eq!((s.members, s.joined_total, s.left_total), (3, 4, 1));
    assert_eq!((s.posts_in_window, s.complaints_in_window), (3, 1));
    assert_eq!(
        s.active_members, 2,
        "ann and di posted this month; cy only complained"
    );
    assert_eq!(
        s.member_revenue.get("CNY").map(String::as_str),
        Some("100.00")
    );
    let d = c.detail("tea-lovers", &cx);
    assert_eq!(d.leaders["posts"][0].customer, "ann");
    assert_eq!(d.leaders["echoes_received"][0].customer, "cy");
    assert!(d.leaders["replies_received"]
        .iter()
        .any(|l| l.customer == "ann"));
    let last = d.months.last().unwrap();
    assert_eq!(
        (last["members_at_end"].as_u64(), last["left"].as_u64()),
        (Some(3), Some(1))
    );
    let jan = &d.months[d.months.len() - 2];
    assert_eq!(jan["joined"], 3, "{:?}", d.months);
}
