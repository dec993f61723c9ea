//! Who is connected to whom on a key: ties (community, referral, reply, mention, echo)
//! and union-find.

use super::*;

/// P(X ≥ k) for X ~ Poisson(λ), summed from k upwards (accurate when it is small).
pub(super) fn poisson_tail(k: usize, lambda: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if lambda <= 0.0 {
        return 0.0;
    }
    // ln(e^-λ λ^k / k!), then each next term by × λ / (i + 1).
    let mut ln_term = -lambda + k as f64 * lambda.ln() - ln_factorial(k);
    let mut sum = 0.0;
    for i in k..k + 200 {
        let term = ln_term.exp();
        sum += term;
        if term < sum * 1e-12 {
            break;
        }
        ln_term += lambda.ln() - ((i + 1) as f64).ln();
    }
    sum.min(1.0)
}

/// ln k!, summed ln 1 + ln 2 + … in that order (the table holds the same partial sums),
/// so a result never depends on whether it was looked up. The detector asks for k up to
/// a key's customers, once per community on the key per complaint.
fn ln_factorial(k: usize) -> f64 {
    const CACHED: usize = KEY_ENTRIES_MAX + 1;
    static TABLE: std::sync::OnceLock<Vec<f64>> = std::sync::OnceLock::new();
    let sum_from = |from: usize, mut acc: f64| {
        for i in from..=k {
            acc += (i as f64).ln();
        }
        acc
    };
    let table = TABLE.get_or_init(|| {
        let mut v = vec![0.0; CACHED + 1];
        for i in 1..=CACHED {
            v[i] = v[i - 1] + (i as f64).ln();
        }
        v
    });
    match table.get(k) {
        Some(v) => *v,
        None => sum_from(CACHED + 1, table[CACHED]),
    }
}

/// Union-find over indices.
pub(super) struct Dsu(pub(super) Vec<usize>);

impl Dsu {
    pub(super) fn find(&mut self, x: usize) -> usize {
        let mut r = x;
        while self.0[r] != r {
            r = self.0[r];
        }
        let mut x = x;
        while self.0[x] != r {
            let next = self.0[x];
            self.0[x] = r;
            x = next;
        }
        r
    }
    pub(super) fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            // Fixed tie-break: the smaller index is the root.
            let (lo, hi) = (ra.min(rb), ra.max(rb));
            self.0[hi] = lo;
        }
    }
}

impl Warnings {
    /// Whether `observed` of the `on_key` customers of a key in one community of `size`
    /// members (of `customers` in all) is more than chance: the Poisson probability of at
    /// least that many, with `on_key × size / customers` expected, times the `tests` (the
    /// communities looked at on the key, so the most crowded of many is not chance
    /// mistaken for a group), is at most `tie_alpha`. A community of at most
    /// `tie_community_free` members always ties: its members know each other.
    pub(super) fn enriched(
        &self,
        observed: usize,
        on_key: usize,
        size: u32,
        customers: f64,
        tests: usize,
    ) -> bool {
        if size <= self.config.tie_community_free {
            return true;
        }
        let expected = on_key as f64 * f64::from(size) / customers;
        poisson_tail(observed, expected) * tests.max(1) as f64 <= self.config.tie_alpha
    }

    /// Records that `a` replied to, mentioned or echoed `b`: stored both ways, the label
    /// read from the key's side ("~" marks the reverse direction).
    pub(super) fn tie(&mut self, a: &str, b: &str, kind: &str, at: DateTime<Utc>) {
        if a != b {
            self.ties
                .entry(a.to_owned())
                .or_default()
                .insert(b.to_owned(), (kind.to_owned(), at));
            self.ties
                .entry(b.to_owned())
                .or_default()
                .insert(a.to_owned(), (format!("~{kind}"), at));
        }
    }

    /// Whether a tie last seen `at` is inside the tie window (as of the last sweep).
    pub(super) fn tie_is_live(&self, at: DateTime<Utc>) -> bool {
        self.tie_cutoff.is_none_or(|cutoff| at > cutoff)
    }

