//! The audit trail: every operator action and every command or job created,
//! in an append-only, hash-chained table.
//!
//! Row `n` carries `prev_hash` (row `n-1`'s hash, or 64 zeros for the first)
//! and `hash = sha256(prev_hash || canonical(row))`, where the canonical form
//! is the JSON array `[id, at, actor, action, target, ip, detail]` of the
//! stored values. Ids are assigned by the writer as previous + 1, so an
//! edited row breaks its own hash, a deleted row leaves a gap (and breaks the
//! next row's `prev_hash`), and `prev_hash` is unique so two writers cannot
//! both extend the same row. [`verify`] walks the chain; `drover audit
//! verify` prints the head hash, which an operator can note to also detect
//! the removal of rows at the end.
//!
//! Secrets never get here: callers pass params masked by the catalogue
//! (`ActionSpec::mask`) and request bodies reduced to an allow-list of fields.

use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::db::entities::audit_log;

/// The `prev_hash` of the first row.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One writer at a time in this process; the unique `prev_hash` catches
/// another process extending the chain at the same moment (we then retry).
static APPEND: Mutex<()> = Mutex::const_new(());

/// What happened, by whom, from where.
#[derive(Debug, Clone)]
pub struct Entry {
    pub actor: String,
    pub action: String,
    pub target: String,
    pub ip: String,
    /// JSON detail, already masked.
    pub detail: Value,
}

impl Entry {
    pub fn new(actor: &str, action: &str, target: &str, ip: &str, detail: Value) -> Self {
        Self {
            actor: actor.into(),
            action: action.into(),
            target: target.into(),
            ip: ip.into(),
            detail,
        }
    }
}

/// The canonical bytes a row's hash covers.
pub fn canonical(
    id: i64,
    at: i64,
    actor: &str,
    action: &str,
    target: &str,
    ip: &str,
    detail: &str,
) -> String {
    json!([id, at, actor, action, target, ip, detail]).to_string()
}

pub fn row_hash(prev_hash: &str, canonical: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(canonical.as_bytes());
    hex::encode(h.finalize())
}

/// Appends one entry. Failures are logged and returned; callers that must
/// not fail an operation because of the audit log still see the error.
pub async fn record(db: &DatabaseConnection, e: Entry) -> Result<i64, sea_orm::DbErr> {
    let detail = e.detail.to_string();
    let _turn = APPEND.lock().await;
    let mut tries = 0;
    loop {
        tries += 1;
        let last = audit_log::Entity::find()
            .order_by_desc(audit_log::Column::Id)
            .one(db)
            .await?;
        let (id, prev) = match &last {
            Some(r) => (r.id + 1, r.hash.clone()),
            None => (1, GENESIS.to_string()),
        };
        let at = bus_schema::now_ms();
        let hash = row_hash(
            &prev,
            &canonical(id, at, &e.actor, &e.action, &e.target, &e.ip, &detail),
        );
        let res = audit_log::Entity::insert(audit_log::ActiveModel {
            id: Set(id),
            at: Set(at),
            actor: Set(e.actor.clone()),
            action: Set(e.action.clone()),
            target: Set(e.target.clone()),
            ip: Set(e.ip.clone()),
            detail: Set(detail.clone()),
            prev_hash: Set(prev),
            hash: Set(hash),
        })
        .exec(db)
        .await;
        match res {
            Ok(_) => return Ok(id),
            Err(err) if tries < 5 => {
                tracing::debug!(error = %err, "audit append raced; retrying");
            }
            Err(err) => {
                tracing::error!(error = %err, action = %e.action, "audit entry not recorded");
                return Err(err);
            }
        }
    }
}

/// The result of walking the chain.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    Intact {
        rows: u64,
        head: String,
    },
    /// The first row that does not fit: edited (hash), or a row before it
    /// deleted (gap / prev_hash).
    Broken {
        id: i64,
        reason: String,
    },
}

