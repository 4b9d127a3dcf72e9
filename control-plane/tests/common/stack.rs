//! The control side under test ([`Stack`]: nats-server + `drover serve` with
//! its own data directory) and the hosts it enrols ([`Host`]: a real agent
//! and rootd). Owns starting, restarting and asking the REST API as the
//! admin token; browser sessions live in `session.rs`, rootd's socket in
//! `rootd.rs`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use super::*;

/// nats-server + `drover serve` with its own data directory.
pub struct Stack {
    pub nats: Nats,
    pub cp: Proc,
    pub token: String,
    pub base: String,
    pub data_dir: PathBuf,
    http: reqwest::Client,
    /// The PostgreSQL server the control plane uses, when not SQLite.
    pub pg: Option<Postgres>,
    /// Last: fields drop in order, so nats-server and the control plane are
    /// killed before their directory is removed (a still-running server
    /// wrote it again and left it behind in /tmp).
    pub tmp: TempDir,
}

/// The installers shipped in the repository's `manifests/`.
pub fn repo_manifests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../manifests")
        .canonicalize()
        .unwrap()
}

impl Stack {
    /// The whole control side, showing the repository's app manifests.
    pub async fn start() -> Self {
        Self::start_with_manifests(&repo_manifests()).await
    }

    /// Like [`Stack::start`], with the control plane reading app manifests
    /// from `manifests` (rootd gets its own setting per host).
    pub async fn start_with_manifests(manifests: &Path) -> Self {
        Self::start_full(manifests, postgres_requested()).await
    }

    /// Like [`Stack::start`], with the control plane's database on a
    /// private PostgreSQL server instead of SQLite.
    pub async fn start_postgres() -> Self {
        Self::start_full(&repo_manifests(), true).await
    }

    /// Like [`Stack::start`], always on SQLite, even in the PostgreSQL pass
    /// (`DROVER_TEST_DATABASE=postgres`): for tests whose subject is the
    /// SQLite file itself (its backup, an old file's migration). Their
    /// PostgreSQL counterparts are tests of their own.
    pub async fn start_sqlite() -> Self {
        Self::start_full(&repo_manifests(), false).await
    }

