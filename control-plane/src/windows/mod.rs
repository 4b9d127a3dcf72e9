//! Maintenance windows: when approved updates may be installed on which
//! hosts, and how (batch size, failure threshold, reboots). Owns checking,
//! storing and showing windows; the occurrence math is in [`schedule`],
//! installing inside an open window in [`runner`] (reboots in [`reboots`],
//! who takes part in [`late`]),
//! runs as the API shows them in [`runs`], the install history in
//! [`history`]. Does not own which updates are approved
//! (`crate::updates::approvals`) or scanning hosts.

pub mod history;
pub mod late;
pub mod reboots;
pub mod runner;
pub mod runs;
pub mod schedule;

use bus_schema::now_ms;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait};
use sea_orm::{ExprTrait, QueryFilter, QueryOrder};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::selector::Selector;
use crate::updates::entities::window;
pub use schedule::{Occurrence, Schedule, ScheduleError};

/// Minutes a rebooted host has to come back when the window does not say.
pub const DEFAULT_REBOOT_DEADLINE_MINUTES: i32 = 15;

/// A selector as the API takes it: the JSON jobs take (`{"all": true}`) or
/// the text form (`label:env=prod`).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum SelectorInput {
    Json(Selector),
    Text(String),
}

impl SelectorInput {
    fn resolve(self) -> Result<Selector, WindowError> {
        let s = match self {
            Self::Json(s) => s,
            Self::Text(t) => {
                Selector::parse(&t).map_err(|e| WindowError::Invalid(format!("selector: {e}")))?
            }
        };
        s.check()
            .map_err(|e| WindowError::Invalid(format!("selector: {e}")))?;
        Ok(s)
    }
}

fn never() -> String {
    "never".into()
}

/// The body of `POST /api/v1/windows` and `PUT /api/v1/windows/{id}`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowInput {
    /// 1..=64 printable characters, unique.
    pub name: String,
    pub selector: SelectorInput,
    /// `mon` … `sun`.
    pub days: Vec<String>,
    /// `HH:MM` in `timezone`.
    pub start: String,
    /// 1..=1440.
    pub duration_minutes: i64,
    /// IANA name.
    pub timezone: String,
    #[serde(default)]
    pub max_hosts: Option<i64>,
    #[serde(default)]
    pub max_percent: Option<i64>,
    #[serde(default)]
    pub max_failures: Option<i64>,
    /// `never` (the default) or `if_required`.
    #[serde(default = "never")]
    pub reboot: String,
    /// 1..=1440; default [`DEFAULT_REBOOT_DEADLINE_MINUTES`].
    #[serde(default)]
    pub reboot_deadline_minutes: Option<i64>,
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// Why a window was not stored or found.
#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    /// A field is wrong; the text names it and says what to write.
    #[error("{0}")]
    Invalid(String),
    #[error("no maintenance window {0}; list them with `drover windows list`")]
    NotFound(String),
    #[error("a maintenance window named {0:?} exists already; choose another name")]
    NameTaken(String),
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
}

/// The checked fields of a window.
struct Checked {
    name: String,
    selector: Selector,
    schedule: Schedule,
    start: String,
    input: WindowInput,
}

