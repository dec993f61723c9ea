//! `rapport eval-identity`: how well identity resolution finds the people behind ids, on
//! seeded firms whose truth is known.
//!
//! Each person meets the firm on one to three channels (the till, a WeChat mini-program,
//! the web shop), each an id of its own that shows some of the person's identifiers: a
//! member number, phone numbers, an e-mail, WeChat openid and unionid. The traps are the
//! real ones: households sharing a home phone (each member with their own card), shop
//! tablets on which many walk-in customers sign up (the firm has blocked them), and tills
//! that type `0000` when the member number is unknown.
//!
//! Scored pairwise over ids, as entity-resolution work is: precision is the share of pairs
//! put in one person that are one person; recall is the share of pairs of one person that
//! were put together, counted over pairs the identifiers can link at all (two ids of a
//! person that share no identifier are one person only to an oracle), and over all pairs.
//! The events are folded by the real projection in process (no store, no keys: a blind
//! index here is the kind and value in clear, which the fold cannot tell apart).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};
use rapport_events::{data::is_placeholder, EventType, Facts, FoldEvent};
use rapport_projections::{Customers, Projection};
use serde::Serialize;
use serde_json::json;

/// Shop tablets walk-in customers sign up on (blocked by the firm's rules).
const TABLETS: usize = 20;

/// How often a household shares one phone number, and how often its members give it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Households {
    /// One person in ten lives in a household that shares a phone, and gives it instead of
    /// their own one time in ten.
    Typical,
    /// One in seven, and three times in ten: the trap at its worst.
    Adversarial,
}

impl Households {
    fn rates(self) -> (f64, u32) {
        match self {
            Households::Typical => (0.10, 1),
            Households::Adversarial => (0.15, 3),
        }
    }
}

/// The figures of one seeded firm.
#[derive(Debug, Clone, Serialize)]
pub struct IdentityScore {
    pub seed: u64,
    pub households: Households,
    pub people: usize,
    pub ids: usize,
    pub identifier_events: usize,
    /// Pairs of ids of one person.
    pub true_pairs: u64,
    /// Of those, pairs the identifiers can link (they share one through the person's ids).
    pub linkable_pairs: u64,
    /// Pairs put in one person.
    pub predicted_pairs: u64,
    /// Pairs put in one person that are one person.
    pub correct_pairs: u64,
    pub precision: f64,
    /// Over linkable pairs.
    pub recall: f64,
    /// Over all pairs of one person.
    pub recall_all: f64,
    /// Folding the firm's identifier events, events per second.
    pub events_per_second: f64,
}

