//! The nftables backend: Drover's own table and `input` chain, made on
//! first use, rules inserted by rank, listed from `nft -j`, removed by
//! handle; nft runs through `ip netns exec` when `nft_netns` is set (see the
//! module docs of `firewall`).
//!
//! It decides nothing about params (the rules arrive as [`Wanted`]) and
//! nothing about which backend runs (that is `firewall/mod.rs`).

use bus_schema::catalogue::firewall::RemoveParams;
use bus_schema::catalogue::NoParams;
use bus_schema::Command;
use serde_json::{json, Value};

use super::rules::{parse_rules, position, Rule, Wanted};
use crate::config::RootdConfig;
use crate::toolkit::{params, Outcome, Runner};

/// nft (through `ip netns exec` when configured).
struct Nft<'a> {
    cfg: &'a RootdConfig,
    runner: &'a Runner<'a>,
}

impl Nft<'_> {
    fn argv(&self, args: &[String]) -> Vec<String> {
        let mut v: Vec<String> = match &self.cfg.nft_netns {
            Some(ns) => vec![
                "ip".into(),
                "netns".into(),
                "exec".into(),
                ns.clone(),
                "nft".into(),
            ],
            None => vec!["nft".into()],
        };
        v.extend(args.iter().cloned());
        v
    }

    async fn run(&self, args: &[String], show: bool) -> Result<Vec<String>, Outcome> {
        let argv = self.argv(args);
        let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
        let ran = self.runner.run(&refs, &[], show).await?;
        if !ran.ok() {
            return Err(Outcome {
                exit_code: ran.exit_code,
                ..Outcome::failed(format!(
                    "nft {} failed: {}",
                    args.first().map(String::as_str).unwrap_or(""),
                    ran.error_tail()
                ))
            });
        }
        Ok(ran.stdout)
    }

    fn table(&self) -> &str {
        &self.cfg.nft_table
    }

    async fn table_exists(&self) -> Result<bool, Outcome> {
        let out = self.run(&s(&["-j", "list", "tables"]), false).await?;
        let doc: Value = serde_json::from_str(&out.join("\n"))
            .map_err(|e| Outcome::failed(format!("nft -j list tables printed no JSON: {e}")))?;
        Ok(doc["nftables"].as_array().is_some_and(|items| {
            items.iter().any(|i| {
                let t = &i["table"];
                t["family"] == "inet" && t["name"] == self.table()
            })
        }))
    }

    /// The rules of Drover's chain; none when the table does not exist (it
    /// is not created just to be listed).
    async fn rules(&self) -> Result<Vec<Rule>, Outcome> {
        if !self.table_exists().await? {
            return Ok(Vec::new());
        }
        let out = self
            .run(&s(&["-j", "list", "table", "inet", self.table()]), false)
            .await?;
        let doc: Value = serde_json::from_str(&out.join("\n"))
            .map_err(|e| Outcome::failed(format!("nft -j list table printed no JSON: {e}")))?;
        Ok(parse_rules(&doc, self.table()))
    }

    /// The table and its input chain, made if missing (`add` leaves them
    /// as they are when present).
    async fn ensure(&self) -> Result<(), Outcome> {
        self.run(&s(&["add", "table", "inet", self.table()]), true)
            .await?;
        self.run(
            &s(&[
                "add",
                "chain",
                "inet",
                self.table(),
                "input",
                "{",
                "type",
                "filter",
                "hook",
                "input",
                "priority",
                "0",
                ";",
                "policy",
                "accept",
                ";",
                "}",
            ]),
            true,
        )
        .await?;
        Ok(())
    }
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// The argv (after `nft`) that adds `w` at `pos`.
pub fn add_args(table: &str, w: &Wanted, pos: Option<u64>, comment: &str) -> Vec<String> {
    let mut v = match pos {
        Some(h) => s(&["insert", "rule", "inet", table, "input", "position"])
            .into_iter()
            .chain([h.to_string()])
            .collect(),
        None => s(&["add", "rule", "inet", table, "input"]),
    };
    v.extend(w.statement(comment));
    v
}

/// Runs `firewall.list`, `firewall.remove_rule` or an add of `wanted`
/// through nft.
pub async fn run(
    cmd: &Command,
    wanted: &[(Wanted, Option<String>)],
    cfg: &RootdConfig,
    runner: &Runner<'_>,
) -> Outcome {
    let nft = Nft { cfg, runner };
    let r = match cmd.action.as_str() {
        "firewall.list" => list(&nft, cmd).await,
        "firewall.remove_rule" => remove(&nft, cmd).await,
        _ => add(&nft, wanted).await,
    };
    r.unwrap_or_else(|o| o)
}

