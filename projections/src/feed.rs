//! A bounded, gapless feed of changes: items are numbered from 1 in the order they were
//! pushed; beyond [`FEED_KEPT_MAX`] the oldest are dropped, and a reader asking for them
//! is told where the feed now starts.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// Changes kept per feed; a reader further behind re-reads the state instead.
pub const FEED_KEPT_MAX: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feed<T> {
    items: VecDeque<T>,
    next_seq: u64,
}

impl<T> Default for Feed<T> {
    fn default() -> Self {
        Feed {
            items: VecDeque::new(),
            next_seq: 1,
        }
    }
}

impl<T> Feed<T> {
    /// Appends the item `make` builds from its sequence number.
    pub fn push(&mut self, make: impl FnOnce(u64) -> T) {
        self.items.push_back(make(self.next_seq));
        self.next_seq += 1;
        while self.items.len() > FEED_KEPT_MAX {
            self.items.pop_front();
        }
    }

    /// The sequence number of the latest item (0 when none was ever pushed).
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Items with sequence number `> after`, at most `limit`; `Err(oldest kept)` when some
    /// of them were already dropped.
    pub fn after(&self, after: u64, limit: usize) -> Result<Vec<&T>, u64> {
        let oldest = self.next_seq - self.items.len() as u64;
        if after.saturating_add(1) < oldest {
            return Err(oldest);
        }
        let start = usize::try_from(after.saturating_add(1) - oldest).unwrap_or(usize::MAX);
        Ok(self.items.iter().skip(start).take(limit).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_behind_what_is_kept_is_told_where_the_feed_starts() {
        let mut f = Feed::default();
        for _ in 0..FEED_KEPT_MAX + 5 {
            f.push(|seq| seq);
        }
        assert_eq!(f.last_seq(), FEED_KEPT_MAX as u64 + 5);
        assert_eq!(f.after(0, 1), Err(6));
        assert_eq!(f.after(5, 2).unwrap(), [&6, &7]);
        assert!(f.after(u64::MAX, 1).unwrap().is_empty());
    }
}
