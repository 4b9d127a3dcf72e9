//! Upgrades and backups of the control plane, with real processes:
//! `drover backup` while `drover serve` runs, `drover restore` into the same
//! or a fresh data directory, the fleet, commands, audit chain and signing
//! key back afterwards (the agent still takes new commands); hostile or
//! damaged archives refused with nothing changed; migrations re-run at
//! every start, an older schema brought up to date, a newer one refused.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use sea_orm::ConnectionTrait;

use common::{audit_rows, audit_verify, drover_env, drover_in, json_out, migrations_applied};
use common::{manifest_of, read_archive, set_manifest, sha256_hex, snapshot, write_archive};
use common::{pg_program, stderr, wait_for, Postgres, RawEntry, Stack};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_while_serving_then_restore_brings_the_control_plane_back() {
    // The SQLite file is in the archive; on PostgreSQL the archive names
    // the pg_dump command instead (`with_postgresql_...` below).
    let mut stack = Stack::start_sqlite().await;
    let host = stack.start_host("h1").await;
    let before = stack.ping(&host.id).await;
    assert_eq!(before["status"], "succeeded", "{before}");
    let key_before = stack.control_plane_key();
    let audit_before = audit_verify(&stack.data_dir);

    // While serve runs and the agent heartbeats.
    let archive = stack.tmp.path().join("backup.tar.gz");
    let out = stack.drover(&["backup", "--out", archive.to_str().unwrap(), "--json"]);
    let summary = json_out(&out);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&archive).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the archive holds secrets");
    let files: Vec<&str> = summary["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    for want in [
        "drover.db",
        "signing.key",
        "admin.token",
        "enroll.creds",
        "control-plane.creds",
        "nats-auth/operator.nk",
        "nats-auth/account.nk",
        "nats-config/nats.conf",
    ] {
        assert!(files.contains(&want), "{want} missing from {files:?}");
    }
    assert!(
        !files
            .iter()
            .any(|f| f.contains("log") || f.starts_with("manifests")),
        "{files:?}"
    );
    let known = control_plane::backup::known_migrations();
    assert_eq!(summary["schema_level"], known.len(), "{summary}");
    let entries = read_archive(&archive);
    assert_eq!(entries[0].name(), control_plane::backup::MANIFEST_NAME);
    let manifest = manifest_of(&entries);
    assert_eq!(manifest["schema"].as_array().unwrap().len(), known.len());
    for e in &entries[1..] {
        let listed = manifest["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == e.name().as_str())
            .unwrap_or_else(|| panic!("{} not in the manifest", e.name()));
        assert_eq!(listed["sha256"], sha256_hex(&e.data), "{}", e.name());
    }

    // Refused while the control plane holds the directory, even with --force.
    // (not drover.db itself: serve checkpoints its WAL into it at any time)
    let guarded = ["signing.key", "admin.token", "nats-auth", "nats-config"];
    let snap = |dir: &Path| -> Vec<_> {
        snapshot(dir)
            .into_iter()
            .filter(|(k, _)| {
                guarded
                    .iter()
                    .any(|g| k == g || k.starts_with(&format!("{g}/")))
            })
            .collect()
    };
    let live = snap(&stack.data_dir);
    let o = stack.drover(&["restore", archive.to_str().unwrap(), "--force"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("a control plane is running"),
        "{}",
        stderr(&o)
    );
    assert_eq!(snap(&stack.data_dir), live);
    assert!(stack.data_dir.join("drover.db").is_file());
    assert!(!snapshot(&stack.data_dir)
        .keys()
        .any(|k| k.starts_with("pre-restore") || k.starts_with(".restore")));

    // Work done after the backup is not in it.
    let after = stack.ping(&host.id).await;
    assert_eq!(after["status"], "succeeded");
    stack.cp.stop();

    // An existing database is replaced only with --force, and kept aside.
    let o = drover_in(&stack.data_dir, &["restore", archive.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("holds a database already"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    let o = drover_in(
        &stack.data_dir,
        &["restore", archive.to_str().unwrap(), "--force", "--json"],
    );
    let restored = json_out(&o);
    let aside = Path::new(restored["moved_aside"].as_str().unwrap()).to_path_buf();
    assert!(aside.starts_with(&stack.data_dir), "{restored}");
    assert!(aside.join("drover.db").is_file() && aside.join("signing.key").is_file());
    assert!(!snapshot(&stack.data_dir)
        .keys()
        .any(|k| k.starts_with(".restore")));
    let mode = std::fs::metadata(stack.data_dir.join("signing.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);

    // Start: migrations run again (nothing to do) and everything is back.
    stack.restart_cp_with(&[]).await;
    assert_eq!(
        migrations_applied(&stack.data_dir.join("drover.db")).await,
        known
    );
    assert_eq!(stack.control_plane_key(), key_before);
    let (code, agent) = stack.get(&format!("/agents/{}", host.id)).await;
    assert_eq!(code, 200, "{agent}");
    let (code, c) = stack
        .get(&format!("/commands/{}", before["id"].as_str().unwrap()))
        .await;
    assert_eq!(
        (code, c["status"].as_str()),
        (200, Some("succeeded")),
        "{c}"
    );
    let (code, _) = stack
        .get(&format!("/commands/{}", after["id"].as_str().unwrap()))
        .await;
    assert_eq!(
        code, 404,
        "a command issued after the backup must not be in it"
    );
    let audit_after = audit_verify(&stack.data_dir);
    assert!(
        audit_rows(&audit_after) >= audit_rows(&audit_before),
        "{audit_before} / {audit_after}"
    );
    // The agent's pinned key still matches: it takes new commands.
    stack.wait_online(&host.id).await;
    let again = stack.ping(&host.id).await;
    assert_eq!(again["status"], "succeeded", "{again}");
    drop(host);
}

/// A backup of a freshly initialised control plane (no serve needed).
fn initialised(dir: &Path) -> std::path::PathBuf {
    let data = dir.join("cp");
    let o = drover_in(&data, &["init"]);
    assert!(o.status.success(), "init: {}", stderr(&o));
    let archive = dir.join("good.tar.gz");
    let o = drover_in(&data, &["backup", "--out", archive.to_str().unwrap()]);
    assert!(o.status.success(), "backup: {}", stderr(&o));
    archive
}

#[test]
fn a_good_archive_restores_into_a_fresh_directory_with_its_modes() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = initialised(tmp.path());
    let fresh = tmp.path().join("fresh");
    let o = drover_in(&fresh, &["restore", archive.to_str().unwrap(), "--json"]);
    let s = json_out(&o);
    assert!(s["moved_aside"].is_null());
    let src = snapshot(&tmp.path().join("cp"));
    let got = snapshot(&fresh);
    for (path, what) in &got {
        if path == "drover.db" {
            continue; // a VACUUM INTO copy: same content, not the same bytes
        }
        assert_eq!(src.get(path), Some(what), "{path}");
    }
    assert!(got.contains_key("drover.db") && got.contains_key("nats-auth/operator.nk"));
    // The restored database is the control plane's: its audit chain holds.
    audit_verify(&fresh);
    // Restoring elsewhere says the broker configuration names the old path.
    assert!(s["notes"].to_string().contains("drover init"), "{s}");
}

/// Each forged archive is refused with `says` in the error, both into a
/// directory that does not exist (it must not be created) and with --force
/// over an initialised one (nothing moved, nothing written).
fn assert_refused(tmp: &Path, name: &str, entries: &[RawEntry], says: &str) {
    let path = tmp.join(format!("{name}.tar.gz"));
    write_archive(&path, entries);
    assert_refused_file(tmp, &path, says);
}

fn assert_refused_file(tmp: &Path, path: &Path, says: &str) {
    let fresh = tmp.join("never");
    let o = drover_in(&fresh, &["restore", path.to_str().unwrap()]);
    assert!(!o.status.success(), "{} was accepted", path.display());
    assert!(
        stderr(&o).contains(says),
        "{}: expected {says:?} in {}",
        path.display(),
        stderr(&o)
    );
    assert!(
        !fresh.exists(),
        "a refused restore left {}",
        fresh.display()
    );
    let existing = tmp.join("cp");
    let before = snapshot(&existing);
    let o = drover_in(&existing, &["restore", path.to_str().unwrap(), "--force"]);
    assert!(
        !o.status.success(),
        "{} was accepted with --force",
        path.display()
    );
    assert_eq!(
        snapshot(&existing),
        before,
        "{} changed the data directory",
        path.display()
    );
    assert!(!tmp.join("escaped").exists() && !tmp.join("cp").join("escaped").exists());
}

#[test]
fn hostile_and_damaged_archives_are_refused_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = initialised(tmp.path());
    let good = read_archive(&archive);
    let key_at = good.iter().position(|e| e.name() == "signing.key").unwrap();

    let mut traversal = good.clone();
    traversal.push(RawEntry::file("../escaped", b"pwned"));
    assert_refused(
        tmp.path(),
        "traversal",
        &traversal,
        "escape the data directory",
    );

    let mut absolute = good.clone();
    let abs = tmp.path().join("escaped");
    absolute.push(RawEntry::file(abs.to_str().unwrap(), b"pwned"));
    assert_refused(
        tmp.path(),
        "absolute",
        &absolute,
        "escape the data directory",
    );

    // A symlink under an allowed name, listed in the manifest.
    let mut link = good.clone();
    let mut m = manifest_of(&link);
    m["files"].as_array_mut().unwrap().push(serde_json::json!({
        "path": "nats-auth/evil.nk", "size": 0, "sha256": sha256_hex(b""), "mode": 0o600
    }));
    set_manifest(&mut link, &m);
    link.push(RawEntry {
        name: b"nats-auth/evil.nk".to_vec(),
        kind: tar::EntryType::Symlink,
        link: Some(b"/etc/shadow".to_vec()),
        mode: 0o777,
        data: vec![],
    });
    assert_refused(tmp.path(), "symlink", &link, "not a regular file");

    // A file the manifest does not list, under an allowed name.
    let mut extra = good.clone();
    extra.push(RawEntry::file("extra.creds", b"x"));
    assert_refused(tmp.path(), "unlisted", &extra, "not listed in the manifest");

    // A name a backup never holds, listed in the manifest.
    let mut odd = good.clone();
    let mut m = manifest_of(&odd);
    m["files"].as_array_mut().unwrap().push(serde_json::json!({
        "path": "run.sh", "size": 2, "sha256": sha256_hex(b"x\n"), "mode": 0o755
    }));
    set_manifest(&mut odd, &m);
    odd.push(RawEntry::file("run.sh", b"x\n"));
    assert_refused(
        tmp.path(),
        "not-allowed",
        &odd,
        "not a file a backup may hold",
    );

    // The signing key swapped for another of the same length.
    let mut tampered = good.clone();
    tampered[key_at].data = tampered[key_at].data.iter().map(|b| b ^ 1).collect();
    assert_refused(
        tmp.path(),
        "tampered",
        &tampered,
        "does not match its sha256",
    );

    // A file that is missing although listed.
    let mut missing = good.clone();
    missing.remove(key_at);
    assert_refused(tmp.path(), "missing", &missing, "is missing");

    // A schema from a newer drover.
    let mut newer = good.clone();
    let mut m = manifest_of(&newer);
    m["schema"]
        .as_array_mut()
        .unwrap()
        .push("m9999_from_the_future".into());
    set_manifest(&mut newer, &m);
    assert_refused(tmp.path(), "newer", &newer, "newer version");

    // Truncated: half the compressed bytes.
    let bytes = std::fs::read(&archive).unwrap();
    let cut = tmp.path().join("truncated.tar.gz");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    assert_refused_file(tmp.path(), &cut, "not a usable Drover backup");
    // Only the gzip trailer (CRC, length) cut off.
    std::fs::write(&cut, &bytes[..bytes.len() - 4]).unwrap();
    assert_refused_file(tmp.path(), &cut, "not a usable Drover backup");
    let junk = tmp.path().join("junk.tar.gz");
    std::fs::write(&junk, b"this is not an archive").unwrap();
    assert_refused_file(tmp.path(), &junk, "not a usable Drover backup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_schema_is_migrated_at_start_and_a_newer_one_is_refused() {
    use sea_orm_migration::MigratorTrait;
    // An old SQLite file, as a restored backup leaves it (the migrations
    // themselves run on PostgreSQL in `database.rs`).
    let mut stack = Stack::start_sqlite().await;
    stack.cp.stop();
    // The database as the first release made it: only the first migration,
    // with the admin token, as a restore of an old backup would leave it.
    let db_file = stack.data_dir.join("drover.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db_file.display()));
    }
    let url = format!("sqlite://{}?mode=rwc", db_file.display());
    let db = sea_orm::Database::connect(url.as_str()).await.unwrap();
    control_plane::db::migration::Migrator::up(&db, Some(1))
        .await
        .unwrap();
    // The row as the first schema knew it: today's entity has columns later
    // migrations added (e.g. `expires_at`), so it cannot write to this table.
    db.execute_unprepared(&format!(
        "INSERT INTO api_tokens (id, name, role, token_hash, created_at) \
         VALUES ('first-admin', 'admin', 'admin', '{}', {})",
        control_plane::auth::hash_token(&stack.token),
        bus_schema::now_ms()
    ))
    .await
    .unwrap();
    db.close().await.unwrap();
    let known = control_plane::backup::known_migrations();
    assert_eq!(migrations_applied(&db_file).await, known[..1].to_vec());

    // serve brings it up to date; a host enrols and runs a command on it.
    stack.restart_cp_with(&[]).await;
    assert_eq!(migrations_applied(&db_file).await, known);
    let host = stack.start_host("h1").await;
    assert_eq!(stack.ping(&host.id).await["status"], "succeeded");
    // Started again on the same directory: migrations re-run harmlessly.
    stack.restart_cp_with(&[]).await;
    assert_eq!(migrations_applied(&db_file).await, known);
    stack.wait_online(&host.id).await;
    assert_eq!(stack.ping(&host.id).await["status"], "succeeded");

    // A database a newer drover migrated: this one refuses to start on it.
    stack.cp.stop();
    let db = sea_orm::Database::connect(url.as_str()).await.unwrap();
    db.execute_unprepared(
        "INSERT INTO seaql_migrations (version, applied_at) VALUES ('m9999_from_the_future', 0)",
    )
    .await
    .unwrap();
    db.close().await.unwrap();
    let port: u16 = stack.base.rsplit(':').next().unwrap().parse().unwrap();
    stack.cp = Stack::spawn_cp(&stack.data_dir, &stack.nats.url(), port);
    wait_for(
        "serve to refuse the newer schema",
        Duration::from_secs(30),
        || {
            let running = stack.cp.running();
            async move { (!running).then_some(()) }
        },
    )
    .await;
    let log = stack.cp.log_text();
    assert!(log.contains("m9999_from_the_future"), "{log}");
    drop(host);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_postgresql_the_archive_holds_the_keys_and_names_the_pg_dump_command() {
    let pg = Postgres::start().await;
    // postgres://drover:<password>@127.0.0.1:<port>/drover
    let url = pg.url.clone();
    let password = url
        .split(':')
        .nth(2)
        .and_then(|s| s.split('@').next())
        .unwrap()
        .to_string();
    let password = password.as_str();
    let env = [("DROVER_DATABASE_URL", url.as_str())];
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("cp");
    let o = drover_env(&data, &env, &["init"]);
    assert!(o.status.success(), "init: {}", stderr(&o));
    assert!(!data.join("drover.db").exists());

    let archive = tmp.path().join("keys.tar.gz");
    let o = drover_env(
        &data,
        &env,
        &["backup", "--out", archive.to_str().unwrap(), "--json"],
    );
    let s = json_out(&o);
    assert_eq!(s["database"], "postgres");
    assert_eq!(
        s["schema_level"],
        control_plane::backup::known_migrations().len(),
        "{s}"
    );
    let files = s["files"].to_string();
    assert!(
        files.contains("signing.key") && !files.contains("drover.db"),
        "{files}"
    );
    let pg_dump = s["pg_dump"].as_str().unwrap().to_string();
    let port = format!("--port={}", pg.port);
    for want in ["pg_dump", "--username=drover", port.as_str(), "drover"] {
        assert!(
            pg_dump.split(' ').any(|w| w == want),
            "{want} not in {pg_dump}"
        );
    }
    // The password is nowhere: not in the output, not in the archive.
    let plain = drover_env(
        &data,
        &env,
        &[
            "backup",
            "--out",
            tmp.path().join("b2.tar.gz").to_str().unwrap(),
        ],
    );
    assert!(plain.status.success(), "{}", stderr(&plain));
    let text = format!(
        "{}{}{}",
        String::from_utf8_lossy(&plain.stdout),
        stderr(&plain),
        stderr(&o)
    );
    assert!(
        text.contains("pg_dump") && !text.contains(password),
        "{text}"
    );
    assert!(!read_archive(&archive).iter().any(|e| {
        e.data
            .windows(password.len())
            .any(|w| w == password.as_bytes())
    }));

    // The printed command works as printed (the password from PGPASSWORD).
    let argv: Vec<&str> = pg_dump.split(' ').collect();
    let dump = Command::new(pg_program(argv[0]))
        .args(&argv[1..])
        .env("PGPASSWORD", password)
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(dump.status.success(), "{pg_dump}: {}", stderr(&dump));
    let file = argv.iter().find_map(|a| a.strip_prefix("--file=")).unwrap();
    assert!(std::fs::metadata(tmp.path().join(file)).unwrap().len() > 0);

    // Keys restored into a fresh directory; the note says how to restore the
    // database.
    let fresh = tmp.path().join("fresh");
    let o = drover_env(
        &fresh,
        &env,
        &["restore", archive.to_str().unwrap(), "--json"],
    );
    let r = json_out(&o);
    assert!(r["notes"].to_string().contains("pg_restore"), "{r}");
    assert_eq!(
        std::fs::read(fresh.join("signing.key")).unwrap(),
        std::fs::read(data.join("signing.key")).unwrap()
    );
    assert!(!fresh.join("drover.db").exists());
}

/// `sudo drover backup` of a database that no process has open: opening it
/// makes its `-wal`/`-shm` files, which must stay the database owner's, or
/// `drover serve` (user `drover`) could no longer write its own database.
/// SQLite's unix VFS does this itself when it runs as root (it gives new
/// side files the database file's owner); this holds it for the way backup
/// opens the database. Needs root to own files as another user; as any
/// other user it checks nothing and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_run_as_root_leaves_the_database_files_to_their_owner() {
    use std::os::unix::fs::MetadataExt;
    if !nix::unistd::geteuid().is_root() {
        eprintln!("not root: ownership of the database's side files not checked");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    initialised(tmp.path());
    let data = tmp.path().join("cp");
    let db = data.join("drover.db");
    // Fold the WAL in and close, as a stopped control plane leaves it.
    let url = format!("sqlite://{}", db.display());
    let conn = sea_orm::Database::connect(url.as_str()).await.unwrap();
    conn.execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)")
        .await
        .unwrap();
    conn.close().await.unwrap();
    for suffix in ["-wal", "-shm"] {
        // Empty after the checkpoint; gone already if SQLite removed it.
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    nix::unistd::chown(&db, Some(nobody.uid), Some(nobody.gid)).unwrap();
    let o = drover_in(
        &data,
        &[
            "backup",
            "--out",
            tmp.path().join("b.tar.gz").to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    for suffix in ["-wal", "-shm"] {
        let side = std::path::PathBuf::from(format!("{}{suffix}", db.display()));
        if let Ok(md) = side.metadata() {
            assert_eq!(
                md.uid(),
                nobody.uid.as_raw(),
                "{} belongs to root",
                side.display()
            );
        }
    }
}
