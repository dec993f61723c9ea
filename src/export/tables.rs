//! The projections as tables: profiles, segment members, alerts.

use super::*;

/// The columns and rows of a projection table from `state`.
pub fn projection_table(
    what: What,
    state: &ReadState,
    lifecycle: &rapport_projections::LifecycleConfig,
) -> (Vec<(&'static str, Col)>, Vec<Vec<Cell>>) {
    let now = state
        .segments
        .clock()
        .unwrap_or(chrono::DateTime::<chrono::Utc>::UNIX_EPOCH);
    let t = |t: Option<chrono::DateTime<chrono::Utc>>| {
        Cell::opt(t.map(|t| rapport_events::envelope::format_time(&t)))
    };
    match what {
        What::Events => (EVENT_COLUMNS.to_vec(), vec![]),
        What::Profiles => {
            let c = &state.customers;
            let columns = vec![
                ("customer", Col::Str),
                ("lifecycle", Col::Str),
                ("relationship", Col::Str),
                ("first_seen", Col::Str),
                ("last_seen", Col::Str),
                ("last_purchase", Col::Str),
                ("orders", Col::U64),
                ("revenue", Col::Str),
                ("region", Col::Str),
                ("communities", Col::Str),
                ("referrals", Col::U64),
                ("referred_by", Col::Str),
                ("complaints_open", Col::U64),
                ("complaints_resolved", Col::U64),
                ("posts", Col::U64),
                ("influence", Col::U64),
                ("erased", Col::Str),
            ];
            let rows = c
                .people_sorted()
                .into_iter()
                .map(|p| {
                    let communities = c.names_of(&p.communities);
                    vec![
                        Cell::Str(p.id.to_string()),
                        Cell::Str(lifecycle.state(p, now).as_str().into()),
                        Cell::Str(
                            json!(lifecycle.relationship(p, now))
                                .as_str()
                                .unwrap_or_default()
                                .into(),
                        ),
                        t(p.first_seen),
                        t(p.last_seen),
                        t(p.last_purchase_until(now)),
                        Cell::U64(p.orders_until(now) as u64),
                        Cell::Str(json!(p.net_revenue(now)).to_string()),
                        Cell::opt(c.region(p)),
                        Cell::Str(communities.join(";")),
                        Cell::U64(p.referees.len() as u64),
                        Cell::opt(c.referred_by(p)),
                        Cell::U64(p.complaints_open.len() as u64),
                        Cell::U64(p.complaints_resolved as u64),
                        Cell::U64(p.posts as u64),
                        Cell::U64(c.influence(p, now)),
                        Cell::Str(p.erased.to_string()),
                    ]
                })
                .collect();
            (columns, rows)
        }
        What::Segments => {
            let columns = vec![
                ("segment", Col::Str),
                ("name", Col::Str),
                ("customer", Col::Str),
            ];
            let mut rows = Vec::new();
            for d in state.segments.defs() {
                for m in state.segments.members(&d.id).into_iter().flatten() {
                    rows.push(vec![
                        Cell::Str(d.id.clone()),
                        Cell::Str(d.name.clone()),
                        Cell::Str(m.clone()),
                    ]);
                }
            }
            (columns, rows)
        }
        What::Alerts => {
            let columns = vec![
                ("id", Col::Str),
                ("kind", Col::Str),
                ("level", Col::Str),
                ("status", Col::Str),
                ("keys", Col::Str),
                ("complaints", Col::U64),
                ("customers", Col::U64),
                ("echoes", Col::U64),
                ("first_complaint_at", Col::Str),
                ("raised_at", Col::Str),
                ("raised_at_position", Col::U64),
                ("updated_at_position", Col::U64),
                ("evidence", Col::Str),
            ];
            let name = |v: Value| v.as_str().unwrap_or_default().to_owned();
            let rows = state
                .warnings
                .alerts()
                .map(|a| {
                    let keys: Vec<&str> = a.keys.iter().map(String::as_str).collect();
                    vec![
                        Cell::Str(a.id.clone()),
                        Cell::Str(name(json!(a.kind))),
                        Cell::Str(name(json!(a.level))),
                        Cell::Str(name(json!(a.status))),
                        Cell::Str(keys.join(";")),
                        Cell::U64(a.complaints.len() as u64),
                        Cell::U64(a.customers.len() as u64),
                        Cell::U64(a.echoes.len() as u64),
                        t(Some(a.first_complaint_at)),
                        t(Some(a.raised_at)),
                        Cell::U64(a.raised_at_position),
                        Cell::U64(a.updated_at_position),
                        Cell::Str(json!(a.evidence).to_string()),
                    ]
                })
                .collect();
            (columns, rows)
        }
    }
}
