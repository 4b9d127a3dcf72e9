//! The patch-management tables as sea-orm entities (schema: migration
//! `db::m0013_patch`). Owns what each column means; the rules for writing
//! them live in `updates::inventory` (scan results), `updates::approvals`
//! (approvals and rules) and the `windows` module (windows, runs, history).
//! Times are milliseconds since the epoch; selectors are the JSON of
//! [`crate::selector::Selector`]; lists are JSON arrays of strings.

/// One upgradable package on one host, as its latest successful
/// `pkg.scan` listed it. A later scan that no longer lists it removes it.
pub mod inventory {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "update_inventory")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub agent_id: String,
        /// The package's name as the package manager spells it.
        #[sea_orm(primary_key, auto_increment = false)]
        pub package: String,
        /// `amd64`, `x86_64`, `noarch`...; empty when not reported.
        pub arch: String,
        /// Installed version, with its epoch when it has one.
        pub current_version: String,
        /// The version an upgrade would install.
        pub candidate_version: String,
        /// Where the candidate comes from: apt `Origin:Version/Suite`
        /// entries, dnf repository id; several joined with ", ".
        pub origin: String,
        /// A security update: a `-security` suite / `Debian-Security` origin
        /// on apt, a security advisory on dnf.
        pub security: bool,
        /// The advisory's severity where the package manager gives one
        /// (dnf: `Critical`, `Important`, `Moderate`, `Low`).
        pub severity: Option<String>,
        /// JSON array of advisory ids (`RHSA-2024:1234`, `DSA-5678-1`).
        pub advisories: String,
        /// On hold on the host: an upgrade leaves it alone.
        pub held: bool,
        /// The first scan that listed this package at any candidate version.
        pub first_seen: i64,
        /// The latest scan that listed it.
        pub last_seen: i64,
        /// The `pkg.scan` command whose result wrote this row last.
        pub scan_command_id: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// One host's patch state: its last scan and whether it needs a reboot.
pub mod host_state {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "host_patch_state")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub agent_id: String,
        /// `apt` or `dnf`.
        pub manager: String,
        /// When the latest scan finished (its command's `finished_at`).
        pub last_scan_at: Option<i64>,
        pub last_scan_command: Option<String>,
        /// `succeeded` or `failed`.
        pub last_scan_status: Option<String>,
        /// The failed scan's summary; `None` after a successful one.
        pub last_scan_error: Option<String>,
        /// Counts of the host's inventory rows, kept with them.
        pub upgradable: i32,
        pub security: i32,
        /// `/run/reboot-required` exists (apt) or `needs-restarting -r`
        /// said so (dnf), at the last scan.
        pub reboot_required: bool,
        /// JSON array: the packages that asked for the reboot
        /// (`/run/reboot-required.pkgs`); may be empty.
        pub reboot_packages: String,
        /// The first scan that found a reboot required, until one is not.
        pub reboot_since: Option<i64>,
        pub updated_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// An operator's decision on updates for the hosts a selector matches.
