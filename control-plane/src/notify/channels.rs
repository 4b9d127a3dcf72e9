//! Notification channels: what an operator may configure (checked before
//! anything is stored), creating, changing, listing and removing them.
//!
//! Owns channel settings and their validation; not how they are shown
//! (`notify::views`), routing decisions (`notify::route`) nor sending
//! (`notify::send`).

use bus_schema::now_ms;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::model::{channel, delivery, item};
use super::seal;
use crate::config::Config;

/// Why a channel was refused or not found.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// Bad input: the message says what to fix. Nothing was stored.
    #[error("{0}")]
    Invalid(String),
    #[error("no notification channel {0}; `drover notify channels list` shows them")]
    NotFound(String),
    #[error(
        "a notification channel named {0:?} exists already; pick another name or change that one"
    )]
    NameTaken(String),
    #[error(transparent)]
    Seal(#[from] seal::SealError),
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

fn invalid(m: impl Into<String>) -> ChannelError {
    ChannelError::Invalid(m.into())
}

/// Quiet hours as given: `"HH:MM"` local times in `timezone` (IANA, default
/// `UTC`). Start after end spans midnight.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    /// Both empty: no quiet hours (what an unfilled form sends).
    #[serde(default)]
    pub start: String,
    #[serde(default)]
    pub end: String,
    #[serde(default)]
    pub timezone: Option<String>,
    /// `critical` notifications are sent during quiet hours too.
    #[serde(default)]
    pub bypass_critical: bool,
}

/// The body of `POST /api/v1/notify/channels` and `PUT .../{id}`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelInput {
    pub name: String,
    /// `webhook`, `email`, `bus`.
    pub kind: String,
    /// By kind (see [`channel::Model::config`]).
    #[serde(default)]
    pub config: Value,
    /// Webhook HMAC key or SMTP password. On `PUT`: absent keeps the
    /// stored one, `""` removes it.
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub min_severity: Option<String>,
    #[serde(default)]
    pub rule_ids: Vec<String>,
    #[serde(default)]
    pub matchers: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub quiet_hours: Option<QuietHours>,
    /// 0..=3600 seconds.
    #[serde(default)]
    pub group_secs: i64,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

pub const SEVERITIES: [&str; 3] = ["info", "warning", "critical"];

