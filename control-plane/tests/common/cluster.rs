//! A three-node JetStream cluster on loopback, and `drover serve` replicas
//! on it, for `cluster_chaos.rs`. Each node's configuration is made by
//! `drover broker-config` (so the test runs the operator's path: the same
//! `broker_cluster::cluster_node_conf`), each node has its own store and
//! resolver directory, free loopback ports, never 4222, and a monitoring
//! port the harness reads (`/jsz`, `/healthz`) to know the cluster is
//! formed before anything declares a stream; with [`Cluster::start_tls`],
//! clients and routes speak TLS (`cluster_tls.rs`). Not here: the single-node
//! stack (`stack.rs`), replicas beside it (`replicas.rs`, whose `readyz` is
//! reused) and PostgreSQL (`deploy/postgres.rs`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::{
    api_request, bin, free_port, nats_server_bin, readyz, test_database_url, wait_for, Proc,
};

/// One cluster node: its process (None while down), client and monitoring
/// ports, config.
pub struct ClusterNode {
    pub proc: Option<Proc>,
    pub port: u16,
    pub monitor: u16,
    pub conf: PathBuf,
    pub dir: PathBuf,
}

/// Three nats-server processes routed to each other.
pub struct Cluster {
    pub nodes: Vec<ClusterNode>,
}

impl Cluster {
    /// Writes three node configurations with `drover broker-config` (the
    /// trust chain of the installation in `data_dir`, made by `drover
    /// init`), starts the nodes under `dir`, and waits (up to 60 s each)
    /// until [`Cluster::wait_formed`] and JetStream answers the control
    /// plane's user.
    pub async fn start(data_dir: &Path, dir: &Path) -> Self {
        Self::start_with(data_dir, dir, false).await
    }

    /// [`Cluster::start`] with `drover broker-config --tls`: clients and
    /// routes speak TLS (the installation in `data_dir` made by `drover
    /// init` with TLS; its `tls.conf` is copied beside each node's
    /// configuration, as `docs/cluster.md` tells the operator to).
    pub async fn start_tls(data_dir: &Path, dir: &Path) -> Self {
        Self::start_with(data_dir, dir, true).await
    }

