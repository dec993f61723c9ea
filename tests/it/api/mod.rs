//! End-to-end tests through the HTTP API. One binary (see STYLE.md: link time).

mod helpers;

mod agents;
mod alerts;
mod append;
mod audience;
mod audit;
mod auth;
mod browser;
mod communities;
mod consent;
mod console;
mod console_agents;
mod console_identity;
mod console_workflow;
mod customers;
mod extremes;
mod hardening;
mod identity;
mod privacy;
mod read;
mod schemathesis;
mod segments;
mod webhooks;
mod workflow;
