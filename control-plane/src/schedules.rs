//! Scheduled jobs: a named cron expression read in an IANA time zone, an
//! action (for now only `pkg.scan`) and a selector. [`tick`] is a periodic
//! duty (the `duties` module, so it runs on the lease holder only): it submits
//! each due schedule's job through `jobs::submit` as the system
//! (`source: system`, `requested_by: schedule:<name>`), records the job or
//! the error, and computes the next run. A run missed while no control
//! plane was up runs once, not once per missed slot. A slot is claimed with
//! a conditional update of `next_run_at`, and its job carries an
//! idempotency key of the slot, so two replicas never both submit it. A
//! slot that comes while the schedule's previous job is still running is
//! skipped (recorded as the last error), so scans never pile up.
//!
//! Owns the schedule rules (checks, next run, CRUD, the tick); not the
//! HTTP routes (`api/schedules.rs`), the page (`ui/schedules.rs`) nor the
//! job machinery (`crate::jobs`).

pub mod entity;

use std::str::FromStr;

use bus_schema::{now_ms, Source};
use chrono::TimeZone;
use croner::parser::{CronParser, Seconds, Year};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, ExprTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::idempotency::Requester;
use crate::jobs::{self, NewJob};
use crate::selector::{Selector, SelectorError};
use crate::state::AppState;
use entity::{ActiveModel, Column, Entity, Model};

/// The actions a schedule may run.
pub const ACTIONS: &[&str] = &["pkg.scan"];

/// How jobs of schedule `name` are requested (`requested_by`).
pub fn requester_name(name: &str) -> String {
    format!("schedule:{name}")
}

/// A new schedule (`POST /api/v1/schedules`).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSchedule {
    pub name: String,
    #[serde(default = "default_action")]
    pub action: String,
    /// A selector as jobs take it (`{"labels": {"env": "prod"}}`) or in the
    /// CLI's text form (`label:env=prod,os:debian`).
    pub selector: Value,
    /// The jobs' params, checked against the action's catalogue entry;
    /// absent: [`default_params`] (`pkg.scan`: `{"refresh": true}`).
    #[serde(default)]
    pub params: Option<Value>,
    pub cron: String,
    pub timezone: String,
    #[serde(default = "yes")]
    pub enabled: bool,
}

/// The params a schedule's jobs get when it names none: a scheduled scan
/// refreshes the package lists first, so it reports what the repositories
/// offer now rather than what the host's own timer last fetched.
pub fn default_params(action: &str) -> Value {
    match action {
        "pkg.scan" => json!({"refresh": true}),
        _ => json!({}),
    }
}

/// The params checked against `action`'s catalogue entry.
fn check_params(action: &str, params: Option<Value>) -> Result<Value, ScheduleError> {
    let params = params.unwrap_or_else(|| default_params(action));
    let spec = bus_schema::catalogue::lookup(action)
        .ok_or_else(|| ScheduleError::Action(action.into()))?;
    spec.validate(&params).map_err(|e| {
        ScheduleError::Params(format!("{e}; `drover actions` shows {action}'s params"))
    })?;
    Ok(params)
}

/// A stored schedule's params ([`default_params`] when it has none).
pub fn params_of(m: &Model) -> Value {
    m.params
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok())
        .unwrap_or_else(|| default_params(&m.action))
}

fn default_action() -> String {
    "pkg.scan".into()
}
fn yes() -> bool {
    true
}

/// A change (`PUT /api/v1/schedules/{id}`): the fields given replace the
/// stored ones.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SchedulePatch {
    pub name: Option<String>,
    pub action: Option<String>,
    /// As in [`NewSchedule::selector`].
    pub selector: Option<Value>,
    /// As in [`NewSchedule::params`].
    pub params: Option<Value>,
    pub cron: Option<String>,
    pub timezone: Option<String>,
    pub enabled: Option<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error(
        "name {0:?} is not valid: use 1 to 64 letters, digits, '.', '_' or '-' (e.g. nightly-scan)"
    )]
    BadName(String),
    #[error("action {0:?} cannot be scheduled; the only schedulable action is pkg.scan")]
    Action(String),
    #[error("selector: {0}")]
    Selector(#[from] SelectorError),
    #[error("params: {0}")]
    Params(String),
    #[error("selector: {0}; write it as jobs take it ({{\"all\": true}}, {{\"labels\": {{\"env\": \"prod\"}}}}) or as text (all, label:env=prod, host:web-*)")]
    SelectorShape(String),
    #[error("cron {cron:?} is not valid ({reason}); write five fields `minute hour day-of-month month day-of-week` (\"0 3 * * *\": 03:00 every day) or six with seconds first (\"*/30 * * * * *\": every 30 seconds)")]
    Cron { cron: String, reason: String },
    #[error("cron {0:?} never fires; write one that matches a real date (\"0 3 * * *\": 03:00 every day)")]
    Never(String),
    #[error("time zone {0:?} is unknown; write an IANA zone name such as Europe/Berlin, America/New_York or UTC")]
    Zone(String),
    #[error("a schedule named {0:?} exists already; choose another name or change that one")]
    Duplicate(String),
    #[error("no schedule {0}; `drover schedules list` shows them")]
    NotFound(String),
    #[error("database: {0}")]
    Db(#[from] DbErr),
}

fn check_name(name: &str) -> Result<(), ScheduleError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(ScheduleError::BadName(name.into()))
    }
}