    async fn start_with(data_dir: &Path, dir: &Path, tls: bool) -> Self {
        let client_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let route_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let monitor_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let mut nodes = Vec::new();
        for i in 0..3 {
            let ndir = dir.join(format!("node-{i}"));
            std::fs::create_dir_all(&ndir).unwrap();
            let conf = ndir.join("nats.conf");
            let mut cmd = Command::new(bin("drover"));
            cmd.arg("broker-config")
                .args(["--name", &format!("drover-{i}")])
                .args(["--listen", &format!("127.0.0.1:{}", client_ports[i])])
                .args(["--cluster-listen", &format!("127.0.0.1:{}", route_ports[i])])
                .args(["--monitor", &format!("127.0.0.1:{}", monitor_ports[i])]);
            for p in &route_ports {
                cmd.args(["--route", &format!("127.0.0.1:{p}")]);
            }
            cmd.arg("--store-dir")
                .arg(ndir.join("js"))
                .arg("--resolver-dir")
                .arg(ndir.join("resolver"))
                .arg("--out")
                .arg(&conf)
                .env("DROVER_DATA_DIR", data_dir);
            if tls {
                cmd.arg("--tls");
                std::fs::copy(
                    data_dir.join("nats-config").join("tls.conf"),
                    ndir.join("tls.conf"),
                )
                .unwrap();
            }
            let out = cmd.output().unwrap();
            assert!(
                out.status.success(),
                "drover broker-config: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            // With --out: nothing on stdout, what it wrote on stderr.
            assert!(out.stdout.is_empty());
            assert!(
                String::from_utf8_lossy(&out.stderr).contains(&format!("wrote {}", conf.display())),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            nodes.push(ClusterNode {
                proc: None,
                port: client_ports[i],
                monitor: monitor_ports[i],
                conf,
                dir: ndir,
            });
        }
        let mut c = Self { nodes };
        for i in 0..3 {
            c.start_node(i);
        }
        c.wait_formed(&[0, 1, 2]).await;
        let creds = data_dir.join("control-plane.creds");
        let ca = data_dir.join("tls").join("ca.pem");
        let urls = c.urls();
        wait_for("the JetStream cluster", Duration::from_secs(60), || async {
            let mut opts = async_nats::ConnectOptions::with_credentials_file(&creds)
                .await
                .ok()?;
            if tls {
                opts = opts.require_tls(true).add_root_certificates(ca.clone());
            }
            let client = opts
                .connect(urls.split(',').collect::<Vec<_>>())
                .await
                .ok()?;
            async_nats::jetstream::new(client)
                .query_account()
                .await
                .ok()
                .map(|_| ())
        })
        .await;
        c
    }

    /// Waits (up to 60 s) until every node in `up` reports, on its
    /// monitoring port (`/jsz`), the same JetStream meta leader among `up`,
    /// the leader sees every other node of `up` current in the meta group,
    /// and each node's `/healthz` answers 200. A replicated stream's
    /// creation needs its peers current in the meta group: declaring one
    /// before that times out (a follower that has not caught up cannot take
    /// part in the stream's Raft group) or is refused for want of peers.
    pub async fn wait_formed(&self, up: &[usize]) {
        let http = reqwest::Client::new();
        let names: Vec<String> = up.iter().map(|i| format!("drover-{i}")).collect();
        wait_for(
            "the JetStream meta group formed on every running node",
            Duration::from_secs(60),
            || async {
                let mut leader: Option<String> = None;
                let mut leader_sees_current = 0;
                for &i in up {
                    let base = format!("http://127.0.0.1:{}", self.nodes[i].monitor);
                    let jsz: Value = http
                        .get(format!("{base}/jsz"))
                        .send()
                        .await
                        .ok()?
                        .json()
                        .await
                        .ok()?;
                    let meta = &jsz["meta_cluster"];
                    let l = meta["leader"].as_str().unwrap_or("").to_string();
                    if !names.contains(&l) || leader.as_ref().is_some_and(|x| *x != l) {
                        return None;
                    }
                    if l == format!("drover-{i}") {
                        leader_sees_current = meta["replicas"]
                            .as_array()
                            .map(|a| {
                                a.iter()
                                    .filter(|p| {
                                        p["current"] == true
                                            && names.iter().any(|n| p["name"] == n.as_str())
                                    })
                                    .count()
                            })
                            .unwrap_or(0);
                    }
                    leader = Some(l);
                    let healthy = http
                        .get(format!("{base}/healthz"))
                        .send()
                        .await
                        .ok()?
                        .status()
                        .is_success();
                    if !healthy {
                        return None;
                    }
                }
                (leader_sees_current + 1 == up.len()).then_some(())
            },
        )
        .await;
    }

    /// Starts node `i` (again) with its configuration and storage.
    /// The node names the routes of node `i` lead to (its `/routez`),
    /// sorted, each once.
    pub async fn routed_to(&self, i: usize) -> Vec<String> {
        let routez: Value =
            reqwest::get(format!("http://127.0.0.1:{}/routez", self.nodes[i].monitor))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
        let mut names: Vec<String> = routez["routes"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["remote_name"].as_str().map(str::to_string))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    pub fn start_node(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        let mut cmd = Command::new(nats_server_bin());
        cmd.arg("-c").arg(&n.conf);
        n.proc = Some(Proc::spawn(
            "nats-server (cluster node)",
            cmd,
            n.dir.join("nats-server.log"),
        ));
    }

    /// `kill -9` node `i`.
    pub fn kill9(&mut self, i: usize) {
        if let Some(mut p) = self.nodes[i].proc.take() {
            p.kill9();
        }
    }

    /// Every node's client URL, comma-separated (what `nats_url` and the
    /// agents' `--nats-url` take).
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// One `drover serve` replica on the cluster: its process and API address.
pub struct ClusterReplica {
    pub proc: Proc,
    pub base: String,
}

impl ClusterReplica {
    /// `drover serve` on `data_dir` (its own copy: serve locks its data
    /// directory), the cluster's URLs, replicated streams, and `env`.
    pub fn spawn(data_dir: &Path, urls: &str, env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let mut cmd = Command::new(bin("drover"));
        cmd.arg("serve")
            .env("DROVER_DATA_DIR", data_dir)
            .env("DROVER_NATS_URL", urls)
            .env("DROVER_STREAM_REPLICAS", "3")
            .env("DROVER_LISTEN", format!("127.0.0.1:{port}"))
            .env("DROVER_MANIFESTS_DIR", data_dir.join("manifests"));
        if let Some(url) = test_database_url(data_dir) {
            cmd.env("DROVER_DATABASE_URL", url);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self {
            proc: Proc::spawn("drover serve", cmd, data_dir.join("control-plane.log")),
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Waits (up to 120 s) until `GET /readyz` answers 200 (database,
    /// broker and its shared consumers: streams declared).
    pub async fn wait_ready(&self) {
        let http = reqwest::Client::new();
        wait_for(
            &format!("replica {} ready", self.base),
            Duration::from_secs(120),
            || async { (readyz(&http, &self.base).await.0 == 200).then_some(()) },
        )
        .await;
    }

    pub async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        let http = reqwest::Client::new();
        api_request(&http, &self.base, token, reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, token: &str, path: &str, body: &Value) -> (u16, Value) {
        let http = reqwest::Client::new();
        api_request(
            &http,
            &self.base,
            token,
            reqwest::Method::POST,
            path,
            Some(body),
        )
        .await
    }
}
