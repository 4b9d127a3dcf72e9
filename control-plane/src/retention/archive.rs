//! Audit archiving: the audit trail is never pruned silently. An operator
//! exports its oldest segment to a file (`drover audit archive`), which
//! then leaves the database with a row in `audit_archives` recording the
//! segment's ids and head hash, so `drover audit verify` goes on proving
//! the remaining chain and `drover audit verify --archive FILE` proves the
//! file's rows and trailer, then that the trailer is the one the database
//! recorded ([`check_record`]: same ids, row count and hashes). Owns the file format and the export; not the chain's
//! hashing (`crate::audit`).
//!
//! The file: one JSON object per line, `{"id", "at", "actor", "action",
//! "target", "ip", "detail", "prev_hash", "hash"}` per row in id order
//! (`detail` the stored JSON text, exactly as hashed), then one trailer
//! line `{"archive": {"from_id", "to_id", "rows", "first_prev_hash",
//! "head_hash", "exported_at", "signature"}}`, `signature` the base64
//! Ed25519 signature of the control plane's command-signing key over the
//! trailer's JSON without it ([`Trailer::signed_bytes`]).

use std::io::{BufRead, Write};
use std::path::Path;

use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::{Deserialize, Serialize};

use crate::audit::{canonical, row_hash, Verdict, GENESIS};
use crate::db::entities::audit_log;
use crate::retention::entity::audit_archive;

/// Why an archive was not made. Nothing changed in the database.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{0} already exists: choose a new file name (an archive is never overwritten)")]
    Exists(String),
    #[error("no audit entries before that time to archive (the newest entry always stays)")]
    Nothing,
    #[error("the audit chain is broken at entry {id} ({reason}); run `drover audit verify` and investigate before archiving")]
    Broken { id: i64, reason: String },
    #[error("writing {path}: {err}")]
    Io { path: String, err: std::io::Error },
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

/// One archived row: the stored values, exactly as hashed.
#[derive(Debug, Serialize, Deserialize)]
pub struct Line {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub ip: String,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

/// The file's last line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Trailer {
    pub from_id: i64,
    pub to_id: i64,
    pub rows: i64,
    /// The `prev_hash` of the first row (64 zeros when it is row 1).
    pub first_prev_hash: String,
    /// The hash of the last row: what the remaining chain continues from.
    pub head_hash: String,
    /// Milliseconds since the epoch.
    pub exported_at: i64,
    /// Base64 of the control plane's Ed25519 command-signing key's
    /// signature over [`Trailer::signed_bytes`] (domain-separated,
    /// `bus_schema::CommandSigner::sign_audit_archive`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

impl Trailer {
    /// What the signature covers: the trailer's JSON without the
    /// signature, fields in declaration order (re-serialized, so the
    /// file's own spelling of the line does not matter).
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut t = self.clone();
        t.signature = None;
        serde_json::to_vec(&t).expect("a trailer serializes")
    }