struct Firm {
    events: Vec<FoldEvent>,
    /// id → person.
    truth: BTreeMap<String, usize>,
    /// id → the identifiers it shows (kind, value), links only.
    shows: BTreeMap<String, Vec<(&'static str, String)>>,
    blocked: BTreeSet<String>,
}

fn index(kind: &str, value: &str) -> String {
    format!("{kind}:{value}")
}

fn generate(seed: u64, people: usize, households: Households) -> Firm {
    let (share, gives_home) = households.rates();
    let mut rng = StdRng::seed_from_u64(seed);
    let t0 = DateTime::<Utc>::from_timestamp(1_767_225_600, 0).expect("a valid time");
    // Households: a home phone shared by two to four people.
    let mut home: Vec<Option<usize>> = vec![None; people];
    let mut p = 0;
    let mut household = 0;
    while p < people {
        if rng.gen_bool(share) {
            let size = rng.gen_range(2..=4).min(people - p);
            for h in home.iter_mut().skip(p).take(size) {
                *h = Some(household);
            }
            household += 1;
            p += size;
        } else {
            p += 1;
        }
    }
    let mut shows: BTreeMap<String, Vec<(&'static str, String)>> = BTreeMap::new();
    let mut truth = BTreeMap::new();
    for (person, home) in home.iter().enumerate() {
        let phone = rng.gen_bool(0.9).then(|| format!("+86139{person:08}"));
        let phone2 = rng.gen_bool(0.1).then(|| format!("+86188{person:08}"));
        let home_phone = home.map(|h| format!("+8621{h:08}"));
        let email = rng.gen_bool(0.7).then(|| format!("p{person}@mail.example"));
        let member = rng.gen_bool(0.6).then(|| format!("M{person:07}"));
        let unionid = rng.gen_bool(0.5).then(|| format!("u-{person}"));
        let some_phone = |rng: &mut StdRng| -> Option<String> {
            match rng.gen_range(0..10) {
                d if d < gives_home => home_phone.clone().or(phone.clone()),
                9 => phone2.clone().or(phone.clone()),
                _ => phone.clone(),
            }
        };
        let channels = [rng.gen_bool(0.7), rng.gen_bool(0.5), rng.gen_bool(0.5)];
        let channels = if channels.iter().any(|c| *c) {
            channels
        } else {
            [true, false, false]
        };
        for (ch, on) in channels.into_iter().enumerate() {
            if !on {
                continue;
            }
            let id = format!("{}-{person}", ["till", "wx", "web"][ch]);
            let mut ids: Vec<(&'static str, String)> = Vec::new();
            match ch {
                0 => {
                    match &member {
                        Some(m) => ids.push(("member", m.clone())),
                        None if rng.gen_bool(0.3) => ids.push(("member", "0000".into())),
                        None => {}
                    }
                    if rng.gen_bool(0.8) {
                        ids.extend(some_phone(&mut rng).map(|v| ("phone", v)));
                    }
                }
                1 => {
                    ids.push(("wechat_openid", format!("o-mini-{person}")));
                    ids.extend(unionid.clone().map(|u| ("wechat_unionid", u)));
                    // A member card bound in the mini-program; an e-mail for receipts.
                    if rng.gen_bool(0.5) {
                        ids.extend(member.clone().map(|m| ("member", m)));
                    }
                    if rng.gen_bool(0.2) {
                        ids.extend(email.clone().map(|e| ("email", e)));
                    }
                    if rng.gen_bool(0.3) {
                        ids.extend(some_phone(&mut rng).map(|v| ("phone", v)));
                    }
                }
                _ => {
                    match &email {
                        Some(e) => ids.push(("email", e.clone())),
                        None => ids.push(("external", format!("shop:{person}"))),
                    }
                    if rng.gen_bool(0.4) {
                        ids.extend(some_phone(&mut rng).map(|v| ("phone", v)));
                    }
                    if rng.gen_bool(0.05) {
                        let t = rng.gen_range(0..TABLETS);
                        ids.push(("external", format!("tablet:{t}")));
                    }
                }
            }
            truth.insert(id.clone(), person);
            shows.insert(id, ids);
        }
    }
    let blocked: BTreeSet<String> = (0..TABLETS)
        .map(|t| index("external", &format!("tablet:{t}")))
        .collect();
    let mut items: Vec<(&str, &'static str, &str)> = shows
        .iter()
        .flat_map(|(id, ids)| ids.iter().map(move |(k, v)| (id.as_str(), *k, v.as_str())))
        .collect();
    items.shuffle(&mut rng);
    let mut events = Vec::with_capacity(items.len() + 1);
    let mut push =
        |ty: EventType, customer: &str, subject: Option<&str>, data: serde_json::Value| {
            let position = events.len() as u64 + 1;
            events.push(FoldEvent {
                position,
                id: uuid::Uuid::from_u128(u128::from(position)),
                event_type: ty,
                customer: customer.to_owned(),
                subject: subject.map(str::to_owned),
                occurred_at: t0 + Duration::minutes(position as i64),
                data: Facts::from_value(ty, &data).expect("a payload of its type"),
            });
        };
    let blocked_json: Vec<_> = blocked
        .iter()
        .map(|i| json!({"kind": "external", "index": i}))
        .collect();
    push(
        EventType::IdentityRulesDefined,
        "",
        Some("identity"),
        json!({"blocked": blocked_json}),
    );
    for (id, kind, value) in items {
        // As the log records it: a placeholder gets no blind index.
        let data = if is_placeholder(value) {
            json!({"kind": kind})
        } else {
            json!({"kind": kind, "index": index(kind, value)})
        };
        push(EventType::IdentifierAdded, id, None, data);
    }
    Firm {
        events,
        truth,
        shows,
        blocked,
    }
}

fn pairs(n: u64) -> u64 {
    n * n.saturating_sub(1) / 2
}

/// Groups of ids of one person that the identifiers can link: ids of the person joined
/// when they show a common value that is neither blocked nor a placeholder.
fn linkable(firm: &Firm) -> BTreeMap<String, (usize, String)> {
    let mut by_person: BTreeMap<usize, Vec<&String>> = BTreeMap::new();
    for (id, p) in &firm.truth {
        by_person.entry(*p).or_default().push(id);
    }
    let mut out = BTreeMap::new();
    for (p, ids) in by_person {
        let mut group: BTreeMap<&String, &String> = ids.iter().map(|i| (*i, *i)).collect();
        fn find<'a>(g: &BTreeMap<&'a String, &'a String>, mut x: &'a String) -> &'a String {
            while g[x] != x {
                x = g[x];
            }
            x
        }
        for a in &ids {
            for b in &ids {
                let share = firm.shows[*a].iter().any(|(k, v)| {
                    !is_placeholder(v)
                        && !firm.blocked.contains(&index(k, v))
                        && firm.shows[*b].iter().any(|(k2, v2)| k == k2 && v == v2)
                });
                if a < b && share {
                    let (ra, rb) = (find(&group, a), find(&group, b));
                    if ra != rb {
                        group.insert(rb, ra);
                    }
                }
            }
        }
        for id in &ids {
            out.insert((*id).clone(), (p, find(&group, id).clone()));
        }
    }
    out
}

/// Generates one firm, folds it, and scores the people found.
pub fn evaluate(seed: u64, people: usize, households: Households) -> IdentityScore {
    let firm = generate(seed, people, households);
    let started = std::time::Instant::now();
    let mut c = Customers::default();
    for e in &firm.events {
        c.apply(e);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let linkable = linkable(&firm);
    let mut predicted: BTreeMap<&str, u64> = BTreeMap::new();
    let mut truth: BTreeMap<usize, u64> = BTreeMap::new();
    let mut links: BTreeMap<&(usize, String), u64> = BTreeMap::new();
    let mut both: BTreeMap<(&str, usize), u64> = BTreeMap::new();
    let mut both_linkable: BTreeMap<(&str, &(usize, String)), u64> = BTreeMap::new();
    for (id, p) in &firm.truth {
        let person = c.person_id(id);
        *predicted.entry(person).or_default() += 1;
        *truth.entry(*p).or_default() += 1;
        *links.entry(&linkable[id]).or_default() += 1;
        *both.entry((person, *p)).or_default() += 1;
        *both_linkable.entry((person, &linkable[id])).or_default() += 1;
    }
    let sum = |m: &mut dyn Iterator<Item = u64>| m.map(pairs).sum::<u64>();
    let true_pairs = sum(&mut truth.values().copied());
    let linkable_pairs = sum(&mut links.values().copied());
    let predicted_pairs = sum(&mut predicted.values().copied());
    let correct_pairs = sum(&mut both.values().copied());
    let correct_linkable = sum(&mut both_linkable.values().copied());
    let ratio = |a: u64, b: u64| if b == 0 { 1.0 } else { a as f64 / b as f64 };
    IdentityScore {
        seed,
        households,
        people,
        ids: firm.truth.len(),
        identifier_events: firm.events.len() - 1,
        true_pairs,
        linkable_pairs,
        predicted_pairs,
        correct_pairs,
        precision: ratio(correct_pairs, predicted_pairs),
        recall: ratio(correct_linkable, linkable_pairs),
        recall_all: ratio(correct_pairs, true_pairs),
        events_per_second: firm.events.len() as f64 / elapsed.max(1e-9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_firm_is_resolved_within_the_targets() {
        let s = evaluate(7, 2_000, Households::Typical);
        assert!(s.linkable_pairs > 0 && s.linkable_pairs <= s.true_pairs);
        assert!(s.precision >= 0.99, "{s:?}");
        assert!(s.recall >= 0.95, "{s:?}");
    }
}
