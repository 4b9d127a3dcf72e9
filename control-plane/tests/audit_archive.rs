//! An audit archive is proven against the database's record of it, not
//! only against itself, on a running stack (real nats-server, control
//! plane, SQLite, the `drover` CLI): a file cut to rows 6..21 with a
//! rewritten trailer, and a file rewritten whole with recomputed hashes,
//! both fail and say which recorded field differs; a file with no record
//! fails unless `--offline` is given; alone (`--offline`) both fail on the
//! trailer's signature (the control plane's command-signing key); the
//! untouched file passes. Archives
//! chain to each other by hash, and `drover audit verify` finds a record
//! that does not.

mod common;

use common::Stack;
use control_plane::audit::{canonical, row_hash};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde_json::{json, Value};

const DAY: i64 = 86_400_000;

async fn count(db: &DatabaseConnection, sql: &str) -> i64 {
    let backend = db.get_database_backend();
    let r = db
        .query_one_raw(sea_orm::Statement::from_string(backend, sql.to_string()))
        .await
        .unwrap()
        .unwrap();
    r.try_get_by_index::<i64>(0).unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

/// The file's rows and its trailer.
fn parse(path: &std::path::Path) -> (Vec<Value>, Value) {
    let body = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<Value> = body
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let trailer = lines.pop().unwrap();
    assert!(trailer.get("archive").is_some(), "{trailer}");
    (lines, trailer)
}

fn write(path: &std::path::Path, rows: &[Value], trailer: &Value) {
    let mut body: String = rows.iter().map(|r| format!("{r}\n")).collect();
    body.push_str(&format!("{trailer}\n"));
    std::fs::write(path, body).unwrap();
}

/// A trailer naming `rows` exactly, as someone rewriting it would.
fn trailer_for(rows: &[Value], old: &Value) -> Value {
    let first = rows.first().unwrap();
    let last = rows.last().unwrap();
    json!({"archive": {
        "from_id": first["id"],
        "to_id": last["id"],
        "rows": rows.len(),
        "first_prev_hash": first["prev_hash"],
        "head_hash": last["hash"],
        "exported_at": old["archive"]["exported_at"],
        "signature": old["archive"]["signature"],
    }})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_or_rewritten_archive_fails_against_its_record_and_archives_chain() {
    let stack = Stack::start().await;
    // At least 25 entries: token creations are audited.
    for _ in 0..25 {
        stack.token(1, "1h", false).await;
    }
    let db = stack.db().await;
    let total = count(&db, "SELECT COUNT(*) FROM audit_log").await;
    assert!(total >= 25, "{total}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit-1.jsonl");
    let file_s = file.to_str().unwrap();
    let later = (bus_schema::now_ms() + DAY).to_string();
    let out = stack.drover(&[
        "audit", "archive", "--before", &later, "--out", file_s, "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["from_id"], 1, "{v}");
    let to_id = v["to_id"].as_i64().unwrap();
    assert!(to_id >= 24, "{v}");

    // The untouched archive passes, checked against its record.
    let out = stack.drover(&["audit", "verify", "--archive", file_s]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.contains("matches the recorded archive"), "{said}");
    let out = stack.drover(&["audit", "verify", "--archive", file_s, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["intact"], true, "{v}");
    assert_eq!(v["checked_against_record"], true, "{v}");

    let (rows, trailer) = parse(&file);
    assert_eq!(rows.len() as i64, to_id);
    assert!(trailer["archive"]["signature"].is_string(), "{trailer}");

    // The reviewer's attack: keep rows 6..21 of 1..24, rewrite only the
    // trailer. The file agrees with itself; under the recorded file name
    // it is compared with that record and fails, naming each field.
    let cut: Vec<Value> = rows[5..21].to_vec();
    let cut_trailer = trailer_for(&cut, &trailer);
    let sub = dir.path().join("copy");
    std::fs::create_dir(&sub).unwrap();
    let same_name = sub.join("audit-1.jsonl");
    write(&same_name, &cut, &cut_trailer);
    let out = stack.drover(&["audit", "verify", "--archive", same_name.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains("does not match the database's record"),
        "{err}"
    );
    assert!(
        err.contains("from_id: the file says 6, the record says 1"),
        "{err}"
    );
    assert!(
        err.contains(&format!("to_id: the file says 21, the record says {to_id}")),
        "{err}"
    );
    assert!(
        err.contains(&format!("rows: the file says 16, the record says {to_id}")),
        "{err}"
    );
    assert!(err.contains("head_hash"), "{err}");
    // Under another name no record matches: not proven, exit 1 ...
    let renamed = dir.path().join("renamed.jsonl");
    write(&renamed, &cut, &cut_trailer);
    let renamed_s = renamed.to_str().unwrap();
    let out = stack.drover(&["audit", "verify", "--archive", renamed_s]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(err.contains("no archive record"), "{err}");
    assert!(err.contains("checked only against itself"), "{err}");
    // Alone (--offline) it agrees with itself, but its rewritten trailer
    // no longer carries the control plane's signature.
    let out = stack.drover(&["audit", "verify", "--archive", renamed_s, "--offline"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(err.contains("signature does not verify"), "{err}");
    // The untouched file alone passes, and says it was checked alone.
    let out = stack.drover(&["audit", "verify", "--archive", file_s, "--offline"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.contains("checked only against itself"), "{said}");
    assert!(said.contains("signed by the control plane's key"), "{said}");

    // A full rewrite: row 3's actor changed and every hash from it on
    // recomputed, trailer too. Self-consistent, but its head hash is not
    // the recorded one.
    let mut forged = rows.clone();
    let mut prev = forged[2]["prev_hash"].as_str().unwrap().to_string();
    forged[2]["actor"] = json!("mallory");
    for r in forged.iter_mut().skip(2) {
        r["prev_hash"] = json!(prev);
        let c = canonical(
            r["id"].as_i64().unwrap(),
            r["at"].as_i64().unwrap(),
            r["actor"].as_str().unwrap(),
            r["action"].as_str().unwrap(),
            r["target"].as_str().unwrap(),
            r["ip"].as_str().unwrap(),
            r["detail"].as_str().unwrap(),
        );
        prev = row_hash(&prev, &c);
        r["hash"] = json!(prev);
    }
    let forged_file = dir.path().join("forged.jsonl");
    write(&forged_file, &forged, &trailer_for(&forged, &trailer));
    let forged_s = forged_file.to_str().unwrap();
    // Alone, the forgery agrees with itself but not with its signature
    // (the signed trailer was the original's; a fresh trailer is unsigned).
    let out = stack.drover(&["audit", "verify", "--archive", forged_s, "--offline"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("signature does not verify"), "{err}");
    let mut unsigned = trailer_for(&forged, &trailer);
    unsigned["archive"]
        .as_object_mut()
        .unwrap()
        .remove("signature");
    let unsigned_file = dir.path().join("unsigned.jsonl");
    write(&unsigned_file, &forged, &unsigned);
    let out = stack.drover(&[
        "audit",
        "verify",
        "--archive",
        unsigned_file.to_str().unwrap(),
        "--offline",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("not signed"), "{err}");
    let out = stack.drover(&["audit", "verify", "--archive", forged_s, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["intact"], false, "{v}");
    let diffs: Vec<String> = v["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    assert_eq!(diffs.len(), 1, "{v}");
    assert!(diffs[0].starts_with("head_hash: the file says "), "{v}");

    // A second archive chains to the first by hash.
    for _ in 0..3 {
        stack.token(1, "1h", false).await;
    }
    let file2 = dir.path().join("audit-2.jsonl");
    let file2_s = file2.to_str().unwrap();
    let later = (bus_schema::now_ms() + DAY).to_string();
    let out = stack.drover(&["audit", "archive", "--before", &later, "--out", file2_s]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (_, t2) = parse(&file2);
    assert_eq!(t2["archive"]["from_id"].as_i64().unwrap(), to_id + 1);
    assert_eq!(
        t2["archive"]["first_prev_hash"],
        trailer["archive"]["head_hash"]
    );
    let out = stack.drover(&["audit", "verify", "--archive", file2_s]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = stack.drover(&["audit", "verify"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // A record that does not start from the previous head breaks the
    // chain, though the ids still cover 1.. without gaps.
    db.execute_unprepared(&format!(
        "UPDATE audit_archives SET first_prev_hash = '{}' WHERE from_id = {}",
        "f".repeat(64),
        to_id + 1
    ))
    .await
    .unwrap();
    let out = stack.drover(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("first_prev_hash"), "{err}");
    assert!(err.contains("head hash of the archive before it"), "{err}");
    // And the second file no longer matches that record.
    let out = stack.drover(&["audit", "verify", "--archive", file2_s]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("first_prev_hash: the file says"));
}
