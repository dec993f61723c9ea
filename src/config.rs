//! The service's tunable thresholds, from a JSON file (`--config FILE` or
//! `RAPPORT_CONFIG`): lifecycle thresholds, early-warning windows and how far apart the
//! history snapshots of time travel are. Every field is
//! optional (a missing one keeps its documented default); an unknown one is an error that
//! names it. Snapshots taken with other thresholds are rebuilt, never reused.
//!
//! ```json
//! {"lifecycle": {"active_days": 60, "dormant_days": 120},
//!  "early_warning": {"window_hours": 48, "threshold": 3.5},
//!  "time_travel": {"history_every_events": 1000000, "valid_time_every_events": 250000,
//!                  "valid_time_rebuild_after_events": 500000},
//!  "read_model": {"catch_up_in_child_events": 1000000},
//!  "deadlines": {"ticks": true}}
//! ```

use std::path::{Path, PathBuf};

use rapport_projections::{warnings::WarningConfig, LifecycleConfig};
use serde::{Deserialize, Serialize};

/// The read model writes a snapshot after this many events since the last one.
pub const SNAPSHOT_EVERY_EVENTS: u64 = 100_000;
/// Positions between the snapshots kept for time travel: an as-of query replays at most
/// this many events after loading one.
pub const HISTORY_EVERY_EVENTS: u64 = 250_000;
/// A catch-up at start of at least this many events runs in a child process, and one that
/// ran in process is followed by a compaction of the state.
pub const COMPACT_AFTER_CATCH_UP_EVENTS: u64 = 1_000_000;
/// Events of business order between two snapshots of a build: a `valid_at` query on a
/// freshly built log folds at most this many after the snapshot it loads.
pub const VALID_TIME_EVERY_EVENTS: u64 = 250_000;
/// A business-time build is started once the log has grown by this many events since the
/// last one (`serve`, embedded store).
pub const VALID_TIME_REBUILD_AFTER_EVENTS: u64 = 500_000;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub lifecycle: LifecycleConfig,
    pub early_warning: WarningConfig,
    pub time_travel: TimeTravelConfig,
    pub read_model: ReadModelConfig,
    pub deadlines: DeadlinesConfig,
    pub webhooks: WebhooksConfig,
}

/// How webhooks are delivered (see `crate::webhooks`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Deliver to targets on loopback, link-local and private networks. Off by default: a
    /// webhook URL is a way into the network Rapport runs in. The tests turn it on.
    pub allow_private_targets: bool,
    /// How long one delivery may take, in milliseconds.
    pub timeout_ms: u64,
    /// Failed attempts in a row after which a subscription is parked.
    pub max_failures: u32,
    /// The first retry's delay, in milliseconds; each next one doubles, up to
    /// `backoff_max_ms`, with ±50% jitter.
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            allow_private_targets: false,
            timeout_ms: 10_000,
            max_failures: 10,
            backoff_base_ms: 1_000,
            backoff_max_ms: 600_000,
        }
    }
}

/// How alerts' deadlines pass when no customer event moves event time (see
/// `crate::deadlines`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeadlinesConfig {
    /// `serve` appends a `clock_ticked` event when a deadline falls due; `false` lets
    /// deadlines pass only with customer events.
    pub ticks: bool,
}

impl Default for DeadlinesConfig {
    fn default() -> Self {
        DeadlinesConfig { ticks: true }
    }
}

/// How `serve` catches up at start (see `crate::fold::child::FoldChild`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReadModelConfig {
    /// A backlog of at least this many events behind the snapshot is folded by a child
    /// process (`rapport catch-up`), so that what folding leaves in the heap is not the
    /// server's; 0 never does (embedded store only).
    pub catch_up_in_child_events: u64,
}

impl Default for ReadModelConfig {
    fn default() -> Self {
        ReadModelConfig {
            catch_up_in_child_events: COMPACT_AFTER_CATCH_UP_EVENTS,
        }
    }
}