    /// Whether the trailer carries a valid signature by `key`.
    pub fn signature_check(&self, key: &bus_schema::VerifyingKey) -> Result<(), String> {
        use base64::Engine;
        let Some(sig) = &self.signature else {
            return Err("the trailer is not signed".into());
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(sig)
            .map_err(|_| "the trailer's signature is not base64".to_string())?;
        if key.verify_audit_archive(&self.signed_bytes(), &raw) {
            Ok(())
        } else {
            Err(format!(
                "the trailer's signature does not verify with the control plane's key {} (the file was rewritten, or made by another control plane)",
                key.fingerprint()
            ))
        }
    }
}

#[derive(Serialize, Deserialize)]
struct TrailerLine {
    archive: Trailer,
}

/// Exports every audit row recorded before `before_ms` (but never the
/// newest row, which the next entry links to) to `out`, the trailer signed
/// with the control plane's command-signing key, then deletes them
/// and records the archive, in one transaction. The file is written and
/// synced first: a failure after it leaves the rows in place.
pub async fn archive(
    db: &DatabaseConnection,
    signer: &bus_schema::CommandSigner,
    before_ms: i64,
    out: &Path,
) -> Result<Trailer, ArchiveError> {
    let shown = out.display().to_string();
    if out.exists() {
        return Err(ArchiveError::Exists(shown));
    }
    let last = audit_archive::Entity::find()
        .order_by_desc(audit_archive::Column::ToId)
        .one(db)
        .await?;
    let (after, mut prev) = match &last {
        Some(a) => (a.to_id, a.head_hash.clone()),
        None => (0, GENESIS.to_string()),
    };
    let newest: Option<i64> = audit_log::Entity::find()
        .select_only()
        .column_as(audit_log::Column::Id.max(), "m")
        .into_tuple()
        .one(db)
        .await?
        .flatten();
    let Some(newest) = newest else {
        return Err(ArchiveError::Nothing);
    };
    let mut rows: Vec<audit_log::Model> = Vec::new();
    let mut cursor = after;
    loop {
        let page = audit_log::Entity::find()
            .filter(audit_log::Column::Id.gt(cursor))
            .filter(audit_log::Column::Id.lt(newest))
            .filter(audit_log::Column::At.lt(before_ms))
            .order_by_asc(audit_log::Column::Id)
            .limit(1000)
            .all(db)
            .await?;
        let Some(l) = page.last() else { break };
        cursor = l.id;
        rows.extend(page);
    }
    // Only a prefix of the chain leaves: stop at the first row not before
    // the cut (ids and times go up together, but be exact).
    let mut segment = Vec::new();
    for (expect, r) in (after + 1..).zip(rows) {
        if r.id != expect {
            break;
        }
        check_row(&r, &prev).map_err(|reason| ArchiveError::Broken { id: r.id, reason })?;
        prev = r.hash.clone();
        segment.push(r);
    }
    let (Some(first), Some(lastrow)) = (segment.first(), segment.last()) else {
        return Err(ArchiveError::Nothing);
    };
    let trailer = Trailer {
        from_id: first.id,
        to_id: lastrow.id,
        rows: segment.len() as i64,
        first_prev_hash: first.prev_hash.clone(),
        head_hash: lastrow.hash.clone(),
        exported_at: bus_schema::now_ms(),
        signature: None,
    };
    let mut trailer = trailer;
    {
        use base64::Engine;
        let sig = signer.sign_audit_archive(&trailer.signed_bytes());
        trailer.signature = Some(base64::engine::general_purpose::STANDARD.encode(sig));
    }
    write_file(out, &segment, &trailer).map_err(|err| ArchiveError::Io {
        path: shown.clone(),
        err,
    })?;

    let txn = crate::db::begin_write(db).await?;
    audit_archive::Entity::insert(audit_archive::ActiveModel {
        from_id: Set(trailer.from_id),
        to_id: Set(trailer.to_id),
        head_hash: Set(trailer.head_hash.clone()),
        first_prev_hash: Set(trailer.first_prev_hash.clone()),
        rows: Set(trailer.rows),
        exported_at: Set(trailer.exported_at),
        file_name: Set(out
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or(shown)),
        ..Default::default()
    })
    .exec(&txn)
    .await?;
    audit_log::Entity::delete_many()
        .filter(audit_log::Column::Id.gte(trailer.from_id))
        .filter(audit_log::Column::Id.lte(trailer.to_id))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(trailer)
}

fn check_row(r: &audit_log::Model, prev: &str) -> Result<(), String> {
    if r.prev_hash != prev {
        return Err("prev_hash does not match the previous row's hash".into());
    }
    let want = row_hash(
        &r.prev_hash,
        &canonical(r.id, r.at, &r.actor, &r.action, &r.target, &r.ip, &r.detail),
    );
    if want != r.hash {
        return Err("the row's content does not match its hash (edited)".into());
    }
    Ok(())
}

fn write_file(out: &Path, rows: &[audit_log::Model], t: &Trailer) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let f = opts.open(out)?;
    let mut w = std::io::BufWriter::new(f);
    for r in rows {
        let line = Line {
            id: r.id,
            at: r.at,
            actor: r.actor.clone(),
            action: r.action.clone(),
            target: r.target.clone(),
            ip: r.ip.clone(),
            detail: r.detail.clone(),
            prev_hash: r.prev_hash.clone(),
            hash: r.hash.clone(),
        };
        serde_json::to_writer(&mut w, &line)?;
        w.write_all(b"\n")?;
    }
    serde_json::to_writer(&mut w, &TrailerLine { archive: t.clone() })?;
    w.write_all(b"\n")?;
    let f = w.into_inner().map_err(|e| e.into_error())?;
    f.sync_all()
}

