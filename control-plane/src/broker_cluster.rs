//! The configuration of one node of a three-node broker cluster: its
//! `server_name`, JetStream store, monitoring, and the `cluster {}` block
//! (name, listen, route authorization, routes). `drover broker-config`
//! writes it through `nats_auth::NatsAuth::cluster_conf`, which adds the
//! installation's operator-mode resolver and route password. Owns only the
//! text of the node's configuration and the checks of what goes into it;
//! not keys (the `nats_auth` module) nor how the cluster is run
//! (`docs/cluster.md`).

use std::path::PathBuf;

/// One node of a broker cluster, as [`cluster_node_conf`] writes it.
#[derive(Debug, Clone)]
pub struct ClusterNode {
    /// `server_name`, unique in the cluster (`drover-1`): letters, digits,
    /// `-` and `_`.
    pub server_name: String,
    /// The cluster's name, the same on every node (`drover`).
    pub cluster_name: String,
    /// Where clients connect, `host:port` (`0.0.0.0:4222`).
    pub listen: String,
    /// Where the other nodes' routes connect, `host:port` (`0.0.0.0:6222`).
    pub cluster_listen: String,
    /// Every node's route address, `host:port` (this node's own may be
    /// among them; nats-server skips it). At least one other node.
    pub routes: Vec<String>,
    /// This node's JetStream store directory (its own, never shared).
    pub store_dir: PathBuf,
    /// The HTTP monitoring endpoint (`/healthz`, `/jsz`), `host:port`; none
    /// when `None`. Keep it on a private address: it needs no credentials.
    pub monitor: Option<String>,
}

fn check_host_port(what: &str, v: &str) -> anyhow::Result<()> {
    let ok = !v.is_empty()
        && v.len() <= 200
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".:-[]".contains(&b))
        && v.rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok());
    anyhow::ensure!(ok, "{what} {v:?} is not host:port");
    Ok(())
}

/// The hosts of route addresses (`host:port`, an IPv6 host in brackets; a
/// trailing dot dropped): the names a node checks the certificate of the
/// node it dials against. An address without a port is taken whole.
pub fn route_hosts(routes: &[String]) -> Vec<String> {
    routes
        .iter()
        .map(|r| {
            let host = r.rsplit_once(':').map_or(r.as_str(), |(h, _)| h);
            let host = host.trim_start_matches('[').trim_end_matches(']');
            // A fully qualified name's trailing dot is not part of the
            // name a certificate is checked against (as Go strips it).
            host.strip_suffix('.').unwrap_or(host).to_string()
        })
        .collect()
}

/// How a node's configuration from [`cluster_node_conf`] begins (its first
/// line goes on with the node's name): `drover broker-config --out`
/// replaces only a file that begins so.
pub const CONF_HEADER: &str = "# Broker cluster node ";

/// The user name of cluster routes (see [`cluster_node_conf`]).
pub const ROUTE_USER: &str = "drover-route";

/// One cluster node's configuration: `base` (the installation's broker
/// configuration, `nats_auth::installation_base_conf`) with the
/// node's `server_name`, its JetStream `store_dir`, and a `cluster {}` block
/// (name, listen, routes). Routes authenticate: the block requires
/// [`ROUTE_USER`] with `route_password` (hex), and every route URL carries
/// them, so a process that can reach the cluster port but lacks the
/// password cannot join as a route (a route sees and may publish
/// everything, below accounts and permissions). `route_tls`, when given, is
/// the cluster's own `tls {}` block (`tls::route_tls_block`): routes then
/// speak TLS both ways and each end checks the other's certificate, so the
/// route password and every replicated message cross the network
/// encrypted. Operator mode and the clients' TLS are what the caller
/// appends (`drover broker-config` does: the resolver, `include
/// "tls.conf"`). The one function the CLI and the test harness use.
/// Errors: a name, address or path a NATS config could read as syntax.
pub fn cluster_node_conf(
    node: &ClusterNode,
    base: &str,
    route_password: &str,
    route_tls: Option<&str>,
) -> anyhow::Result<String> {
    anyhow::ensure!(
        route_password.len() >= 32 && route_password.bytes().all(|b| b.is_ascii_hexdigit()),
        "the route password must be at least 32 hex digits"
    );
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.len() <= 64
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
    };
    anyhow::ensure!(
        name_ok(&node.server_name),
        "server name {:?}: letters, digits, - and _ only",
        node.server_name
    );
    anyhow::ensure!(
        name_ok(&node.cluster_name),
        "cluster name {:?}: letters, digits, - and _ only",
        node.cluster_name
    );
    check_host_port("cluster listen", &node.cluster_listen)?;
    if let Some(m) = &node.monitor {
        check_host_port("monitor", m)?;
    }
    anyhow::ensure!(
        !node.routes.is_empty(),
        "a cluster node needs the routes of the other nodes"
    );
    for r in &node.routes {
        check_host_port("route", r)?;
    }
    let store = node.store_dir.display().to_string();
    anyhow::ensure!(
        !store.is_empty() && !store.contains(['"', '\\', '\n']),
        "store directory {store:?} cannot be written into a NATS config"
    );
    check_host_port("listen", &node.listen)?;
    let mut out = format!(
        "{CONF_HEADER}{}, written by `drover broker-config`:\n\
         # operator mode, JetStream, routes to every node.\n",
        node.server_name
    );
    for line in base.lines() {
        if line.starts_with('#') {
            continue;
        } else if line.starts_with("server_name:") {
            out.push_str(&format!("server_name: {}\n", node.server_name));
        } else if line.trim_start().starts_with("jetstream {") {
            out.push_str(&format!("{line}\n  store_dir: \"{store}\"\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if let Some(m) = &node.monitor {
        out.push_str(&format!(
            "\n# Monitoring (/healthz, /jsz): no credentials, keep it private.\nhttp: \"{m}\"\n"
        ));
    }
    let routes: Vec<String> = node
        .routes
        .iter()
        .map(|r| format!("    \"nats-route://{ROUTE_USER}:{route_password}@{r}\""))
        .collect();
    let (how, tls) = match route_tls {
        Some(block) => (
            "over TLS, both ends checked against the installation's CA",
            block,
        ),
        None => ("unencrypted: firewall the cluster port to the nodes", ""),
    };
    out.push_str(&format!(
        "\n# Cluster (drover broker-config): routes to every node, each\n\
         # authenticated (the password is secret: keep this file 0600),\n\
         # {how}.\n\
         cluster {{\n  name: {}\n  listen: \"{}\"\n  \
         authorization {{\n    user: \"{ROUTE_USER}\"\n    password: \"{route_password}\"\n    timeout: 2\n  }}\n\
         {tls}  routes: [\n{}\n  ]\n}}\n",
        node.cluster_name,
        node.cluster_listen,
        routes.join("\n")
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_hosts_are_the_addresses_without_port_or_brackets() {
        let routes = [
            "nats1.example:6222",
            "nats2.example.:6222",
            "10.0.0.2:6222",
            "[fd00::3]:6222",
        ]
        .map(String::from);
        assert_eq!(
            route_hosts(&routes),
            ["nats1.example", "nats2.example", "10.0.0.2", "fd00::3"]
        );
    }
}
