//! The detector's thresholds and windows.

use super::*;

/// Thresholds and windows, configurable (`rapport serve --config`); the defaults are
/// documented in `docs/early-warning.md`; a missing field keeps its default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WarningConfig {
    pub window_hours: i64,
    pub tie_window_days: i64,
    pub baseline_days: i64,
    pub guard_days: i64,
    /// Distinct complainants per day expected on a key with no history.
    pub prior_daily_rate: f64,
    pub min_count: usize,
    /// z-score threshold for `warning` and `spike`.
    pub threshold: f64,
    pub critical_size: usize,
    pub critical_communities: usize,
    pub influence_critical: u64,
    pub spike_min: usize,
    pub text_similarity: f64,
}

impl Default for WarningConfig {
    fn default() -> Self {
        WarningConfig {
            window_hours: 72,
            tie_window_days: 180,
            baseline_days: 28,
            guard_days: 2,
            prior_daily_rate: 0.1,
            min_count: 3,
            threshold: 3.0,
            critical_size: 10,
            critical_communities: 3,
            influence_critical: 15,
            spike_min: 6,
            text_similarity: 0.3,
        }
    }
}
