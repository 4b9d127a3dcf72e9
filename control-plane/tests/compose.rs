//! The production deployment, for real: `compose.yaml` on a private Docker
//! engine (PostgreSQL, the one-shot init, the operator-mode broker, the
//! control plane), with a real agent and rootd on this host enrolling over
//! the published broker port. Plus the control plane on a real PostgreSQL
//! server without Docker, which `just test` runs every time.
//!
//! The compose test is `#[ignore]`d (it starts dockerd and builds images,
//! minutes on a cold cache): `just test-compose` runs it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// The control plane on PostgreSQL (the compose deployment's database):
/// enrolment, heartbeats, a command round trip, a job over two hosts (bulk
/// writes), and the host page's charts (an aggregate query PostgreSQL types
/// differently from SQLite).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_plane_runs_on_postgresql() {
    let stack = Stack::start_postgres().await;
    let url = test_database_url(&stack.data_dir).expect("a PostgreSQL stack");
    assert!(url.starts_with("postgres://"), "{url}");
    let a = stack.start_host("pg-a").await;
    let _b = stack.start_host("pg-b").await;
    let done = stack.ping(&a.id).await;
    assert_eq!(done["status"], "succeeded", "{done}");

    let (code, job) = stack
        .post(
            "/jobs",
            &json!({"selector": {"all": true}, "action": "sys.ping"}),
        )
        .await;
    assert_eq!(code, 201, "{job}");
    let v = stack
        .wait_job_done(job["id"].as_str().unwrap(), Duration::from_secs(60))
        .await;
    assert_eq!(v["counts"]["succeeded"], 2, "{v}");

    // The rows are in PostgreSQL, not in a SQLite file beside the keys.
    assert!(!stack.data_dir.join("drover.db").exists());
    use sea_orm::{EntityTrait, PaginatorTrait};
    let db = stack.db().await;
    assert_eq!(
        db.get_database_backend(),
        sea_orm::DatabaseBackend::Postgres
    );
    let n = control_plane::db::entities::agent::Entity::find()
        .count(&db)
        .await
        .unwrap();
    assert_eq!(n, 2);

    // The host page (metric charts: AVG over integer columns).
    stack.add_user("pgviewer", "viewer", "a long enough password");
    let s = stack.login("pgviewer", "a long enough password").await;
    let (code, html) = s.get_html(&format!("/agents/{}", a.id)).await;
    assert_eq!(code, 200, "{html}");
}

