//! Projections: pure, deterministic folds over recorded events.
//!
//! A projection is `apply(&mut self, &FoldEvent)`, nothing else: no IO, no clock, no
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
//! - [`exposure`]: recent buyers per SKU and product, for an alert's exposed customers.
//! - [`agents`]: agent networks (who recruited whom, retail against own purchases,
//!   commissions by basis) and their pyramid risk, raised as alerts by [`warnings`].
//! - [`communities`]: each community's members over time, posts, replies and echoes
//!   received, complaints, month by month.
//! - [`warnings`]: early warning: complaints that spread through connected customers,
//!   with the evidence, and unconnected spikes told apart from them.

#![forbid(unsafe_code)]

pub mod agents;
pub mod cohorts;
pub mod communities;
pub mod customers;
pub mod exposure;
pub mod feed;
pub mod interned;
pub mod lifecycle;
pub mod reactivation;
pub mod rfm;
pub mod said;
pub mod segments;
pub mod timers;
pub mod warnings;
pub mod wire;

use rapport_events::FoldEvent;

/// A fold over the log.
pub trait Projection {
    /// Stable name (for checkpoints and metrics).
    const NAME: &'static str;
    fn apply(&mut self, ev: &FoldEvent);
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
    pub lifecycles: lifecycle::Lifecycles,
    pub exposure: exposure::Exposure,
    pub agents: agents::Agents,
    pub communities: communities::Communities,
}

impl ReadState {
    /// The snapshot format and meaning of this state: bumped whenever either changes, so
    /// snapshots written by other code are rebuilt (the history of bumps is in git).
    pub const VERSION: u32 = 25;

    pub fn new(lifecycle: LifecycleConfig, warnings: warnings::WarningConfig) -> ReadState {
        let warnings_exposure_days = warnings.exposure_days;
        let pyramid = warnings.pyramid.clone();
        ReadState {
            customers: Customers::default(),
            segments: Segments::new(lifecycle),
            warnings: warnings::Warnings::new(warnings),
            lifecycles: lifecycle::Lifecycles::new(lifecycle),
            exposure: exposure::Exposure::new(warnings_exposure_days),
            agents: agents::Agents::new(pyramid),
            communities: Default::default(),
        }
    }

    /// The last position applied.
    pub fn position(&self) -> u64 {
        self.customers.position
    }

    /// The state as bytes, identical for the same events however they were batched: the
    /// large projections in postcard, each after its length (u64, little-endian), then
    /// segments, warnings and agents as JSON (they hold rules and exact sums).
    pub fn snapshot_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for part in [
            self.customers.snapshot_bytes(),
            postcard::to_stdvec(&self.lifecycles).expect("lifecycles serialize"),
            postcard::to_stdvec(&self.exposure).expect("exposure serializes"),
            postcard::to_stdvec(self.customers.identity()).expect("identity serializes"),
            postcard::to_stdvec(&self.communities).expect("communities serialize"),
        ] {
            out.extend((part.len() as u64).to_le_bytes());
            out.extend(part);
        }
        serde_json::to_writer(
            &mut out,
            &serde_json::json!({
                "segments": &self.segments,
                "warnings": &self.warnings,
                "agents": &self.agents,
            }),
        )
        .expect("segments and warnings serialize");
        out
    }

    /// Reads what [`ReadState::snapshot_bytes`] wrote, the profiles on up to `threads`
    /// threads (see [`Customers::from_snapshot_bytes`]).
    pub fn from_snapshot_bytes(bytes: &[u8], threads: usize) -> Result<ReadState, String> {
        fn part<'a>(bytes: &mut &'a [u8]) -> Result<&'a [u8], String> {
            let (len, rest) = bytes.split_first_chunk::<8>().ok_or("truncated snapshot")?;
            let len = usize::try_from(u64::from_le_bytes(*len)).map_err(|e| e.to_string())?;
            if rest.len() < len {
                return Err("truncated snapshot".into());
            }
            let (p, rest) = rest.split_at(len);
            *bytes = rest;
            Ok(p)
        }
        #[derive(serde::Deserialize)]
        struct Parts {
            segments: Segments,
            warnings: warnings::Warnings,
            agents: agents::Agents,
        }
        let mut rest = bytes;
        let mut customers = Customers::from_snapshot_bytes(part(&mut rest)?, threads)
            .map_err(|e| format!("customers: {e}"))?;
        let lifecycles: lifecycle::Lifecycles =
            postcard::from_bytes(part(&mut rest)?).map_err(|e| format!("lifecycles: {e}"))?;
        let exposure: exposure::Exposure =
            postcard::from_bytes(part(&mut rest)?).map_err(|e| format!("exposure: {e}"))?;
        let identity: customers::Identity =
            postcard::from_bytes(part(&mut rest)?).map_err(|e| format!("identity: {e}"))?;
        customers.set_identity(identity);
        let communities: communities::Communities =
            postcard::from_bytes(part(&mut rest)?).map_err(|e| format!("communities: {e}"))?;
        let Parts {
            mut segments,
            warnings,
            agents,
        } = serde_json::from_slice(rest).map_err(|e| format!("segments and warnings: {e}"))?;
        segments.compile();
        Ok(ReadState {
            customers,
            segments,
            warnings,
            lifecycles,
            exposure,
            agents,
            communities,
        })
    }
}

impl Projection for ReadState {
    const NAME: &'static str = "read_state";

    fn apply(&mut self, ev: &FoldEvent) {
        self.customers.apply(ev);
        let risk = self.agents.apply(ev);
        self.communities.apply(ev, &self.customers);
        self.segments.apply(ev, &self.customers);
        self.warnings.apply(ev, &self.customers);
        if let Some(risk) = risk {
            self.warnings.network_risk(risk, ev);
        }
        self.lifecycles.apply(ev, &self.customers);
        self.exposure.apply(ev, &self.customers);
    }
}
pub use lifecycle::{Lifecycle, LifecycleConfig, Relationship};