pub mod approval {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "approvals")]
    pub struct Model {
        /// UUIDv7, hyphen-free.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// `approve` or `decline`. A decline wins over any approval.
        pub decision: String,
        /// `package` (one package, `package` set, `version` optional:
        /// any candidate when `None`) or `security` (every security update).
        pub scope: String,
        pub package: Option<String>,
        pub version: Option<String>,
        /// JSON of the selector whose hosts it covers.
        pub selector: String,
        pub note: String,
        pub created_by: String,
        pub created_at: i64,
        /// After this it covers nothing; `None`: never expires.
        pub expires_at: Option<i64>,
        /// Revoked before it ran out; covers nothing since.
        pub revoked_at: Option<i64>,
        pub revoked_by: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// An auto-approval rule: updates of `scope` on the selector's hosts are
/// approved once they have been in the inventory for `delay_days`.
pub mod approval_rule {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "approval_rules")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// Unique; what history shows as `rule:<name>`.
        pub name: String,
        /// `security` or `all`.
        pub scope: String,
        pub selector: String,
        /// Days since the update's `first_seen`; 0: at once.
        pub delay_days: i32,
        pub enabled: bool,
        pub created_by: String,
        pub created_at: i64,
        pub updated_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A recurring maintenance window: when approved updates may be installed
/// on the selector's hosts, and how.
pub mod window {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "maintenance_windows")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// Unique.
        pub name: String,
        pub selector: String,
        /// JSON array of days the window opens on: `mon` … `sun`.
        pub days: String,
        /// `HH:MM`, local time in `timezone`.
        pub start_time: String,
        pub duration_minutes: i32,
        /// IANA name (`Europe/Berlin`, `UTC`).
        pub timezone: String,
        /// Batch size: at most this many hosts at once...
        pub max_hosts: Option<i32>,
        /// ...or this percentage (1–100) of the run's hosts, rounded up.
        pub max_percent: Option<i32>,
        /// The run halts when more hosts than this have failed; `None`:
        /// never halts.
        pub max_failures: Option<i32>,
        /// `never` or `if_required` (reboot hosts whose scan says so).
        pub reboot: String,
        /// Minutes a rebooted host has to come back before it is reported.
        pub reboot_deadline_minutes: i32,
        pub enabled: bool,
        pub created_by: String,
        pub created_at: i64,
        pub updated_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// One occurrence of a window, as it ran.
pub mod run {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "patch_runs")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub window_id: String,
        /// The occurrence's opening and closing instants; unique with
        /// `window_id`.
        pub occurrence_start: i64,
        pub occurrence_end: i64,
        /// `running`, `completed`, `halted` (failures passed the threshold)
        /// or `aborted` (by an operator).
        pub status: String,
        pub started_at: i64,
        pub finished_at: Option<i64>,
        pub hosts_total: i32,
        pub hosts_succeeded: i32,
        pub hosts_failed: i32,
        /// Offline when their turn came: they wait for the next occurrence.
        pub hosts_deferred: i32,
        pub halted_reason: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// One host's part in a run.
pub mod run_host {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "patch_run_hosts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub run_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub agent_id: String,
        /// 0-based batch number.
        pub batch: i32,
        /// `pending`, `installing`, `installed`, `failed`, `deferred`,
        /// `rebooting`, `rebooted`, `reboot_failed`.
        pub status: String,
        pub install_command_id: Option<String>,
        /// The `pkg.scan` issued after the install (m0016); while it is set
        /// and the status is `installing`, the runner waits for its result
        /// to decide on a reboot.
        pub scan_command_id: Option<String>,
        pub reboot_command_id: Option<String>,
        /// The host's boot id when the reboot was asked for; a heartbeat
        /// with another one proves it came back.
        pub boot_id_before: Option<String>,
        pub reboot_started_at: Option<i64>,
        pub returned_at: Option<i64>,
        pub message: String,
        pub updated_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// One install attempt of one package on one host.
pub mod history {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "patch_history")]
    pub struct Model {
        /// UUIDv7, hyphen-free.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub agent_id: String,
        /// The host's name at the time.
        pub hostname: String,
        pub package: String,
        pub version_before: String,
        /// As the package manager reported after the install; `None` when
        /// it did not get that far.
        pub version_after: Option<String>,
        /// The version that was approved and asked for.
        pub candidate: String,
        /// `installing` from when the install is issued until its result
        /// is in, then `installed` or `failed`.
        pub status: String,
        pub exit_code: Option<i32>,
        /// The install's summary and output tail, bounded.
        pub output: String,
        /// User name, or `rule:<name>`.
        pub approved_by: String,
        pub approval_id: Option<String>,
        pub rule_id: Option<String>,
        pub window_id: Option<String>,
        pub run_id: Option<String>,
        pub command_id: Option<String>,
        pub at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
