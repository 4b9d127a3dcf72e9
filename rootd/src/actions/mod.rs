//! The privileged actions rootd can run, one module per file, and the
//! dispatch from a verified command to its module. Each action takes params
//! already checked by the catalogue (parsed again into its typed struct) and
//! returns an [`Outcome`]; none passes operator input through a shell. What
//! the actions share (context, params, the program runner) is in
//! [`crate::toolkit`]; this file only dispatches.

use bus_schema::Command;

use crate::config::RootdConfig;
use crate::toolkit::{Ctx, Outcome};

pub mod agent_update;
pub mod app;
pub mod firewall;
pub mod mariadb;
pub mod pkg;
pub mod pkg_list;
pub mod pkg_parse;
pub mod pkg_remove;
pub mod pkg_scan;
pub mod reboot;
pub mod service;
pub mod service_list;
pub mod service_states;

/// Runs one verified command. The caller has already checked signature,
/// addressee, expiry, replay, and that the catalogue puts it in rootd.
pub async fn run(cmd: &Command, ctx: &Ctx<'_>) -> Outcome {
    let module = cmd.action.split('.').next().unwrap_or_default();
    if let Err(why) = available(module, ctx.cfg) {
        return Outcome::rejected(format!(
            "module {module} is not available on this host: {why}"
        ));
    }
    match module {
        "pkg" => pkg::run(cmd, ctx).await,
        "service" => service::run(cmd, ctx).await,
        "firewall" => firewall::run(cmd, ctx).await,
        "mariadb" => mariadb::run(cmd, ctx).await,
        "app" => app::run(cmd, ctx).await,
        // The only `sys` actions the catalogue puts in rootd.
        "sys" => reboot::run(cmd, ctx).await,
        // Handled by the server with rootd's one `SelfUpdate`.
        "agent" => Outcome::failed("agent actions are handled by rootd's self-update"),
        _ => Outcome::failed(format!("rootd has no implementation of {}", cmd.action)),
    }
}

/// Whether a module can run on this host, and if not, why (shown to the
/// operator as is).
pub fn available(module: &str, cfg: &RootdConfig) -> Result<(), String> {
    match module {
        "pkg" => pkg::available(cfg),
        "service" => service::available(cfg),
        "firewall" => firewall::available(cfg),
        "mariadb" => mariadb::available(cfg),
        "app" => app::available(cfg),
        "sys" => reboot::available(cfg),
        "agent" => agent_update::available(cfg),
        other => Err(format!("rootd does not know module {other}")),
    }
}

/// The rootd modules of the catalogue that can run here, and the reasons
/// the others cannot.
pub fn capabilities(cfg: &RootdConfig) -> (Vec<String>, Vec<(String, String)>) {
    let mut ok = Vec::new();
    let mut missing = Vec::new();
    for m in bus_schema::catalogue::modules() {
        let in_rootd = bus_schema::catalogue::all()
            .iter()
            .any(|a| a.module() == m && a.runs_in == bus_schema::catalogue::RunsIn::Rootd);
        if !in_rootd {
            continue;
        }
        match available(m, cfg) {
            Ok(()) => ok.push(m.to_string()),
            Err(why) => missing.push((m.to_string(), why)),
        }
    }
    (ok, missing)
}
