//! `firewall`: nftables rules in Drover's own table (firewalld where it runs).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ActionSpec, NoParams, Params, RunsIn};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// Params of `firewall.allow_port` and `firewall.deny_port`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PortParams {
    /// 1 to 65535.
    pub port: u16,
    #[serde(default = "tcp")]
    pub protocol: Protocol,
    /// Only from this IPv4/IPv6 address or CIDR network; every source when
    /// absent.
    #[serde(default)]
    pub source: Option<String>,
}
fn tcp() -> Protocol {
    Protocol::Tcp
}
impl Params for PortParams {
    fn check(&self) -> Result<(), String> {
        if self.port == 0 {
            return Err("port must be 1 to 65535".into());
        }
        if let Some(s) = &self.source {
            check_source(s)?;
        }
        Ok(())
    }
}

/// An address or network: parsed as an IP, with an optional prefix length.
pub fn check_source(s: &str) -> Result<(), String> {
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let ip: std::net::IpAddr = addr
        .parse()
        .map_err(|_| format!("source {s:?} is not an IP address or CIDR network"))?;
    if let Some(p) = prefix {
        let max = if ip.is_ipv4() { 32 } else { 128 };
        match p.parse::<u8>() {
            Ok(n) if n <= max => {}
            _ => return Err(format!("source {s:?} has a bad prefix length (0 to {max})")),
        }
    }
    Ok(())
}

/// Well-known services `allow_service` knows, with their ports.
pub const SERVICES: &[(&str, &[(u16, Protocol)])] = &[
    ("ssh", &[(22, Protocol::Tcp)]),
    ("http", &[(80, Protocol::Tcp)]),
    ("https", &[(443, Protocol::Tcp)]),
    ("dns", &[(53, Protocol::Udp), (53, Protocol::Tcp)]),
    ("smtp", &[(25, Protocol::Tcp)]),
    ("mysql", &[(3306, Protocol::Tcp)]),
    ("postgresql", &[(5432, Protocol::Tcp)]),
    ("redis", &[(6379, Protocol::Tcp)]),
    ("node-exporter", &[(9100, Protocol::Tcp)]),
];

/// Params of `firewall.allow_service`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceParams {
    /// One of: ssh, http, https, dns, smtp, mysql, postgresql, redis, node-exporter.
    pub service: String,
    #[serde(default)]
    pub source: Option<String>,
}
impl Params for ServiceParams {
    fn check(&self) -> Result<(), String> {
        if !SERVICES.iter().any(|(n, _)| *n == self.service) {
            let known: Vec<&str> = SERVICES.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "service {:?} is not known; use one of {}",
                self.service,
                known.join(", ")
            ));
        }
        if let Some(s) = &self.source {
            check_source(s)?;
        }
        Ok(())
    }
}

/// Params of `firewall.remove_rule`: the handle `firewall.list` shows.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoveParams {
    pub handle: u64,
}
impl Params for RemoveParams {}

pub fn specs() -> Vec<ActionSpec> {
    vec![
        ActionSpec::new::<NoParams>(
            "firewall.list",
            "List the rules Drover manages, with their handles.",
            RunsIn::Rootd,
            30,
        ),
        ActionSpec::new::<PortParams>(
            "firewall.allow_port",
            "Accept incoming traffic to a port (optionally from one source).",
            RunsIn::Rootd,
            30,
        ),
        ActionSpec::new::<PortParams>(
            "firewall.deny_port",
            "Drop incoming traffic to a port (optionally from one source).",
            RunsIn::Rootd,
            30,
        ),
        ActionSpec::new::<ServiceParams>(
            "firewall.allow_service",
            "Accept incoming traffic for a well-known service's ports.",
            RunsIn::Rootd,
            30,
        ),
        ActionSpec::new::<RemoveParams>(
            "firewall.remove_rule",
            "Remove one Drover rule by its handle.",
            RunsIn::Rootd,
            30,
        ),
    ]
}
