//! The rows of notifications (migration m0023): channels, deliveries and
//! the (channel, transition) → delivery items that make each transition
//! go out at most once per channel.
//!
//! Owns the rows' shapes; not what a channel's settings may be
//! (`notify::channels`) nor when a delivery is sent (`notify::deliver`).

/// `notify_channels`: where notifications go, and which of them.
pub mod channel {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "notify_channels")]
    pub struct Model {
        /// A UUID.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// Unique, for people and the CLI.
        pub name: String,
        /// `webhook`, `email` or `bus`.
        pub kind: String,
        /// JSON object, by kind: webhook `{url, format: json|slack|teams}`;
        /// email `{host, port, tls: starttls|tls|none, from, to: [..],
        /// username?}`; bus `{}`. Never holds the secret.
        pub config: String,
        /// The webhook's HMAC key or the SMTP password, sealed by
        /// `notify::seal` (`v1:<base64 nonce+ciphertext>`); `None`: not set.
        pub secret_sealed: Option<String>,
        /// The least severity sent: `info`, `warning`, `critical`.
        pub min_severity: String,
        /// JSON array of rule ids; empty: every rule.
        pub rule_ids: String,
        /// JSON object label → value; every one must equal the
        /// transition's label.
        pub matchers: String,
        /// Quiet hours: start and end minute of the day (0..1440) in
        /// `quiet_timezone`; both `None`: no quiet hours. Start > end spans
        /// midnight.
        pub quiet_start: Option<i32>,
        pub quiet_end: Option<i32>,
        /// IANA time zone of the quiet hours (`UTC` when unset).
        pub quiet_timezone: Option<String>,
        /// `critical` notifications go out during quiet hours too.
        pub quiet_bypass_critical: bool,
        /// Transitions of one rule within this many seconds of the first go
        /// out as one message; 0: each alone.
        pub group_secs: i64,
        pub enabled: bool,
        /// ms since the epoch.
        pub created_at: i64,
        pub created_by: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `notify_deliveries`: one message to one channel, about one or more
/// transitions (a group).
pub mod delivery {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "notify_deliveries")]
    pub struct Model {
        /// A UUID: the `X-Drover-Delivery` header, the same on every
        /// attempt (receivers dedupe on it).
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub channel_id: String,
        /// What groups transitions: the rule id.
        pub group_key: String,
        /// JSON array of `alert_transitions.id`, in arrival order.
        pub transition_ids: String,
        /// The transition whose stream message sends this delivery (the
        /// others' messages are acked once they are in it).
        pub leader: i64,
        /// `queued`, `sent`, `retrying`, `failed`.
        pub state: String,
        /// Send attempts made.
        pub attempts: i32,
        /// The last attempt's error, for people.
        pub last_error: Option<String>,
        /// ms since the epoch.
        pub created_at: i64,
        /// Not sent before (ms): the end of the grouping window, or the
        /// next retry.
        pub due_at: i64,
        /// Held by quiet hours until then (ms), when it was.
        pub held_until: Option<i64>,
        pub sent_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `notify_delivery_items`: the delivery a transition went into on a
/// channel. The primary key (channel, transition) is what makes a
/// redelivered or republished stream message a no-op.
pub mod item {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "notify_delivery_items")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub channel_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub transition_id: i64,
        pub delivery_id: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
