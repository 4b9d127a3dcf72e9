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

use std::net::IpAddr;

use bus_schema::catalogue::firewall::{
    PortParams, Protocol, RemoveParams, ServiceParams, SERVICES,
};
use bus_schema::catalogue::NoParams;
use bus_schema::Command;
use serde::Serialize;
use serde_json::{json, Value};

use crate::config::RootdConfig;
use crate::toolkit::{params, which, Ctx, Outcome, Runner};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Accept,
    Drop,
}

impl Verdict {
    fn as_str(self) -> &'static str {
        match self {
            Verdict::Accept => "accept",
            Verdict::Drop => "drop",
        }
    }
}

/// A source address or network, canonical: host bits cleared, and a full
/// prefix (`/32`, `/128`) shown as a plain address, as nft shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    pub addr: IpAddr,
    pub len: u8,
}

impl Source {
    pub fn parse(s: &str) -> Result<Self, String> {
        bus_schema::catalogue::firewall::check_source(s)?;
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| format!("bad source {s:?}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match p {
            Some(p) => p.parse::<u8>().map_err(|_| format!("bad source {s:?}"))?,
            None => max,
        };
        Ok(Self::masked(addr, len))
    }

    fn masked(addr: IpAddr, len: u8) -> Self {
        let addr = match addr {
            IpAddr::V4(a) => {
                let bits = u32::from(a);
                let mask = if len == 0 {
                    0
                } else {
                    u32::MAX << (32 - len as u32)
                };
                IpAddr::V4((bits & mask).into())
            }
            IpAddr::V6(a) => {
                let bits = u128::from(a);
                let mask = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - len as u32)
                };
                IpAddr::V6((bits & mask).into())
            }
        };
        Self { addr, len }
    }

    fn family(self) -> &'static str {
        if self.addr.is_ipv4() {
            "ip"
        } else {
            "ip6"
        }
    }

    fn full(self) -> bool {
        self.len == if self.addr.is_ipv4() { 32 } else { 128 }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.full() {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.len)
        }
    }
}

/// A rule Drover makes: what it matches and what it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted {
    pub verdict: Verdict,
    pub protocol: Protocol,
    pub port: u16,
    pub source: Option<Source>,
}

impl Wanted {
    /// Where it goes in the chain: lower first (see the module docs).
    fn rank(&self) -> u8 {
        match (self.source.is_some(), self.verdict) {
            (true, Verdict::Drop) => 0,
            (true, Verdict::Accept) => 1,
            (false, Verdict::Drop) => 2,
            (false, Verdict::Accept) => 3,
        }
    }

    fn describe(&self) -> String {
        let mut s = format!(
            "{} {}/{}",
            if self.verdict == Verdict::Accept {
                "allow"
            } else {
                "deny"
            },
            self.protocol.as_str(),
            self.port
        );
        if let Some(src) = self.source {
            s.push_str(&format!(" from {src}"));
        }
        s
    }

    /// The comment nft stores with the rule.
    fn comment(&self, service: Option<&str>) -> String {
        match service {
            Some(svc) => format!("drover:{} ({svc})", self.describe()),
            None => format!("drover:{}", self.describe()),
        }
    }

    /// The rule's statement, as nft argv after `<chain>`.
    fn statement(&self, comment: &str) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(src) = self.source {
            v.extend([src.family().to_string(), "saddr".into(), src.to_string()]);
        }
        v.extend([
            self.protocol.as_str().to_string(),
            "dport".into(),
            self.port.to_string(),
            self.verdict.as_str().to_string(),
            "comment".into(),
            // nft joins its argv and parses the result; the quotes keep the
            // comment one string. It is made only of checked values.
            format!("\"{comment}\""),
        ]);
        v
    }
}

/// One rule of Drover's chain, as `firewall.list` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rule {
    pub handle: u64,
    /// `accept`, `drop`, or another verdict nft printed.
    pub verdict: Option<String>,
    pub protocol: Option<String>,
    pub port: Option<u16>,
    pub source: Option<String>,
    pub comment: Option<String>,
    /// Whether Drover made it (its comment starts with `drover:`).
    pub managed: bool,
    /// The rule as Drover understands it; `None` when it has anything else
    /// (made by hand), so it never counts as a duplicate of a Drover rule.
    #[serde(skip)]
    pub wanted: Option<Wanted>,
}

