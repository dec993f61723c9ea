//! The small collections a profile holds: sorted string sets, sets and counts of name
//! numbers, and the shared table of names.

use super::*;

/// A small sorted set of strings. Most customers have a handful of tags and communities;
/// a `BTreeSet` allocates a node for eleven entries even for one, this allocates one string.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SmallSet(pub(super) ThinVec<CompactString>);

impl<'a> IntoIterator for &'a SmallSet {
    type Item = &'a CompactString;
    type IntoIter = std::slice::Iter<'a, CompactString>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl SmallSet {
    pub fn insert(&mut self, s: &str) {
        if let Err(i) = self.0.binary_search_by(|x| x.as_str().cmp(s)) {
            self.0.insert(i, s.into());
        }
    }

    /// `true` if it was there.
    pub fn remove(&mut self, s: &str) -> bool {
        match self.0.binary_search_by(|x| x.as_str().cmp(s)) {
            Ok(i) => {
                self.0.remove(i);
                true
            }
            Err(_) => false,
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn contains(&self, s: &str) -> bool {
        self.0.binary_search_by(|x| x.as_str().cmp(s)).is_ok()
    }

    pub fn iter(&self) -> impl Iterator<Item = &CompactString> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A small set of names (see [`Names`]) held by number, sorted by number: a community or
/// tag costs 4 bytes where an inline string would take 24. Read through
/// [`Customers::names_of`] (sorted by name).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NameSet(pub(super) ThinVec<u32>);

impl NameSet {
    /// Whether `n` was not in the set.
    pub(super) fn insert(&mut self, n: u32) -> bool {
        match self.0.binary_search(&n) {
            Err(i) => {
                self.0.insert(i, n);
                true
            }
            Ok(_) => false,
        }
    }

    /// Whether `n` was in the set.
    pub(super) fn remove(&mut self, n: u32) -> bool {
        match self.0.binary_search(&n) {
            Ok(i) => {
                self.0.remove(i);
                true
            }
            Err(_) => false,
        }
    }

    /// The numbers, sorted.
    pub fn numbers(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().copied()
    }

    pub(super) fn contains(&self, n: u32) -> bool {
        self.0.binary_search(&n).is_ok()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Product or category number (see [`Names`]) → units, sorted by number: 8 bytes an entry
/// where a name and a count would take 32, and each name is held once for all customers.
///
/// Units are counted up to `u32::MAX` (4 billion of one product by one customer) and stay
/// there: 8 bytes an entry rather than 16, over millions of entries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Counts(ThinVec<(u32, u32)>);

impl Counts {
    pub fn add(&mut self, name: u32, n: u64) {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        match self.0.binary_search_by_key(&name, |(x, _)| *x) {
            Ok(i) => self.0[i].1 = self.0[i].1.saturating_add(n),
            Err(i) => self.0.insert(i, (name, n)),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.0.iter().map(|&(k, n)| (k, u64::from(n)))
    }
}

/// The names profiles hold by number (products, categories, regions, channels), numbered
/// in the order the log first mentions them (so the numbering, like the rest of the state,
/// depends only on the events).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Names(pub(super) Interned);

impl Names {
    pub(super) fn number(&mut self, name: &str) -> u32 {
        self.0.number(name)
    }

    pub(super) fn number_plus_one(&mut self, name: &str) -> NonZeroU32 {
        NonZeroU32::new(self.0.number(name) + 1).expect("fewer than 2^32 - 1 names")
    }

    pub fn name(&self, number: u32) -> &str {
        self.0.get(number)
    }

    pub(super) fn find(&self, name: &str) -> Option<u32> {
        self.0.find(name)
    }
}