    /// Who of `people` (`index` says where each is, `numbers` their customer numbers) is
    /// connected to whom, as union-find over their ties: shared community, referral, or a
    /// reply / mention / echo tie. Each tie is one union, and a community's members on the
    /// key one chain of them, so a key costs about one lookup per customer, never one per
    /// pair.
    pub(super) fn connect(
        &self,
        people: &[&str],
        numbers: &[Option<u32>],
        index: &FastMap<&str, usize>,
        customers: &Customers,
    ) -> Dsu {
        let by_number: FastMap<u32, usize> = numbers
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.map(|n| (n, i)))
            .collect();
        let mut by_community: FastMap<u32, Vec<usize>> = FastMap::default();
        let mut dsu = Dsu((0..people.len()).collect());
        for (i, n) in numbers.iter().enumerate() {
            let Some(p) = n.and_then(|n| customers.person_by_number(n)) else {
                continue;
            };
            for g in p.communities.numbers() {
                by_community.entry(g).or_default().push(i);
            }
            if let Some(&j) = p.referred_by.and_then(|r| by_number.get(&r)) {
                dsu.union(i, j);
            }
        }
        // A shared community ties its members on the key when it is small, or when more
        // of them are on it than chance would put there: among k complainants of a popular
        // product some are bound to share a community of hundreds, and that is no group
        // complaint.
        let base = customers.len().max(1) as f64;
        let tests = by_community.len();
        for (g, members) in &by_community {
            let size = customers.community_size_by_number(*g);
            if members.len() > 1 && self.enriched(members.len(), people.len(), size, base, tests) {
                for pair in members.windows(2) {
                    dsu.union(pair[0], pair[1]);
                }
            }
        }
        for (i, a) in people.iter().enumerate() {
            let Some(m) = self.ties.get(*a) else { continue };
            // Walk the smaller side: the key's people or this customer's ties.
            if m.len() < people.len() {
                for (b, (_, at)) in m {
                    if let Some(&j) = index.get(b.as_str()).filter(|_| self.tie_is_live(*at)) {
                        dsu.union(i, j);
                    }
                }
            } else {
                for (j, b) in people.iter().enumerate() {
                    if m.get(*b).is_some_and(|(_, at)| self.tie_is_live(*at)) {
                        dsu.union(i, j);
                    }
                }
            }
        }
        dsu
    }
}

/// Hash maps for the detector's per-complaint work, seeded alike on every run (their
/// order is never what a result depends on).
pub(super) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::FixedState>;

/// A tie between two customers as an alert's graph draws it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GraphEdge {
    pub a: String,
    pub b: String,
    /// `referral`, `replied to`, `mentioned`, `echoed`, or `community <name>`.
    pub tie: String,
}

impl Warnings {
    /// The ties among `people` (each pair once, `a` before `b` in id order): referrals,
    /// reply, mention and echo ties the detector holds (within `tie_window_days`), and
    /// the first community each pair shares.
    pub fn ties_among(&self, people: &[String], customers: &Customers) -> Vec<GraphEdge> {
        let mut sorted: Vec<&str> = people.iter().map(String::as_str).collect();
        sorted.sort_unstable();
        sorted.dedup();
        let communities: Vec<BTreeSet<&str>> = sorted
            .iter()
            .map(|c| {
                customers
                    .person(c)
                    .map(|p| customers.names_of(&p.communities).into_iter().collect())
                    .unwrap_or_default()
            })
            .collect();
        let mut out = vec![];
        for (i, a) in sorted.iter().enumerate() {
            for (j, b) in sorted.iter().enumerate().skip(i + 1) {
                let referral = |x: &str, y: &str| {
                    customers
                        .person(x)
                        .and_then(|p| customers.referred_by(p))
                        .is_some_and(|r| r == y)
                };
                let tie = if referral(a, b) || referral(b, a) {
                    Some("referral".to_owned())
                } else if let Some((label, _)) = self
                    .ties
                    .get(*a)
                    .and_then(|m| m.get(*b))
                    .filter(|(_, at)| self.tie_is_live(*at))
                {
                    Some(label.trim_start_matches('~').to_owned())
                } else {
                    communities[i]
                        .intersection(&communities[j])
                        .next()
                        .map(|g| format!("community {g}"))
                };
                if let Some(tie) = tie {
                    out.push(GraphEdge {
                        a: a.to_string(),
                        b: b.to_string(),
                        tie,
                    });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ln_factorial_from_the_table_is_the_sum_bit_for_bit() {
        // From 1: `poisson_tail` never asks for 0 (whose empty sum is -0.0).
        for k in 1..1_000 {
            let summed = (1..=k).map(|i| (i as f64).ln()).sum::<f64>();
            assert_eq!(
                super::ln_factorial(k).to_bits(),
                summed.to_bits(),
                "k = {k}"
            );
        }
    }
}
