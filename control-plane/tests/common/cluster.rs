//! A three-node JetStream cluster on loopback, and `drover serve` replicas
//! on it, for `cluster_chaos.rs`. Each node's configuration is made by
//! `drover broker-config` (so the test runs the operator's path: the same
//! `nats_auth::cluster_node_conf`), each node has its own store and
//! resolver directory, free loopback ports, never 4222. Not here: the
//! single-node stack (`stack.rs`) and PostgreSQL (`deploy/postgres.rs`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::{api_request, bin, free_port, nats_server_bin, test_database_url, wait_for, Proc};

/// One cluster node: its process (None while down), client port, config.
pub struct ClusterNode {
    pub proc: Option<Proc>,
    pub port: u16,
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
    /// init`), starts the nodes under `dir`, and waits (up to 60 s) until
    /// JetStream answers the control plane's user.
    pub async fn start(data_dir: &Path, dir: &Path) -> Self {
        let client_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let route_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let mut nodes = Vec::new();
        for i in 0..3 {
            let ndir = dir.join(format!("node-{i}"));
            std::fs::create_dir_all(&ndir).unwrap();
            let conf = ndir.join("nats.conf");
            let mut cmd = Command::new(bin("drover"));
            cmd.arg("broker-config")
                .args(["--name", &format!("drover-{i}")])
                .args(["--listen", &format!("127.0.0.1:{}", client_ports[i])])
                .args(["--cluster-listen", &format!("127.0.0.1:{}", route_ports[i])]);
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
            let out = cmd.output().unwrap();
            assert!(
                out.status.success(),
                "drover broker-config: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            nodes.push(ClusterNode {
                proc: None,
                port: client_ports[i],
                conf,
                dir: ndir,
            });
        }
        let mut c = Self { nodes };
        for i in 0..3 {
            c.start_node(i);
        }
        for i in 0..3 {
            let port = c.nodes[i].port;
            wait_for(
                "a cluster node to listen",
                Duration::from_secs(20),
                || async {
                    tokio::net::TcpStream::connect(("127.0.0.1", port))
                        .await
                        .ok()
                        .map(|_| ())
                },
            )
            .await;
        }
        let creds = data_dir.join("control-plane.creds");
        let urls = c.urls();
        wait_for("the JetStream cluster", Duration::from_secs(60), || async {
            let client = async_nats::ConnectOptions::with_credentials_file(&creds)
                .await
                .ok()?
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

    /// Starts node `i` (again) with its configuration and storage.
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

/// One `drover serve` replica: its process and API address.
pub struct Replica {
    pub proc: Proc,
    pub base: String,
}

impl Replica {
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

    /// Waits (up to 60 s) until `GET /healthz` answers 200.
    pub async fn wait_healthy(&self) {
        let http = reqwest::Client::new();
        let url = format!("{}/healthz", self.base);
        wait_for(
            "a replica to be healthy",
            Duration::from_secs(60),
            || async {
                let r = http.get(&url).send().await.ok()?;
                r.status().is_success().then_some(())
            },
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
