//! The firewall rule model: a [`Wanted`] rule (verdict, protocol, port,
//! optional [`Source`]), its rank in the chain, its nft statement and
//! comment, and the [`Rule`]s read back from `nft -j list table`.
//!
//! It runs no program and knows neither the command nor the backend that
//! applies the rules (`nftables.rs`, `firewalld.rs`).

use std::net::IpAddr;

use bus_schema::catalogue::firewall::Protocol;
use serde::Serialize;
use serde_json::Value;

/// What a rule does with a matching packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Accept,
    Drop,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
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
    pub fn rank(&self) -> u8 {
        match (self.source.is_some(), self.verdict) {
            (true, Verdict::Drop) => 0,
            (true, Verdict::Accept) => 1,
            (false, Verdict::Drop) => 2,
            (false, Verdict::Accept) => 3,
        }
    }

    pub fn describe(&self) -> String {
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
    pub fn comment(&self, service: Option<&str>) -> String {
        match service {
            Some(svc) => format!("drover:{} ({svc})", self.describe()),
            None => format!("drover:{}", self.describe()),
        }
    }

    /// The rule's statement, as nft argv after `<chain>`.
    pub fn statement(&self, comment: &str) -> Vec<String> {
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
}
