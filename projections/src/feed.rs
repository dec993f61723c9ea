//! A bounded, gapless feed of changes: items are numbered from 1 in the order they were
//! pushed; beyond [`FEED_KEPT_MAX`] the oldest are dropped, and a reader asking for them
//! is told where the feed now starts.
//!
//! A feed can be *held* after a sequence number: then nothing after it is dropped,
//! however many, until its owner says it has copied them elsewhere (the service's
//! durable outbox, so that no consumer of the feed ever loses a change). Holding is the
//! service's business, not the state's: it is neither serialised nor compared.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// Changes kept per feed; a reader further behind re-reads the state instead.
pub const FEED_KEPT_MAX: usize = 100_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Feed<T> {
    items: VecDeque<T>,
    next_seq: u64,
    /// Items after this sequence number are kept whatever their number.
    #[serde(skip)]
    held_after: Option<u64>,
}

impl<T: PartialEq> PartialEq for Feed<T> {
    fn eq(&self, other: &Self) -> bool {
        self.next_seq == other.next_seq && self.items == other.items
    }
}

/// What every feed item says of itself.
pub trait FeedItem {
    /// Its sequence number in the feed, from 1.
    fn seq(&self) -> u64;
    /// The log position of the event that caused it.
    fn position(&self) -> u64;
}

impl<T> Default for Feed<T> {
    fn default() -> Self {
        Feed {
            items: VecDeque::new(),
            next_seq: 1,
            held_after: None,
        }
    }
}

impl<T> Feed<T> {
    /// Appends the item `make` builds from its sequence number.
    pub fn push(&mut self, make: impl FnOnce(u64) -> T) {
        self.items.push_back(make(self.next_seq));
        self.next_seq += 1;
        self.trim();
    }

    fn oldest_seq(&self) -> u64 {
        self.next_seq - self.items.len() as u64
    }

    fn trim(&mut self) {
        while self.items.len() > FEED_KEPT_MAX
            && self.held_after.is_none_or(|h| self.oldest_seq() <= h)
        {
            self.items.pop_front();
        }
    }

    /// Keeps every item after `seq` (at most the latest) until [`Feed::copied_to`] says
    /// it was copied; `None` stops holding.
    pub fn hold_after(&mut self, seq: Option<u64>) {
        self.held_after = seq.map(|s| s.min(self.last_seq()));
        self.trim();
    }

    /// Where the feed is held, if it is.
    pub fn held_after(&self) -> Option<u64> {
        self.held_after
    }

    /// The held items (after the hold), oldest first; `Err(oldest kept)` when some of
    /// them were dropped before the hold began.
    pub fn held(&self) -> Result<Vec<&T>, u64> {
        match self.held_after {
            Some(h) => self.after(h, usize::MAX),
            None => Ok(Vec::new()),
        }
    }

    /// The items up to `seq` were copied: the hold moves past them (when held).
    pub fn copied_to(&mut self, seq: u64) {
        if let Some(h) = &mut self.held_after {
            *h = (*h).max(seq.min(self.next_seq - 1));
        }
        self.trim();
    }

    /// The sequence number of the latest item (0 when none was ever pushed).
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Items with sequence number `> after`, at most `limit`; `Err(oldest kept)` when some
    /// of them were already dropped.
    pub fn after(&self, after: u64, limit: usize) -> Result<Vec<&T>, u64> {
        let oldest = self.oldest_seq();
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

    #[test]
    fn a_held_feed_keeps_everything_after_the_hold_until_it_is_copied() {
        let mut f = Feed::default();
        f.push(|seq| seq);
        f.hold_after(Some(0));
        for _ in 0..FEED_KEPT_MAX + 9 {
            f.push(|seq| seq);
        }
        assert_eq!(f.after(0, 2).unwrap(), [&1, &2], "nothing was dropped");
        assert_eq!(f.held().unwrap().len(), FEED_KEPT_MAX + 10);
        f.copied_to(4);
        assert_eq!(f.held_after(), Some(4));
        assert_eq!(f.after(0, 1), Err(5), "what was copied may go");
        f.copied_to(u64::MAX);
        assert_eq!(f.after(0, 1), Err(11), "back to its bound");
        assert!(f.held().unwrap().is_empty());
        let unheld = {
            let mut g = f.clone();
            g.hold_after(None);
            g
        };
        assert_eq!(unheld, f, "holding is not part of the state");
    }
}
