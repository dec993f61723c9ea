//! Lifecycle: the state a customer is in at a reference time ([`rules`]), and each
//! customer's state over event time with the feed of its changes ([`changes`]).

pub mod changes;
pub mod rules;

pub use changes::{LifecycleChange, Lifecycles};
pub use rules::*;
