//! Watched-service lists: an operator's list of systemd units to watch on
//! the hosts a selector matches (table `service_watches`, migration m0021).
//! Owns checking, storing and showing the lists, and a host's watch set
//! (the union of the units of every list that matches it); not delivering
//! it to hosts (`watch`) nor the states hosts report (`state`, `ingest`).

use std::collections::BTreeSet;

use bus_schema::catalogue::agent::{normalize_units, watch_revision};
use bus_schema::now_ms;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait};
use sea_orm::{ExprTrait, QueryFilter, QueryOrder};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::db::entities::agent;
use crate::selector::Selector;

pub mod entity {
    use sea_orm::entity::prelude::*;

    /// One watched-service list.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "service_watches")]
    pub struct Model {
        /// UUIDv7, 32 hex digits.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// 1..=64 printable characters, unique.
        pub name: String,
        /// The JSON of `selector::Selector` (as jobs and rollouts store it).
        pub selector: String,
        /// JSON array of full unit names (`nginx.service`), sorted, 1..=64.
        pub units: String,
        /// Who created it (user or token name).
        pub created_by: String,
        /// ms since the epoch.
        pub created_at: i64,
        /// ms since the epoch.
        pub updated_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A selector as the API takes it: the JSON jobs take (`{"all": true}`) or
/// the text form (`label:env=prod`).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum SelectorInput {
    Json(Selector),
    Text(String),
}

/// The body of `POST /api/v1/services/watches` and `PUT .../{id}`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WatchInput {
    /// 1..=64 printable characters, unique.
    pub name: String,
    pub selector: SelectorInput,
    /// systemd unit names (`nginx`, `php8.2-fpm.service`), 1..=64, no
    /// templates.
    pub units: Vec<String>,
}

/// Why a list was not stored or found.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// A field is wrong; the text names it and says what to write.
    #[error("{0}")]
    Invalid(String),
    #[error("no watched-service list {0}; list them with `drover services watch list`")]
    NotFound(String),
    #[error(
        "a watched-service list named {0:?} exists already; choose another name or change that one"
    )]
    NameTaken(String),
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
}

struct Checked {
    name: String,
    selector: Selector,
    units: Vec<String>,
}

fn check(input: WatchInput) -> Result<Checked, WatchError> {
    let name = input.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(WatchError::Invalid(
            "name: use 1 to 64 printable characters".into(),
        ));
    }
    let selector = match input.selector {
        SelectorInput::Json(s) => s,
        SelectorInput::Text(t) => {
            Selector::parse(&t).map_err(|e| WatchError::Invalid(format!("selector: {e}")))?
        }
    };
    selector
        .check()
        .map_err(|e| WatchError::Invalid(format!("selector: {e}")))?;
    if input.units.is_empty() {
        return Err(WatchError::Invalid(
            "units: name at least one systemd unit, e.g. nginx or php8.2-fpm.service".into(),
        ));
    }
    let units =
        normalize_units(&input.units).map_err(|e| WatchError::Invalid(format!("units: {e}")))?;
    Ok(Checked {
        name,
        selector,
        units,
    })
}

async fn name_taken(
    db: &DatabaseConnection,
    name: &str,
    except: Option<&str>,
) -> Result<bool, sea_orm::DbErr> {
    let mut q = entity::Entity::find().filter(entity::Column::Name.eq(name));
    if let Some(id) = except {
        q = q.filter(entity::Column::Id.ne(id));
    }
    Ok(q.one(db).await?.is_some())
}

fn fill(m: &mut entity::ActiveModel, c: Checked, now: i64) {
    m.name = Set(c.name);
    m.selector = Set(serde_json::to_string(&c.selector).unwrap_or_default());
    m.units = Set(serde_json::to_string(&c.units).unwrap_or_default());
    m.updated_at = Set(now);
}

/// Stores a new list; `who` is the creating user.
pub async fn create(
    db: &DatabaseConnection,
    input: WatchInput,
    who: &str,
) -> Result<entity::Model, WatchError> {
    let c = check(input)?;
    if name_taken(db, &c.name, None).await? {
        return Err(WatchError::NameTaken(c.name));
    }
    let now = now_ms();
    let mut m = entity::ActiveModel {
        id: Set(uuid::Uuid::now_v7().simple().to_string()),
        created_by: Set(who.to_string()),
        created_at: Set(now),
        ..Default::default()
    };
    fill(&mut m, c, now);
    Ok(m.insert(db).await?)
}

