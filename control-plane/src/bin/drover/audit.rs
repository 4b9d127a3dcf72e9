//! `drover audit`: verifying the hash-chained audit trail (in the database,
//! or an archive file alone) and archiving its oldest segment to a file.
//! Works on the database directly, like `drover backup`; owns only the
//! arguments and the printing (`control_plane::audit` and
//! `control_plane::retention::archive` do the work).

use std::path::{Path, PathBuf};

use clap::Subcommand;
use control_plane::audit::Verdict;
use control_plane::config::Config;
use serde_json::json;

use crate::print::print_json;

#[derive(Subcommand, Debug)]
pub enum AuditCmd {
    /// Walk the chain; report the first edited or deleted entry (exit 1).
    /// After `drover audit archive` the walk starts from the last archive's
    /// recorded head hash. With --archive, verify an archive file alone.
    Verify {
        /// An archive file made by `drover audit archive`: checks its rows,
        /// their links and its trailer, then that the trailer matches the
        /// archive's record in the database (ids, row count, hashes) and the
        /// trailer's signature with the control plane's key.
        #[arg(long, value_name = "FILE")]
        archive: Option<PathBuf>,
        /// With --archive: check the file only against itself and its
        /// trailer's signature, without the database's record.
        #[arg(long, requires = "archive")]
        offline: bool,
        #[arg(long)]
        json: bool,
    },
    /// Export the entries recorded before a time to FILE (JSON lines, each
    /// row with its hashes, then a trailer with the head hash), then delete
    /// them from the database and record the archive, so `drover audit
    /// verify` still proves the rest. The newest entry always stays. Keep
    /// the file: it is the only copy of those entries.
    Archive {
        /// Entries before this time: YYYY-MM-DD (UTC midnight),
        /// YYYY-MM-DDTHH:MM[:SS]Z, or milliseconds since the epoch.
        #[arg(long)]
        before: String,
        /// The archive to write; must not exist yet (written 0600).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(cfg: &Config, cmd: AuditCmd) -> anyhow::Result<()> {
    match cmd {
        AuditCmd::Verify {
            archive: None,
            json,
            ..
        } => {
            let db = control_plane::db::open(cfg).await?;
            report(
                control_plane::audit::verify(&db).await?,
                json,
                "audit trail",
            )
        }
        AuditCmd::Verify {
            archive: Some(file),
            offline,
            json,
        } => verify_archive(cfg, &file, offline, json).await,
        AuditCmd::Archive { before, out, json } => {
            let before_ms = control_plane::audit::parse_time(&before)
                .map_err(|e| anyhow::anyhow!("--before {e}"))?;
            let signer = control_plane::serve::load_signer(cfg)?;
            let db = control_plane::db::open(cfg).await?;
            let t =
                control_plane::retention::archive::archive(&db, &signer, before_ms, &out).await?;
            // The archiving itself is on the record.
            let _ = control_plane::audit::record(
                &db,
                control_plane::audit::Entry::new(
                    "cli",
                    "audit.archive",
                    &out.display().to_string(),
                    "local",
                    json!({"from_id": t.from_id, "to_id": t.to_id, "rows": t.rows, "head_hash": t.head_hash}),
                ),
            )
            .await;
            if json {
                print_json(&json!({
                    "file": out.display().to_string(),
                    "from_id": t.from_id,
                    "to_id": t.to_id,
                    "rows": t.rows,
                    "head_hash": t.head_hash,
                    "exported_at": t.exported_at,
                }))
            } else {
                println!(
                    "archived entries {}..{} ({} rows) to {}; head hash {}\nkeep this file: those entries are no longer in the database",
                    t.from_id,
                    t.to_id,
                    t.rows,
                    out.display(),
                    t.head_hash
                );
                Ok(())
            }
        }
    }
}

/// Prints a verdict; exits 1 when broken.
fn report(v: Verdict, json: bool, what: &str) -> anyhow::Result<()> {
    match v {
        Verdict::Intact { rows, head } => {
            if json {
                print_json(&json!({"intact": true, "rows": rows, "head_hash": head}))?;
            } else {
                println!("{what} intact: {rows} entries; head hash {head}");
            }
            Ok(())
        }
        Verdict::Broken { id, reason } => {
            if json {
                print_json(&json!({"intact": false, "id": id, "reason": reason}))?;
            } else {
                eprintln!("{what} BROKEN at entry {id}: {reason}");
            }
            std::process::exit(1);
        }
    }
}

/// `drover audit verify --archive FILE`: the file against itself, then
/// (unless `--offline`) against the database's record of the archive.
/// then its trailer's signature with the control plane's key. Exits 1
/// when the file is broken, differs from its record, has no record and
/// `--offline` was not given, or its signature does not verify.
async fn verify_archive(
    cfg: &Config,
    file: &Path,
    offline: bool,
    json: bool,
) -> anyhow::Result<()> {
    use control_plane::retention::archive::{check_record, verify_file, RecordCheck};
    let what = format!("archive {}", file.display());
    let (v, trailer) = verify_file(file).map_err(|e| {
        anyhow::anyhow!(
            "reading {}: {e} (is it the file `drover audit archive` wrote?)",
            file.display()
        )
    })?;
    let (Verdict::Intact { rows, head }, Some(t)) = (&v, trailer) else {
        return report(v, json, &what);
    };
    let alone = "checked only against itself (its rows, trailer and signature), not against the database's record";
    // The database's record first: it names what differs.
    if !offline {
        let db = control_plane::db::open(cfg)
            .await
            .map_err(|e| anyhow::anyhow!("{e}: the database holds the archive's record; give --offline to check the file only against itself"))?;
        match check_record(&db, file, &t).await? {
            RecordCheck::Matches { .. } => {}
            RecordCheck::Differs {
                file_name,
                differences,
            } => {
                let reason = format!(
                    "the file does not match the database's record of the archive {file_name}: {}",
                    differences.join("; ")
                );
                if json {
                    print_json(
                        &json!({"intact": false, "id": 0, "reason": reason, "differences": differences, "checked_against_record": true}),
                    )?;
                } else {
                    eprintln!("{what} BROKEN: {reason}");
                }
                std::process::exit(1);
            }
            RecordCheck::NoRecord => {
                let reason = format!(
                    "no archive record in the database has rows {}..{} or the file name {}: the file can only be {alone}; give --offline to accept that",
                    t.from_id,
                    t.to_id,
                    file.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default()
                );
                if json {
                    print_json(
                        &json!({"intact": false, "id": 0, "reason": reason, "checked_against_record": false}),
                    )?;
                } else {
                    eprintln!("{what} NOT PROVEN: {reason}");
                }
                std::process::exit(1);
            }
        }
    }
    // Then the trailer's signature, with the control plane's key (the data
    // dir's): a file rewritten whole, hashes recomputed, fails here.
    let signer = control_plane::serve::load_signer(cfg)?;
    if let Err(reason) = t.signature_check(&signer.public()) {
        return report(Verdict::Broken { id: 0, reason }, json, &what);
    }
    if json {
        print_json(&json!({
            "intact": true,
            "rows": rows,
            "head_hash": head,
            "signature_checked": true,
            "checked_against_record": !offline,
        }))?;
    } else if offline {
        println!("{what} intact: {rows} entries; head hash {head}; trailer signed by the control plane's key\n{alone} (--offline)");
    } else {
        println!(
            "{what} intact: {rows} entries; head hash {head}; trailer signed by the control plane's key; matches the recorded archive of rows {}..{}",
            t.from_id, t.to_id
        );
    }
    Ok(())
}