/// Time travel trades disk for speed: an as-of query folds at most `history_every_events`
/// events after the history snapshot it starts from, and every history snapshot is a full
/// copy of the state (never pruned). A `valid_at` query folds at most
/// `valid_time_every_events` after the snapshot of the business-time build it starts from
/// (plus what was recorded since the build; see `valid_time`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimeTravelConfig {
    /// Positions between history snapshots; at least one snapshot interval (100,000).
    pub history_every_events: u64,
    /// Events of business order between the snapshots of a business-time build; at least 1.
    pub valid_time_every_events: u64,
    /// `serve` (embedded store) builds business time again once the log has grown by this
    /// many events since the last build; 0 never builds (`valid_at` then folds from the
    /// first event).
    pub valid_time_rebuild_after_events: u64,
}

impl Default for TimeTravelConfig {
    fn default() -> Self {
        TimeTravelConfig {
            history_every_events: HISTORY_EVERY_EVENTS,
            valid_time_every_events: VALID_TIME_EVERY_EVENTS,
            valid_time_rebuild_after_events: VALID_TIME_REBUILD_AFTER_EVENTS,
        }
    }
}

#[derive(clap::Args, Clone, Debug, Default)]
pub struct ConfigArgs {
    /// JSON file of thresholds (lifecycle, early_warning); see docs/projections.md and
    /// docs/early-warning.md. Defaults apply without it.
    #[arg(long = "config", env = "RAPPORT_CONFIG", global = true)]
    pub path: Option<PathBuf>,
}

impl ConfigArgs {
    pub fn load(&self) -> anyhow::Result<Config> {
        match &self.path {
            None => Ok(Config::default()),
            Some(p) => Config::read(p),
        }
    }
}

impl Config {
    pub fn read(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))?;
        Config::parse(&text).map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Config, String> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let c: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            format!("{path}: {}", e.into_inner())
        })?;
        let every = SNAPSHOT_EVERY_EVENTS;
        if c.time_travel.history_every_events < every {
            return Err(format!(
                "time_travel.history_every_events: must be at least {every} (history snapshots are taken from the periodic ones)"
            ));
        }
        if c.time_travel.valid_time_every_events == 0 {
            return Err("time_travel.valid_time_every_events: must be at least 1".into());
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_config_keeps_the_other_defaults() {
        let c = Config::parse(
            r#"{"lifecycle": {"active_days": 60}, "early_warning": {"threshold": 3.5}}"#,
        )
        .unwrap();
        assert_eq!(c.lifecycle.active_days, 60);
        assert_eq!(
            c.lifecycle.dormant_days,
            LifecycleConfig::default().dormant_days
        );
        assert_eq!(c.early_warning.threshold, 3.5);
        assert_eq!(c.early_warning.window_hours, 72);
        assert_eq!(Config::parse("{}").unwrap(), Config::default());
    }

    #[test]
    fn the_history_interval_is_configurable_but_not_below_the_snapshot_interval() {
        let c = Config::parse(r#"{"time_travel": {"history_every_events": 1000000}}"#).unwrap();
        assert_eq!(c.time_travel.history_every_events, 1_000_000);
        assert_eq!(
            Config::default().time_travel.history_every_events,
            HISTORY_EVERY_EVENTS
        );
        let e = Config::parse(r#"{"time_travel": {"history_every_events": 10}}"#).unwrap_err();
        assert!(
            e.starts_with("time_travel.history_every_events: must be at least 100000"),
            "{e}"
        );
    }

    #[test]
    fn an_unknown_or_mistyped_field_is_named() {
        let e = Config::parse(r#"{"lifecycle": {"activ_days": 60}}"#).unwrap_err();
        assert!(e.starts_with("lifecycle.activ_days: unknown field"), "{e}");
        let e = Config::parse(r#"{"early_warning": {"window_hours": "two days"}}"#).unwrap_err();
        assert!(
            e.starts_with("early_warning.window_hours: invalid type"),
            "{e}"
        );
    }
}
