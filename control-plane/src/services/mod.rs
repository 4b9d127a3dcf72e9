//! Watched services: which systemd units to watch on which hosts (per
//! selector), the states hosts report for them in their heartbeats, and
//! the fleet-wide view of them ("where is php-fpm down right now?").
//!
//! Owns the watch lists ([`lists`]), delivering them ([`watch`]), the
//! reported revisions ([`reports`]), the `service_states` rows
//! ([`state`], written by [`ingest`]) and the view ([`view`]); not alerting
//! on them (`alerts` reads `service_states`) nor running units
//! (`service.*` actions in rootd).

pub mod ingest;
pub mod lists;
pub mod reports;
pub mod state;
pub mod view;
pub mod watch;
