//! The integration tests, in one binary (one link instead of one per file): through the
//! HTTP API, the real binary as a child process, the store contract on every backend,
//! replay and time travel, snapshots, Kafka, the public datasets, and tidy checks on the
//! source tree.

/// Says loudly on stderr that a test did not run what it is about (a broker, a server or
/// a dataset is missing); the test then returns early.
macro_rules! skipped {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod api;
mod datasets;
mod kafka;
mod kafka_tls;
mod privacy_doc;
mod process;
mod read_model;
mod replay;
mod store_contract;
mod tidy;
