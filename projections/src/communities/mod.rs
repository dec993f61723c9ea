//! Communities (groups, 社群): who is in each, when they joined and left, who posts and
//! is answered, and how many complaints its members file, month by month. What a page
//! shows of a community (`view.rs`) adds what the customers projection knows of its
//! members: revenue, lifecycle, influence.
//!
//! Members are kept by customer number; months by `year × 12 + month`. A post counts in
//! its community; a reply credits the author it answers and an echo the complainant, in
//! the community where they were posted. A complaint counts in every community its
//! author is in when it is filed.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Utc};
use rapport_events::{Facts, FoldEvent};
use serde::{Deserialize, Serialize};

use crate::Customers;

mod view;

pub use view::{CommunityDetail, CommunitySummary, Context, Leader};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub joined_at: Option<DateTime<Utc>>,
    pub posts: u32,
    pub replies_received: u32,
    pub echoes_received: u32,
    pub last_post_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Month {
    pub joined: u32,
    pub left: u32,
    pub posts: u32,
    pub complaints: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Community {
    /// Members now, by customer number.
    pub members: BTreeMap<u32, Member>,
    pub months: BTreeMap<i32, Month>,
    pub joined_total: u32,
    pub left_total: u32,
    pub posts_total: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Communities {
    clock: Option<DateTime<Utc>>,
    communities: BTreeMap<String, Community>,
}

/// The community named `name`, made when first seen (without copying the name when it
/// is known: most events are about communities that exist).
fn community<'a>(all: &'a mut BTreeMap<String, Community>, name: &str) -> &'a mut Community {
    if !all.contains_key(name) {
        all.insert(name.to_owned(), Community::default());
    }
    all.get_mut(name).expect("inserted above")
}

pub(crate) fn month_of(t: DateTime<Utc>) -> i32 {
    t.year() * 12 + t.month0() as i32
}

impl Communities {
    pub fn clock(&self) -> Option<DateTime<Utc>> {
        self.clock
    }

    pub fn get(&self, name: &str) -> Option<&Community> {
        self.communities.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Community)> {
        self.communities.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn len(&self) -> usize {
        self.communities.len()
    }

    pub fn is_empty(&self) -> bool {
        self.communities.is_empty()
    }

    /// Folds one event, after the customers projection has.
    pub fn apply(&mut self, ev: &FoldEvent, customers: &Customers) {
        if ev.event_type.records_business_time() && self.clock.is_none_or(|c| ev.occurred_at > c) {
            self.clock = Some(ev.occurred_at);
        }
        let at = ev.occurred_at;
        let month = month_of(at);
        match &ev.data {
            Facts::CommunityJoined(d) => {
                let (Some(name), Some(n)) =
                    (d.community.as_deref(), customers.number(&ev.customer))
                else {
                    return;
                };
                let c = community(&mut self.communities, name);
                if c.members.contains_key(&n) {
                    return;
                }
                c.members.insert(
                    n,
                    Member {
                        joined_at: Some(at),
                        ..Member::default()
                    },
                );
                c.joined_total += 1;
                c.months.entry(month).or_default().joined += 1;
            }
            Facts::CommunityLeft(d) => {
                let (Some(name), Some(n)) =
                    (d.community.as_deref(), customers.number(&ev.customer))
                else {
                    return;
                };
                let Some(c) = self.communities.get_mut(name) else {
                    return;
                };
                if c.members.remove(&n).is_some() {
                    c.left_total += 1;
                    c.months.entry(month).or_default().left += 1;
                }
            }
            Facts::Post(d) => {
                let Some(name) = d.community.as_deref() else {
                    return;
                };
                let author = customers.number(&ev.customer);
                let replied = d
                    .reply_to
                    .as_deref()
                    .and_then(|r| customers.post_author(r))
                    .and_then(|a| customers.number(a))
                    .filter(|a| Some(*a) != author);
                let echoed = d
                    .echoes
                    .as_deref()
                    .and_then(|k| customers.complaint_author(k))
                    .and_then(|p| customers.number(&p.id))
                    .filter(|a| Some(*a) != author);
                let c = community(&mut self.communities, name);
                c.posts_total += 1;
                c.months.entry(month).or_default().posts += 1;
                if let Some(m) = author.and_then(|a| c.members.get_mut(&a)) {
                    m.posts += 1;
                    m.last_post_at = Some(m.last_post_at.map_or(at, |l| l.max(at)));
                }
                if let Some(m) = replied.and_then(|a| c.members.get_mut(&a)) {
                    m.replies_received += 1;
                }
                if let Some(m) = echoed.and_then(|a| c.members.get_mut(&a)) {
                    m.echoes_received += 1;
                }
            }
            Facts::Complaint(_) => {
                let Some(p) = customers.get(&ev.customer) else {
                    return;
                };
                for name in customers.names_of(&p.communities) {
                    if let Some(c) = self.communities.get_mut(name) {
                        c.months.entry(month).or_default().complaints += 1;
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