/// The rules of chain `input` in `nft -j list table` output.
pub fn parse_rules(doc: &Value, table: &str) -> Vec<Rule> {
    let mut out = Vec::new();
    let Some(items) = doc["nftables"].as_array() else {
        return out;
    };
    for item in items {
        let r = &item["rule"];
        if !r.is_object() || r["table"] != table || r["chain"] != "input" || r["family"] != "inet" {
            continue;
        }
        let Some(handle) = r["handle"].as_u64() else {
            continue;
        };
        let comment = r["comment"].as_str().map(str::to_string);
        let mut rule = Rule {
            handle,
            verdict: None,
            protocol: None,
            port: None,
            source: None,
            managed: comment.as_deref().is_some_and(|c| c.starts_with("drover:")),
            comment,
            wanted: None,
        };
        let mut understood = true;
        let mut src: Option<Source> = None;
        for e in r["expr"].as_array().map(Vec::as_slice).unwrap_or_default() {
            let m = &e["match"];
            if m.is_object() && m["op"] == "==" {
                let payload = &m["left"]["payload"];
                let (proto, field) = (payload["protocol"].as_str(), payload["field"].as_str());
                match (proto, field) {
                    (Some(p @ ("tcp" | "udp")), Some("dport")) => {
                        rule.protocol = Some(p.to_string());
                        rule.port = m["right"].as_u64().and_then(|n| u16::try_from(n).ok());
                        understood &= rule.port.is_some();
                    }
                    (Some("ip" | "ip6"), Some("saddr")) => {
                        let right = &m["right"];
                        src = if let Some(a) = right.as_str() {
                            Source::parse(a).ok()
                        } else {
                            let p = &right["prefix"];
                            match (p["addr"].as_str(), p["len"].as_u64()) {
                                (Some(a), Some(l)) => Source::parse(&format!("{a}/{l}")).ok(),
                                _ => None,
                            }
                        };
                        rule.source = src.map(|s| s.to_string());
                        understood &= src.is_some();
                    }
                    _ => understood = false,
                }
            } else if let Some(obj) = e.as_object() {
                let verdict = obj.keys().find(|k| {
                    ["accept", "drop", "reject", "jump", "goto", "return"].contains(&k.as_str())
                });
                match verdict {
                    Some(v) => {
                        rule.verdict = Some(v.clone());
                        understood &= v == "accept" || v == "drop";
                    }
                    None => understood = false,
                }
            } else {
                understood = false;
            }
        }
        if understood {
            let verdict = match rule.verdict.as_deref() {
                Some("accept") => Some(Verdict::Accept),
                Some("drop") => Some(Verdict::Drop),
                _ => None,
            };
            let protocol = match rule.protocol.as_deref() {
                Some("tcp") => Some(Protocol::Tcp),
                Some("udp") => Some(Protocol::Udp),
                _ => None,
            };
            if let (Some(verdict), Some(protocol), Some(port)) = (verdict, protocol, rule.port) {
                rule.wanted = Some(Wanted {
                    verdict,
                    protocol,
                    port,
                    source: src,
                });
            }
        }
        out.push(rule);
    }
    out
}