/// Where the repository is (compose.yaml, scripts/compose/).
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// Waits until every service with a healthcheck reports `healthy`.
async fn wait_healthy(d: &Dockerd, c: &Compose, services: &[&str]) {
    for s in services {
        let id = c.container(s);
        assert!(!id.is_empty(), "no container for {s}:\n{}", c.logs());
        let mut last = String::new();
        let r = tokio::time::timeout(Duration::from_secs(240), async {
            loop {
                let out = d.docker(&["inspect", "-f", "{{.State.Health.Status}}", &id]);
                last = String::from_utf8_lossy(&out.stdout).trim().to_string();
                if last == "healthy" {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
        .await;
        assert!(
            r.is_ok(),
            "{s} is not healthy after 240 s (last: {last}); logs:\n{}",
            c.logs()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "starts dockerd and builds images: run by `just test-compose`"]
async fn the_production_compose_enrols_a_real_host_over_the_operator_mode_broker() {
    let tmp = tempfile::Builder::new()
        .prefix("drover-compose-")
        .tempdir()
        .unwrap();
    let dockerd = Dockerd::start().await;

    // Images from this host's binaries, on the local base image.
    let bin_dir = bin("drover").parent().unwrap().to_path_buf();
    let out = Command::new("timeout")
        .arg("1200")
        .arg("bash")
        .arg(repo().join("scripts/compose/build-images.sh"))
        .arg(&bin_dir)
        .arg(compose_cache_dir())
        .env("DOCKER_HOST", &dockerd.host)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "building the images failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let broker_port = free_port();
    let http_port = free_port();
    // The one change to compose.yaml: its network's bridge gets a name
    // known before `up`, so the host's FORWARD chain can let it through
    // (see `BridgeForward`); `up --no-start` cannot create it first, as it
    // waits for `init` to complete.
    let bridge = format!("drvt{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let overrides = tmp.path().join("test-bridge.yaml");
    std::fs::write(
        &overrides,
        format!(
            "# Written by tests/compose.rs: the bridge's name only.\nversion: \"2.4\"\nnetworks:\n  backend:\n    driver_opts:\n      com.docker.network.bridge.name: {bridge}\n"
        ),
    )
    .unwrap();
    let _forward = BridgeForward::allow(&bridge);
    let compose = Compose::new(
        &dockerd,
        &[&repo().join("compose.yaml"), &overrides],
        &[
            ("DROVER_BIND", "127.0.0.1".into()),
            ("DROVER_BROKER_PORT", broker_port.to_string()),
            ("DROVER_HTTP_PORT", http_port.to_string()),
        ],
    );
    compose.ok(&["config", "-q"], Duration::from_secs(60));
    compose.ok(&["up", "-d", "--no-build"], Duration::from_secs(300));
    wait_healthy(&dockerd, &compose, &["postgres", "nats", "drover"]).await;

    // The broker runs the operator-mode config `drover init` wrote, and
    // holds none of the control plane's secrets.
    let conf = compose.read_file("nats", "/etc/nats/broker/nats.conf");
    let resolver = compose.read_file("nats", "/etc/nats/broker/resolver.conf");
    assert!(resolver.contains("operator:"), "{resolver}");
    assert!(
        resolver.contains("resolver: {") && resolver.contains("type: full"),
        "{resolver}"
    );
    assert!(resolver.contains("\"/data/resolver\""), "{resolver}");
    assert!(!conf.contains("/var/lib/drover"), "{conf}");
    // TLS required (tls.conf, included by nats.conf, names the broker's
    // certificate where the broker container mounts it).
    assert!(conf.contains("include \"tls.conf\""), "{conf}");
    let tls_conf = compose.read_file("nats", "/etc/nats/broker/tls.conf");
    assert!(
        tls_conf.contains("/etc/nats/broker/tls/nats.pem"),
        "{tls_conf}"
    );
    let tls = true;
    let broker_files = compose.ok(
        &["exec", "-T", "nats", "find", "/etc/nats/broker", "/data"],
        Duration::from_secs(60),
    );
    for secret in [
        "signing.key",
        "admin.token",
        ".creds",
        "operator",
        "ca.key",
        "db-password",
    ] {
        assert!(
            !broker_files.contains(secret),
            "the broker container must not hold {secret}:\n{broker_files}"
        );
    }
    // The database password is in no container's configuration.
    let pw = compose.read_file("drover", "/var/lib/drover-secrets/db-password");
    assert!(pw.trim().len() >= 16);
    for s in ["postgres", "init", "nats", "drover"] {
        let id = compose
            .ok(&["ps", "-a", "-q", s], Duration::from_secs(60))
            .trim()
            .to_string();
        let inspect =
            String::from_utf8_lossy(&dockerd.docker(&["inspect", &id]).stdout).into_owned();
        assert!(
            !inspect.contains(pw.trim()),
            "{s}'s configuration shows the database password"
        );
    }
    // The resolved deployment names neither the password nor the
    // development broker config.
    let resolved = compose.ok(&["config"], Duration::from_secs(60));
    assert!(!resolved.contains(pw.trim()));
    assert!(!resolved.contains("dev.conf"), "{resolved}");

    // The admin token and what a host needs, from the control plane's volume.
    let token = compose
        .read_file("drover", "/var/lib/drover/admin.token")
        .trim()
        .to_string();
    // No secret reaches a container's log (docker keeps them).
    let web_pw = compose.read_file("drover", "/var/lib/drover/admin-password");
    let all_logs = compose.ok(&["logs", "--no-color"], Duration::from_secs(60));
    assert!(
        all_logs.contains("broker configuration installed"),
        "{all_logs}"
    );
    for (what, secret) in [
        ("admin token", token.as_str()),
        ("database password", pw.trim()),
        ("web admin password", web_pw.trim()),
    ] {
        assert!(secret.len() >= 16, "{what}");
        assert!(!all_logs.contains(secret), "the {what} is in the logs");
    }
    let host_dir = tmp.path().join("host");
    std::fs::create_dir_all(&host_dir).unwrap();
    let enroll_creds = host_dir.join("enroll.creds");
    std::fs::write(
        &enroll_creds,
        compose.read_file("drover", "/var/lib/drover/enroll.creds"),
    )
    .unwrap();
    let (base, http) = if tls {
        let ca = compose.read_file("drover", "/var/lib/drover/tls/ca.pem");
        std::fs::write(host_dir.join("ca.pem"), &ca).unwrap();
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
            .build()
            .unwrap();
        (format!("https://localhost:{http_port}"), client)
    } else {
        (
            format!("http://127.0.0.1:{http_port}"),
            reqwest::Client::new(),
        )
    };
    let api = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut r = http
            .request(method, format!("{base}/api/v1{path}"))
            .bearer_auth(&token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        async move {
            let r = r.send().await.unwrap();
            let code = r.status().as_u16();
            (code, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (code, v) = api(reqwest::Method::GET, "/security", None).await;
    assert_eq!(code, 200, "{v}");
    let key = v["signing_key"]["public_key"].as_str().unwrap().to_string();
    let (code, v) = api(
        reqwest::Method::POST,
        "/tokens",
        Some(json!({"uses": 1, "expires": "1h", "auto_approve": true})),
    )
    .await;
    assert_eq!(code, 201, "{v}");
    let reg = v["token"].as_str().unwrap().to_string();

    // A real agent and rootd on this host, outside Docker.
    let nats_url = if tls {
        format!("tls://localhost:{broker_port}")
    } else {
        format!("nats://127.0.0.1:{broker_port}")
    };
    let mut spec = HostSpec::new(host_dir.clone(), nats_url, key, &reg, enroll_creds.clone());
    if tls {
        spec.nats_ca = Some(host_dir.join("ca.pem"));
    }
    let host = spec.launch().await;
    let (id, agent) = (host.id.clone(), &host.agent);
    let online = wait_for(
        &format!("agent {id} online"),
        Duration::from_secs(60),
        || async {
            let (code, v) = api(reqwest::Method::GET, &format!("/agents/{id}"), None).await;
            (code == 200 && v["status"] == "online").then_some(v)
        },
    )
    .await;
    assert_eq!(online["id"], id.as_str());

    // A command round trip through the containerised broker.
    let (code, c) = api(
        reqwest::Method::POST,
        &format!("/agents/{id}/commands?wait=20"),
        Some(json!({"action": "sys.ping"})),
    )
    .await;
    assert_eq!(code, 201, "{c}");
    let cid = c["id"].as_str().unwrap().to_string();
    let done = wait_for("sys.ping to finish", Duration::from_secs(60), || async {
        let (_, v) = api(
            reqwest::Method::GET,
            &format!("/commands/{cid}?wait=1"),
            None,
        )
        .await;
        ["succeeded", "failed", "rejected", "expired"]
            .contains(&v["status"].as_str().unwrap_or(""))
            .then_some(v)
    })
    .await;
    assert_eq!(
        done["status"],
        "succeeded",
        "{done}\nagent log:\n{}",
        agent.log_text()
    );
    assert_eq!(done["summary"], "pong");

    // The rows are in the compose's PostgreSQL.
    let rows = compose.ok(
        &[
            "exec",
            "-T",
            "postgres",
            "psql",
            "-h",
            "/tmp",
            "-U",
            "postgres",
            "-d",
            "drover",
            "-tAc",
            "SELECT id FROM agents",
        ],
        Duration::from_secs(60),
    );
    assert!(rows.contains(&id), "{rows}");

    // Operator mode: a connection without credentials is refused.
    let anon = if tls {
        async_nats::ConnectOptions::new()
            .add_root_certificates(host_dir.join("ca.pem"))
            .require_tls(true)
            .connect(format!("tls://localhost:{broker_port}"))
            .await
    } else {
        async_nats::ConnectOptions::new()
            .connect(format!("nats://127.0.0.1:{broker_port}"))
            .await
    };
    let Err(err) = anon else {
        panic!("a connection without credentials was accepted");
    };
    assert!(
        err.to_string().to_lowercase().contains("authorization"),
        "{err}"
    );
    if tls {
        // And plaintext is refused even with the right credentials.
        let plain = async_nats::ConnectOptions::with_credentials_file(enroll_creds.clone())
            .await
            .unwrap()
            .connect(format!("nats://127.0.0.1:{broker_port}"))
            .await;
        assert!(plain.is_err(), "a plaintext connection was accepted");
    }

    // Bad input to init (a certificate name that is no name) is refused
    // with a clear error, and the broker's configuration is left as it was.
    let before = compose.read_file("nats", "/etc/nats/broker/tls.conf");
    let bad = compose.run(
        &[
            "run",
            "--rm",
            "--no-deps",
            "-e",
            "TLS_NAMES=not a name;rm -rf /",
            "init",
        ],
        Duration::from_secs(120),
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&bad.stdout),
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(!bad.status.success(), "init accepted a bad name:\n{said}");
    assert!(
        said.contains("not a name;rm -rf /"),
        "the error names the input:\n{said}"
    );
    assert_eq!(
        compose.read_file("nats", "/etc/nats/broker/tls.conf"),
        before
    );
    let again = compose.read_file("nats", "/etc/nats/broker/nats.conf");
    assert_eq!(again, conf, "the broker's configuration changed");

    drop(compose);
    drop(dockerd);
}
