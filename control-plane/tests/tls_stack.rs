//! TLS on every hop, end to end with real processes: `drover init` makes a
//! CA and certificates and writes the broker's `tls {}` block; nats-server
//! runs from that configuration; `drover serve` reaches it over `tls://`
//! and listens with HTTPS; a real agent and rootd enrol over `tls://` with
//! the CA as `nats_ca`; a `sys.ping` goes round trip through the HTTPS API;
//! the CLI works against it with `--ca`. And what must be refused is: a
//! plaintext NATS client, clients trusting another CA (NATS and HTTPS),
//! plaintext HTTP on the HTTPS port.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{
    bin, https_client, plaintext_nats_exchange, random_machine_id, wait_for, wait_id_file, Proc,
    TlsStack,
};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_stack_over_tls_and_plaintext_is_refused() {
    let stack = TlsStack::start().await;
    let tls = stack.data_dir.join("tls");

    // What init made and said.
    for f in [
        "ca.pem", "ca.key", "nats.pem", "nats.key", "http.pem", "http.key",
    ] {
        assert!(tls.join(f).is_file(), "{f} missing");
    }
    use std::os::unix::fs::PermissionsExt;
    for k in ["ca.key", "nats.key", "http.key"] {
        let mode = std::fs::metadata(tls.join(k)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{k}");
    }
    assert!(
        stack
            .init_stdout
            .contains(&stack.ca().display().to_string()),
        "init does not say where the CA is:\n{}",
        stack.init_stdout
    );
    let conf = std::fs::read_to_string(stack.data_dir.join("nats-config/nats.conf")).unwrap();
    assert!(conf.contains("include \"tls.conf\""), "{conf}");

    // A real host enrols over tls:// and answers sys.ping through HTTPS.
    let (code, t) = stack
        .post(
            "/tokens",
            &json!({"uses": 1, "expires": "1h", "auto_approve": true}),
        )
        .await;
    assert_eq!(code, 201, "{t}");
    let host = stack.spawn_host("h1", t["token"].as_str().unwrap()).await;
    wait_for("the agent online", Duration::from_secs(30), || async {
        let (code, v) = stack.get(&format!("/agents/{}", host.id)).await;
        (code == 200 && v["status"] == "online").then_some(())
    })
    .await;
    let (code, c) = stack
        .post(
            &format!("/agents/{}/commands?wait=20", host.id),
            &json!({"action": "sys.ping"}),
        )
        .await;
    assert_eq!(code, 201, "{c}");
    let id = c["id"].as_str().unwrap().to_string();
    let done = wait_for("sys.ping to finish", Duration::from_secs(30), || async {
        let (_, v) = stack.get(&format!("/commands/{id}?wait=1")).await;
        let s = v["status"].as_str().unwrap_or("").to_string();
        ["succeeded", "failed", "rejected", "expired", "cancelled"]
            .contains(&s.as_str())
            .then_some(v)
    })
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");

    // A plaintext client: the broker announces TLS as required and never
    // answers a plaintext CONNECT + PING.
    let (info, rest) = plaintext_nats_exchange(stack.nats.port);
    assert!(info.starts_with("INFO "), "{info}");
    assert!(info.contains("\"tls_required\":true"), "{info}");
    assert!(
        !rest.contains("PONG"),
        "the broker answered plaintext: {rest:?}"
    );

    // A NATS client trusting another CA is refused at the handshake, with
    // the very credentials that work over the right CA.
    let other = stack.tmp.path().join("other");
    control_plane::tls::ensure_certs(
        &control_plane::tls::TlsFiles::new(&other),
        &["localhost".into(), "127.0.0.1".into()],
    )
    .unwrap();
    let other_ca = other.join("tls").join("ca.pem");
    let creds = stack.data_dir.join("control-plane.creds");
    let wrong = async_nats::ConnectOptions::with_credentials_file(&creds)
        .await
        .unwrap()
        .add_root_certificates(other_ca.clone())
        .require_tls(true)
        .connect(stack.nats_tls_url());
    let wrong = tokio::time::timeout(Duration::from_secs(20), wrong)
        .await
        .expect("the connection attempt neither failed nor succeeded");
    assert!(wrong.is_err(), "a client trusting another CA connected");
    let right = async_nats::ConnectOptions::with_credentials_file(&creds)
        .await
        .unwrap()
        .add_root_certificates(stack.ca())
        .require_tls(true)
        .connect(stack.nats_tls_url());
    let right = tokio::time::timeout(Duration::from_secs(20), right)
        .await
        .expect("the connection attempt neither failed nor succeeded")
        .expect("a client trusting the right CA is refused");
    right.flush().await.unwrap();

    // HTTPS: another CA is refused; plaintext HTTP on the port gets nothing.
    let health = format!("{}/healthz", stack.base);
    let r = https_client(&other_ca).get(&health).send().await;
    assert!(r.is_err(), "an HTTPS client trusting another CA got {r:?}");
    let plain = health.replacen("https://", "http://", 1);
    let r = reqwest::Client::new().get(&plain).send().await;
    assert!(r.is_err(), "plaintext HTTP on the HTTPS port got {r:?}");
    let r = stack.http.get(&health).send().await.unwrap();
    assert!(r.status().is_success());

    // The CLI: --api https://... with --ca works, a wrong --ca does not.
    let cli = |ca: &std::path::Path| {
        Command::new(bin("drover"))
            .args(["agents", "--json", "--api", &stack.base, "--ca"])
            .arg(ca)
            .env("DROVER_DATA_DIR", &stack.data_dir)
            .env_remove("DROVER_API")
            .env_remove("DROVER_TOKEN")
            .env_remove("DROVER_CA")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = cli(&stack.ca());
    assert!(
        out.status.success(),
        "drover agents --ca failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&host.id),
        "the CLI does not list the agent: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = cli(&other_ca);
    assert!(!out.status.success(), "the CLI trusted another CA");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not signed by the CA"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Without --api the CLI finds this machine's control plane from the
    // configuration (listen, HTTPS and init's CA); plain HTTP to the HTTPS
    // port is said to be that.
    let cli_env = |args: &[&str]| {
        Command::new(bin("drover"))
            .args(args)
            .env("DROVER_DATA_DIR", &stack.data_dir)
            .env("DROVER_LISTEN", stack.base.trim_start_matches("https://"))
            .env_remove("DROVER_API")
            .env_remove("DROVER_TOKEN")
            .env_remove("DROVER_CA")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = cli_env(&["agents", "--json"]);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains(&host.id),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plain = stack.base.replacen("https://", "http://", 1);
    let out = cli_env(&["agents", "--json", "--api", &plain]);
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("speaks HTTPS"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The load simulator enrols and runs over tls:// with --nats-ca too.
    let (code, t) = stack
        .post(
            "/tokens",
            &json!({"uses": 1, "expires": "1h", "auto_approve": true}),
        )
        .await;
    assert_eq!(code, 201, "{t}");
    let ids = stack.tmp.path().join("sim-ids");
    let mut cmd = Command::new(bin("drover-agent"));
    cmd.args(["simulate", "--count", "1", "--heartbeat-secs", "1"])
        .args(["--nats-url", &stack.nats_tls_url(), "--nats-ca"])
        .arg(stack.ca())
        .arg("--enroll-creds")
        .arg(stack.data_dir.join("enroll.creds"))
        .arg("--ids-file")
        .arg(&ids)
        .args(["--prefix", &format!("sim-{}", random_machine_id())])
        .env("DROVER_SIM_TOKEN", t["token"].as_str().unwrap());
    let _sim = Proc::spawn(
        "drover-agent simulate",
        cmd,
        stack.tmp.path().join("sim.log"),
    );
    let sim_id = wait_id_file("the simulated agent's id", &ids).await;
    wait_for(
        "the simulated agent online",
        Duration::from_secs(30),
        || async {
            let (code, v) = stack.get(&format!("/agents/{sim_id}")).await;
            (code == 200 && v["status"] == "online").then_some(())
        },
    )
    .await;
    drop(host);
}

/// `drover init` as an operator runs it: a bad `--tls-name` is refused
/// before anything is written; a second run keeps the certificates; with
/// `--no-tls` the broker configuration has no `tls {}` block and no TLS
/// files are made. `drover serve` refuses a half HTTPS configuration and a
/// missing `nats_ca`.
#[test]
fn init_checks_names_keeps_its_files_and_can_be_plaintext() {
    let tmp = tempfile::tempdir().unwrap();
    let init = |dir: &std::path::Path, args: &[&str]| {
        Command::new(bin("drover"))
            .arg("init")
            .args(args)
            .env("DROVER_DATA_DIR", dir)
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };

    let bad = tmp.path().join("bad");
    let out = init(&bad, &["--tls-name", "not a name"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a name"), "{err}");
    assert!(!bad.exists(), "a refused init wrote {}", bad.display());

    let dir = tmp.path().join("cp");
    let out = init(&dir, &["--tls-name", "cp.example.test"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let nats_pem = std::fs::read(dir.join("tls/nats.pem")).unwrap();
    let http_pem = std::fs::read(dir.join("tls/http.pem")).unwrap();
    let out = init(&dir, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(dir.join("tls/nats.pem")).unwrap(), nats_pem);
    assert_eq!(std::fs::read(dir.join("tls/http.pem")).unwrap(), http_pem);

    // `drover serve` refuses half an HTTPS configuration and a CA file
    // that is not there, with a sentence, before it serves anything.
    let serve = |env: &[(&str, &std::path::Path)]| {
        let mut cmd = Command::new(bin("drover"));
        cmd.arg("serve")
            .env("DROVER_DATA_DIR", &dir)
            .env(
                "DROVER_LISTEN",
                format!("127.0.0.1:{}", common::free_port()),
            )
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let out = serve(&[("DROVER_HTTP_TLS_CERT", &dir.join("tls/http.pem"))]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("go together"), "{err}");
    let missing = tmp.path().join("no-such-ca.pem");
    let out = serve(&[("DROVER_NATS_CA", &missing)]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no-such-ca.pem") && err.contains("does not exist"),
        "{err}"
    );

    let plain = tmp.path().join("plain");
    let out = init(&plain, &["--no-tls"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!plain.join("tls").exists());
    let conf = std::fs::read_to_string(plain.join("nats-config/nats.conf")).unwrap();
    assert!(!conf.contains("tls.conf"), "{conf}");
}