/// The rank of a severity (unknown: below `info`).
pub fn severity_rank(s: &str) -> i32 {
    SEVERITIES
        .iter()
        .position(|x| *x == s)
        .map_or(-1, |p| p as i32)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookConfig {
    url: String,
    #[serde(default)]
    format: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailConfig {
    host: String,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    tls: Option<String>,
    from: String,
    #[serde(default)]
    to: Vec<String>,
    #[serde(default)]
    username: Option<String>,
}

/// `"HH:MM"` as a minute of the day.
fn minute_of_day(s: &str, what: &str) -> Result<i32, ChannelError> {
    let bad = || {
        invalid(format!(
            "quiet_hours.{what} {s:?} is not a time of day as HH:MM (e.g. 22:00)"
        ))
    };
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    let (h, m): (i32, i32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if !(0..24).contains(&h) || !(0..60).contains(&m) || s.len() != 5 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// The checked config JSON of a channel of `kind`.
fn check_config(kind: &str, config: &Value, has_secret: bool) -> Result<Value, ChannelError> {
    let config = if config.is_null() {
        json!({})
    } else {
        config.clone()
    };
    match kind {
        "webhook" => {
            let c: WebhookConfig = serde_json::from_value(config)
                .map_err(|e| invalid(format!("webhook config: {e} (expected {{\"url\": \"https://...\", \"format\": \"json|slack|teams\"}})")))?;
            let url = reqwest::Url::parse(c.url.trim())
                .map_err(|e| invalid(format!("webhook url {:?} is not a URL: {e}", c.url)))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(invalid(format!(
                    "webhook url scheme {:?} is not allowed: use http:// or https://",
                    url.scheme()
                )));
            }
            if url.host_str().unwrap_or("").is_empty() {
                return Err(invalid("webhook url has no host"));
            }
            if !url.username().is_empty() || url.password().is_some() {
                return Err(invalid("webhook url must not carry credentials; use the channel's secret (HMAC) instead"));
            }
            let format = c
                .format
                .filter(|f| !f.is_empty())
                .unwrap_or_else(|| "json".into());
            if !["json", "slack", "teams"].contains(&format.as_str()) {
                return Err(invalid(format!(
                    "webhook format {format:?}: use json, slack or teams"
                )));
            }
            Ok(json!({"url": url.as_str(), "format": format}))
        }
        "email" => {
            let c: EmailConfig = serde_json::from_value(config).map_err(|e| {
                invalid(format!(
                    "email config: {e} (expected host, port, tls, from, to, username)"
                ))
            })?;
            let host = c.host.trim();
            if host.is_empty() || host.chars().any(|ch| ch.is_whitespace() || ch.is_control()) {
                return Err(invalid("email host must be a host name or address"));
            }
            let tls = c
                .tls
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| "starttls".into());
            let username = c.username.filter(|u| !u.trim().is_empty());
            let default_port = match tls.as_str() {
                "starttls" => 587,
                "tls" => 465,
                "none" => 25,
                other => {
                    return Err(invalid(format!(
                        "email tls {other:?}: use starttls, tls or none"
                    )))
                }
            };
            c.from
                .parse::<lettre::message::Mailbox>()
                .map_err(|e| invalid(format!("email from {:?}: {e}", c.from)))?;
            if c.to.is_empty() {
                return Err(invalid("email needs at least one recipient in `to`"));
            }
            for t in &c.to {
                t.parse::<lettre::message::Mailbox>()
                    .map_err(|e| invalid(format!("email recipient {t:?}: {e}")))?;
            }
            if username.is_some() && tls == "none" {
                return Err(invalid(
                    "email credentials need an encrypted connection: with a username use tls starttls or tls, not none",
                ));
            }
            if username.is_some() && !has_secret {
                return Err(invalid(
                    "email username given without a password: set `secret` to the SMTP password",
                ));
            }
            Ok(json!({
                "host": host, "port": c.port.unwrap_or(default_port), "tls": tls,
                "from": c.from, "to": c.to, "username": username,
            }))
        }
        "bus" => {
            if config.as_object().is_none_or(|o| !o.is_empty()) {
                return Err(invalid("bus channels take no config: leave it {}"));
            }
            Ok(json!({}))
        }
        other => Err(invalid(format!(
            "unknown channel kind {other:?}: use webhook, email or bus"
        ))),
    }
}

/// Where a channel sends: its kind and the config fields that pick the
/// receiver (webhook url; SMTP host, port, tls, username). A stored secret
/// is only ever used for the destination it was given for.
fn destination(kind: &str, config: &Value) -> Value {
    match kind {
        "webhook" => json!([kind, config["url"]]),
        "email" => json!([
            kind,
            config["host"],
            config["port"],
            config["tls"],
            config["username"]
        ]),
        _ => json!([kind]),
    }
}

/// Checks `input` and fills `row` (all but id and creation fields).
/// `old`: what is stored now, on update: the secret is kept when
/// `input.secret` is absent, unless the destination changes (refused: the
/// secret must be given again).
fn apply(
    cfg: &Config,
    input: ChannelInput,
    old: Option<&channel::Model>,
    row: &mut channel::ActiveModel,
) -> Result<(), ChannelError> {
    let old_secret = old.and_then(|o| o.secret_sealed.clone());
    let name = input.name.trim();
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(invalid(
            "name must be 1-64 letters, digits, '-', '_' or '.'",
        ));
    }
    let secret_sealed = match input.secret.as_deref() {
        None => old_secret,
        Some("") => None,
        Some(s) if s.len() > 1024 => return Err(invalid("secret is longer than 1024 bytes")),
        Some(s) if input.kind == "webhook" && s.len() < 16 => {
            return Err(invalid(
                "a webhook's HMAC secret must be at least 16 bytes (e.g. `openssl rand -hex 32`)",
            ));
        }
        Some(_) if input.kind == "bus" => {
            return Err(invalid("bus channels take no secret"));
        }
        // Sealed below, once everything else is checked.
        Some(_) => Some(String::new()),
    };
    let fresh_secret = input.secret.as_deref().filter(|s| !s.is_empty());
    let config = check_config(&input.kind, &input.config, secret_sealed.is_some())?;
    if let Some(o) = old {
        let before = destination(
            &o.kind,
            &serde_json::from_str::<Value>(&o.config).unwrap_or(Value::Null),
        );
        if input.secret.is_none()
            && o.secret_sealed.is_some()
            && before != destination(&input.kind, &config)
        {
            return Err(invalid(
                "give the secret again when changing where the channel sends (kind, webhook url, or email host, port, tls, username); `\"secret\": \"\"` removes it",
            ));
        }
    }
    let min_severity = input
        .min_severity
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "info".into());
    if severity_rank(&min_severity) < 0 {
        return Err(invalid(format!(
            "min_severity {min_severity:?}: use info, warning or critical"
        )));
    }
    if input.rule_ids.iter().any(|r| r.trim().is_empty()) {
        return Err(invalid("rule_ids must not hold empty ids"));
    }
    if input.matchers.keys().any(|k| k.trim().is_empty()) {
        return Err(invalid("matchers must not have an empty label name"));
    }
    if !(0..=3600).contains(&input.group_secs) {
        return Err(invalid("group_secs must be between 0 and 3600"));
    }
    let quiet = input
        .quiet_hours
        .as_ref()
        .filter(|q| !(q.start.trim().is_empty() && q.end.trim().is_empty()));
    let (qs, qe, qtz, bypass) = match quiet {
        None => (None, None, None, false),
        Some(q) => {
            let tz = q
                .timezone
                .clone()
                .filter(|t| !t.trim().is_empty())
                .unwrap_or_else(|| "UTC".into());
            tz.parse::<chrono_tz::Tz>().map_err(|_| {
                invalid(format!(
                    "quiet_hours.timezone {tz:?} is not an IANA time zone (e.g. Europe/Paris)"
                ))
            })?;
            let (s, e) = (
                minute_of_day(&q.start, "start")?,
                minute_of_day(&q.end, "end")?,
            );
            if s == e {
                return Err(invalid(
                    "quiet_hours start and end are the same time; remove quiet_hours for none",
                ));
            }
            (Some(s), Some(e), Some(tz), q.bypass_critical)
        }
    };
    let secret_sealed = match fresh_secret {
        Some(s) => Some(seal::seal(&seal::key(cfg)?, s)?),
        None => secret_sealed,
    };
    row.name = Set(name.to_string());
    row.kind = Set(input.kind);
    row.config = Set(config.to_string());
    row.secret_sealed = Set(secret_sealed);
    row.min_severity = Set(min_severity);
    row.rule_ids = Set(json!(input.rule_ids).to_string());
    row.matchers = Set(json!(input.matchers).to_string());
    row.quiet_start = Set(qs);
    row.quiet_end = Set(qe);
    row.quiet_timezone = Set(qtz);
    row.quiet_bypass_critical = Set(bypass);
    row.group_secs = Set(input.group_secs);
    row.enabled = Set(input.enabled);
    Ok(())
}

