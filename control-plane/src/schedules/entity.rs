//! The `schedules` table (migration m0014): one scheduled job each. Times
//! are milliseconds since the epoch. Owns the row's shape only; the rules
//! for writing it are in `crate::schedules`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "schedules")]
pub struct Model {
    /// UUIDv7, hyphen-free.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Unique; jobs it submits are requested by `schedule:<name>`.
    pub name: String,
    /// The job's action; for now only `pkg.scan`.
    pub action: String,
    /// The JSON of [`crate::selector::Selector`].
    pub selector: String,
    /// The jobs' params (JSON); `None`: [`crate::schedules::default_params`]
    /// (m0017).
    pub params: Option<String>,
    /// Five fields (minute hour day-of-month month day-of-week) or six with
    /// seconds first.
    pub cron: String,
    /// IANA time zone the cron expression is read in (`Europe/Berlin`).
    pub timezone: String,
    pub enabled: bool,
    /// When the scheduler last submitted (or tried to submit) its job.
    pub last_run_at: Option<i64>,
    /// When the job is next due; `None` while disabled.
    pub next_run_at: Option<i64>,
    /// The job of the last run; `None` until a run made one.
    pub last_job_id: Option<String>,
    /// Why the last run made no job; `None` after a successful run.
    pub last_error: Option<String>,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
