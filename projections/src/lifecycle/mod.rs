//! Lifecycle: the state a customer is in at a reference time ([`rules`]), each customer's
//! state over event time with the feed of its changes ([`changes`]), and the buyers in
//! each state as every month closed ([`by_month`]).

pub mod by_month;
pub mod changes;
pub mod rules;

pub use changes::{LifecycleChange, Lifecycles};
pub use rules::*;
