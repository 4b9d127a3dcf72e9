//! Watched services: which systemd units to watch on which hosts (per
//! selector), the states hosts report for them in their heartbeats, and
//! the fleet-wide view of them ("where is php-fpm down right now?").
//!
//! Owns the watch lists and the `service_states` rows; not alerting on
//! them (`alerts` reads `service_states`) nor running units (`service.*`
//! actions in rootd).

pub mod state;
pub mod watch;