/// Where a new rule goes: before the handle of the first rule that ranks
/// after it, or at the end.
pub fn position(rules: &[Rule], new: &Wanted) -> Option<u64> {
    rules
        .iter()
        .find(|r| r.wanted.is_some_and(|w| w.rank() > new.rank()))
        .map(|r| r.handle)
}

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
        match firewalld_running(&runner).await {
            Ok(true) => return firewalld::run(cmd, &wanted, &runner).await,
            Ok(false) => {}
            Err(o) => return o,
        }
    }
    let nft = Nft {
        cfg: ctx.cfg,
        runner: &runner,
    };
    let r = match cmd.action.as_str() {
        "firewall.list" => list(&nft, cmd).await,
        "firewall.remove_rule" => remove(&nft, cmd).await,
        _ => add(&nft, &wanted).await,
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

/// Whether firewalld manages this host's firewall.
async fn firewalld_running(runner: &Runner<'_>) -> Result<bool, Outcome> {
    let Some(prog) = which("firewall-cmd") else {
        return Ok(false);
    };
    let prog = prog.to_string_lossy().into_owned();
    let ran = runner.run(&[&prog, "--state"], &[], false).await?;
    Ok(ran.ok() && ran.stdout.iter().any(|l| l.trim() == "running"))
}

/// The firewalld path (see the module docs). Not exercised by the e2e
/// tests: the test machine has no firewalld.
mod firewalld {
    use super::*;

    /// A rich rule for `w` (firewalld's own language; every value in it is
    /// checked).
    pub fn rich_rule(w: &Wanted) -> String {
        let mut r = String::from("rule");
        if let Some(src) = w.source {
            let fam = if src.addr.is_ipv4() { "ipv4" } else { "ipv6" };
            r.push_str(&format!(" family=\"{fam}\" source address=\"{src}\""));
        }
        r.push_str(&format!(
            " port port=\"{}\" protocol=\"{}\" {}",
            w.port,
            w.protocol.as_str(),
            w.verdict.as_str()
        ));
        r
    }

    /// The `firewall-cmd` option that adds `w`.
    pub fn add_option(w: &Wanted) -> String {
        if w.source.is_none() && w.verdict == Verdict::Accept {
            format!("--add-port={}/{}", w.port, w.protocol.as_str())
        } else {
            format!("--add-rich-rule={}", rich_rule(w))
        }
    }

    async fn cmd(runner: &Runner<'_>, args: &[&str], show: bool) -> Result<Vec<String>, Outcome> {
        let mut argv = vec!["firewall-cmd"];
        argv.extend(args);
        let ran = runner.run(&argv, &[], show).await?;
        if !ran.ok() {
            return Err(Outcome {
                exit_code: ran.exit_code,
                ..Outcome::failed(format!(
                    "firewall-cmd {} failed: {}",
                    args.join(" "),
                    ran.error_tail()
                ))
            });
        }
        Ok(ran.stdout)
    }

    async fn listing(runner: &Runner<'_>) -> Result<Value, Outcome> {
        let ports = cmd(runner, &["--list-ports"], false).await?;
        let rich = cmd(runner, &["--list-rich-rules"], false).await?;
        Ok(json!({
            "backend": "firewalld",
            "ports": ports.join(" ").split_whitespace().collect::<Vec<_>>(),
            "rich_rules": rich.iter().filter(|l| !l.trim().is_empty()).collect::<Vec<_>>(),
        }))
    }

    pub async fn run(
        command: &Command,
        wanted: &[(Wanted, Option<String>)],
        runner: &Runner<'_>,
    ) -> Outcome {
        let r = async {
            match command.action.as_str() {
                "firewall.list" => {
                    let data = listing(runner).await?;
                    Ok(Outcome::succeeded("firewalld rules", data))
                }
                "firewall.remove_rule" => Err(Outcome::rejected(
                    "firewalld manages this host's firewall and has no rule handles; \
                     remove_rule works with nftables only (use firewall-cmd --remove-port / \
                     --remove-rich-rule); nothing was changed",
                )),
                _ => {
                    // firewalld itself ignores a port or rich rule that is
                    // already there (ALREADY_ENABLED), so this is idempotent.
                    for (w, _) in wanted {
                        let opt = add_option(w);
                        cmd(runner, &[&opt], true).await?;
                        cmd(runner, &["--permanent", &opt], true).await?;
                    }
                    let data = listing(runner).await?;
                    Ok(Outcome::succeeded(
                        format!("firewalld: {} rule(s) in place", wanted.len()),
                        data,
                    ))
                }
            }
        };
        r.await.unwrap_or_else(|o: Outcome| o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(verdict: Verdict, protocol: Protocol, port: u16, src: Option<&str>) -> Wanted {
        Wanted {
            verdict,
            protocol,
            port,
            source: src.map(|s| Source::parse(s).unwrap()),
        }
    }

    #[test]
    fn sources_are_canonical() {
        assert_eq!(
            Source::parse("10.0.0.1/8").unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            Source::parse("10.0.0.1/32").unwrap().to_string(),
            "10.0.0.1"
        );
        assert_eq!(
            Source::parse("10.0.0.1").unwrap(),
            Source::parse("10.0.0.1/32").unwrap()
        );
        assert_eq!(
            Source::parse("2001:0db8:0:0::1/32").unwrap().to_string(),
            "2001:db8::/32"
        );
        assert_eq!(Source::parse("0.0.0.0/0").unwrap().to_string(), "0.0.0.0/0");
        for bad in ["10.0.0.1;reboot", "$(id)", "10.0.0.0/33", "", "-o"] {
            assert!(Source::parse(bad).is_err(), "{bad}");
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

    #[test]
    fn parses_nft_json_and_orders_rules() {
        let doc: Value = serde_json::from_str(
            r#"{"nftables":[{"metainfo":{"version":"1.0.6"}},
            {"table":{"family":"inet","name":"drover","handle":1}},
            {"chain":{"family":"inet","table":"drover","name":"input","handle":1}},
            {"rule":{"family":"inet","table":"drover","chain":"input","handle":2,"comment":"drover:allow tcp/8080 from 10.0.0.0/8",
              "expr":[{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"saddr"}},"right":{"prefix":{"addr":"10.0.0.0","len":8}}}},
                      {"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":8080}},{"accept":null}]}},
            {"rule":{"family":"inet","table":"drover","chain":"input","handle":3,
              "expr":[{"match":{"op":"==","left":{"payload":{"protocol":"udp","field":"dport"}},"right":53}},{"drop":null}]}},
            {"rule":{"family":"inet","table":"drover","chain":"input","handle":4,
              "expr":[{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":22}},{"counter":{"packets":0,"bytes":0}},{"accept":null}]}},
            {"rule":{"family":"inet","table":"drover","chain":"input","handle":5,
              "expr":[{"match":{"op":"==","left":{"payload":{"protocol":"ip6","field":"saddr"}},"right":"2001:db8::1"}},
                      {"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":22}},{"accept":null}]}},
            {"rule":{"family":"inet","table":"other","chain":"input","handle":9,"expr":[{"accept":null}]}}
            ]}"#,
        )
        .unwrap();
        let rules = parse_rules(&doc, "drover");
        assert_eq!(
            rules.iter().map(|r| r.handle).collect::<Vec<_>>(),
            [2, 3, 4, 5]
        );
        assert!(rules[0].managed && !rules[1].managed);
        assert_eq!(rules[0].source.as_deref(), Some("10.0.0.0/8"));
        assert_eq!(rules[0].port, Some(8080));
        assert_eq!(
            rules[0].wanted,
            Some(w(Verdict::Accept, Protocol::Tcp, 8080, Some("10.0.0.1/8")))
        );
        assert_eq!(
            rules[1].wanted,
            Some(w(Verdict::Drop, Protocol::Udp, 53, None))
        );
        assert_eq!(
            rules[2].wanted, None,
            "a counter makes it not Drover's rule"
        );
        assert_eq!(rules[3].source.as_deref(), Some("2001:db8::1"));
        // Source-specific rules come first, drops before accepts.
        assert_eq!(
            position(&rules, &w(Verdict::Drop, Protocol::Tcp, 1, Some("1.2.3.4"))),
            Some(2)
        );
        assert_eq!(
            position(
                &rules,
                &w(Verdict::Accept, Protocol::Tcp, 1, Some("1.2.3.4"))
            ),
            Some(3)
        );
        assert_eq!(
            position(&rules, &w(Verdict::Drop, Protocol::Tcp, 1, None)),
            None
        );
        assert_eq!(
            position(&rules, &w(Verdict::Accept, Protocol::Tcp, 1, None)),
            None
        );
    }

    #[test]
    fn firewalld_options() {
        assert_eq!(
            firewalld::add_option(&w(Verdict::Accept, Protocol::Tcp, 8080, None)),
            "--add-port=8080/tcp"
        );
        assert_eq!(
            firewalld::add_option(&w(Verdict::Accept, Protocol::Tcp, 8080, Some("10.0.0.0/8"))),
            "--add-rich-rule=rule family=\"ipv4\" source address=\"10.0.0.0/8\" port port=\"8080\" protocol=\"tcp\" accept"
        );
        assert_eq!(
            firewalld::add_option(&w(Verdict::Drop, Protocol::Udp, 53, None)),
            "--add-rich-rule=rule port port=\"53\" protocol=\"udp\" drop"
        );
    }
}
