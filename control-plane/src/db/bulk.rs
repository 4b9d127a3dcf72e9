//! Many rows changed in one statement:
//! `UPDATE t SET a = v.column2, ... FROM (VALUES (key, a, ...), ...) AS v
//! WHERE t.key = v.column1`.
//!
//! SQLite (≥ 3.33) and PostgreSQL both read it, and both name the columns of
//! a `VALUES` table `column1`, `column2`, .... One statement per few hundred
//! rows instead of one per row keeps the single writer's turn short when
//! 10,000 results of a fan-out land at once.

use sea_orm::sea_query::{Alias, Condition, Expr, IntoIden, Query, TableRef, Value, ValueTuple};
use sea_orm::{ConnectionTrait, DbErr, EntityTrait, ExprTrait};

/// Rows per statement: up to 16 values a row (a heartbeat's agent row) is
/// 8,000 parameters, far below SQLite's 32,766 and PostgreSQL's 65,535.
const ROWS_PER_STATEMENT: usize = 500;

/// Sets `cols` on the rows whose `key` matches. Each row of `rows` is the
/// key's value followed by one value per column of `cols`, in order. Values
/// are bound as parameters, never spliced into the SQL. Returns the number of
/// rows changed.
pub async fn update_by_key<E, C>(
    conn: &C,
    key: E::Column,
    cols: &[E::Column],
    rows: Vec<Vec<Value>>,
) -> Result<u64, DbErr>
where
    E: EntityTrait,
    C: ConnectionTrait,
{
    update_by_key_if::<E, C>(conn, key, cols, rows, None).await
}

/// [`update_by_key`], changing only the rows that also meet `only` (a
/// condition on the table's own columns, e.g. a status still allowed to
/// change). Returns the number of rows that matched a key and `only`.
pub async fn update_by_key_if<E, C>(
    conn: &C,
    key: E::Column,
    cols: &[E::Column],
    rows: Vec<Vec<Value>>,
    only: Option<Condition>,
) -> Result<u64, DbErr>
where
    E: EntityTrait,
    C: ConnectionTrait,
{
    let v = Alias::new("v").into_iden();
    let mut changed = 0;
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<ValueTuple> = rows
            .by_ref()
            .take(ROWS_PER_STATEMENT)
            .map(|r| {
                debug_assert_eq!(r.len(), cols.len() + 1, "a key and one value per column");
                ValueTuple::Many(r)
            })
            .collect();
        let mut q = Query::update();
        q.table(E::default());
        for (i, c) in cols.iter().enumerate() {
            q.value(
                *c,
                Expr::col((v.clone(), Alias::new(format!("column{}", i + 2)))),
            );
        }
        q.from(TableRef::ValuesList(chunk, v.clone()))
            .and_where(Expr::col((E::default(), key)).equals((v.clone(), Alias::new("column1"))));
        if let Some(only) = &only {
            q.cond_where(only.clone());
        }
        changed += conn.execute(&q).await?.rows_affected();
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::entities::command;
    use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel};

    fn row(id: &str) -> command::Model {
        command::Model {
            id: id.into(),
            agent_id: "A".into(),
            job_id: None,
            action: "sys.ping".into(),
            params: "{}".into(),
            status: "queued".into(),
            requested_by: "t".into(),
            source: "user".into(),
            created_at: 1,
            updated_at: 1,
            expires_at: 2,
            timeout_secs: 30,
            exit_code: None,
            summary: String::new(),
            result: None,
            attempts: 0,
            finished_at: None,
            stream_seq: None,
            outcome_source: None,
            inferred_status: None,
            inferred_summary: None,
            inferred_at: None,
        }
    }

    #[tokio::test]
    async fn updates_only_the_named_rows_across_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let db = crate::db::connect(&url).await.unwrap();
        let n = ROWS_PER_STATEMENT * 2 + 7;
        for i in 0..=n {
            row(&format!("c{i}"))
                .into_active_model()
                .insert(&db)
                .await
                .unwrap();
        }
        // Every row but the last; a quote in a value stays a value.
        let rows: Vec<Vec<Value>> = (0..n)
            .map(|i| {
                vec![
                    format!("c{i}").into(),
                    (i as i64 * 10).into(),
                    format!("it's {i}").into(),
                    Value::Int(None),
                ]
            })
            .collect();
        let changed = update_by_key::<command::Entity, _>(
            &db,
            command::Column::Id,
            &[
                command::Column::StreamSeq,
                command::Column::Summary,
                command::Column::ExitCode,
            ],
            rows,
        )
        .await
        .unwrap();
        assert_eq!(changed, n as u64);
        let c = command::Entity::find_by_id("c513")
            .one(&db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.stream_seq, Some(5130));
        assert_eq!(c.summary, "it's 513");
        assert_eq!(c.exit_code, None);
        let last = command::Entity::find_by_id(format!("c{n}"))
            .one(&db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(last.stream_seq, None, "a row not named is untouched");
        assert_eq!(last.summary, "");
    }
}