/// Verifies an archive file alone: consecutive ids, each row's hash, each
/// `prev_hash` linking to the row before, and the trailer naming the same
/// ids, row count and head hash. `Broken.id` is the first bad row (0: the
/// trailer or the file's shape).
pub fn verify_file(path: &Path) -> std::io::Result<(Verdict, Option<Trailer>)> {
    let f = std::fs::File::open(path)?;
    let mut prev: Option<String> = None;
    let mut first_prev: Option<String> = None;
    let mut expect: Option<i64> = None;
    let mut rows = 0i64;
    let mut trailer: Option<Trailer> = None;
    let broken = |id: i64, reason: String| Ok((Verdict::Broken { id, reason }, None));
    for (n, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        if trailer.is_some() {
            return broken(0, format!("line {}: rows after the trailer", n + 1));
        }
        if let Ok(t) = serde_json::from_str::<TrailerLine>(&line) {
            trailer = Some(t.archive);
            continue;
        }
        let r: Line = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => return broken(0, format!("line {}: not an archived row: {e}", n + 1)),
        };
        if let Some(e) = expect {
            if r.id != e {
                return broken(
                    r.id,
                    format!("row {e} is missing: the file jumps to {}", r.id),
                );
            }
        }
        let prev_ok = prev.as_deref().is_none_or(|p| p == r.prev_hash);
        if !prev_ok {
            return broken(
                r.id,
                "prev_hash does not match the previous row's hash".into(),
            );
        }
        let m = audit_log::Model {
            id: r.id,
            at: r.at,
            actor: r.actor,
            action: r.action,
            target: r.target,
            ip: r.ip,
            detail: r.detail,
            prev_hash: r.prev_hash.clone(),
            hash: r.hash.clone(),
        };
        if let Err(reason) = check_row(&m, &r.prev_hash) {
            return broken(r.id, reason);
        }
        first_prev.get_or_insert(r.prev_hash);
        prev = Some(r.hash);
        expect = Some(r.id + 1);
        rows += 1;
    }
    let Some(t) = trailer else {
        return broken(0, "no trailer line: the file is cut short".into());
    };
    let head = prev.unwrap_or_default();
    let first_id = expect.map(|e| e - rows).unwrap_or(0);
    if t.rows != rows
        || t.head_hash != head
        || t.to_id != expect.unwrap_or(0) - 1
        || t.from_id != first_id
        || Some(&t.first_prev_hash) != first_prev.as_ref()
    {
        return broken(
            0,
            "the trailer does not match the rows (ids, row count or head hash)".into(),
        );
    }
    if t.from_id == 1 && t.first_prev_hash != GENESIS {
        return broken(1, "row 1 does not start from the genesis hash".into());
    }
    Ok((
        Verdict::Intact {
            rows: rows as u64,
            head,
        },
        Some(t),
    ))
}

/// How an archive file's trailer compares with the database's record of
/// the archive (`audit_archives`).
#[derive(Debug, PartialEq)]
pub enum RecordCheck {
    /// The record of these rows names the same ids, row count, head hash
    /// and first `prev_hash`.
    Matches { file_name: String },
    /// No record has these ids or this file name: the file could only be
    /// checked against itself.
    NoRecord,
    /// The record found (by ids, else by file name) differs: one line per
    /// field, saying what the file says and what the record says.
    Differs {
        file_name: String,
        differences: Vec<String>,
    },
}

/// Compares a file's trailer (already verified against its rows by
/// [`verify_file`]) with the record `drover audit archive` left in the
/// database: looked up by `from_id`/`to_id`, else by the file's name. A
/// file cut and given a rewritten trailer, or rewritten whole with
/// recomputed hashes, no longer matches the recorded ids and head hash.
pub async fn check_record(
    db: &DatabaseConnection,
    path: &Path,
    t: &Trailer,
) -> Result<RecordCheck, sea_orm::DbErr> {
    let mut rec = audit_archive::Entity::find()
        .filter(audit_archive::Column::FromId.eq(t.from_id))
        .filter(audit_archive::Column::ToId.eq(t.to_id))
        .one(db)
        .await?;
    if rec.is_none() {
        if let Some(name) = path.file_name() {
            rec = audit_archive::Entity::find()
                .filter(audit_archive::Column::FileName.eq(name.to_string_lossy().to_string()))
                .order_by_asc(audit_archive::Column::FromId)
                .one(db)
                .await?;
        }
    }
    let Some(r) = rec else {
        return Ok(RecordCheck::NoRecord);
    };
    let mut d = Vec::new();
    let mut differ = |field: &str, file: String, record: String| {
        if file != record {
            d.push(format!(
                "{field}: the file says {file}, the record says {record}"
            ));
        }
    };
    differ("from_id", t.from_id.to_string(), r.from_id.to_string());
    differ("to_id", t.to_id.to_string(), r.to_id.to_string());
    differ("rows", t.rows.to_string(), r.rows.to_string());
    differ("head_hash", t.head_hash.clone(), r.head_hash.clone());
    // Empty only for a record made before the column existed whose
    // predecessor was gone.
    if !r.first_prev_hash.is_empty() {
        differ(
            "first_prev_hash",
            t.first_prev_hash.clone(),
            r.first_prev_hash.clone(),
        );
    }
    Ok(if d.is_empty() {
        RecordCheck::Matches {
            file_name: r.file_name,
        }
    } else {
        RecordCheck::Differs {
            file_name: r.file_name,
            differences: d,
        }
    })
}
