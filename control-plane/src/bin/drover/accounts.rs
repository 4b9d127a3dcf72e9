//! `drover users` and `drover audit verify`: web UI accounts and the audit
//! chain, run on the control-plane host against its database (no API);
//! and how the CLI reads a new password (file, environment or terminal,
//! never argv).
//!
//! Owns those arguments, the password prompt and their output; the account
//! rules (roles, password policy, sessions) and the chain are the library's
//! (`auth`, `audit`).

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use control_plane::config::Config;
use serde_json::Value;

#[derive(Subcommand, Debug)]
pub enum UsersCmd {
    /// Add a user. The password is asked for on the terminal, or read from
    /// --password-file, or from DROVER_NEW_PASSWORD (for scripts) — never
    /// from the command line.
    Add {
        name: String,
        /// admin, operator or viewer.
        #[arg(long, default_value = "viewer")]
        role: String,
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// List users.
    List,
    /// Change a user's role (their sessions end).
    SetRole { name: String, role: String },
    /// Set a new password (asked for, or --password-file / DROVER_NEW_PASSWORD).
    Passwd {
        name: String,
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Remove a user (their sessions end).
    Remove { name: String },
}

#[derive(Subcommand, Debug)]
pub enum ApiTokensCmd {
    /// Make a token bound to a role (shown once).
    Create {
        name: String,
        /// viewer, operator or admin.
        #[arg(long, default_value = "operator")]
        role: String,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token.
    Revoke { id: String },
}

/// The contents of a password file, without its final line break.
pub fn read_password_file(p: &std::path::Path) -> anyhow::Result<String> {
    let s = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
    Ok(s.trim_end_matches(['\n', '\r']).to_string())
}

/// A new password: from a file, DROVER_NEW_PASSWORD, or the terminal
/// (asked twice, not echoed). Never from argv.
fn new_password(file: Option<PathBuf>) -> anyhow::Result<String> {
    if let Some(f) = file {
        return read_password_file(&f);
    }
    if let Ok(p) = std::env::var("DROVER_NEW_PASSWORD") {
        return Ok(p);
    }
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "no password: use --password-file, DROVER_NEW_PASSWORD, or run on a terminal"
        );
    }
    let ask = |prompt: &str| -> anyhow::Result<String> {
        eprint!("{prompt}");
        // Echo off while typing; stty runs without a shell.
        let _ = std::process::Command::new("stty").arg("-echo").status();
        let mut line = String::new();
        let r = std::io::stdin().read_line(&mut line);
        let _ = std::process::Command::new("stty").arg("echo").status();
        eprintln!();
        r?;
        Ok(line.trim_end_matches(['\n', '\r']).to_string())
    };
    let a = ask("New password: ")?;
    let b = ask("Again: ")?;
    if a != b {
        anyhow::bail!("the passwords differ");
    }
    Ok(a)
}

fn local_actor() -> String {
    let who = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| format!("uid {}", nix::unistd::getuid()));
    format!("cli:{who}")
}

/// `drover users add|list|set-role|passwd|remove`, each change audited as
/// `cli:<user>`.
pub async fn users(cfg: &Config, action: UsersCmd) -> anyhow::Result<()> {
    use control_plane::{audit, auth};
    let db = control_plane::db::open(cfg).await?;
    let record = |action: &'static str, target: String, detail: Value| {
        let db = db.clone();
        async move {
            audit::record(
                &db,
                audit::Entry::new(&local_actor(), action, &target, "local", detail),
            )
            .await
        }
    };
    match action {
        UsersCmd::Add {
            name,
            role,
            password_file,
        } => {
            let pw = new_password(password_file)?;
            auth::add_user(&db, &name, &role, &pw).await?;
            record("user.add", name.clone(), serde_json::json!({"role": role})).await?;
            println!("user {name} added as {role}");
        }
        UsersCmd::List => {
            println!("{:<24} {:<9} 2FA", "NAME", "ROLE");
            for u in auth::list_users(&db).await? {
                println!(
                    "{:<24} {:<9} {}",
                    u.name,
                    u.role,
                    if u.totp_secret.is_some() { "on" } else { "off" }
                );
            }
        }
        UsersCmd::SetRole { name, role } => {
            auth::set_role(&db, &name, &role).await?;
            record("user.role", name.clone(), serde_json::json!({"role": role})).await?;
            println!("user {name} is now {role}");
        }
        UsersCmd::Passwd {
            name,
            password_file,
        } => {
            let u = auth::find_user(&db, &name)
                .await?
                .with_context(|| format!("no user {name:?}"))?;
            let pw = new_password(password_file)?;
            auth::set_password(&db, &u.id, &pw).await?;
            auth::end_sessions_of(&db, &u.id).await?;
            record("user.password", name.clone(), serde_json::json!({})).await?;
            println!("password of {name} changed");
        }
        UsersCmd::Remove { name } => {
            auth::remove_user(&db, &name).await?;
            record("user.remove", name.clone(), serde_json::json!({})).await?;
            println!("user {name} removed");
        }
    }
    Ok(())
}
