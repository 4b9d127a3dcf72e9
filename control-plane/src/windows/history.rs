//! The install history: one row per package per install attempt, written
//! when a window's runner issues the install (`status = "installing"`) and
//! completed from the `pkg.upgrade` result (versions after, exit code,
//! bounded output). Owns writing, listing and exporting those rows (JSON,
//! CSV); does not decide what is installed (`runner`).

use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder,
};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::db::entities::{agent, command};
use crate::updates::approvals::ApprovedUpdate;
use crate::updates::entities::{history, inventory, run, window};

/// Characters of output kept per history row.
const OUTPUT_MAX: usize = 4000;
/// Rows per page by default, and at most (CSV exports take up to
/// [`EXPORT_MAX`]).
pub const PER_PAGE: u64 = 100;
pub const MAX_PER_PAGE: u64 = 1000;
pub const EXPORT_MAX: u64 = 100_000;

/// Records the install `command_id` asked for: one `installing` row per
/// update, with the version the inventory had before.
pub async fn started(
    db: &DatabaseConnection,
    a: &agent::Model,
    updates: &[ApprovedUpdate],
    w: &window::Model,
    r: &run::Model,
    command_id: &str,
    now: i64,
) -> Result<(), sea_orm::DbErr> {
    let inv: std::collections::HashMap<String, String> = inventory::Entity::find()
        .filter(inventory::Column::AgentId.eq(a.id.clone()))
        .all(db)
        .await?
        .into_iter()
        .map(|i| (i.package, i.current_version))
        .collect();
    let rows: Vec<history::ActiveModel> = updates
        .iter()
        .map(|u| {
            use sea_orm::ActiveValue::Set;
            history::ActiveModel {
                id: Set(uuid::Uuid::now_v7().simple().to_string()),
                agent_id: Set(a.id.clone()),
                hostname: Set(a.hostname.clone()),
                package: Set(u.package.clone()),
                version_before: Set(inv.get(&u.package).cloned().unwrap_or_default()),
                version_after: Set(None),
                candidate: Set(u.version.clone()),
                status: Set("installing".into()),
                exit_code: Set(None),
                output: Set(String::new()),
                approved_by: Set(u.approved_by.clone()),
                approval_id: Set(u.approval_id.clone()),
                rule_id: Set(u.rule_id.clone()),
                window_id: Set(Some(w.id.clone())),
                run_id: Set(Some(r.id.clone())),
                command_id: Set(Some(command_id.to_string())),
                at: Set(now),
            }
        })
        .collect();
    if !rows.is_empty() {
        history::Entity::insert_many(rows).exec(db).await?;
    }
    Ok(())
}

/// The result's entry for `package` (`data.packages[]`): the one whose
/// installed package is `package`, else the one asked for as
/// `package=candidate` (apt) or `package-candidate` (dnf).
fn change_of<'a>(result: &'a Value, package: &str, candidate: &str) -> Option<&'a Value> {
    let all = result["packages"].as_array()?;
    all.iter()
        .find(|c| c["package"].as_str() == Some(package))
        .or_else(|| {
            let asked = [
                package.to_string(),
                format!("{package}={candidate}"),
                format!("{package}-{candidate}"),
            ];
            all.iter().find(|c| {
                c["name"]
                    .as_str()
                    .is_some_and(|n| asked.iter().any(|a| a == n))
            })
        })
}

/// Completes the rows of a final install command; `true` when every
/// package reached its candidate version.
pub async fn finished(
    db: &DatabaseConnection,
    c: &command::Model,
    now: i64,
) -> Result<bool, sea_orm::DbErr> {
    let rows = history::Entity::find()
        .filter(history::Column::CommandId.eq(c.id.clone()))
        .all(db)
        .await?;
    let result: Value = c
        .result
        .as_deref()
        .and_then(|r| serde_json::from_str(r).ok())
        .unwrap_or(Value::Null);
    let succeeded = c.status == "succeeded";
    let mut all_ok = succeeded;
    for row in rows {
        use sea_orm::{ActiveModelTrait, ActiveValue::Set};
        let change = change_of(&result, &row.package, &row.candidate);
        let after = change
            .and_then(|ch| ch["after"].as_str())
            .map(str::to_string);
        let ok = succeeded && after.as_deref() == Some(row.candidate.as_str());
        all_ok &= ok;
        let mut output = format!("{}: {}", c.status, c.summary);
        if let Some(ch) = change {
            output.push('\n');
            output.push_str(&ch.to_string());
        }
        let output: String = output.chars().take(OUTPUT_MAX).collect();
        let mut m: history::ActiveModel = row.into();
        m.version_after = Set(after);
        m.status = Set(if ok { "installed" } else { "failed" }.into());
        m.exit_code = Set(c.exit_code);
        m.output = Set(output);
        m.at = Set(c.finished_at.unwrap_or(now));
        m.update(db).await?;
    }
    Ok(all_ok)
}

/// The history's query: `GET /api/v1/updates/history`.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct Filter {
    /// An agent id.
    pub agent: Option<String>,
    /// A package name, exactly.
    pub package: Option<String>,
    /// `7d`, `12h`, `30m`, milliseconds since the epoch or `YYYY-MM-DD[THH:MM[:SS]Z]`.
    pub since: Option<String>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
    /// 1-based.
    pub page: Option<u64>,
    pub per_page: Option<u64>,
}

