//! Final states of commands: who decided each one, and the one rule for
//! changing it. Owns every write that ends a command and the decision
//! whether a host's report may change a row; does not own fetching results
//! (`ingest`), issuing or cancelling (`commands`) or revoking (`trust`).
//!
//! The rule:
//! - A command ends in exactly one final state, written conditionally (only
//!   while the row is still open), so two writers never both end it.
//! - The host's final report is the truth. A final state the control plane
//!   decided without one (expired, no result, gave up after redeliveries,
//!   cancelled by a revocation, never delivered) is marked as such, and the
//!   host's final report, if one arrives later, replaces it once. The
//!   replaced status and reason stay in the row (`inferred_*`).
//! - A final state the host reported is never changed.

use bus_schema::{CommandResult, CommandStatus};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use tracing::info;

use crate::db::entities::command;

/// Statuses a command can still leave.
pub const OPEN: [&str; 3] = ["queued", "accepted", "running"];

/// Who decided a command's final state (`commands.outcome_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The host's own final result.
    Reported,
    /// The control plane's guess, for want of a result: expired before the
    /// agent fetched it, no result after expiry and timeout, the broker gave
    /// up redelivering, the agent was revoked. A host's report replaces it.
    Inferred,
    /// Decided by the control plane before the agent could have it: the
    /// broker refused the publish, or the message was removed from its queue
    /// before delivery. Replaceable all the same: if a host ever reports,
    /// that is what happened.
    ControlPlane,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Reported => "reported",
            Source::Inferred => "inferred",
            Source::ControlPlane => "control_plane",
        }
    }
}

/// A final state the control plane decides for want of a host's report.
#[derive(Debug, Clone)]
pub struct Ending<'a> {
    /// A final status.
    pub status: CommandStatus,
    /// The reason shown to operators.
    pub summary: &'a str,
    /// [`Source::Inferred`] or [`Source::ControlPlane`].
    pub source: Source,
    /// Replaces the delivery count when given.
    pub attempts: Option<i64>,
}

impl Ending<'_> {
    /// Mirrors on `c` (in memory) what [`end_unreported`] wrote to its row at
    /// `now` (ms since the epoch), so the event and the caller's copy show
    /// the row as stored.
    pub fn mark(&self, c: &mut command::Model, now: i64) {
        c.status = self.status.as_str().into();
        c.summary = self.summary.into();
        c.updated_at = now;
        c.finished_at = Some(now);
        c.outcome_source = Some(self.source.as_str().into());
        c.inferred_status = Some(self.status.as_str().into());
        c.inferred_summary = Some(self.summary.into());
        c.inferred_at = Some(now);
        if let Some(n) = self.attempts {
            c.attempts = n as i32;
        }
    }
}

/// Ends the commands that match `filter` and are still in one of the
/// statuses `from` (a subset of [`OPEN`]) with `e`, at `now` (ms since the
/// epoch). Returns how many rows it ended (0: someone ended them first).
pub async fn end_unreported<C: ConnectionTrait>(
    db: &C,
    filter: Condition,
    from: &[&str],
    e: &Ending<'_>,
    now: i64,
) -> Result<u64, DbErr> {
    debug_assert!(e.status.is_final() && e.source != Source::Reported);
    let mut q = command::Entity::update_many()
        .col_expr(command::Column::Status, Expr::value(e.status.as_str()))
        .col_expr(command::Column::Summary, Expr::value(e.summary))
        .col_expr(command::Column::UpdatedAt, Expr::value(now))
        .col_expr(command::Column::FinishedAt, Expr::value(now))
        .col_expr(
            command::Column::OutcomeSource,
            Expr::value(e.source.as_str()),
        )
        .col_expr(
            command::Column::InferredStatus,
            Expr::value(e.status.as_str()),
        )
        .col_expr(command::Column::InferredSummary, Expr::value(e.summary))
        .col_expr(command::Column::InferredAt, Expr::value(now))
        .filter(filter)
        .filter(command::Column::Status.is_in(from.iter().copied()));
    if let Some(n) = e.attempts {
        q = q.col_expr(command::Column::Attempts, Expr::value(n));
    }
    Ok(q.exec(db).await?.rows_affected)
}