fn check_action(action: &str) -> Result<(), ScheduleError> {
    if ACTIONS.contains(&action) {
        Ok(())
    } else {
        Err(ScheduleError::Action(action.into()))
    }
}

fn parse_cron(cron: &str) -> Result<croner::Cron, ScheduleError> {
    let fields = cron.split_whitespace().count();
    if !(5..=6).contains(&fields) {
        return Err(ScheduleError::Cron {
            cron: cron.into(),
            reason: format!("{fields} fields"),
        });
    }
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(cron)
        .map_err(|e| ScheduleError::Cron {
            cron: cron.into(),
            reason: e.to_string(),
        })
}

/// A selector from its JSON object or its text form, checked.
pub fn selector_of(v: &Value) -> Result<Selector, ScheduleError> {
    let sel = match v {
        Value::String(t) => Selector::parse(t)?,
        other => serde_json::from_value::<Selector>(other.clone())
            .map_err(|e| ScheduleError::SelectorShape(e.to_string()))?,
    };
    sel.check()?;
    Ok(sel)
}

fn parse_zone(tz: &str) -> Result<chrono_tz::Tz, ScheduleError> {
    chrono_tz::Tz::from_str(tz).map_err(|_| ScheduleError::Zone(tz.into()))
}

/// The first time `cron` fires in zone `tz` strictly after `after_ms`
/// (milliseconds since the epoch), checked as [`NewSchedule`]'s fields are.
pub fn next_after(cron: &str, tz: &str, after_ms: i64) -> Result<i64, ScheduleError> {
    let c = parse_cron(cron)?;
    let zone = parse_zone(tz)?;
    let after = chrono::Utc
        .timestamp_millis_opt(after_ms)
        .single()
        .ok_or_else(|| ScheduleError::Never(cron.into()))?
        .with_timezone(&zone);
    c.find_next_occurrence(&after, false)
        .map(|t| t.timestamp_millis())
        .map_err(|_| ScheduleError::Never(cron.into()))
}

/// A schedule as the API shows it: the row with `selector` as JSON.
pub fn to_json(m: &Model) -> Value {
    json!({
        "id": m.id,
        "name": m.name,
        "action": m.action,
        "selector": serde_json::from_str::<Value>(&m.selector).unwrap_or(Value::Null),
        "params": params_of(m),
        "cron": m.cron,
        "timezone": m.timezone,
        "enabled": m.enabled,
        "last_run_at": m.last_run_at,
        "next_run_at": m.next_run_at,
        "last_job_id": m.last_job_id,
        "last_error": m.last_error,
        "requested_as": requester_name(&m.name),
        "created_by": m.created_by,
        "created_at": m.created_at,
        "updated_at": m.updated_at,
    })
}

/// Every schedule, by name.
pub async fn list(state: &AppState) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .order_by_asc(Column::Name)
        .all(&state.db)
        .await
}

/// One schedule by id or name.
pub async fn find(state: &AppState, id_or_name: &str) -> Result<Model, ScheduleError> {
    Entity::find()
        .filter(Column::Id.eq(id_or_name).or(Column::Name.eq(id_or_name)))
        .one(&state.db)
        .await?
        .ok_or_else(|| ScheduleError::NotFound(id_or_name.into()))
}

async fn name_taken(state: &AppState, name: &str, not_id: &str) -> Result<bool, DbErr> {
    Ok(Entity::find()
        .filter(Column::Name.eq(name))
        .filter(Column::Id.ne(not_id))
        .select_only()
        .column(Column::Id)
        .into_tuple::<String>()
        .one(&state.db)
        .await?
        .is_some())
}

