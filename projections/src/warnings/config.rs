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
    /// How unlikely by chance (a Poisson tail probability, times the communities looked
    /// at) the customers of a key in one community must be for it to tie them (`graph.rs`).
    pub tie_alpha: f64,
    /// A community of at most this many members ties its members without that test.
    pub tie_community_free: u32,
    /// z-score a connected cluster needs to be a `watch` (two connected customers on a
    /// busy product are what chance gives).
    pub watch_threshold: f64,
    /// A complaint this severe (1–5) or of one of `critical_categories` makes a warning
    /// critical: a food-safety complaint is not a delivery delay.
    pub severe_from: u8,
    pub critical_categories: Vec<String>,
    /// Hours from reaching a level to the deadline to acknowledge the alert, per level
    /// (absent: no deadline at that level).
    pub acknowledge_hours: LevelHours,
    /// Hours from reaching a level to the deadline to resolve the alert, per level.
    pub resolve_hours: LevelHours,
    /// Days of purchases kept to find an alert's exposed customers (buyers before its
    /// first complaint, up to this many days, who have not complained).
    pub exposure_days: i64,
    /// When an agent network is flagged as pyramid risk (`agents::risk`).
    pub pyramid: crate::agents::PyramidConfig,
}

/// Hours per alert level; a level without hours has no deadline (a configuration that
/// gives this object gives every level it wants a deadline for).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LevelHours {
    pub watch: Option<i64>,
    pub warning: Option<i64>,
    pub critical: Option<i64>,
}

impl LevelHours {
    pub fn at(&self, level: Level) -> Option<Duration> {
        let h = match level {
            Level::Watch => self.watch,
            Level::Warning => self.warning,
            Level::Critical => self.critical,
        };
        // Hours past ten years are no deadline (and no overflow of the time type).
        h.filter(|h| (1..=87_600).contains(h)).map(Duration::hours)
    }
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
            tie_alpha: 0.001,
            tie_community_free: 20,
            watch_threshold: 1.0,
            severe_from: 4,
            critical_categories: ["food_safety", "health", "safety", "allergy"]
                .map(String::from)
                .to_vec(),
            acknowledge_hours: LevelHours {
                watch: None,
                warning: Some(8),
                critical: Some(2),
            },
            resolve_hours: LevelHours {
                watch: None,
                warning: Some(72),
                critical: Some(24),
            },
            exposure_days: 30,
            pyramid: Default::default(),
        }
    }
}