/// The same, for one command by id.
pub async fn end_one_unreported<C: ConnectionTrait>(
    db: &C,
    id: &str,
    from: &[&str],
    e: &Ending<'_>,
    now: i64,
) -> Result<bool, DbErr> {
    let f = Condition::all().add(command::Column::Id.eq(id));
    Ok(end_unreported(db, f, from, e, now).await? == 1)
}

/// What a host's report does to a command row.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A duplicate, an out-of-order intermediate state, or anything after a
    /// reported final state.
    Ignore,
    /// The command moves forward (an intermediate or its final state).
    Advance,
    /// A final report replaces a final state the control plane decided.
    Replace,
}

/// Decides what `reported` does to `c`: a command never moves backwards, a
/// reported final state never changes, and an unreported one gives way to
/// the host's final report.
pub fn judge(c: &command::Model, reported: CommandStatus) -> Verdict {
    let cur = CommandStatus::parse(&c.status).unwrap_or(CommandStatus::Queued);
    if !cur.is_final() {
        return if reported.rank() > cur.rank() {
            Verdict::Advance
        } else {
            Verdict::Ignore
        };
    }
    let unreported = matches!(
        c.outcome_source.as_deref(),
        Some("inferred") | Some("control_plane")
    );
    if unreported && reported.is_final() {
        Verdict::Replace
    } else {
        Verdict::Ignore
    }
}

/// Applies a host's report to `c` (in memory; the caller writes it).
/// Returns false when the report changes nothing.
pub fn apply_reported(c: &mut command::Model, r: &CommandResult, now: i64) -> bool {
    let verdict = judge(c, r.status);
    if verdict == Verdict::Ignore {
        return false;
    }
    if verdict == Verdict::Replace {
        info!(
            command = %c.id,
            agent_id = %c.agent_id,
            was = %c.status,
            was_decided_by = c.outcome_source.as_deref().unwrap_or(""),
            now = r.status.as_str(),
            "the host's own result replaces the control plane's inferred outcome"
        );
    }
    c.status = r.status.as_str().into();
    c.updated_at = now;
    c.attempts = std::cmp::max(c.attempts, r.attempt as i32);
    if r.status.is_final() {
        c.exit_code = r.exit_code;
        // A NUL from the host's output is kept as U+FFFD: PostgreSQL cannot
        // store one, and the result must be stored all the same (the data
        // travels as JSON text, where serde_json escapes it).
        c.summary = bus_schema::text::without_nul(&r.summary, usize::MAX);
        c.result = Some(serde_json::to_string(&r.data).unwrap_or_default());
        // The control plane's clock, not the host's (`r.at`): a host's
        // clock may be off (see "Clock skew" in docs/invariants.md).
        c.finished_at = Some(now);
        c.outcome_source = Some(Source::Reported.as_str().into());
    }
    true
}

/// Writes back the rows [`apply_reported`] changed, in a few statements.
/// The caller decided each change against the row as read in the same
/// transaction, under the writer's turn, so the write needs no condition of
/// its own.
pub async fn write_reported<'a, C: ConnectionTrait>(
    db: &C,
    changed: impl Iterator<Item = &'a command::Model>,
) -> Result<(), DbErr> {
    use command::Column as K;
    let rows: Vec<Vec<sea_orm::Value>> = changed
        .map(|c| {
            vec![
                c.id.clone().into(),
                c.status.clone().into(),
                c.updated_at.into(),
                c.attempts.into(),
                c.exit_code.into(),
                c.summary.clone().into(),
                c.result.clone().into(),
                c.finished_at.into(),
                c.outcome_source.clone().into(),
            ]
        })
        .collect();
    crate::db::bulk::update_by_key::<command::Entity, _>(
        db,
        K::Id,
        &[
            K::Status,
            K::UpdatedAt,
            K::Attempts,
            K::ExitCode,
            K::Summary,
            K::Result,
            K::FinishedAt,
            K::OutcomeSource,
        ],
        rows,
    )
    .await
    .map(|_| ())
}

