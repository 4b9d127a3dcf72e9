//! `firewall.*`: nftables rules in Drover's own table, or firewalld where it
//! runs.
//!
//! **nftables.** Drover keeps its rules in `table inet <nft_table>`, chain
//! `input` (`type filter hook input priority 0; policy accept`). Drover never
//! changes the policy, so it cannot lock the operator out by itself; it only
//! adds `accept` and `drop` rules, each with a comment `drover:...`. Rules are
//! made with `nft` argv (no shell); every value in them is typed and checked
//! (a port number, `tcp`/`udp`, an address parsed as an IP), so nothing an
//! operator types reaches nft's parser unchecked. Listing reads
//! `nft -j list table` (JSON).
//!
//! Order in the chain, so that the more specific rule wins: rules with a
//! source before rules without; at the same level, drop before accept. A new
//! rule is inserted before the first rule that ranks after it.
//!
//! Idempotent: before adding, the chain is listed and a rule with the same
//! verdict, protocol, port and source (compared as parsed values, so
//! `10.0.0.1/8` and `10.0.0.0/8` are the same) is left alone. Firewall
//! actions take turns inside rootd, so list-then-add is not raced by another
//! command.
//!
//! With `nft_netns` set, nft runs as `ip netns exec <ns> nft ...` (tests use
//! this so they never touch the host's firewall).
//!
//! **firewalld.** When `firewall-cmd --state` says `running` (and no netns is
//! configured), `allow_port`, `deny_port`, `allow_service` and `list` go
//! through `firewall-cmd` (runtime and `--permanent`), ports with
//! `--add-port` and anything with a source or a drop as a rich rule.
//! firewalld has no rule handles, so `remove_rule` is refused there. This
//! path is not exercised by the tests (no firewalld/D-Bus on the test
//! machine); its argv is unit-tested.
//!
//! This file picks the backend and turns params into [`rules::Wanted`]
//! rules; the rule model is in `rules.rs`, each backend in its own file.

use bus_schema::catalogue::firewall::{PortParams, ServiceParams, SERVICES};
use bus_schema::Command;

use crate::config::RootdConfig;
use crate::toolkit::{params, which, Ctx, Outcome, Runner};

pub mod firewalld;
pub mod nftables;
pub mod rules;

use rules::{Source, Verdict, Wanted};

/// Firewall actions take turns (list, then add, must not interleave).
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Table, chain and namespace names go into argv; keep them plain.
fn plain_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('-')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

pub fn available(cfg: &RootdConfig) -> Result<(), String> {
    if !plain_name(&cfg.nft_table) {
        return Err(format!(
            "nft_table {:?} is not a plain name (letters, digits, _ and -)",
            cfg.nft_table
        ));
    }
    if let Some(ns) = &cfg.nft_netns {
        if !plain_name(ns) {
            return Err(format!("nft_netns {ns:?} is not a plain name"));
        }
        if which("ip").is_none() {
            return Err("nft_netns is set but `ip` (iproute2) is not installed".into());
        }
    }
    if which("nft").is_some() || (cfg.nft_netns.is_none() && which("firewall-cmd").is_some()) {
        Ok(())
    } else {
        Err("nft (nftables) is not installed".into())
    }
}

pub async fn run(cmd: &Command, ctx: &Ctx<'_>) -> Outcome {
    let _turn = TURN.lock().await;
    let runner = Runner::new(ctx);
    let wanted: Vec<(Wanted, Option<String>)> = match cmd.action.as_str() {
        "firewall.list" | "firewall.remove_rule" => Vec::new(),
        "firewall.allow_port" | "firewall.deny_port" => {
            let p: PortParams = match params(cmd) {
                Ok(p) => p,
                Err(o) => return o,
            };
            let source = match p.source.as_deref().map(Source::parse).transpose() {
                Ok(s) => s,
                Err(e) => return Outcome::rejected(format!("invalid params: {e}")),
            };
            let verdict = if cmd.action == "firewall.allow_port" {
                Verdict::Accept
            } else {
                Verdict::Drop
            };
            vec![(
                Wanted {
                    verdict,
                    protocol: p.protocol,
                    port: p.port,
                    source,
                },
                None,
            )]
        }
        "firewall.allow_service" => {
            let p: ServiceParams = match params(cmd) {
                Ok(p) => p,
                Err(o) => return o,
            };
            let source = match p.source.as_deref().map(Source::parse).transpose() {
                Ok(s) => s,
                Err(e) => return Outcome::rejected(format!("invalid params: {e}")),
            };
            let ports = SERVICES
                .iter()
                .find(|(n, _)| *n == p.service)
                .map(|(_, ports)| *ports)
                .unwrap_or_default();
            ports
                .iter()
                .map(|(port, protocol)| {
                    (
                        Wanted {
                            verdict: Verdict::Accept,
                            protocol: *protocol,
                            port: *port,
                            source,
                        },
                        Some(p.service.clone()),
                    )
                })
                .collect()
        }
        other => return Outcome::failed(format!("rootd has no implementation of {other}")),
    };

    if ctx.cfg.nft_netns.is_none() {
        match firewalld::running(&runner).await {
            Ok(true) => return firewalld::run(cmd, &wanted, &runner).await,
            Ok(false) => {}
            Err(o) => return o,
        }
    }
    nftables::run(cmd, &wanted, ctx.cfg, &runner).await
}