fn check(input: WindowInput) -> Result<Checked, WindowError> {
    let bad = |m: &str| Err(WindowError::Invalid(m.to_string()));
    let name = input.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return bad("name: use 1 to 64 printable characters");
    }
    let selector = input.selector.clone().resolve()?;
    let schedule = Schedule::parse(
        &input.days,
        &input.start,
        input.duration_minutes,
        &input.timezone,
    )
    .map_err(|e| WindowError::Invalid(e.to_string()))?;
    if input.max_hosts.is_some_and(|n| !(1..=100_000).contains(&n)) {
        return bad("max_hosts must be 1 or more (hosts installing at once)");
    }
    if input.max_percent.is_some_and(|n| !(1..=100).contains(&n)) {
        return bad("max_percent must be from 1 to 100 (percent of the run's hosts at once)");
    }
    if input.max_hosts.is_some() && input.max_percent.is_some() {
        return bad("give max_hosts or max_percent, not both");
    }
    if input
        .max_failures
        .is_some_and(|n| !(0..=100_000).contains(&n))
    {
        return bad("max_failures must be 0 or more (failed hosts a run tolerates)");
    }
    if !["never", "if_required"].contains(&input.reboot.as_str()) {
        return bad("reboot must be never or if_required");
    }
    if input
        .reboot_deadline_minutes
        .is_some_and(|n| !(1..=1440).contains(&n))
    {
        return bad("reboot_deadline_minutes must be from 1 to 1440");
    }
    Ok(Checked {
        name,
        selector,
        start: input.start.trim().to_string(),
        schedule,
        input,
    })
}

async fn name_taken(
    db: &DatabaseConnection,
    name: &str,
    except: Option<&str>,
) -> Result<bool, sea_orm::DbErr> {
    let mut q = window::Entity::find().filter(window::Column::Name.eq(name));
    if let Some(id) = except {
        q = q.filter(window::Column::Id.ne(id));
    }
    Ok(q.one(db).await?.is_some())
}

fn fill(m: &mut window::ActiveModel, c: Checked, now: i64) {
    m.name = Set(c.name);
    m.selector = Set(serde_json::to_string(&c.selector).unwrap_or_default());
    m.days = Set(serde_json::to_string(&c.schedule.days()).unwrap_or_default());
    m.start_time = Set(c.start);
    m.duration_minutes = Set(c.input.duration_minutes as i32);
    m.timezone = Set(c.input.timezone.trim().to_string());
    m.max_hosts = Set(c.input.max_hosts.map(|n| n as i32));
    m.max_percent = Set(c.input.max_percent.map(|n| n as i32));
    m.max_failures = Set(c.input.max_failures.map(|n| n as i32));
    m.reboot = Set(c.input.reboot);
    m.reboot_deadline_minutes = Set(c
        .input
        .reboot_deadline_minutes
        .map(|n| n as i32)
        .unwrap_or(DEFAULT_REBOOT_DEADLINE_MINUTES));
    m.enabled = Set(c.input.enabled.unwrap_or(true));
    m.updated_at = Set(now);
}

/// Stores a new window; `who` is the creating user.
pub async fn create(
    db: &DatabaseConnection,
    input: WindowInput,
    who: &str,
) -> Result<window::Model, WindowError> {
    let c = check(input)?;
    if name_taken(db, &c.name, None).await? {
        return Err(WindowError::NameTaken(c.name));
    }
    let now = now_ms();
    let mut m = window::ActiveModel {
        id: Set(uuid::Uuid::now_v7().simple().to_string()),
        created_by: Set(who.to_string()),
        created_at: Set(now),
        ..Default::default()
    };
    fill(&mut m, c, now);
    Ok(m.insert(db).await?)
}

/// Replaces a window's settings (runs already made keep theirs).
pub async fn update(
    db: &DatabaseConnection,
    id: &str,
    input: WindowInput,
) -> Result<window::Model, WindowError> {
    let old = get(db, id).await?;
    let c = check(input)?;
    if name_taken(db, &c.name, Some(&old.id)).await? {
        return Err(WindowError::NameTaken(c.name));
    }
    let mut m: window::ActiveModel = old.into();
    fill(&mut m, c, now_ms());
    Ok(m.update(db).await?)
}

/// Removes a window; its runs and history stay.
pub async fn delete(db: &DatabaseConnection, id: &str) -> Result<window::Model, WindowError> {
    let w = get(db, id).await?;
    window::Entity::delete_by_id(w.id.clone()).exec(db).await?;
    Ok(w)
}

