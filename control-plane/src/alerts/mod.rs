//! Alerting: rules stored in the database, alerts with a lifecycle
//! (pending → firing → resolved; acknowledged; silenced), and their
//! evaluation as a duty on the lease holder.
//!
//! Owns rules, alerts, silences and the `alert_transitions` outbox rows it
//! writes; not delivering notifications (`notify` reads the outbox).

pub mod conditions;
pub mod entities;
pub mod evaluate;
pub mod rules;
pub mod silences;
pub mod store;
pub mod transition;
