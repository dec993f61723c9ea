//! Text clusters: MinHash signatures over character n-grams, LSH bands, and the phrases
//! a cluster's complaints share.

use super::*;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct TextCluster {
    pub(super) id: String,
    pub(super) signatures: Vec<Vec<u32>>,
    pub(super) last_at: DateTime<Utc>,
    /// The customers whose complaints joined it: whose `signatures_of` names it.
    pub(super) contributors: BTreeSet<String>,
}

/// FNV-1a, 64 bits: fixed, so signatures and ids are the same on every run.
pub(super) fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

pub(super) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
    z ^ (z >> 31)
}

/// MinHash signature of `text` over character n-grams; `None` for text too short.
pub fn signature(text: &str) -> Option<Vec<u32>> {
    let chars: Vec<char> = text
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(|c| c.to_lowercase())
        .take(SIGNATURE_CHARS_MAX)
        .collect();
    let ascii = chars.iter().filter(|c| c.is_ascii()).count();
    let n = if ascii * 2 >= chars.len() { 3 } else { 2 };
    if chars.len() < n + 1 {
        return None;
    }
    let mut sig = vec![u32::MAX; MINHASH_K];
    let mut buf = String::new();
    for w in chars.windows(n) {
        buf.clear();
        buf.extend(w);
        // The k hash functions are h1 + i·h2 (Kirsch–Mitzenmacher): two mixes per shingle.
        let base = fnv(buf.as_bytes());
        let (h1, h2) = (mix(base), mix(base ^ 0x5bd1_e995_5bd1_e995) | 1);
        let mut h = h1;
        for slot in sig.iter_mut() {
            let v = (h >> 32) as u32;
            if v < *slot {
                *slot = v;
            }
            h = h.wrapping_add(h2);
        }
    }
    Some(sig)
}

pub fn similarity(a: &[u32], b: &[u32]) -> f64 {
    let same = a.iter().zip(b).filter(|(x, y)| x == y).count();
    same as f64 / a.len().max(1) as f64
}

