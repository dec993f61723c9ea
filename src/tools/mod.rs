//! Tools beside the service: the benchmarks behind `rapport bench` and `cargo bench`, and
//! the early-warning evaluation behind `rapport eval-warnings`. Nothing in the service
//! depends on them.

pub mod agents_eval;
pub mod bench;
pub mod eval;
pub mod identity_eval;
