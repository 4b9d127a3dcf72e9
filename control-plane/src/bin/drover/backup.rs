//! `drover backup` and `drover restore`: run on the control-plane host,
//! against its data directory, without the API.
//!
//! Owns their arguments' meaning and their output (progress on stderr, a
//! summary on stdout, `--json` for scripts); what goes into an archive and
//! every check on the way back are the library's (`control_plane::backup`).

use std::path::{Path, PathBuf};

use control_plane::backup::{self, DatabaseKind, RestoreOptions};
use control_plane::config::Config;

/// `drover backup [--out FILE] [--json]`.
pub async fn backup(cfg: &Config, out: Option<PathBuf>, json: bool) -> anyhow::Result<()> {
    let out = out.unwrap_or_else(|| {
        PathBuf::from(format!(
            "drover-backup-{}.tar.gz",
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
        ))
    });
    let mut progress = |line: &str| eprintln!("backup: {line}");
    let s = backup::create(cfg, &out, &mut progress).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    println!(
        "Backup written: {} ({} bytes, mode 0600; {} files; schema at migration {}{})",
        s.archive.display(),
        s.bytes,
        s.files.len(),
        s.schema_level,
        s.schema_last
            .as_deref()
            .map(|m| format!(", {m}"))
            .unwrap_or_default()
    );
    for f in &s.files {
        println!("  {:<36} {:>10}  sha256 {}", f.path, f.size, f.sha256);
    }
    if s.database == DatabaseKind::Postgres {
        println!("The database is PostgreSQL and is not in the archive. Back it up with:");
        println!(
            "  {}",
            s.pg_dump
                .as_deref()
                .unwrap_or("pg_dump --format=custom --file=drover.pgdump <database>")
        );
        println!("(the password comes from ~/.pgpass or PGPASSWORD, never from the command line)");
    }
    Ok(())
}

/// `drover restore FILE [--data-dir DIR] [--force] [--json]`.
pub fn restore(
    mut cfg: Config,
    file: &Path,
    data_dir: Option<PathBuf>,
    force: bool,
    json: bool,
) -> anyhow::Result<()> {
    if let Some(d) = data_dir {
        cfg.data_dir = d;
    }
    let mut progress = |line: &str| eprintln!("restore: {line}");
    let s = backup::restore(&cfg, file, &RestoreOptions { force }, &mut progress)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    println!(
        "Restored {} files into {} (backup of {} by drover {}).",
        s.restored.len(),
        s.data_dir.display(),
        s.created_at,
        s.version
    );
    if let Some(dir) = &s.moved_aside {
        println!("The files it replaced are in {}.", dir.display());
    }
    for n in &s.notes {
        println!("Note: {n}");
    }
    println!("Start the control plane: `systemctl start drover` (or `drover serve`).");
    Ok(())
}
