//! Rapport, the service: IO wired around the pure `rapport-events` and
//! `rapport-projections` crates. See `docs/ARCHITECTURE.md` for the code map.

pub mod auth;
pub mod bench;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod eval;
pub mod export;
pub mod http;
pub mod import;
pub mod importers;
pub mod kafka;
pub mod log;
pub mod read_model;
pub mod replay;
pub mod report;
pub mod server;
pub mod store;
pub mod strmap;
pub mod valid_time;