/// Replaces a list's name, selector and units.
pub async fn update(
    db: &DatabaseConnection,
    id: &str,
    input: WatchInput,
) -> Result<entity::Model, WatchError> {
    let old = get(db, id).await?;
    let c = check(input)?;
    if name_taken(db, &c.name, Some(&old.id)).await? {
        return Err(WatchError::NameTaken(c.name));
    }
    let mut m: entity::ActiveModel = old.into();
    fill(&mut m, c, now_ms());
    Ok(m.update(db).await?)
}

/// Removes a list (hosts stop watching its units at the next round).
pub async fn delete(db: &DatabaseConnection, id: &str) -> Result<entity::Model, WatchError> {
    let w = get(db, id).await?;
    entity::Entity::delete_by_id(w.id.clone()).exec(db).await?;
    Ok(w)
}

/// One list by id or name.
pub async fn get(db: &DatabaseConnection, id: &str) -> Result<entity::Model, WatchError> {
    entity::Entity::find()
        .filter(entity::Column::Id.eq(id).or(entity::Column::Name.eq(id)))
        .one(db)
        .await?
        .ok_or_else(|| WatchError::NotFound(id.to_string()))
}

/// Every list, by name.
pub async fn list(db: &DatabaseConnection) -> Result<Vec<entity::Model>, sea_orm::DbErr> {
    entity::Entity::find()
        .order_by_asc(entity::Column::Name)
        .all(db)
        .await
}

/// A stored list's units (none when the stored JSON does not parse).
pub fn units_of(w: &entity::Model) -> Vec<String> {
    serde_json::from_str(&w.units).unwrap_or_default()
}

/// A stored list's selector (`None` when it no longer parses: it matches
/// nothing).
pub fn selector_of(w: &entity::Model) -> Option<Selector> {
    serde_json::from_str(&w.selector).ok()
}

/// What the API and `drover services watch list` show of a list:
/// `{id, name, selector (JSON), selector_text, units, created_by,
/// created_at, updated_at}` (times in ms).
pub fn view(w: &entity::Model) -> Value {
    let sel: Value = serde_json::from_str(&w.selector).unwrap_or(Value::Null);
    json!({
        "id": w.id,
        "name": w.name,
        "selector_text": Selector::text_of(&sel),
        "selector": sel,
        "units": units_of(w),
        "created_by": w.created_by,
        "created_at": w.created_at,
        "updated_at": w.updated_at,
    })
}

/// The watch set of `a`: the units of every list whose selector matches
/// it, full names, sorted, without repeats, at most
/// [`bus_schema::MAX_WATCHED_UNITS`] (the first ones in name order when
/// lists together name more), and its revision.
pub fn watch_set(lists: &[(Selector, Vec<String>)], a: &agent::Model) -> (Vec<String>, String) {
    let mut set: BTreeSet<String> = BTreeSet::new();
    for (sel, units) in lists {
        if sel.matches(a) {
            set.extend(units.iter().cloned());
        }
    }
    let units: Vec<String> = set
        .into_iter()
        .take(bus_schema::MAX_WATCHED_UNITS)
        .collect();
    let rev = watch_revision(&units);
    (units, rev)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(units: &[&str], selector: &str) -> WatchInput {
        WatchInput {
            name: "web".into(),
            selector: SelectorInput::Text(selector.into()),
            units: units.iter().map(|u| u.to_string()).collect(),
        }
    }

    #[test]
    fn bad_input_is_refused_with_what_to_do() {
        let e = check(input(&["nginx", "bad unit"], "all")).err().unwrap();
        assert!(
            e.to_string().contains("not a valid systemd unit name"),
            "{e}"
        );
        let e = check(input(&[], "all")).err().unwrap();
        assert!(e.to_string().contains("at least one"), "{e}");
        let e = check(input(&["nginx"], "")).err().unwrap();
        assert!(e.to_string().starts_with("selector:"), "{e}");
        let e = check(input(&["nginx"], "bogus:x")).err().unwrap();
        assert!(e.to_string().contains("not understood"), "{e}");
        let c = check(input(&["php-fpm", "nginx", "nginx.service"], "all"))
            .ok()
            .unwrap();
        assert_eq!(c.units, ["nginx.service", "php-fpm.service"]);
    }
}
