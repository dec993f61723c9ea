//! Projections: pure, deterministic folds over recorded events. Filled by the projections issue.