    async fn start_full(manifests: &Path, postgres: bool) -> Self {
        // DROVER_TEST_KEEP=1 keeps the directory (logs, database) to look at.
        let tmp = tempfile::Builder::new()
            .prefix("drover-test-")
            .disable_cleanup(std::env::var_os("DROVER_TEST_KEEP").is_some())
            .tempdir()
            .unwrap();
        let data_dir = tmp.path().join("cp");
        let pg = if postgres {
            let pg = Postgres::start().await;
            set_test_database_url(&data_dir, &pg.url);
            Some(pg)
        } else {
            None
        };
        // Plaintext: `tls_stack.rs` runs the stack with TLS.
        let mut init = Command::new(bin("drover"));
        init.args(["init", "--no-tls"])
            .env("DROVER_DATA_DIR", &data_dir);
        if let Some(url) = test_database_url(&data_dir) {
            init.env("DROVER_DATABASE_URL", url);
        }
        let init = init.output().unwrap();
        assert!(
            init.status.success(),
            "drover init failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        // spawn_cp (also used to restart the control plane) finds it here.
        std::os::unix::fs::symlink(manifests, data_dir.join("manifests")).unwrap();
        let nats = Nats::start(
            &tmp.path().join("nats"),
            &data_dir.join("nats-config").join("nats.conf"),
        )
        .await;
        let token = std::fs::read_to_string(data_dir.join("admin.token"))
            .unwrap()
            .trim()
            .to_string();
        let port = free_port();
        let cp = Self::spawn_cp(&data_dir, &nats.url(), port);
        let base = format!("http://127.0.0.1:{port}");
        let stack = Self {
            tmp,
            nats,
            cp,
            token,
            base,
            data_dir,
            http: reqwest::Client::new(),
            pg,
        };
        stack.wait_healthy().await;
        stack
    }

    pub fn spawn_cp(data_dir: &Path, nats_url: &str, port: u16) -> Proc {
        let mut cmd = Command::new(bin("drover"));
        cmd.arg("serve")
            .env("DROVER_DATA_DIR", data_dir)
            .env("DROVER_NATS_URL", nats_url)
            .env("DROVER_LISTEN", format!("127.0.0.1:{port}"))
            .env("DROVER_MANIFESTS_DIR", data_dir.join("manifests"));
        if let Some(url) = test_database_url(data_dir) {
            cmd.env("DROVER_DATABASE_URL", url);
        }
        Proc::spawn("drover serve", cmd, data_dir.join("control-plane.log"))
    }

    pub async fn wait_healthy(&self) {
        let url = format!("{}/healthz", self.base);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // Healthy, and its own log says it listens: a server that
            // lost its port to another test's would leave that one to
            // answer.
            if let Ok(r) = self.http.get(&url).send().await {
                if r.status().is_success() && self.cp.own_log_text().contains("control plane ready")
                {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the control plane did not become healthy within 30s; its log:\n{}",
                self.cp.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A client with the control plane's own (unrestricted) credentials.
    pub async fn client(&self) -> async_nats::Client {
        async_nats::ConnectOptions::with_credentials_file(self.data_dir.join("control-plane.creds"))
            .await
            .unwrap()
            .connect(self.nats.url())
            .await
            .unwrap()
    }

    /// Makes a registration token through the API; returns the secret.
    pub async fn token(&self, uses: i32, expires: &str, auto_approve: bool) -> String {
        let (code, v) = self
            .post("/tokens", &serde_json::json!({"uses": uses, "expires": expires, "auto_approve": auto_approve}))
            .await;
        assert_eq!(code, 201, "{v}");
        v["token"].as_str().unwrap().to_string()
    }

    pub fn control_plane_key(&self) -> String {
        bus_schema::CommandSigner::load(&self.data_dir.join("signing.key"))
            .unwrap()
            .public()
            .to_base64()
    }

    pub fn signer(&self) -> bus_schema::CommandSigner {
        bus_schema::CommandSigner::load(&self.data_dir.join("signing.key")).unwrap()
    }

    /// A host: its own rootd and agent, as the current user (dev mode),
    /// enrolled with an auto-approved token and its own machine-id.
    pub async fn start_host(&self, name: &str) -> Host {
        self.start_host_configured(name, "").await
    }

    /// Like [`Stack::start_host`], with extra lines for rootd's TOML
    /// configuration (allow-lists, manifest directory, sockets).
    pub async fn start_host_configured(&self, name: &str, rootd_extra: &str) -> Host {
        let token = self.token(1, "1h", true).await;
        let host = self
            .spawn_host(name, &token, &random_machine_id(), rootd_extra)
            .await;
        self.wait_online(&host.id).await;
        self.wait_rootd_modules(&host).await;
        host
    }

    /// Waits until the agent's heartbeat lists every module rootd says it can
    /// run. The agent asks rootd before each heartbeat until rootd answers,
    /// so a rootd that was slow to bind under load makes the first
    /// heartbeats (and with them "online") carry the agent's own modules
    /// only, and the control plane refuses rootd actions with a 409 until a
    /// later heartbeat. Returns the agent as the API shows it.
    pub async fn wait_rootd_modules(&self, host: &Host) -> Value {
        let want = rootd_modules(&host.socket).await;
        wait_for(
            &format!("agent {} to report rootd's modules {want:?}", host.id),
            // rootd answered above, so the next heartbeat (1 s) should carry
            // them; an agent asks rootd again while it does not answer, after
            // its running set changed and every `ASK_ROOTD_EVERY`
            // heartbeats (agent/src/heartbeat.rs).
            Duration::from_secs(90),
            || async {
                let (code, v) = self.get(&format!("/agents/{}", host.id)).await;
                let reported = v["modules"].as_array().cloned().unwrap_or_default();
                let all = want
                    .iter()
                    .all(|m| reported.iter().any(|r| r.as_str() == Some(m.as_str())));
                (code == 200 && all).then_some(v)
            },
        )
        .await
    }

    /// A host with the given token and machine-id; does not wait for
    /// enrolment to succeed.
    pub async fn start_host_with(&self, name: &str, token: &str, machine_id: &str) -> Host {
        self.spawn_host(name, token, machine_id, "").await
    }

    async fn spawn_host(
        &self,
        name: &str,
        token: &str,
        machine_id: &str,
        rootd_extra: &str,
    ) -> Host {
        let mut spec = HostSpec::new(
            self.tmp.path().join(name),
            self.nats.url(),
            self.control_plane_key(),
            token,
            self.data_dir.join("enroll.creds"),
        );
        spec.machine_id = machine_id.to_string();
        spec.rootd_extra = rootd_extra.to_string();
        spec.launch().await
    }

    /// Starts `drover-agent run` again for a host (see [`spawn_agent`]).
    pub fn spawn_agent(agent_toml: &Path, dir: &Path) -> Proc {
        spawn_agent(agent_toml, dir)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        api_request(
            &self.http,
            &self.base,
            &self.token,
            reqwest::Method::GET,
            path,
            None,
        )
        .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        api_request(
            &self.http,
            &self.base,
            &self.token,
            reqwest::Method::POST,
            path,
            Some(body),
        )
        .await
    }

    /// Waits until the API shows the agent online with metrics.
    pub async fn wait_online(&self, agent: &str) -> Value {
        wait_for(
            &format!("agent {agent} online"),
            Duration::from_secs(30),
            || async {
                let (code, v) = self.get(&format!("/agents/{agent}")).await;
                (code == 200 && v["status"] == "online").then_some(v)
            },
        )
        .await
    }

    /// A `sys.ping` to `agent`, waited for until it is final.
    pub async fn ping(&self, agent: &str) -> Value {
        let (code, c) = self
            .post(
                &format!("/agents/{agent}/commands?wait=20"),
                &serde_json::json!({"action": "sys.ping"}),
            )
            .await;
        assert_eq!(code, 201, "{c}");
        self.wait_final(c["id"].as_str().unwrap(), Duration::from_secs(30))
            .await
    }

    /// Waits until every command of a job is final; returns the job view.
    /// Waits for every host of the job to answer: long polls of
    /// `GET /jobs/<id>?wait=`, which answer when the job is done.
    pub async fn wait_job_done(&self, id: &str, max: Duration) -> Value {
        wait_for(&format!("job {id} to finish"), max, || async {
            let (_, v) = self.get(&format!("/jobs/{id}?wait=5")).await;
            v["done"].as_bool().unwrap_or(false).then_some(v)
        })
        .await
    }

    /// `drover-agent simulate` with `count` virtual agents enrolling with
    /// `token`; `extra` adds flags (`--state-dir`, `--ids-file`, ...).
    pub fn spawn_simulate(
        &self,
        count: usize,
        token: &str,
        heartbeat_secs: u32,
        extra: &[&std::ffi::OsStr],
        log: &str,
    ) -> Proc {
        let mut cmd = Command::new(bin("drover-agent"));
        cmd.args([
            "simulate",
            "--count",
            &count.to_string(),
            "--nats-url",
            &self.nats.url(),
        ])
        .args(["--heartbeat-secs", &heartbeat_secs.to_string()])
        .arg("--enroll-creds")
        .arg(self.data_dir.join("enroll.creds"))
        .args(extra)
        .env("DROVER_SIM_TOKEN", token);
        Proc::spawn("drover-agent simulate", cmd, self.tmp.path().join(log))
    }

    /// Waits until a command reaches a final state.
    pub async fn wait_final(&self, id: &str, max: Duration) -> Value {
        wait_for(&format!("command {id} to finish"), max, || async {
            let (_, v) = self.get(&format!("/commands/{id}?wait=1")).await;
            let s = v["status"].as_str().unwrap_or("");
            ["succeeded", "failed", "rejected", "expired", "cancelled"]
                .contains(&s)
                .then_some(v)
        })
        .await
    }

    /// Waits until a log contains `needle`.
    pub async fn wait_log(proc: &Proc, needle: &str) -> String {
        wait_for(
            &format!("{} log to contain {needle:?}", proc.name),
            Duration::from_secs(20),
            || async {
                let t = proc.log_text();
                t.contains(needle).then_some(t)
            },
        )
        .await
    }
}

impl Stack {
    /// The control plane's database, for tests that inspect or tamper.
    pub async fn db(&self) -> sea_orm::DatabaseConnection {
        let url = test_database_url(&self.data_dir).unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("drover.db").display()
            )
        });
        control_plane::db::connect(&url).await.unwrap()
    }

    /// `drover <args>` against this stack's data directory.
    pub fn drover(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = Command::new(bin("drover"));
        cmd.args(args)
            .env("DROVER_DATA_DIR", &self.data_dir)
            .env("DROVER_API", &self.base)
            .stdin(Stdio::null());
        if let Some(url) = test_database_url(&self.data_dir) {
            cmd.env("DROVER_DATABASE_URL", url);
        }
        cmd.output().unwrap()
    }
}

// ------------------------------------------------- restarts with settings

impl Stack {
    /// Restarts the control plane (same data directory, port and broker)
    /// with extra `DROVER_*` settings in its environment, and waits until it
    /// is healthy.
    pub async fn restart_cp_with(&mut self, env: &[(&str, &str)]) {
        let port: u16 = self.base.rsplit(':').next().unwrap().parse().unwrap();
        self.cp.stop();
        let mut cmd = Command::new(bin("drover"));
        cmd.arg("serve")
            .env("DROVER_DATA_DIR", &self.data_dir)
            .env("DROVER_NATS_URL", self.nats.url())
            .env("DROVER_LISTEN", format!("127.0.0.1:{port}"))
            .env("DROVER_MANIFESTS_DIR", self.data_dir.join("manifests"));
        if let Some(url) = test_database_url(&self.data_dir) {
            cmd.env("DROVER_DATABASE_URL", url);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        self.cp = Proc::spawn("drover serve", cmd, self.data_dir.join("control-plane.log"));
        self.wait_healthy().await;
    }

    /// Stops nats-server (gracefully) and returns what starts it again on
    /// the same port with the same storage.
    pub fn stop_nats(&mut self) -> (PathBuf, PathBuf, u16) {
        self.nats.proc.stop();
        (
            self.nats.dir.clone(),
            self.data_dir.join("nats-config").join("nats.conf"),
            self.nats.port,
        )
    }
}