/// Walks the chain in the database. When segments were archived
/// (`drover audit archive`, table `audit_archives`), the walk starts after
/// the last archived row, from its recorded head hash; the archives must
/// cover ids `1..` without gaps and chain by hash (each record's
/// `first_prev_hash` is the previous record's `head_hash`, the first one's
/// the genesis value).
pub async fn verify(db: &DatabaseConnection) -> Result<Verdict, sea_orm::DbErr> {
    use crate::retention::entity::audit_archive;
    let archives = audit_archive::Entity::find()
        .order_by_asc(audit_archive::Column::FromId)
        .all(db)
        .await?;
    let mut next = 1i64;
    let mut head = GENESIS.to_string();
    for a in &archives {
        if a.from_id != next {
            return Ok(Verdict::Broken {
                id: next,
                reason: format!(
                    "rows {next}..{} are neither in the database nor in a recorded archive",
                    a.from_id - 1
                ),
            });
        }
        if a.first_prev_hash != head {
            return Ok(Verdict::Broken {
                id: a.from_id,
                reason: format!(
                    "the archive record of rows {}..{} ({}) does not start from {}: its first_prev_hash is {:?}, expected {head}",
                    a.from_id,
                    a.to_id,
                    a.file_name,
                    if a.from_id == 1 { "the genesis hash".to_string() } else { format!("the head hash of the archive before it (rows ..{})", a.from_id - 1) },
                    a.first_prev_hash,
                ),
            });
        }
        head = a.head_hash.clone();
        next = a.to_id + 1;
    }
    match archives.last() {
        Some(a) => verify_from(db, a.to_id, &a.head_hash).await,
        None => verify_from(db, 0, GENESIS).await,
    }
}

/// Walks the rows with an id above `after`, the first of which must be
/// `after + 1` and carry `prev_hash == prev`.
pub async fn verify_from(
    db: &DatabaseConnection,
    after: i64,
    prev: &str,
) -> Result<Verdict, sea_orm::DbErr> {
    let mut prev = prev.to_string();
    let mut expect_id = after + 1;
    let mut rows = 0u64;
    let mut after = after;
    loop {
        let page = audit_log::Entity::find()
            .filter(audit_log::Column::Id.gt(after))
            .order_by_asc(audit_log::Column::Id)
            .limit(1000)
            .all(db)
            .await?;
        if page.is_empty() {
            return Ok(Verdict::Intact { rows, head: prev });
        }
        for r in &page {
            if r.id != expect_id {
                return Ok(Verdict::Broken {
                    id: r.id,
                    reason: format!(
                        "row {} is missing (deleted): the chain jumps from {} to {}",
                        expect_id,
                        expect_id - 1,
                        r.id
                    ),
                });
            }
            if r.prev_hash != prev {
                return Ok(Verdict::Broken {
                    id: r.id,
                    reason: "prev_hash does not match the previous row's hash (a row before it was changed or removed)".into(),
                });
            }
            let want = row_hash(
                &r.prev_hash,
                &canonical(r.id, r.at, &r.actor, &r.action, &r.target, &r.ip, &r.detail),
            );
            if want != r.hash {
                return Ok(Verdict::Broken {
                    id: r.id,
                    reason: "the row's content does not match its hash (edited)".into(),
                });
            }
            prev = r.hash.clone();
            expect_id += 1;
            rows += 1;
            after = r.id;
        }
    }
}

/// Filters for listing and export.
#[derive(Debug, Default, Deserialize)]
pub struct Filter {
    pub actor: Option<String>,
    pub action: Option<String>,
    /// Milliseconds since the epoch, or `YYYY-MM-DD`.
    pub since: Option<String>,
    pub until: Option<String>,
    pub limit: Option<u64>,
    /// Rows with an id below this (for paging back).
    pub before: Option<i64>,
    pub format: Option<String>,
}