/// `since` as milliseconds since the epoch; relative forms count back
/// from `now_ms`.
pub fn parse_since(s: &str, now_ms: i64) -> Result<i64, String> {
    let s = s.trim();
    let unit = |c: char| match c {
        'd' => Some(86_400_000),
        'h' => Some(3_600_000),
        'm' => Some(60_000),
        _ => None,
    };
    // The number before a unit letter (slicing by the letter's own length:
    // a multi-byte last character was a panic).
    if let Some(last) = s.chars().last() {
        let number = &s[..s.len() - last.len_utf8()];
        if let (Some(ms), Ok(n)) = (unit(last), number.parse::<i64>()) {
            if n >= 0 {
                return Ok(now_ms - n.saturating_mul(ms));
            }
        }
    }
    crate::audit::parse_time(s).map_err(|e| format!("since: {e}, or a duration like 7d, 12h, 30m"))
}

/// The highest page number asked for (any page past the last is empty).
const MAX_PAGE: u64 = 1_000_000;

/// One page of history, newest first, and the total matching.
pub async fn list(
    db: &DatabaseConnection,
    f: &Filter,
    now_ms: i64,
    per_page: u64,
) -> Result<Result<(Vec<history::Model>, u64), String>, sea_orm::DbErr> {
    let mut c = Condition::all();
    if let Some(a) = f.agent.as_deref().filter(|s| !s.is_empty()) {
        c = c.add(history::Column::AgentId.eq(a));
    }
    if let Some(p) = f.package.as_deref().filter(|s| !s.is_empty()) {
        c = c.add(history::Column::Package.eq(p));
    }
    if let Some(s) = f.since.as_deref().filter(|s| !s.is_empty()) {
        match parse_since(s, now_ms) {
            Ok(t) => c = c.add(history::Column::At.gte(t)),
            Err(e) => return Ok(Err(e)),
        }
    }
    let pages = history::Entity::find()
        .filter(c)
        .order_by_desc(history::Column::At)
        .order_by_desc(history::Column::Id)
        .paginate(db, per_page.max(1));
    let total = pages.num_items().await?;
    // Past the last page is empty; the cap keeps page × per_page from
    // overflowing (a huge `page` was a panic).
    let page = f.page.unwrap_or(1).clamp(1, MAX_PAGE);
    let rows = pages.fetch_page(page - 1).await?;
    Ok(Ok((rows, total)))
}

pub fn row_json(r: &history::Model) -> Value {
    json!({
        "id": r.id,
        "at": r.at,
        "agent_id": r.agent_id,
        "hostname": r.hostname,
        "package": r.package,
        "version_before": r.version_before,
        "version_after": r.version_after,
        "candidate": r.candidate,
        "status": r.status,
        "exit_code": r.exit_code,
        "output": r.output,
        "approved_by": r.approved_by,
        "approval_id": r.approval_id,
        "rule_id": r.rule_id,
        "window_id": r.window_id,
        "run_id": r.run_id,
        "command_id": r.command_id,
    })
}

/// A cell a spreadsheet would not read as a formula.
fn cell(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    }
}

/// The rows as CSV with a header row (quoting by the `csv` crate).
pub fn to_csv(rows: &[history::Model]) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "at",
        "hostname",
        "agent_id",
        "package",
        "version_before",
        "version_after",
        "candidate",
        "status",
        "exit_code",
        "approved_by",
        "approval_id",
        "rule_id",
        "window_id",
        "run_id",
        "command_id",
        "output",
    ])?;
    let opt = |o: &Option<String>| o.clone().unwrap_or_default();
    for r in rows {
        w.write_record([
            r.at.to_string(),
            cell(&r.hostname),
            r.agent_id.clone(),
            cell(&r.package),
            cell(&r.version_before),
            cell(&opt(&r.version_after)),
            cell(&r.candidate),
            r.status.clone(),
            r.exit_code.map(|c| c.to_string()).unwrap_or_default(),
            cell(&r.approved_by),
            opt(&r.approval_id),
            opt(&r.rule_id),
            opt(&r.window_id),
            opt(&r.run_id),
            opt(&r.command_id),
            cell(&r.output),
        ])?;
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_forms() {
        let now = 10 * 86_400_000;
        assert_eq!(parse_since("7d", now), Ok(3 * 86_400_000));
        assert_eq!(parse_since("2h", now), Ok(now - 7_200_000));
        assert_eq!(parse_since("1970-01-02", now), Ok(86_400_000));
        assert!(parse_since("soon", now).is_err());
        assert!(parse_since("7\u{b5}", now).is_err());
        assert!(parse_since("\u{fb0a6}", now).is_err());
    }

    #[test]
    fn changes_match_by_package_or_spec() {
        let r = json!({"packages": [
            {"name": "drover-test-alpha=1.1", "package": "drover-test-alpha", "after": "1.1"},
            {"name": "vim-9.0", "package": null, "after": null},
        ]});
        assert_eq!(
            change_of(&r, "drover-test-alpha", "1.1").unwrap()["after"],
            "1.1"
        );
        assert!(change_of(&r, "vim", "9.0").is_some());
        assert!(change_of(&r, "drover-test", "1.1").is_none());
    }

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let row = history::Model {
            id: "1".into(),
            agent_id: "A".into(),
            hostname: "web,1".into(),
            package: "p".into(),
            version_before: "1.0".into(),
            version_after: Some("1.1".into()),
            candidate: "1.1".into(),
            status: "installed".into(),
            exit_code: Some(0),
            output: "=cmd|\"x\"\nline".into(),
            approved_by: "alice".into(),
            approval_id: None,
            rule_id: None,
            window_id: None,
            run_id: None,
            command_id: None,
            at: 5,
        };
        let out = to_csv(&[row]).unwrap();
        let mut lines = out.lines();
        assert!(lines
            .next()
            .unwrap()
            .starts_with("at,hostname,agent_id,package"));
        assert!(out.contains("\"web,1\""));
        assert!(out.contains("\"'=cmd|\"\"x\"\"\nline\""));
    }
}