async fn list(nft: &Nft<'_>, cmd: &Command) -> Result<Outcome, Outcome> {
    let _: NoParams = params(cmd)?;
    let rules = nft.rules().await?;
    Ok(Outcome::succeeded(
        format!("{} rules in table inet {}", rules.len(), nft.table()),
        json!({ "backend": "nftables", "table": format!("inet {}", nft.table()), "chain": "input", "rules": rules }),
    ))
}

async fn add(nft: &Nft<'_>, wanted: &[(Wanted, Option<String>)]) -> Result<Outcome, Outcome> {
    nft.ensure().await?;
    let mut added = Vec::new();
    let mut present = Vec::new();
    for (w, service) in wanted {
        let rules = nft.rules().await?;
        if let Some(r) = rules.iter().find(|r| r.wanted.as_ref() == Some(w)) {
            present.push(json!({ "rule": w.describe(), "handle": r.handle }));
            continue;
        }
        let comment = w.comment(service.as_deref());
        let args = add_args(nft.table(), w, position(&rules, w), &comment);
        nft.run(&args, true).await?;
        added.push(w.describe());
    }
    let rules = nft.rules().await?;
    let handles: Vec<Value> = added
        .iter()
        .map(|d| {
            let h = rules
                .iter()
                .find(|r| r.wanted.is_some_and(|w| w.describe() == *d))
                .map(|r| r.handle);
            json!({ "rule": d, "handle": h })
        })
        .collect();
    let summary = match (added.len(), present.len()) {
        (0, _) => "already present; nothing changed".to_string(),
        (n, 0) => format!("added {n} rule(s)"),
        (n, m) => format!("added {n} rule(s), {m} already present"),
    };
    Ok(Outcome::succeeded(
        summary,
        json!({
            "backend": "nftables",
            "table": format!("inet {}", nft.table()),
            "added": handles,
            "present": present,
            "changed": !added.is_empty(),
            "rules": rules,
        }),
    ))
}

async fn remove(nft: &Nft<'_>, cmd: &Command) -> Result<Outcome, Outcome> {
    let p: RemoveParams = params(cmd)?;
    let rules = nft.rules().await?;
    let Some(rule) = rules.iter().find(|r| r.handle == p.handle).cloned() else {
        return Err(Outcome::failed(format!(
            "no rule with handle {} in table inet {} (see firewall.list); nothing was changed",
            p.handle,
            nft.table()
        )));
    };
    nft.run(
        &[
            s(&["delete", "rule", "inet", nft.table(), "input", "handle"]),
            vec![p.handle.to_string()],
        ]
        .concat(),
        true,
    )
    .await?;
    let rules = nft.rules().await?;
    Ok(Outcome::succeeded(
        format!("removed rule {} from table inet {}", p.handle, nft.table()),
        json!({ "backend": "nftables", "removed": rule, "rules": rules }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::firewall::rules::{Source, Verdict};
    use bus_schema::catalogue::firewall::Protocol;

    fn w(verdict: Verdict, protocol: Protocol, port: u16, src: Option<&str>) -> Wanted {
        Wanted {
            verdict,
            protocol,
            port,
            source: src.map(|s| Source::parse(s).unwrap()),
        }
    }

    #[test]
    fn nft_argv_is_typed_values_only() {
        let a = w(Verdict::Accept, Protocol::Tcp, 8080, Some("10.0.0.0/8"));
        let args = add_args("drover", &a, None, &a.comment(None));
        assert_eq!(
            args,
            s(&[
                "add",
                "rule",
                "inet",
                "drover",
                "input",
                "ip",
                "saddr",
                "10.0.0.0/8",
                "tcp",
                "dport",
                "8080",
                "accept",
                "comment",
                "\"drover:allow tcp/8080 from 10.0.0.0/8\""
            ])
        );
        let d = w(Verdict::Drop, Protocol::Udp, 53, Some("2001:db8::1"));
        let args = add_args("drover", &d, Some(7), &d.comment(Some("dns")));
        assert_eq!(
            args,
            s(&[
                "insert",
                "rule",
                "inet",
                "drover",
                "input",
                "position",
                "7",
                "ip6",
                "saddr",
                "2001:db8::1",
                "udp",
                "dport",
                "53",
                "drop",
                "comment",
                "\"drover:deny udp/53 from 2001:db8::1 (dns)\""
            ])
        );
    }
}
