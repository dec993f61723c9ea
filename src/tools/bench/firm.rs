//! A log that looks like a real firm's traffic, not only the events that are cheap:
//! 54% purchases (a tenth of them credited to an agent), 1% agent programme events (agents
//! joining under their upline, commissions), 12% registrations, 10% posts (a fifth of them replies, some of them
//! "me too" echoes of recent complaints), 10% community joins, 8% referrals, 5%
//! complaints about 500 SKUs with a handful of recurring phrasings in Chinese and English;
//! 200 communities of about 500 members; and one crisis: in the last tenth of the log, a
//! burst of complaints about one batch within hours. Business time runs forward over
//! 2025 (about a day per 3,000 events at a million).

use std::fmt::Write as _;

use rand::{rngs::StdRng, Rng, SeedableRng};

/// Communities of the firm (members are customers `c % COMMUNITIES` and one more each).
const COMMUNITIES: u32 = 200;
const SKUS: u32 = 500;
/// One customer in this many is an agent.
const AGENT_EVERY: u32 = 100;
/// Complaints of the crisis, as a share of all events.
const BURST_SHARE: f64 = 0.005;

const PHRASES: &[&str] = &[
    "这批茶叶有一股霉味",
    "茶叶有霉味，不敢喝",
    "包装破损，茶叶洒了",
    "快递太慢了，等了一周",
    "the tea smells of mould",
    "my tea has a mouldy smell",
    "the parcel arrived damaged",
    "delivery was two days late",
];

/// `events` NDJSON lines, deterministic for `seed`, over `customers` customers.
pub fn firm_ndjson(events: usize, customers: u32, seed: u64) -> String {
    let mut rng = StdRng::seed_from_u64(seed);
    let customers = customers.max(2);
    let start = chrono::DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z")
        .expect("a valid time")
        .with_timezone(&chrono::Utc);
    let span = chrono::Duration::days(364);
    let burst_from = events - (events / 10);
    let burst_len = ((events as f64) * BURST_SHARE) as usize;
    let mut recent_complaints: Vec<(u32, u64)> = Vec::new();
    let mut out = String::with_capacity(events * 300);
    let mut complaint_no: u64 = 0;
    for i in 0..events {
        let at = start + span * (i as i32) / (events.max(1) as i32);
        let at = rapport_events::envelope::format_time(&at);
        let c = rng.gen_range(0..customers);
        let id =
            uuid::Uuid::from_u128(rng.gen::<u128>() & !(0xF000u128 << 64) | (0x4000u128 << 64));
        // The crisis: complaints about one batch, from the members of a few communities.
        if (burst_from..burst_from + burst_len).contains(&i) {
            complaint_no += 1;
            let who =
                (rng.gen_range(0..customers / COMMUNITIES) * COMMUNITIES) + rng.gen_range(0..5);
            let text = PHRASES[rng.gen_range(0..2)];
            let _ = writeln!(
                out,
                r#"{{"id":"{id}","type":"complaint","customer":"c-{who}","occurred_at":"{at}","data":{{"complaint_id":"k-{complaint_no}","about":{{"sku":"SKU-7","batch":"L2025-9"}},"text":"{text}","severity":3}}}}"#
            );
            continue;
        }
        let r: f64 = rng.gen();
        // One customer in a hundred is an agent, under the agent of its thousand.
        let agent = c / AGENT_EVERY * AGENT_EVERY;
        let _ = if r < 0.54 {
            let sold_by = if agent != c && rng.gen_bool(0.1) {
                format!(r#","sold_by":"c-{agent}""#)
            } else {
                String::new()
            };
            writeln!(
                out,
                r#"{{"id":"{id}","type":"purchase","customer":"c-{c}","occurred_at":"{at}","data":{{"order_id":"o-{i}","amount":"{}.{:02}","currency":"CNY","items":[{{"sku":"SKU-{}","quantity":1,"unit_price":"12.50"}}]{sold_by}}}}}"#,
                rng.gen_range(1..1000),
                rng.gen_range(0..100),
                rng.gen_range(0..SKUS)
            )
        } else if r < 0.55 {
            let top = c / (AGENT_EVERY * 10) * (AGENT_EVERY * 10);
            if rng.gen_bool(0.3) {
                let upline = if top != agent {
                    format!(r#""upline":"c-{top}""#)
                } else {
                    String::new()
                };
                writeln!(
                    out,
                    r#"{{"id":"{id}","type":"agent_joined","customer":"c-{agent}","occurred_at":"{at}","data":{{{upline}}}}}"#
                )
            } else {
                let basis = ["retail", "retail", "team", "recruitment"][rng.gen_range(0..4)];
                writeln!(
                    out,
                    r#"{{"id":"{id}","type":"commission_paid","customer":"c-{agent}","occurred_at":"{at}","data":{{"amount":"{}.00","currency":"CNY","basis":"{basis}","order_id":"o-{}"}}}}"#,
                    rng.gen_range(1..50),
                    rng.gen_range(0..=i)
                )
            }
        } else if r < 0.67 {
            writeln!(
                out,
                r#"{{"id":"{id}","type":"customer_registered","customer":"c-{c}","occurred_at":"{at}","data":{{"name":"Customer {c}","email":"c{c}@example.com","region":"Zhejiang","channel":"wechat"}}}}"#
            )
        } else if r < 0.77 {
            let g = c % COMMUNITIES;
            let roll: f64 = rng.gen();
            let extra = match recent_complaints.last() {
                // A "me too" of a recent complaint, from a co-member.
                Some((_, k)) if roll < 0.2 => format!(r#","echoes":"k-{k}""#),
                _ if roll < 0.4 && i > 0 => format!(r#","reply_to":"p-{}""#, rng.gen_range(0..i)),
                _ => String::new(),
            };
            writeln!(
                out,
                r#"{{"id":"{id}","type":"post","customer":"c-{c}","occurred_at":"{at}","data":{{"post_id":"p-{i}","community":"g-{g}","text":"anyone tried the new oolong? 新到的乌龙茶怎么样"{extra}}}}}"#
            )
        } else if r < 0.87 {
            let g = if rng.gen_bool(0.5) {
                c % COMMUNITIES
            } else {
                rng.gen_range(0..COMMUNITIES)
            };
            writeln!(
                out,
                r#"{{"id":"{id}","type":"community_joined","customer":"c-{c}","occurred_at":"{at}","data":{{"community":"g-{g}"}}}}"#
            )
        } else if r < 0.95 {
            writeln!(
                out,
                r#"{{"id":"{id}","type":"referral","customer":"c-{c}","occurred_at":"{at}","data":{{"referee":"c-{}"}}}}"#,
                rng.gen_range(0..customers)
            )
        } else {
            complaint_no += 1;
            recent_complaints.push((c, complaint_no));
            if recent_complaints.len() > 64 {
                recent_complaints.remove(0);
            }
            // Popular SKUs far more often (the square of a uniform number).
            let sku = ((rng.gen::<f64>().powi(2)) * f64::from(SKUS)) as u32;
            writeln!(
                out,
                r#"{{"id":"{id}","type":"complaint","customer":"c-{c}","occurred_at":"{at}","data":{{"complaint_id":"k-{complaint_no}","about":{{"sku":"SKU-{sku}"}},"text":"{}","severity":{}}}}}"#,
                PHRASES[rng.gen_range(0..PHRASES.len())],
                rng.gen_range(1..4)
            )
        };
    }
    out
}
