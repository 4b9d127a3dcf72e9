//! The `alert_transitions` table (migration m0020): the outbox of alert
//! state changes. Alert evaluation appends one row per change that people
//! may need to hear of (an alert starts firing, or resolves) in the same
//! transaction as the alert's own change; the notification dispatcher
//! (`notify`) picks rows with `dispatched_at IS NULL` in `id` order, puts
//! them on the notification stream and sets `dispatched_at`. A row is never
//! changed otherwise, so a transition is notified at most once per channel
//! and never lost across a restart.
//!
//! Owns the row's shape; not when alerts change (`alerts::evaluate`) nor
//! delivery (`notify`).

pub mod alert_transition {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "alert_transitions")]
    pub struct Model {
        /// Increasing: the order transitions happened in.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// The alert that changed (`alerts.id`).
        pub alert_id: String,
        pub rule_id: String,
        /// The rule's name when it changed.
        pub rule_name: String,
        /// The host it is about, when it is about one.
        pub agent_id: Option<String>,
        /// That host's shown name when it changed.
        pub hostname: Option<String>,
        /// What the alert is about: an agent id, `<agent>/<unit>` for a
        /// watched service, a job id, or `fleet`.
        pub target: String,
        /// `firing` or `resolved`.
        pub state: String,
        /// `info`, `warning`, `critical`.
        pub severity: String,
        /// One line for people: "disk / at 93 % on web-1 (over 90 % for 5m)".
        pub summary: String,
        /// JSON object of string labels (the rule's labels, `host`, `unit`,
        /// ...): what routing and grouping match on.
        pub labels: String,
        /// When the alert changed state, ms since the epoch.
        pub at: i64,
        /// Why this transition is not to be notified, when it is not:
        /// `silenced`, `maintenance window`, `acknowledged`. The dispatcher
        /// marks such rows dispatched without sending them.
        pub suppressed: Option<String>,
        /// When the dispatcher put it on the notification stream (ms);
        /// `None` while waiting.
        pub dispatched_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
