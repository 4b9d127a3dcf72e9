//! The tables of migration m0022: `alert_rules`, `alerts`, `silences`.
//! Owns the rows' shapes and what each column means; not how they change
//! (`rules`, `evaluate`, `silences`) nor the `alert_transitions` outbox
//! (`transition`).

pub mod alert_rule {
    use sea_orm::entity::prelude::*;

    /// A rule: a condition over the fleet, checked every evaluation round.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "alert_rules")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// Unique, 1..=64 printable characters.
        pub name: String,
        /// `metric`, `host_offline`, `service_not_active`, `job_failed`,
        /// `updates_pending`, `security_refusal`, `identity_conflict`,
        /// `agent_outdated` (see `rules::Kind`).
        pub kind: String,
        /// JSON `selector::Selector` of the hosts the rule covers; `{}`:
        /// every host.
        pub selector: String,
        /// JSON object, per kind (see `rules::Params`).
        pub params: String,
        /// `info`, `warning`, `critical`.
        pub severity: String,
        /// Seconds the condition must hold before the alert fires (0: at
        /// once).
        pub for_secs: i64,
        /// JSON object of string labels copied onto its alerts.
        pub labels: String,
        pub enabled: bool,
        pub created_by: String,
        /// Milliseconds since the epoch.
        pub created_at: i64,
        pub updated_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod alert {
    use sea_orm::entity::prelude::*;

    /// One alert: a rule's condition on one target. At most one open
    /// (`pending` or `firing`) alert per (rule, target); a resolved one
    /// stays as history and a new one opens when the condition returns.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "alerts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub rule_id: String,
        /// An agent id, `<agent>/<unit>`, a job id, or `fleet`.
        pub target: String,
        /// The host it is about, when it is about one.
        pub agent_id: Option<String>,
        /// `pending`, `firing`, `resolved`.
        pub state: String,
        /// The rule's severity when it opened.
        pub severity: String,
        /// One line for people.
        pub summary: String,
        /// JSON object of string labels (the rule's plus `host`, `unit`...).
        pub labels: String,
        /// The last observed value (percent, load, count, days), if any.
        pub value: Option<f64>,
        /// When the condition was first seen (pending since), ms.
        pub first_at: i64,
        /// When it started firing, ms; `None` while pending.
        pub fired_at: Option<i64>,
        /// When the condition was last seen true, ms.
        pub last_at: i64,
        /// When it resolved, ms.
        pub resolved_at: Option<i64>,
        /// Who acknowledged it and when (ms): no more notifications.
        pub acked_by: Option<String>,
        pub acked_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod silence {
    use sea_orm::entity::prelude::*;

    /// A silence: transitions of matching alerts between `starts_at` and
    /// `ends_at` are recorded `suppressed = "silenced"` (not notified).
    /// Matches an alert when both given parts match: `rule_id` (that rule
    /// only) and `selector` (the alert's host matches it). Neither: every
    /// alert.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "silences")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub rule_id: Option<String>,
        /// JSON `selector::Selector`.
        pub selector: Option<String>,
        /// Milliseconds since the epoch.
        pub starts_at: i64,
        pub ends_at: i64,
        pub comment: String,
        pub created_by: String,
        pub created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
