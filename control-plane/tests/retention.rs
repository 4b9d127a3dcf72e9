//! Retention on a running stack (real nats-server, control plane, agent,
//! rootd, SQLite), with tiny windows set through `DROVER_RETENTION_*`:
//! old raw samples are rolled up before they go and the charts (API and
//! page) read the rollups for long ranges; old final commands, their jobs,
//! refusals and drop counts go while open work stays. And audit archiving:
//! the archived segment verifies alone, the remaining chain verifies from
//! the recorded head, and tampering with either is found.

mod common;

use std::time::Duration;

use common::{wait_for, Stack};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde_json::json;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_data_is_rolled_up_then_pruned_and_charts_read_rollups() {
    let mut stack = Stack::start().await;
    let host = stack.start_host("ret-1").await;
    let id = host.id.clone();
    let db = stack.db().await;
    let now = bus_schema::now_ms();

    // Metric history: a sample every ten minutes from 12 days to 11 days
    // ago and from 3 days to 1 day ago, CPU always 42 %, memory half used.
    let mut values = Vec::new();
    for (from, to) in [(12 * DAY, 11 * DAY), (3 * DAY, DAY + 3_600_000)] {
        let mut t = now - from;
        while t < now - to {
            values.push(format!("('{id}', {t}, 42.0, 500, 1000, 100, 1000, 0.5)"));
            t += 600_000;
        }
    }
    let seeded = values.len() as i64;
    for chunk in values.chunks(200) {
        db.execute_unprepared(&format!(
            "INSERT INTO metric_samples (agent_id, at, cpu_percent, mem_used, mem_total, \
             disk_used, disk_total, load1) VALUES {}",
            chunk.join(",")
        ))
        .await
        .unwrap();
    }

    // Commands: one final and old (goes), one open and old (stays).
    let gone = stack.ping(&id).await["id"].as_str().unwrap().to_string();
    let open = stack.ping(&id).await["id"].as_str().unwrap().to_string();
    let old = now - 5 * DAY;
    db.execute_unprepared(&format!(
        "UPDATE commands SET created_at = {old}, updated_at = {old} WHERE id = '{gone}'"
    ))
    .await
    .unwrap();
    // Made open again (queued, not expiring for two days) and old: an open
    // command is never pruned, however old its last change.
    let until = now + 2 * DAY;
    db.execute_unprepared(&format!(
        "UPDATE commands SET status = 'queued', created_at = {old}, updated_at = {old}, \
         expires_at = {until} WHERE id = '{open}'"
    ))
    .await
    .unwrap();
    // Jobs: one whose commands are all old (both go), one whose command is
    // recent (the job stays, however old).
    let mut jobs = Vec::new();
    for _ in 0..2 {
        let (code, j) = stack
            .post(
                "/jobs",
                &json!({"selector": {"all": true}, "action": "sys.ping"}),
            )
            .await;
        assert!(code == 201 || code == 202 || code == 200, "{code} {j}");
        let jid = j["id"].as_str().unwrap().to_string();
        stack.wait_job_done(&jid, Duration::from_secs(60)).await;
        jobs.push(jid);
    }
    let (old_job, kept_job) = (&jobs[0], &jobs[1]);
    db.execute_unprepared(&format!(
        "UPDATE commands SET created_at = {old}, updated_at = {old} WHERE job_id = '{old_job}'"
    ))
    .await
    .unwrap();
    db.execute_unprepared(&format!(
        "UPDATE jobs SET created_at = {old} WHERE id IN ('{old_job}', '{kept_job}')"
    ))
    .await
    .unwrap();
    // Refusals and drop counts: one old, one new each.
    db.execute_unprepared(&format!(
        "INSERT INTO refusals (at, agent_id, source, reason, detail) VALUES \
         ({old}, '{id}', 'agent', 'expired', 'old'), ({now}, '{id}', 'agent', 'expired', 'new')"
    ))
    .await
    .unwrap();
    db.execute_unprepared(&format!(
        "INSERT INTO input_drops (kind, subject, agent_id, count, first_at, last_at, last_detail) \
         VALUES ('malformed', 'drover.hb.*', 'old-sender', 3, {old}, {old}, 'x'), \
         ('malformed', 'drover.hb.*', 'new-sender', 1, {now}, {now}, 'y')"
    ))
    .await
    .unwrap();

    // Tiny windows: raw samples 1 day, five-minute rollups 10 days,
    // commands, jobs and refusals 1 day; a round every second.
    stack
        .restart_cp_with(&[
            ("DROVER_RETENTION_EVERY_SECS", "1"),
            ("DROVER_RETENTION_SAMPLES_SECS", "86400"),
            ("DROVER_RETENTION_ROLLUP_5M_SECS", "864000"),
            ("DROVER_RETENTION_COMMANDS_SECS", "86400"),
            ("DROVER_RETENTION_JOBS_SECS", "86400"),
            ("DROVER_RETENTION_REFUSALS_SECS", "86400"),
            ("DROVER_RETENTION_BATCH_ROWS", "50"),
        ])
        .await;

    // Old raw samples go, in batches of 50, but only after rollups exist.
    wait_for("old samples pruned", Duration::from_secs(90), || async {
        let left = count(
            &db,
            &format!("SELECT COUNT(*) FROM metric_samples WHERE at < {}", now - DAY),
        )
        .await;
        let hourly = count(
            &db,
            "SELECT COUNT(*) FROM metric_rollups WHERE resolution_secs = 3600",
        )
        .await;
        // Five-minute rows older than their 10-day window go once hourly
        // ones cover them.
        let old_5m = count(
            &db,
            &format!(
                "SELECT COUNT(*) FROM metric_rollups WHERE resolution_secs = 300 AND bucket_at < {}",
                now - 10 * DAY
            ),
        )
        .await;
        (left == 0 && hourly > 0 && old_5m == 0).then_some(())
    })
    .await;
    // Every seeded sample is in a five-minute row (those of the last
    // two days are kept), and every hour in an hourly one.
    let rolled_5m = count(
        &db,
        &format!(
            "SELECT CAST(COALESCE(SUM(samples), 0) AS BIGINT) FROM metric_rollups WHERE resolution_secs = 300 \
             AND agent_id = '{id}' AND bucket_at < {}",
            now - DAY
        ),
    )
    .await;
    assert!(
        rolled_5m > 0 && rolled_5m < seeded,
        "{rolled_5m} of {seeded}"
    );
    let rolled_1h = count(
        &db,
        &format!(
            "SELECT CAST(COALESCE(SUM(samples), 0) AS BIGINT) FROM metric_rollups WHERE resolution_secs = 3600 \
             AND agent_id = '{id}' AND bucket_at < {}",
            now - DAY
        ),
    )
    .await;
    assert_eq!(rolled_1h, seeded);

    // The charts: 7 days from five-minute rollups, 30 days from hourly
    // ones, both with the seeded values; 1 h from raw samples.
    let (code, v) = stack.get(&format!("/agents/{id}/metrics?range=7d")).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["source"], "rollup_5m", "{v}");
    let pts = v["points"].as_array().unwrap();
    let old_pts: Vec<_> = pts
        .iter()
        .filter(|p| p["at"].as_i64().unwrap() < now - DAY - 3_600_000)
        .collect();
    assert!(old_pts.len() >= 40, "{v}");
    for p in &old_pts {
        assert!((p["cpu"].as_f64().unwrap() - 42.0).abs() < 0.01, "{p}");
        assert!((p["mem"].as_f64().unwrap() - 50.0).abs() < 0.01, "{p}");
    }
    let (code, v) = stack.get(&format!("/agents/{id}/metrics?range=30d")).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["source"], "rollup_1h", "{v}");
    assert!(
        v["points"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["at"].as_i64().unwrap() < now - 10 * DAY
                && (p["cpu"].as_f64().unwrap() - 42.0).abs() < 0.01),
        "{v}"
    );
    let (code, v) = stack.get(&format!("/agents/{id}/metrics?range=1h")).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["source"], "raw", "{v}");
    let (code, v) = stack.get(&format!("/agents/{id}/metrics?range=1y")).await;
    assert_eq!(code, 422, "{v}");
    assert!(v["error"].as_str().unwrap().contains("30d"), "{v}");
    let (code, page) = stack.page_text(&format!("/agents/{id}?range=7d")).await;
    assert_eq!(code, 200);
    assert!(page.contains("Last 7 days"), "{page}");
    assert!(page.contains("?range=30d"), "{page}");

    // Commands, jobs, refusals, drop counts.
    wait_for(
        "old commands, jobs, refusals pruned",
        Duration::from_secs(60),
        || async {
            let cmds = count(
                &db,
                &format!("SELECT COUNT(*) FROM commands WHERE id = '{gone}'"),
            )
            .await;
            let job = count(
                &db,
                &format!("SELECT COUNT(*) FROM jobs WHERE id = '{old_job}'"),
            )
            .await;
            let refusals = count(&db, "SELECT COUNT(*) FROM refusals WHERE detail = 'old'").await;
            let drops = count(
                &db,
                "SELECT COUNT(*) FROM input_drops WHERE agent_id = 'old-sender'",
            )
            .await;
            (cmds + job + refusals + drops == 0).then_some(())
        },
    )
    .await;
    assert_eq!(
        count(
            &db,
            &format!("SELECT COUNT(*) FROM commands WHERE id = '{open}'")
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &db,
            &format!("SELECT COUNT(*) FROM commands WHERE job_id = '{old_job}'")
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &db,
            &format!("SELECT COUNT(*) FROM jobs WHERE id = '{kept_job}'")
        )
        .await,
        1
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM refusals WHERE detail = 'new'").await,
        1
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM input_drops WHERE agent_id = 'new-sender'"
        )
        .await,
        1
    );
    // Recent samples (the agent's own) stay.
    assert!(
        count(
            &db,
            &format!("SELECT COUNT(*) FROM metric_samples WHERE agent_id = '{id}'")
        )
        .await
            > 0
    );
    let (_, duties) = stack.get("/duties").await;
    let ret = duties["duties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "retention")
        .unwrap()
        .clone();
    assert!(ret["last_error"].is_null(), "{ret}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_archive_keeps_the_chain_provable_and_tampering_is_found() {
    let stack = Stack::start().await;
    // Some entries: token creations are audited.
    for _ in 0..4 {
        stack.token(1, "1h", false).await;
    }
    let db = stack.db().await;
    let total = count(&db, "SELECT COUNT(*) FROM audit_log").await;
    assert!(total >= 4, "{total}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit-1.jsonl");
    let file_s = file.to_str().unwrap();
    let later = (bus_schema::now_ms() + DAY).to_string();

    // Bad input changes nothing.
    let out = stack.drover(&["audit", "archive", "--before", "yesterday", "--out", file_s]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("YYYY-MM-DD"));
    assert!(!file.exists());
    assert_eq!(count(&db, "SELECT COUNT(*) FROM audit_log").await, total);

    // Everything but the newest entry leaves, into the file.
    let out = stack.drover(&[
        "audit", "archive", "--before", &later, "--out", file_s, "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["from_id"], 1, "{v}");
    assert_eq!(v["rows"].as_i64().unwrap(), total - 1, "{v}");
    let head = v["head_hash"].as_str().unwrap().to_string();
    // Left: the newest entry and the record of the archiving itself.
    assert_eq!(count(&db, "SELECT COUNT(*) FROM audit_log").await, 2);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM audit_archives").await, 1);

    // The remaining chain verifies from the recorded head; the file alone.
    let out = stack.drover(&["audit", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("intact: 2 entries"));
    let out = stack.drover(&["audit", "verify", "--archive", file_s, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["intact"], true, "{v}");
    assert_eq!(v["head_hash"], head.as_str(), "{v}");

    // The same file is never overwritten.
    let out = stack.drover(&["audit", "archive", "--before", &later, "--out", file_s]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));

    // A tampered archive: an edited row, a removed row, a cut trailer.
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let check = |name: &str, body: String, needle: &str| {
        let f = dir.path().join(name);
        std::fs::write(&f, body).unwrap();
        let out = stack.drover(&["audit", "verify", "--archive", f.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(err.contains(needle), "{name}: {err}");
    };
    let mut row: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
    row["actor"] = json!("mallory");
    let mut edited = lines.clone();
    let edited_row = row.to_string();
    edited[1] = &edited_row;
    check("edited.jsonl", edited.join("\n"), "edited");
    let mut removed = lines.clone();
    removed.remove(1);
    check("removed.jsonl", removed.join("\n"), "missing");
    check(
        "cut.jsonl",
        lines[..lines.len() - 1].join("\n"),
        "no trailer",
    );

    // A tampered remaining chain: an edit, then its first row removed.
    let first: i64 = count(&db, "SELECT MIN(id) FROM audit_log").await;
    db.execute_unprepared(&format!(
        "UPDATE audit_log SET actor = 'mallory' WHERE id = {first}"
    ))
    .await
    .unwrap();
    let out = stack.drover(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("edited"));
    db.execute_unprepared(&format!("DELETE FROM audit_log WHERE id = {first}"))
        .await
        .unwrap();
    let out = stack.drover(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.contains("missing") || err.contains("deleted"), "{err}");
    // And a forgotten archive record shows as missing rows.
    db.execute_unprepared("DELETE FROM audit_archives")
        .await
        .unwrap();
    let out = stack.drover(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
}