/// Checks and stores a new schedule; its first run is the cron's next time.
pub async fn create(state: &AppState, req: NewSchedule, by: &str) -> Result<Model, ScheduleError> {
    check_name(&req.name)?;
    check_action(&req.action)?;
    let selector = selector_of(&req.selector)?;
    let params = check_params(&req.action, req.params)?;
    let now = now_ms();
    let next = next_after(&req.cron, &req.timezone, now)?;
    if name_taken(state, &req.name, "").await? {
        return Err(ScheduleError::Duplicate(req.name));
    }
    let row = ActiveModel {
        id: Set(uuid::Uuid::now_v7().simple().to_string()),
        name: Set(req.name.clone()),
        action: Set(req.action),
        selector: Set(serde_json::to_string(&selector).unwrap_or_default()),
        params: Set(Some(params.to_string())),
        cron: Set(req.cron.trim().to_string()),
        timezone: Set(req.timezone),
        enabled: Set(req.enabled),
        last_run_at: Set(None),
        next_run_at: Set(req.enabled.then_some(next)),
        last_job_id: Set(None),
        last_error: Set(None),
        created_by: Set(by.into()),
        created_at: Set(now),
        updated_at: Set(now),
    };
    // The unique index decides a race between two creations of one name.
    match Entity::insert(row).exec_with_returning(&state.db).await {
        Ok(m) => Ok(m),
        Err(_) if name_taken(state, &req.name, "").await? => {
            Err(ScheduleError::Duplicate(req.name))
        }
        Err(e) => Err(e.into()),
    }
}

/// Applies a change; a new cron, zone or enabling recomputes the next run
/// from now, disabling clears it.
pub async fn update(state: &AppState, id: &str, p: SchedulePatch) -> Result<Model, ScheduleError> {
    let cur = find(state, id).await?;
    let name = p.name.unwrap_or(cur.name.clone());
    let action = p.action.unwrap_or(cur.action.clone());
    let cron = p
        .cron
        .map(|c| c.trim().to_string())
        .unwrap_or(cur.cron.clone());
    let timezone = p.timezone.unwrap_or(cur.timezone.clone());
    let enabled = p.enabled.unwrap_or(cur.enabled);
    check_name(&name)?;
    check_action(&action)?;
    let selector = p.selector.as_ref().map(selector_of).transpose()?;
    let params = match (p.params, action != cur.action) {
        (Some(v), _) => Some(check_params(&action, Some(v))?),
        (None, true) => Some(check_params(&action, None)?),
        (None, false) => None,
    };
    let now = now_ms();
    let next = next_after(&cron, &timezone, now)?;
    if name != cur.name && name_taken(state, &name, &cur.id).await? {
        return Err(ScheduleError::Duplicate(name));
    }
    let timing_changed = cron != cur.cron || timezone != cur.timezone || enabled != cur.enabled;
    let mut row: ActiveModel = cur.clone().into();
    row.name = Set(name);
    row.action = Set(action);
    if let Some(s) = selector {
        row.selector = Set(serde_json::to_string(&s).unwrap_or_default());
    }
    if let Some(p) = params {
        row.params = Set(Some(p.to_string()));
    }
    row.cron = Set(cron);
    row.timezone = Set(timezone);
    row.enabled = Set(enabled);
    if !enabled {
        row.next_run_at = Set(None);
    } else if timing_changed || cur.next_run_at.is_none() {
        row.next_run_at = Set(Some(next));
    }
    row.updated_at = Set(now);
    Ok(row.update(&state.db).await?)
}

/// Removes a schedule (its jobs stay).
pub async fn delete(state: &AppState, id: &str) -> Result<Model, ScheduleError> {
    let cur = find(state, id).await?;
    Entity::delete_by_id(cur.id.clone()).exec(&state.db).await?;
    Ok(cur)
}

/// The periodic duty: submits every enabled schedule whose next run is due
/// at `now_ms` (milliseconds since the epoch). One schedule's failure is
/// recorded on it and does not stop the others.
pub async fn tick(state: &AppState, now_ms: i64) -> anyhow::Result<()> {
    let due = Entity::find()
        .filter(Column::Enabled.eq(true))
        .filter(Column::NextRunAt.lte(now_ms))
        .order_by_asc(Column::NextRunAt)
        .limit(100)
        .all(&state.db)
        .await?;
    for s in due {
        if let Err(e) = run_due(state, &s, now_ms).await {
            tracing::warn!(schedule = %s.name, error = %e, "scheduled run");
        }
    }
    Ok(())
}