/// One window by id or name.
pub async fn get(db: &DatabaseConnection, id: &str) -> Result<window::Model, WindowError> {
    window::Entity::find()
        .filter(window::Column::Id.eq(id).or(window::Column::Name.eq(id)))
        .one(db)
        .await?
        .ok_or_else(|| WindowError::NotFound(id.to_string()))
}

/// Every window, by name.
pub async fn list(db: &DatabaseConnection) -> Result<Vec<window::Model>, sea_orm::DbErr> {
    window::Entity::find()
        .order_by_asc(window::Column::Name)
        .all(db)
        .await
}

/// A stored window's schedule (`None` when a stored field no longer parses,
/// e.g. a time zone the build no longer knows: such a window never opens).
pub fn schedule_of(w: &window::Model) -> Option<Schedule> {
    let days: Vec<String> = serde_json::from_str(&w.days).ok()?;
    Schedule::parse(&days, &w.start_time, w.duration_minutes as i64, &w.timezone).ok()
}

fn occ_json(o: Option<Occurrence>) -> Value {
    match o {
        Some(o) => json!({ "start": o.start_ms, "end": o.end_ms }),
        None => Value::Null,
    }
}

/// A window as the API shows it, with `open_now`, `current_occurrence` and
/// `next_occurrence` (`{"start", "end"}` in ms, or null) at `now_ms`.
pub fn view(w: &window::Model, now_ms: i64) -> Value {
    let s = schedule_of(w);
    let current = s.as_ref().and_then(|s| s.open_at(now_ms));
    let next = s.as_ref().and_then(|s| s.next_after(now_ms));
    json!({
        "id": w.id,
        "name": w.name,
        "selector": serde_json::from_str::<Value>(&w.selector).unwrap_or(Value::Null),
        "days": serde_json::from_str::<Value>(&w.days).unwrap_or(Value::Null),
        "start": w.start_time,
        "duration_minutes": w.duration_minutes,
        "timezone": w.timezone,
        "max_hosts": w.max_hosts,
        "max_percent": w.max_percent,
        "max_failures": w.max_failures,
        "reboot": w.reboot,
        "reboot_deadline_minutes": w.reboot_deadline_minutes,
        "enabled": w.enabled,
        "created_by": w.created_by,
        "created_at": w.created_at,
        "updated_at": w.updated_at,
        "open_now": w.enabled && current.is_some(),
        "current_occurrence": occ_json(current),
        "next_occurrence": occ_json(next),
    })
}

/// The audit trail's description of a successful change to windows or runs
/// (called by `auth::describe` for `/api/v1/windows…` routes): action,
/// target and the settings asked for.
pub fn describe(
    method: &str,
    template: &str,
    id: &str,
    req: &Value,
    resp: &Value,
) -> Option<(String, String, Value)> {
    let settings = || {
        json!({
            "name": req["name"], "selector": req["selector"], "days": req["days"],
            "start": req["start"], "duration_minutes": req["duration_minutes"],
            "timezone": req["timezone"], "max_hosts": req["max_hosts"],
            "max_percent": req["max_percent"], "max_failures": req["max_failures"],
            "reboot": req["reboot"], "reboot_deadline_minutes": req["reboot_deadline_minutes"],
            "enabled": req["enabled"],
        })
    };
    let id = id.to_string();
    Some(match (method, template) {
        ("POST", "/api/v1/windows") => (
            "window.create".into(),
            resp["id"].as_str().unwrap_or_default().to_string(),
            settings(),
        ),
        ("PUT", "/api/v1/windows/{id}") => ("window.update".into(), id, settings()),
        ("DELETE", "/api/v1/windows/{id}") => {
            ("window.delete".into(), id, json!({ "name": resp["name"] }))
        }
        ("POST", "/api/v1/windows/runs/{run_id}/abort") => (
            "window_run.abort".into(),
            id,
            json!({ "window_id": resp["window_id"] }),
        ),
        _ => return None,
    })
}