/// The bucket of a signature's band: the band number in the top 6 bits, its hash below.
pub(super) fn band_hash(sig: &[u32], band: usize) -> u64 {
    // FNV-1a over the band's values as little-endian bytes, fed as they come.
    let mut h: u64 = 0xcbf29ce484222325;
    for v in &sig[band * LSH_ROWS..(band + 1) * LSH_ROWS] {
        for b in v.to_le_bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    ((band as u64) << 58) | (h >> 6)
}

/// Phrases shared by at least half of `texts` (and at least two), longest and most shared
/// first, none inside another: what support staff read as "they all say …". Works on
/// characters, so Chinese and English alike.
pub fn shared_phrases(texts: &[&str], max: usize) -> Vec<String> {
    const LEN_MIN: usize = 4;
    const LEN_MAX: usize = 24;
    let docs: Vec<Vec<char>> = texts
        .iter()
        .map(|t| {
            let mut out: Vec<char> = Vec::new();
            for c in t.chars().flat_map(char::to_lowercase) {
                let c = if c.is_alphanumeric() { c } else { ' ' };
                if !(c == ' ' && out.last() == Some(&' ')) {
                    out.push(c);
                }
            }
            out
        })
        .collect();
    let need = docs.len().div_ceil(2).max(2);
    if docs.len() < 2 {
        return vec![];
    }
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for d in &docs {
        let mut seen = BTreeSet::new();
        for n in LEN_MIN..=LEN_MAX.min(d.len()) {
            for w in d.windows(n) {
                let s: String = w.iter().collect();
                let t = s.trim();
                if t.chars().filter(|c| *c != ' ').count() >= LEN_MIN - 1 && t.len() == s.len() {
                    seen.insert(s);
                }
            }
        }
        for s in seen {
            *counts.entry(s).or_default() += 1;
        }
    }
    let mut cands: Vec<(String, usize)> = counts.into_iter().filter(|(_, n)| *n >= need).collect();
    cands.sort_by(|a, b| {
        b.1.cmp(&a.1)
            .then_with(|| b.0.chars().count().cmp(&a.0.chars().count()))
            .then_with(|| a.0.cmp(&b.0))
    });
    let mut out: Vec<String> = Vec::new();
    for (s, _) in cands {
        if out.len() >= max {
            break;
        }
        if !out.iter().any(|o| o.contains(&s) || s.contains(o.as_str())) {
            out.push(s);
        }
    }
    out
}

impl Warnings {
    pub(super) fn drop_cluster(&mut self, id: &str) {
        let Some(c) = self.clusters.remove(id) else {
            return;
        };
        for customer in &c.contributors {
            if let Some(set) = self.signatures_of.get_mut(customer) {
                set.remove(id);
                if set.is_empty() {
                    self.signatures_of.remove(customer);
                }
            }
        }
        for sig in &c.signatures {
            for band in 0..LSH_BANDS {
                let k = band_hash(sig, band);
                if let Some(v) = self.buckets.get_mut(&k) {
                    v.retain(|x| x != id);
                    if v.is_empty() {
                        self.buckets.remove(&k);
                    }
                }
            }
        }
    }

    pub(super) fn text_key(
        &mut self,
        ev: &FoldEvent,
        text: Option<&str>,
        complaint: &str,
    ) -> Option<String> {
        let text = text?;
        let sig = signature(text)?;
        let mut candidates: BTreeSet<&String> = BTreeSet::new();
        for band in 0..LSH_BANDS {
            if let Some(ids) = self.buckets.get(&band_hash(&sig, band)) {
                candidates.extend(ids.iter());
            }
        }
        // The most similar earlier cluster above the threshold; ties by cluster id.
        let best = candidates
            .iter()
            .filter_map(|id| self.clusters.get(*id))
            .map(|c| {
                let best = c
                    .signatures
                    .iter()
                    .map(|s| similarity(s, &sig))
                    .fold(0.0, f64::max);
                (best, c.id.clone())
            })
            .filter(|(s, _)| *s >= self.config.text_similarity)
            .max_by(|a, b| a.0.total_cmp(&b.0).then_with(|| b.1.cmp(&a.1)));
        let id = match best {
            Some((_, id)) => id,
            None => {
                let id = complaint.to_owned();
                self.clusters.insert(
                    id.clone(),
                    TextCluster {
                        id: id.clone(),
                        signatures: vec![],
                        last_at: ev.occurred_at,
                        contributors: BTreeSet::new(),
                    },
                );
                id
            }
        };
        let c = self.clusters.get_mut(&id).expect("found or inserted");
        c.last_at = c.last_at.max(ev.occurred_at);
        c.contributors.insert(ev.customer.clone());
        if c.signatures.len() < CLUSTER_SIGNATURES_MAX {
            for band in 0..LSH_BANDS {
                let ids = self.buckets.entry(band_hash(&sig, band)).or_default();
                if !ids.contains(&id) {
                    ids.push(id.clone());
                }
            }
            c.signatures.push(sig);
        }
        self.signatures_of
            .entry(ev.customer.clone())
            .or_default()
            .insert(id.clone());
        Some(format!("text:{id}"))
    }
}

#[cfg(test)]
mod phrase_tests {
    #[test]
    fn a_band_hashes_as_fnv_of_its_bytes() {
        let sig: Vec<u32> = (0..super::MINHASH_K as u32)
            .map(|i| i.wrapping_mul(2_654_435_761))
            .collect();
        for band in 0..super::LSH_BANDS {
            let bytes: Vec<u8> = sig[band * super::LSH_ROWS..(band + 1) * super::LSH_ROWS]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            let expected = ((band as u64) << 58) | (super::fnv(&bytes) >> 6);
            assert_eq!(super::band_hash(&sig, band), expected);
        }
    }

    #[test]
    fn shared_phrases_are_found_in_chinese_and_english() {
        let p = super::shared_phrases(
            &[
                "这批茶叶有霉味，肚子不舒服",
                "茶叶有霉味",
                "我的茶叶也有霉味",
            ],
            3,
        );
        assert_eq!(p[0], "茶叶有霉味", "{p:?}");
        let p = super::shared_phrases(
            &["the lid is broken", "Lid is broken again!", "broken lid"],
            2,
        );
        assert!(p.iter().any(|x| x.contains("broken")), "{p:?}");
    }
}
