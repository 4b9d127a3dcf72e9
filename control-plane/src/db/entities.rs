//! Tables as sea-orm entities. Times are milliseconds since the epoch;
//! structured values are JSON text, so SQLite and PostgreSQL read the same.

pub mod agent {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "agents")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        /// The agent's public nkey; also what its results are verified with.
        pub id: String,
        pub hostname: String,
        /// pending | online | offline | rejected | revoked
        pub status: String,
        /// Bound at enrolment; the same machine under another key is refused.
        pub machine_id: String,
        /// JSON facts sent at enrolment (os, kernel, arch, ...).
        pub facts: String,
        /// Registration token used, if any.
        pub token_id: Option<String>,
        pub approved_by: Option<String>,
        pub revoked_at: Option<i64>,
        pub first_seen: i64,
        pub last_seen: i64,
        pub last_seq: i64,
        pub heartbeat_secs: i32,
        pub os: String,
        pub kernel: String,
        pub agent_version: String,
        /// JSON: the latest `Metrics`.
        pub metrics: String,
        /// JSON: modules the host can run.
        pub modules: String,
        /// JSON: running operations.
        pub operations: String,
        /// JSON object of labels.
        pub labels: String,
        /// Why rootd did not answer the agent, from its last heartbeat
        /// (`None` when it did): rootd's modules are then unknown.
        pub rootd_error: Option<String>,
        /// The name the host asked to be shown as at enrolment (`None`:
        /// its host name); m0012.
        pub display_name: Option<String>,
        /// The kernel's boot id from the latest heartbeat; m0013.
        pub boot_id: Option<String>,
        /// When the host booted (heartbeat time minus uptime), ms; m0013.
        pub booted_at: Option<i64>,
        /// The release channel the agent reports (`stable`, `beta`; "" for
        /// a build not installed from a release); m0019.
        pub agent_channel: String,
        /// The wire protocol version the agent speaks (from its heartbeat
        /// or enrolment claim; 1 when it does not say); m0019.
        pub protocol_version: i32,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod metric_sample {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "metric_samples")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub agent_id: String,
        pub at: i64,
        pub cpu_percent: f64,
        pub mem_used: i64,
        pub mem_total: i64,
        pub disk_used: i64,
        pub disk_total: i64,
        pub load1: f64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod command {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "commands")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub agent_id: String,
        pub job_id: Option<String>,
        pub action: String,
        /// JSON params (secrets masked before they get here).
        pub params: String,
        /// A `CommandStatus` string.
        pub status: String,
        pub requested_by: String,
        pub source: String,
        pub created_at: i64,
        pub updated_at: i64,
        pub expires_at: i64,
        pub timeout_secs: i32,
        pub exit_code: Option<i32>,
        pub summary: String,
        /// JSON: the action's structured output.
        pub result: Option<String>,
        pub attempts: i32,
        pub finished_at: Option<i64>,
        /// Sequence of the command's message in `DROVER_CMD` (to cancel it
        /// while it still waits there).
        pub stream_seq: Option<i64>,
        /// Who decided the final state (the ledger's `Source`):
        /// `reported` (the host), `inferred` (the control plane's guess:
        /// expired, no result, gave up), `control_plane` (never delivered:
        /// refused by the broker, cancelled while queued). `None` while
        /// open, and for rows older than m0009.
        pub outcome_source: Option<String>,
        /// The control plane's own final state and reason, kept after a
        /// host's report replaced them.
        pub inferred_status: Option<String>,
        pub inferred_summary: Option<String>,
        /// When the control plane decided it, ms since the epoch.
        pub inferred_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod api_token {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "api_tokens")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub name: String,
        pub role: String,
        /// SHA-256 of the token; the token itself is never stored.
        #[sea_orm(unique)]
        pub token_hash: String,
        pub created_at: i64,
        /// When the token stops working, ms since the epoch (`None`: never);
        /// set at creation; m0027.
        pub expires_at: Option<i64>,
        /// When the token last authenticated a request, ms since the epoch,
        /// written at most about once a minute (`None`: never used); m0027.
        pub last_used_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod registration_token {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "registration_tokens")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// SHA-256 of the token; the token is shown once and never stored.
        #[sea_orm(unique)]
        pub token_hash: String,
        pub uses_allowed: i32,
        pub uses: i32,
        pub expires_at: i64,
        /// JSON object of labels given to agents enrolled with it.
        pub labels: String,
        pub auto_approve: bool,
        pub revoked: bool,
        pub created_at: i64,
        pub created_by: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod binding_conflict {
    use sea_orm::entity::prelude::*;

    /// An enrolment refused because key and machine-id did not match what is
    /// on record. Listed for operators.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "binding_conflicts")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub at: i64,
        /// machine_id_taken | key_on_other_machine | duplicate_identity
        pub kind: String,
        pub public_key: String,
        pub machine_id: String,
        pub hostname: String,
        pub existing_agent_id: String,
        /// duplicate_identity: JSON `{"bound": Seen, "other": Seen}` (see
        /// the clones module).
        pub detail: Option<String>,
        /// When an operator decided (duplicate_identity), ms since the epoch.
        pub resolved_at: Option<i64>,
        pub resolved_by: Option<String>,
        /// `bound` or `other`: which side of `detail` the operator kept.
        pub kept: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod refusal {
    use sea_orm::entity::prelude::*;

    /// A command or result refused by an agent or by the control plane.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "refusals")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub at: i64,
        pub agent_id: String,
        /// agent | control-plane
        pub source: String,
        /// A `Refusal::label()`.
        pub reason: String,
        pub detail: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod input_drop {
    use sea_orm::entity::prelude::*;

    /// How many inputs of one kind from one sender on one subject class were
    /// dropped: `malformed` (undecodable, terminated on the broker) or
    /// `refusal_dropped` (refusal reports beyond the sender's rate).
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "input_drops")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub kind: String,
        /// The subject pattern, e.g. `drover.hb.*`.
        #[sea_orm(primary_key, auto_increment = false)]
        pub subject: String,
        /// The agent the subject names, a job key's name, or `-`.
        #[sea_orm(primary_key, auto_increment = false)]
        pub agent_id: String,
        pub count: i64,
        /// Milliseconds since the epoch.
        pub first_at: i64,
        pub last_at: i64,
        /// Why the last one was dropped (at most 512 characters).
        pub last_detail: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod job {
    use sea_orm::entity::prelude::*;

    /// One action fanned out to every agent a selector matched.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "jobs")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// The same key returns the same job.
        #[sea_orm(unique)]
        pub idempotency_key: Option<String>,
        pub action: String,
        pub params: String,
        /// JSON `Selector`.
        pub selector: String,
        pub target_count: i32,
        pub requested_by: String,
        pub source: String,
        pub created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod automation_key {
    use sea_orm::entity::prelude::*;

    /// An Ed25519 public key automation signs job submissions with, bound to
    /// a role.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "automation_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        #[sea_orm(unique)]
        pub name: String,
        /// operator | admin | viewer
        pub role: String,
        pub public_key: String,
        /// `SHA256:...` of the key, as submissions name it.
        #[sea_orm(unique)]
        pub fingerprint: String,
        pub revoked: bool,
        pub created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod user {
    use sea_orm::entity::prelude::*;

    /// A person who logs in to the web UI.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "users")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        #[sea_orm(unique)]
        pub name: String,
        /// admin | operator | viewer
        pub role: String,
        /// argon2id PHC string.
        pub password_hash: String,
        /// Base32 TOTP secret once enabled (required at login).
        pub totp_secret: Option<String>,
        /// A secret shown to the user but not yet confirmed with a code.
        pub totp_pending: Option<String>,
        pub created_at: i64,
        pub updated_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod session {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "sessions")]
    pub struct Model {
        /// SHA-256 of the cookie's token; the token itself is never stored.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub user_id: String,
        /// Sent back in `X-CSRF-Token` (or the `csrf` form field).
        pub csrf_token: String,
        pub ip: String,
        pub created_at: i64,
        pub last_seen: i64,
        pub expires_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod audit_log {
    use sea_orm::entity::prelude::*;

    /// One operator action. Append-only; `hash` = sha256(prev_hash || row).
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_log")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i64,
        pub at: i64,
        pub actor: String,
        pub action: String,
        pub target: String,
        pub ip: String,
        /// JSON, secrets masked.
        pub detail: String,
        #[sea_orm(unique)]
        pub prev_hash: String,
        pub hash: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod agent_credential {
    use sea_orm::entity::prelude::*;

    /// The NATS user JWT last issued to an agent (m0027): when it expires
    /// and how it was obtained. One row per agent, written at enrolment
    /// approval, renewal and re-authentication.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "agent_credentials")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub agent_id: String,
        /// Expiry of the latest JWT, ms since the epoch (`None`: no expiry).
        pub jwt_expires_at: Option<i64>,
        /// When the latest JWT was issued, ms since the epoch.
        pub issued_at: i64,
        /// `enrol` (first approval), `renew` (key-signed renewal on the
        /// agent's own connection) or `reauth` (key-signed claim through the
        /// enrolment user after the JWT had expired, or a repeated claim).
        pub issued_via: String,
        /// Renewals answered so far.
        pub renewals: i64,
        /// Re-authentications answered so far.
        pub reauths: i64,
        /// The `at` (ms) of the last renewal request answered: a request
        /// not later than it is a replay and refused.
        pub last_request_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod rootd_box_key {
    use sea_orm::entity::prelude::*;

    /// The rootd box key pinned for one agent (m0026): what the control
    /// plane seals that host's secrets to (`sealing`). Public keys only.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "rootd_box_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub agent_id: String,
        /// The pinned public key, base64 of 32 bytes.
        pub public_key: String,
        /// When it was pinned, ms.
        pub pinned_at: i64,
        /// Who pinned it: `enrolment`, `heartbeat` (first seen), or the
        /// operator who accepted a changed key.
        pub pinned_by: String,
        /// A different key the host reported since (refused: secrets are
        /// still sealed to `public_key` and commands carrying secrets are
        /// refused until an operator accepts it).
        pub offered_key: Option<String>,
        /// When the different key was first reported, ms.
        pub offered_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod agent_inventory {
    use sea_orm::entity::prelude::*;

    /// What operators set on a host (m0030, `inventory.rs`): one row per
    /// agent an operator renamed, labelled, annotated or decommissioned.
    /// The effective values stay on the agent's row (`agents.display_name`,
    /// `agents.labels`), so selectors and pages read them as before; this
    /// row keeps the parts they were made of.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "agent_inventory")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub agent_id: String,
        /// The name an operator gave (`None`: none; the enrolment name or
        /// the host name is shown).
        pub operator_name: Option<String>,
        /// The name the host asked for at enrolment, kept when an operator
        /// first renamed it, so clearing the operator's name restores it.
        pub enrolled_name: Option<String>,
        /// JSON object of the labels operators set (they win over the
        /// agent's own on the same key).
        pub operator_labels: String,
        /// JSON object of the agent's own labels (enrolment claim and
        /// token), kept when an operator first changed labels; `None`: the
        /// agent's row still holds only its own.
        pub agent_labels: Option<String>,
        /// Free text, at most `inventory::MAX_NOTES` characters.
        pub notes: String,
        /// When the host was decommissioned, ms (`None`: in the fleet).
        pub decommissioned_at: Option<i64>,
        /// Who decommissioned it.
        pub decommissioned_by: Option<String>,
        /// Last change, ms, and by whom.
        pub updated_at: i64,
        pub updated_by: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
