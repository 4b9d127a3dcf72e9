//! Reading metric history for charts across retention tiers: raw samples
//! while the range lies within the raw window, rollups beyond it (five
//! minutes while within their window, hourly after), and raw samples for
//! the recent part not rolled up yet. Owns which tier answers a range;
//! not how a chart is drawn (`ui::agents`) nor the rollups themselves.

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Serialize;

use crate::db::entities::metric_sample;
use crate::retention::entity::metric_rollup;
use crate::retention::rollup::{FIVE_MIN, HOUR};
use crate::state::AppState;

/// A chart range the UI and API offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    Hour,
    Day,
    Week,
    Month,
}

impl Range {
    pub const ALL: [Range; 4] = [Range::Hour, Range::Day, Range::Week, Range::Month];

    /// `1h`, `24h`, `7d` or `30d`.
    pub fn parse(s: &str) -> Option<Range> {
        Some(match s {
            "1h" => Range::Hour,
            "24h" | "1d" => Range::Day,
            "7d" => Range::Week,
            "30d" => Range::Month,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Range::Hour => "1h",
            Range::Day => "24h",
            Range::Week => "7d",
            Range::Month => "30d",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Range::Hour => "Last hour",
            Range::Day => "Last day",
            Range::Week => "Last 7 days",
            Range::Month => "Last 30 days",
        }
    }

    /// The span, milliseconds.
    pub fn span_ms(self) -> i64 {
        match self {
            Range::Hour => 3_600_000,
            Range::Day => 86_400_000,
            Range::Week => 7 * 86_400_000,
            Range::Month => 30 * 86_400_000,
        }
    }

    /// One chart point per this many milliseconds.
    pub fn bucket_ms(self) -> i64 {
        match self {
            Range::Hour => 60_000,
            Range::Day => 900_000,
            Range::Week => 3_600_000,
            Range::Month => 6 * 3_600_000,
        }
    }
}

/// One chart point: a bucket's start (ms) and CPU, memory and disk use in
/// percent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    pub at: i64,
    pub cpu: f64,
    pub mem: f64,
    pub disk: f64,
}

/// Where a range's points came from: `raw`, `rollup_5m` or `rollup_1h`
/// (with recent raw samples after the last rollup).
pub fn source(state: &AppState, range: Range) -> (&'static str, i64) {
    let within = |secs: u64| range.span_ms() <= (secs.min(i64::MAX as u64 / 1000) as i64) * 1000;
    if within(state.cfg.retention_samples_secs) {
        ("raw", 0)
    } else if within(state.cfg.retention_rollup_5m_secs) {
        ("rollup_5m", FIVE_MIN)
    } else {
        ("rollup_1h", HOUR)
    }
}

/// The points of `agent_id` over `range` ending at `now_ms`, oldest first.
pub async fn series(
    state: &AppState,
    agent_id: &str,
    range: Range,
    now_ms: i64,
) -> Result<(&'static str, Vec<Point>), sea_orm::DbErr> {
    let since = now_ms - range.span_ms();
    let b = range.bucket_ms();
    let (src, res) = source(state, range);
    let mut pts = Vec::new();
    let mut raw_from = since;
    if res != 0 {
        let bucket = Expr::cust(format!("(bucket_at / {b})"));
        let rows: Vec<(i64, f64, f64, f64, Option<i64>)> = metric_rollup::Entity::find()
            .select_only()
            .column_as(bucket.clone(), "b")
            .column_as(Expr::cust("CAST(AVG(cpu_avg) AS DOUBLE PRECISION)"), "cpu")
            .column_as(
                Expr::cust(
                    "CAST(AVG(CASE WHEN mem_total > 0 THEN 100.0 * mem_used_avg / mem_total ELSE 0 END) \
                     AS DOUBLE PRECISION)",
                ),
                "mem",
            )
            .column_as(
                Expr::cust(
                    "CAST(AVG(CASE WHEN disk_total > 0 THEN 100.0 * disk_used_max / disk_total ELSE 0 END) \
                     AS DOUBLE PRECISION)",
                ),
                "disk",
            )
            .column_as(Expr::cust("MAX(bucket_at)"), "last")
            .filter(metric_rollup::Column::AgentId.eq(agent_id))
            .filter(metric_rollup::Column::ResolutionSecs.eq(res as i32))
            .filter(metric_rollup::Column::BucketAt.gte(since))
            .group_by(bucket)
            .order_by_asc(Expr::cust("b"))
            .into_tuple()
            .all(&state.db)
            .await?;
        for (k, cpu, mem, disk, last) in rows {
            pts.push(Point {
                at: k * b,
                cpu,
                mem,
                disk,
            });
            if let Some(l) = last {
                raw_from = raw_from.max(l + res * 1000);
            }
        }
    }
    // Raw samples: the whole range, or what no rollup covers yet.
    let bucket = Expr::cust(format!("(at / {b})"));
    let rows: Vec<(i64, f64, f64, f64)> = metric_sample::Entity::find()
        .select_only()
        .column_as(bucket.clone(), "b")
        // Cast to a float: PostgreSQL's AVG over `100.0 * bigint` is
        // NUMERIC, which does not decode as f64 (SQLite has no such type).
        .column_as(Expr::cust("CAST(AVG(cpu_percent) AS DOUBLE PRECISION)"), "cpu")
        .column_as(
            Expr::cust(
                "CAST(AVG(CASE WHEN mem_total > 0 THEN 100.0 * mem_used / mem_total ELSE 0 END) \
                 AS DOUBLE PRECISION)",
            ),
            "mem",
        )
        .column_as(
            Expr::cust(
                "CAST(AVG(CASE WHEN disk_total > 0 THEN 100.0 * disk_used / disk_total ELSE 0 END) \
                 AS DOUBLE PRECISION)",
            ),
            "disk",
        )
        .filter(metric_sample::Column::AgentId.eq(agent_id))
        .filter(metric_sample::Column::At.gte(raw_from))
        .group_by(bucket)
        .order_by_asc(Expr::cust("b"))
        .into_tuple()
        .all(&state.db)
        .await?;
    for (k, cpu, mem, disk) in rows {
        // A bucket the rollups already gave stays theirs.
        if pts.last().is_some_and(|p| p.at >= k * b) {
            continue;
        }
        pts.push(Point {
            at: k * b,
            cpu,
            mem,
            disk,
        });
    }
    Ok((src, pts))
}