/// Claims the due slot of `s`, then submits its job and records it.
async fn run_due(state: &AppState, s: &Model, now: i64) -> anyhow::Result<()> {
    let Some(slot) = s.next_run_at else {
        return Ok(());
    };
    // After now, not after the slot: missed slots collapse into this run.
    let next = next_after(&s.cron, &s.timezone, now).ok();
    let claimed = Entity::update_many()
        .col_expr(Column::NextRunAt, Expr::value(next))
        .col_expr(Column::LastRunAt, Expr::value(now))
        .filter(Column::Id.eq(s.id.clone()))
        .filter(Column::NextRunAt.eq(slot))
        .filter(Column::Enabled.eq(true))
        .exec(&state.db)
        .await?
        .rows_affected
        == 1;
    if !claimed {
        // Another replica (or a change) got there first.
        return Ok(());
    }
    let busy = match &s.last_job_id {
        Some(j) => still_running(state, j).await?,
        None => false,
    };
    let outcome = match serde_json::from_str::<Selector>(&s.selector) {
        // A scan that outlasts its interval is not run twice at once (two
        // refreshes would fight for the package manager's lock).
        Ok(_) if busy => Err(format!(
            "skipped a run: the previous job {} is still running",
            s.last_job_id.as_deref().unwrap_or_default()
        )),
        Ok(selector) => {
            let req = NewJob {
                selector,
                action: s.action.clone(),
                params: params_of(s),
                timeout_secs: None,
                ttl_secs: None,
                idempotency_key: Some(format!("schedule-{}-{slot}", s.id)),
            };
            let who = Requester {
                name: requester_name(&s.name),
                scope: format!("schedule:{}", s.id),
            };
            jobs::submit(state, req, &who, Source::System)
                .await
                .map(|(j, _)| j.id)
                .map_err(|e| e.to_string())
        }
        Err(e) => Err(format!("stored selector unreadable: {e}")),
    };
    let mut row = ActiveModel {
        id: Set(s.id.clone()),
        ..Default::default()
    };
    match &outcome {
        Ok(job) => {
            tracing::info!(schedule = %s.name, job = %job, "scheduled job submitted");
            row.last_job_id = Set(Some(job.clone()));
            row.last_error = Set(None);
        }
        Err(e) => {
            tracing::warn!(schedule = %s.name, error = %e, "scheduled job not submitted");
            row.last_error = Set(Some(e.clone()));
        }
    }
    Entity::update_many()
        .set(row)
        .filter(Column::Id.eq(s.id.clone()))
        .exec(&state.db)
        .await?;
    Ok(())
}

/// Whether job `id` still has a command that has not ended.
async fn still_running(state: &AppState, id: &str) -> Result<bool, DbErr> {
    use crate::db::entities::command;
    Ok(command::Entity::find()
        .filter(command::Column::JobId.eq(id))
        .filter(command::Column::Status.is_in(crate::ledger::OPEN))
        .count(&state.db)
        .await?
        > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-07-01 00:00:00 UTC (Berlin is UTC+2 then).
    const SUMMER: i64 = 1_782_864_000_000;
    /// 2026-01-15 00:00:00 UTC (Berlin is UTC+1 then).
    const WINTER: i64 = 1_768_435_200_000;

    #[test]
    fn five_fields_are_read_in_the_zone() {
        let h = 3_600_000;
        assert_eq!(
            next_after("0 3 * * *", "Europe/Berlin", SUMMER).unwrap(),
            SUMMER + h
        );
        assert_eq!(
            next_after("0 3 * * *", "Europe/Berlin", WINTER).unwrap(),
            WINTER + 2 * h
        );
        assert_eq!(
            next_after("0 3 * * *", "UTC", WINTER).unwrap(),
            WINTER + 3 * h
        );
    }

    #[test]
    fn six_fields_have_seconds_first_and_next_is_strictly_after() {
        assert_eq!(
            next_after("*/5 * * * * *", "Europe/Berlin", SUMMER).unwrap(),
            SUMMER + 5_000
        );
        assert_eq!(
            next_after("*/5 * * * * *", "UTC", SUMMER + 1).unwrap(),
            SUMMER + 5_000
        );
    }

    #[test]
    fn bad_cron_and_zones_say_what_to_write() {
        for bad in [
            "",
            "* * *",
            "* * * * * * *",
            "61 * * * *",
            "* * * * mon-xyz",
        ] {
            let e = next_after(bad, "UTC", SUMMER).unwrap_err().to_string();
            assert!(e.contains("five fields"), "{bad}: {e}");
        }
        let e = next_after("0 0 30 2 *", "UTC", SUMMER)
            .unwrap_err()
            .to_string();
        assert!(e.contains("never fires"), "{e}");
        let e = next_after("0 3 * * *", "Europe/Nowhere", SUMMER)
            .unwrap_err()
            .to_string();
        assert!(e.contains("IANA"), "{e}");
    }

    #[test]
    fn names_and_actions_are_checked() {
        assert!(check_name("nightly-scan.v2_a").is_ok());
        for bad in ["", "a b", "x;y", &"n".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(check_action("pkg.scan").is_ok());
        let e = check_action("pkg.install").unwrap_err().to_string();
        assert!(e.contains("only schedulable action is pkg.scan"), "{e}");
    }

    #[test]
    fn selectors_come_as_json_or_text() {
        let a = selector_of(&json!("label:env=prod")).unwrap();
        let b = selector_of(&json!({"labels": {"env": "prod"}})).unwrap();
        assert_eq!(a, b);
        assert!(selector_of(&json!({})).is_err());
        let e = selector_of(&json!({"bogus": 1})).unwrap_err().to_string();
        assert!(e.contains("write it as jobs take it"), "{e}");
    }
}
