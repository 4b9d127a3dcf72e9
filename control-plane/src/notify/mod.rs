//! Notifications that are never lost: channels (webhook, email, the bus),
//! routing, quiet hours and grouping, and delivery through a JetStream
//! stream with retries.
//!
//! Owns channels and deliveries; reads the `alert_transitions` outbox that
//! alert evaluation writes (`alerts::transition`), never alerts themselves.

pub mod dispatch;
