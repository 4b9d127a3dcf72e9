//! `mariadb`: databases and users on the local server, over its Unix socket
//! as root. Names are `^[A-Za-z0-9_]{1,64}$`; passwords are sensitive.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{check_ident, ActionSpec, NoParams, Params, RunsIn};

/// The server's own databases: no action creates, drops or grants on them.
pub const SYSTEM_DATABASES: [&str; 4] =
    ["information_schema", "mysql", "performance_schema", "sys"];

/// Accounts the server itself needs (`mariadb.sys` cannot pass the name
/// pattern anyway): no action creates or drops them.
pub const SYSTEM_USERS: [&str; 4] = ["root", "mysql", "mariadb.sys", "PUBLIC"];

/// A database name that is allowed and is not one of [`SYSTEM_DATABASES`].
pub fn check_database(field: &str, s: &str) -> Result<(), String> {
    check_ident(field, s)?;
    if SYSTEM_DATABASES.iter().any(|d| d.eq_ignore_ascii_case(s)) {
        return Err(format!("{field} {s:?} is a system database"));
    }
    Ok(())
}

/// A user name that is allowed and is not one of [`SYSTEM_USERS`].
pub fn check_user(field: &str, s: &str) -> Result<(), String> {
    check_ident(field, s)?;
    if SYSTEM_USERS.iter().any(|u| u.eq_ignore_ascii_case(s)) {
        return Err(format!("{field} {s:?} is a system account"));
    }
    Ok(())
}

/// Params of `mariadb.db_create` and `mariadb.db_drop`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DbParams {
    /// The database name.
    pub name: String,
}
impl Params for DbParams {
    fn check(&self) -> Result<(), String> {
        check_database("name", &self.name)
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

/// Params of `mariadb.user_create`. A user that already exists at
/// `localhost` is not touched: the action fails with "user exists; drop it
/// first" (so a typo can never reset a live application's password).
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
        check_user("user", &self.user)?;
        check_database("database", &self.database)?;
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
        check_user("user", &self.user)
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
            "Create a user at localhost with a privilege template (app, readonly, reporting); an existing user is refused.",
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::parse;
    use serde_json::json;

    #[test]
    fn system_names_and_hostile_names_are_refused() {
        for bad in [
            "mysql",
            "MySQL",
            "information_schema",
            "sys",
            "x; DROP DATABASE mysql",
            "a`b",
            "../x",
            "",
        ] {
            assert!(parse::<DbParams>(&json!({"name": bad})).is_err(), "{bad:?}");
        }
        assert!(parse::<DbParams>(&json!({"name": "a".repeat(65)})).is_err());
        parse::<DbParams>(&json!({"name": "shop_db"})).unwrap();
        for bad in ["root", "ROOT", "mysql", "PUBLIC", "a'b"] {
            assert!(
                parse::<UserParams>(&json!({"user": bad})).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn user_create_rules() {
        let ok = json!({"user": "app", "password": "correct horse battery", "database": "shop", "template": "app"});
        parse::<UserCreateParams>(&ok).unwrap();
        let mut v = ok.clone();
        v["password"] = json!("short");
        assert!(parse::<UserCreateParams>(&v).is_err());
        let mut v = ok.clone();
        v["database"] = json!("mysql");
        assert!(parse::<UserCreateParams>(&v).is_err());
        let mut v = ok.clone();
        v["template"] = json!("reporting");
        assert!(
            parse::<UserCreateParams>(&v).is_err(),
            "reporting needs tables"
        );
        v["tables"] = json!(["orders"]);
        parse::<UserCreateParams>(&v).unwrap();
        v["tables"] = json!(["orders; --"]);
        assert!(parse::<UserCreateParams>(&v).is_err());
    }
}
