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
//! - [`segments`]: rule-based segments (definitions are events), membership kept
//!   incrementally, re-evaluated deterministically as event time passes, and the feed of
//!   membership changes.
//! - [`warnings`]: early warning: complaints that spread through connected customers,
//!   with the evidence, and unconnected spikes told apart from them.

pub mod cohorts;
pub mod customers;
pub mod feed;
pub mod lifecycle;
pub mod lifecycles;
pub mod reactivation;
pub mod rfm;
pub mod segments;
pub mod timers;
pub mod warnings;

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
pub use segments::Segments;

/// Every projection the service keeps, folded together in one pass: each event goes to
/// the customers first, then to the projections that read customer profiles.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadState {
    pub customers: Customers,
    pub segments: Segments,
    pub warnings: warnings::Warnings,
    pub lifecycles: lifecycles::Lifecycles,
}

impl ReadState {
    pub fn new(lifecycle: LifecycleConfig, warnings: warnings::WarningConfig) -> ReadState {
        ReadState {
            customers: Customers::default(),
            segments: Segments::new(lifecycle),
            warnings: warnings::Warnings::new(warnings),
            lifecycles: lifecycles::Lifecycles::new(lifecycle),
        }
    }

    /// The last position applied.
    pub fn position(&self) -> u64 {
        self.customers.position
    }

    /// The state as bytes, identical for the same events however they were batched.
    pub fn snapshot_bytes(&self) -> Vec<u8> {
        let mut out = b"{\"customers\":".to_vec();
        out.extend(self.customers.snapshot_bytes());
        out.extend(b",\"segments\":");
        serde_json::to_writer(&mut out, &self.segments).expect("segments serialize");
        out.extend(b",\"warnings\":");
        serde_json::to_writer(&mut out, &self.warnings).expect("warnings serialize");
        out.extend(b",\"lifecycles\":");
        serde_json::to_writer(&mut out, &self.lifecycles).expect("lifecycles serialize");
        out.push(b'}');
        out
    }

    pub fn from_snapshot_bytes(bytes: &[u8]) -> Result<ReadState, serde_json::Error> {
        #[derive(serde::Deserialize)]
        struct Parts {
            customers: Customers,
            segments: Segments,
            warnings: warnings::Warnings,
            lifecycles: lifecycles::Lifecycles,
        }
        let Parts {
            customers,
            mut segments,
            warnings,
            lifecycles,
        } = serde_json::from_slice(bytes)?;
        segments.compile();
        Ok(ReadState {
            customers,
            segments,
            warnings,
            lifecycles,
        })
    }
}

impl Projection for ReadState {
    const NAME: &'static str = "read_state";
    /// 3: segments joined the customers in one state (customers were at 2).
    /// 4: early warnings joined. 5: change feeds share one bounded `Feed`.
    /// 6: the detector's ties are stored both ways and alerts are found by complaint position.
    /// 7: lifecycle changes joined; segment timers share one `Timers`.
    const VERSION: u32 = 7;

    fn apply(&mut self, ev: &RecordedEvent) {
        self.customers.apply(ev);
        self.segments.apply(ev, &self.customers);
        self.warnings.apply(ev, &self.customers);
        self.lifecycles.apply(ev, &self.customers);
    }
}
pub use lifecycle::{Lifecycle, LifecycleConfig, Relationship};
