//! Projections: pure, deterministic folds over recorded events.
//!
//! A projection is `apply(&mut self, &RecordedEvent)`, nothing else: no IO, no clock, no
//! randomness, no hash-order dependence in anything it outputs. Time comes from the events
//! (`occurred_at`) or from an explicit `as_of` argument of a query. Folding the same events
//! gives the same state however they are batched (`tests/fold.rs` checks it).
//!
//! - [`customers`]: the 360° customer profile (identity, orders, revenue, community ties,
//!   complaints, outreach, influence) and the per-customer purchase history that the
//!   analytics below read.
//! - [`lifecycle`]: lifecycle states and the customer/user distinction, with thresholds.
//! - [`rfm`]: recency/frequency/monetary quintiles and named segments as of a date.
//! - [`cohorts`]: monthly acquisition cohorts: retention and revenue.
//! - [`reactivation`]: dormant customers ranked by the expected value of winning them
//!   back, and what outreach campaigns reactivated.

pub mod cohorts;
pub mod customers;
pub mod lifecycle;
pub mod reactivation;
pub mod rfm;

use rapport_events::RecordedEvent;

/// A fold over the log.
pub trait Projection {
    /// Stable name (for checkpoints and metrics).
    const NAME: &'static str;
    /// Bumped whenever the state's meaning changes, so older snapshots are rebuilt.
    const VERSION: u32;
    fn apply(&mut self, ev: &RecordedEvent);
}

pub use customers::{Customers, Profile};
pub use lifecycle::{Lifecycle, LifecycleConfig, Relationship};
