//! `mariadb`: databases and users on the local server, over its Unix socket
//! as root. Names are `^[A-Za-z0-9_]{1,64}$`; passwords are sensitive.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{check_ident, ActionSpec, NoParams, Params, RunsIn};

/// Params of `mariadb.db_create` and `mariadb.db_drop`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DbParams {
    /// The database name.
    pub name: String,
}
impl Params for DbParams {
    fn check(&self) -> Result<(), String> {
        check_ident("name", &self.name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Template {
    /// SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER on the database.
    App,
    /// SELECT on the database.
    Readonly,
    /// SELECT on the named tables only.
    Reporting,
}

impl Template {
    pub fn privileges(self) -> &'static str {
        match self {
            Template::App => "SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER",
            Template::Readonly | Template::Reporting => "SELECT",
        }
    }
}

/// Params of `mariadb.user_create`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserCreateParams {
    pub user: String,
    /// 12 to 128 characters. Never logged, stored or shown.
    #[schemars(extend("writeOnly" = true, "format" = "password"))]
    pub password: String,
    /// The database the grant is on.
    pub database: String,
    pub template: Template,
    /// For `reporting`: the tables the user may read.
    #[serde(default)]
    pub tables: Vec<String>,
}
impl Params for UserCreateParams {
    fn check(&self) -> Result<(), String> {
        check_ident("user", &self.user)?;
        check_ident("database", &self.database)?;
        let n = self.password.chars().count();
        if !(12..=128).contains(&n) {
            return Err("password must be 12 to 128 characters".into());
        }
        if self.password.chars().any(char::is_control) {
            return Err("password must not contain control characters".into());
        }
        match self.template {
            Template::Reporting if self.tables.is_empty() => {
                return Err("template reporting needs at least one table in tables".into())
            }
            Template::App | Template::Readonly if !self.tables.is_empty() => {
                return Err("tables is only for template reporting".into())
            }
            _ => {}
        }
        self.tables.iter().try_for_each(|t| check_ident("table", t))
    }
}

/// Params of `mariadb.user_drop`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserParams {
    pub user: String,
}
impl Params for UserParams {
    fn check(&self) -> Result<(), String> {
        check_ident("user", &self.user)
    }
}

pub fn specs() -> Vec<ActionSpec> {
    vec![
        ActionSpec::new::<DbParams>(
            "mariadb.db_create",
            "Create a database (utf8mb4); an existing one is left as it is.",
            RunsIn::Rootd,
            60,
        ),
        ActionSpec::new::<DbParams>(
            "mariadb.db_drop",
            "Drop a database and everything in it.",
            RunsIn::Rootd,
            60,
        ),
        ActionSpec::new::<UserCreateParams>(
            "mariadb.user_create",
            "Create a user at localhost with a privilege template (app, readonly, reporting).",
            RunsIn::Rootd,
            60,
        )
        .with_sensitive(&["password"]),
        ActionSpec::new::<UserParams>(
            "mariadb.user_drop",
            "Drop a user at localhost.",
            RunsIn::Rootd,
            60,
        ),
        ActionSpec::new::<NoParams>(
            "mariadb.list",
            "List databases and users with their grants.",
            RunsIn::Rootd,
            60,
        ),
    ]
}