/// The API's view of who decided the outcome: `outcome_source`, and
/// `replaced_inferred` (`{status, summary, at}`) when a host's report
/// replaced what the control plane had decided.
pub fn outcome_json(c: &command::Model) -> serde_json::Value {
    let replaced = (c.outcome_source.as_deref() == Some("reported"))
        .then_some(c.inferred_status.as_ref())
        .flatten()
        .map(|s| {
            serde_json::json!({
                "status": s,
                "summary": c.inferred_summary,
                "at": c.inferred_at,
            })
        });
    serde_json::json!({
        "outcome_source": c.outcome_source,
        "replaced_inferred": replaced,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{ActiveModelTrait, IntoActiveModel};

    fn row(id: &str, status: &str) -> command::Model {
        command::Model {
            id: id.into(),
            agent_id: "A".into(),
            job_id: None,
            action: "sys.ping".into(),
            params: "{}".into(),
            status: status.into(),
            requested_by: "t".into(),
            source: "user".into(),
            created_at: 1,
            updated_at: 1,
            expires_at: 2,
            timeout_secs: 30,
            exit_code: None,
            summary: String::new(),
            result: None,
            attempts: 1,
            finished_at: None,
            stream_seq: None,
            outcome_source: None,
            inferred_status: None,
            inferred_summary: None,
            inferred_at: None,
        }
    }

    fn report(status: CommandStatus) -> CommandResult {
        CommandResult {
            command_id: "c".into(),
            agent_id: "A".into(),
            status,
            exit_code: Some(0),
            summary: "done".into(),
            data: serde_json::Value::Null,
            attempt: 1,
            at: 5,
        }
    }

    #[tokio::test]
    async fn an_inferred_end_gives_way_once_to_the_hosts_report() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let db = crate::db::connect(&url).await.unwrap();
        for (id, status) in [("c", "running"), ("d", "succeeded")] {
            row(id, status)
                .into_active_model()
                .insert(&db)
                .await
                .unwrap();
        }
        let all = Condition::all().add(command::Column::AgentId.eq("A"));
        let ending = |status, summary| Ending {
            status,
            summary,
            source: Source::Inferred,
            attempts: None,
        };
        let n = end_unreported(
            &db,
            all.clone(),
            &OPEN,
            &ending(CommandStatus::Failed, "no result"),
            3,
        )
        .await
        .unwrap();
        assert_eq!(n, 1, "only the open command ends; the final one stays");
        // A second writer finds nothing open.
        let again = end_unreported(&db, all, &OPEN, &ending(CommandStatus::Expired, "x"), 4)
            .await
            .unwrap();
        assert_eq!(again, 0);

        let mut c = command::Entity::find_by_id("c")
            .one(&db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.status, "failed");
        assert_eq!(c.outcome_source.as_deref(), Some("inferred"));
        assert_eq!(
            outcome_json(&c)["replaced_inferred"],
            serde_json::Value::Null
        );
        // A late intermediate state changes nothing; the final report wins.
        assert!(!apply_reported(&mut c, &report(CommandStatus::Running), 6));
        assert!(apply_reported(&mut c, &report(CommandStatus::Succeeded), 6));
        assert_eq!(c.status, "succeeded");
        let v = outcome_json(&c);
        assert_eq!(v["outcome_source"], "reported");
        assert_eq!(v["replaced_inferred"]["status"], "failed");
        assert_eq!(v["replaced_inferred"]["summary"], "no result");
        // Once reported, never again.
        assert!(!apply_reported(&mut c, &report(CommandStatus::Failed), 7));
        assert_eq!(c.status, "succeeded");
    }

    #[test]
    fn reported_and_legacy_final_states_never_change() {
        let mut c = row("c", "failed");
        c.outcome_source = Some("reported".into());
        assert_eq!(judge(&c, CommandStatus::Succeeded), Verdict::Ignore);
        c.outcome_source = None; // decided before m0009: unknown, kept
        assert_eq!(judge(&c, CommandStatus::Succeeded), Verdict::Ignore);
        let open = row("o", "running");
        assert_eq!(judge(&open, CommandStatus::Accepted), Verdict::Ignore);
        assert_eq!(judge(&open, CommandStatus::Succeeded), Verdict::Advance);
        // "Expired" with no word from the agent, though it had fetched it.
        let mut e = row("e", "expired");
        e.outcome_source = Some("inferred".into());
        e.inferred_status = Some("expired".into());
        assert_eq!(judge(&e, CommandStatus::Running), Verdict::Ignore);
        assert!(apply_reported(&mut e, &report(CommandStatus::Succeeded), 9));
        assert_eq!(outcome_json(&e)["replaced_inferred"]["status"], "expired");
        let mut cp = row("p", "cancelled");
        cp.outcome_source = Some("control_plane".into());
        assert_eq!(judge(&cp, CommandStatus::Succeeded), Verdict::Replace);
    }
}
