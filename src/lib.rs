//! Rapport, the service: IO wired around the pure `rapport-events` and
//! `rapport-projections` crates. See `docs/ARCHITECTURE.md` for the code map.

pub mod app;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod commands;
pub mod config;
pub mod console;
pub mod crypto;
pub mod deadlines;
pub mod export;
pub mod fold;
pub mod http;
pub mod import;
pub mod importers;
pub mod kafka;
pub mod layout;
pub mod log;
pub mod read_model;
pub mod report;
pub mod store;
pub mod strmap;
pub mod tools;
pub mod webhooks;