/// `1732440000000` or `2026-11-24` (UTC midnight) or `2026-11-24T10:00:00Z`.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let bad =
        || format!("time {s:?}: use milliseconds since the epoch or YYYY-MM-DD[THH:MM[:SS]Z]");
    let (date, time) = match s.split_once('T') {
        Some((d, t)) => (d, t.trim_end_matches('Z')),
        None => (s, "00:00:00"),
    };
    let d: Vec<i64> = date
        .split('-')
        .map(|p| p.parse::<i64>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let t: Vec<i64> = time
        .split(':')
        .map(|p| p.parse::<i64>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    if d.len() != 3 || t.len() < 2 || t.len() > 3 {
        return Err(bad());
    }
    let (y, m, day) = (d[0], d[1], d[2]);
    // Years past 9999 or negative times overflowed the arithmetic below.
    let sec = t.get(2).copied().unwrap_or(0);
    if !(0..=9999).contains(&y)
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&day)
        || !(0..=23).contains(&t[0])
        || !(0..=59).contains(&t[1])
        || !(0..=60).contains(&sec)
    {
        return Err(bad());
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let secs = days * 86400 + t[0] * 3600 + t[1] * 60 + t.get(2).copied().unwrap_or(0);
    Ok(secs * 1000)
}

pub async fn list(
    db: &DatabaseConnection,
    f: &Filter,
) -> Result<Result<Vec<audit_log::Model>, String>, sea_orm::DbErr> {
    let mut c = Condition::all();
    if let Some(a) = f.actor.as_deref().filter(|s| !s.is_empty()) {
        c = c.add(audit_log::Column::Actor.eq(a));
    }
    if let Some(a) = f.action.as_deref().filter(|s| !s.is_empty()) {
        // `command` matches `command.create`, `command.cancel`, ...
        c = c.add(
            Condition::any()
                .add(audit_log::Column::Action.eq(a))
                .add(audit_log::Column::Action.starts_with(format!("{a}."))),
        );
    }
    if let Some(s) = f.since.as_deref().filter(|s| !s.is_empty()) {
        match parse_time(s) {
            Ok(t) => c = c.add(audit_log::Column::At.gte(t)),
            Err(e) => return Ok(Err(e)),
        }
    }
    if let Some(s) = f.until.as_deref().filter(|s| !s.is_empty()) {
        match parse_time(s) {
            Ok(t) => c = c.add(audit_log::Column::At.lt(t)),
            Err(e) => return Ok(Err(e)),
        }
    }
    if let Some(b) = f.before {
        c = c.add(audit_log::Column::Id.lt(b));
    }
    let rows = audit_log::Entity::find()
        .filter(c)
        .order_by_desc(audit_log::Column::Id)
        .limit(f.limit.unwrap_or(200).clamp(1, 100_000))
        .all(db)
        .await?;
    Ok(Ok(rows))
}

pub fn row_json(r: &audit_log::Model) -> Value {
    json!({
        "id": r.id,
        "at": r.at,
        "actor": r.actor,
        "action": r.action,
        "target": r.target,
        "ip": r.ip,
        "detail": serde_json::from_str::<Value>(&r.detail).unwrap_or(Value::Null),
        "prev_hash": r.prev_hash,
        "hash": r.hash,
    })
}

fn csv_field(s: &str) -> String {
    // Cells starting with = + - @ would be formulas in a spreadsheet.
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

pub fn to_csv(rows: &[audit_log::Model]) -> String {
    let mut out = String::from("id,at,actor,action,target,ip,detail,prev_hash,hash\n");
    for r in rows {
        let cells = [
            r.id.to_string(),
            r.at.to_string(),
            csv_field(&r.actor),
            csv_field(&r.action),
            csv_field(&r.target),
            csv_field(&r.ip),
            csv_field(&r.detail),
            r.prev_hash.clone(),
            r.hash.clone(),
        ];
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse() {
        assert_eq!(parse_time("0").unwrap(), 0);
        assert_eq!(parse_time("1970-01-02").unwrap(), 86_400_000);
        assert_eq!(parse_time("2000-03-01T00:00:00Z").unwrap(), 951_868_800_000);
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("2000-13-01").is_err());
        // Out of range is refused, not an arithmetic overflow.
        assert!(parse_time("9999999999999999-01-01").is_err());
        assert!(parse_time("2000-01-01T-5:00").is_err());
        assert!(parse_time("9999-12-31T23:59:60Z").is_ok());
    }

    #[test]
    fn csv_escapes_and_defuses_formulas() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("=cmd()"), "'=cmd()");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn hash_covers_every_field() {
        let base = canonical(1, 2, "a", "b", "c", "d", "{}");
        let h = row_hash(GENESIS, &base);
        for other in [
            canonical(2, 2, "a", "b", "c", "d", "{}"),
            canonical(1, 3, "a", "b", "c", "d", "{}"),
            canonical(1, 2, "x", "b", "c", "d", "{}"),
            canonical(1, 2, "a", "b", "c", "d", "{\"k\":1}"),
        ] {
            assert_ne!(h, row_hash(GENESIS, &other));
        }
        assert_ne!(h, row_hash(&"1".repeat(64), &base));
    }
}