/// The ids of the alert rules named in `given` (each an id or a name);
/// an unknown one is refused.
async fn resolve_rules(
    db: &DatabaseConnection,
    given: &[String],
) -> Result<Vec<String>, ChannelError> {
    use crate::alerts::entities::alert_rule;
    let mut ids = Vec::with_capacity(given.len());
    for r in given {
        let r = r.trim();
        if r.is_empty() {
            return Err(invalid("rule_ids must not hold empty ids"));
        }
        let found = match alert_rule::Entity::find_by_id(r).one(db).await? {
            Some(m) => Some(m),
            None => {
                alert_rule::Entity::find()
                    .filter(alert_rule::Column::Name.eq(r))
                    .one(db)
                    .await?
            }
        };
        match found {
            Some(m) if !ids.contains(&m.id) => ids.push(m.id),
            Some(_) => {}
            None => {
                return Err(invalid(format!(
                    "no alert rule {r:?} (give a rule's name or id); `drover alerts rules list` shows them"
                )))
            }
        }
    }
    Ok(ids)
}

/// Alert rule names by id, for [`view_named`].
pub async fn rule_names(
    db: &DatabaseConnection,
) -> Result<std::collections::HashMap<String, String>, ChannelError> {
    use crate::alerts::entities::alert_rule;
    Ok(alert_rule::Entity::find()
        .all(db)
        .await?
        .into_iter()
        .map(|r| (r.id, r.name))
        .collect())
}

async fn name_taken(db: &DatabaseConnection, name: &str, not: &str) -> Result<bool, ChannelError> {
    Ok(channel::Entity::find()
        .filter(channel::Column::Name.eq(name.trim()))
        .filter(channel::Column::Id.ne(not))
        .one(db)
        .await?
        .is_some())
}

/// Creates a channel from checked input.
pub async fn create(
    db: &DatabaseConnection,
    cfg: &Config,
    input: ChannelInput,
    by: &str,
) -> Result<channel::Model, ChannelError> {
    let mut row = channel::ActiveModel {
        id: Set(uuid::Uuid::new_v4().to_string()),
        created_at: Set(now_ms()),
        created_by: Set(by.to_string()),
        ..Default::default()
    };
    let name = input.name.clone();
    let mut input = input;
    input.rule_ids = resolve_rules(db, &input.rule_ids).await?;
    apply(cfg, input, None, &mut row)?;
    if name_taken(db, &name, "").await? {
        return Err(ChannelError::NameTaken(name.trim().into()));
    }
    Ok(row.insert(db).await?)
}

/// Replaces a channel's settings (the secret kept unless given; refused
/// when the destination changes without it).
pub async fn update(
    db: &DatabaseConnection,
    cfg: &Config,
    id: &str,
    input: ChannelInput,
) -> Result<channel::Model, ChannelError> {
    let old = get(db, id).await?;
    let name = input.name.clone();
    let mut row: channel::ActiveModel = old.clone().into();
    let mut input = input;
    input.rule_ids = resolve_rules(db, &input.rule_ids).await?;
    apply(cfg, input, Some(&old), &mut row)?;
    if name_taken(db, &name, &old.id).await? {
        return Err(ChannelError::NameTaken(name.trim().into()));
    }
    Ok(row.update(db).await?)
}

/// A channel by id or by name.
pub async fn get(db: &DatabaseConnection, id: &str) -> Result<channel::Model, ChannelError> {
    if let Some(c) = channel::Entity::find_by_id(id).one(db).await? {
        return Ok(c);
    }
    channel::Entity::find()
        .filter(channel::Column::Name.eq(id))
        .one(db)
        .await?
        .ok_or_else(|| ChannelError::NotFound(id.to_string()))
}

/// Every channel, by name.
pub async fn list(db: &DatabaseConnection) -> Result<Vec<channel::Model>, ChannelError> {
    Ok(channel::Entity::find()
        .order_by_asc(channel::Column::Name)
        .all(db)
        .await?)
}

/// Removes a channel with its deliveries. Messages still on the stream for
/// it are acked without sending.
pub async fn delete(db: &DatabaseConnection, id: &str) -> Result<channel::Model, ChannelError> {
    let c = get(db, id).await?;
    item::Entity::delete_many()
        .filter(item::Column::ChannelId.eq(&c.id))
        .exec(db)
        .await?;
    delivery::Entity::delete_many()
        .filter(delivery::Column::ChannelId.eq(&c.id))
        .exec(db)
        .await?;
    channel::Entity::delete_by_id(&c.id).exec(db).await?;
    Ok(c)
}
