//! The broker cluster's routes over TLS: `drover broker-config --tls`
//! gives each node's `cluster {}` a `tls {}` block with the broker
//! certificate `drover init` made, three real nats-server processes on
//! loopback form the cluster through it (nats-server checks both ends of a
//! route, so the certificate must allow client authentication as well as
//! server authentication), and a node that dials a route without TLS is
//! refused even with the route password. Also: a broker certificate made
//! for clients only (an earlier `drover init`'s) is refused by
//! `broker-config --tls` with what to do, and `drover init` run again
//! issues one that routes accept. And the harness's ports: never handed
//! out twice.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{bin, free_port, nats_server_bin, wait_for, Cluster};

fn init(data: &Path) {
    let out = Command::new(bin("drover"))
        .arg("init")
        .env("DROVER_DATA_DIR", data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "drover init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `drover broker-config --tls` for one node on loopback; its output.
fn broker_config_tls(data: &Path, dir: &Path) -> std::process::Output {
    Command::new(bin("drover"))
        .args(["broker-config", "--name", "drover-1", "--tls"])
        .args(["--route", "127.0.0.1:16222", "--route", "127.0.0.1:16223"])
        .arg("--store-dir")
        .arg(dir.join("js"))
        .arg("--resolver-dir")
        .arg(dir.join("resolver"))
        .env("DROVER_DATA_DIR", data)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_speak_tls_with_the_broker_certificate_and_refuse_plaintext() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("cp");
    init(&data);
    // Forms only if every route's TLS handshake passes both ways, and
    // JetStream then answers a TLS client (`Cluster::start_tls`).
    let cluster = Cluster::start_tls(&data, &tmp.path().join("nodes")).await;
    let conf = std::fs::read_to_string(&cluster.nodes[0].conf).unwrap();
    let block = conf
        .split("cluster {")
        .nth(1)
        .and_then(|c| c.split("\n}").next())
        .expect("a cluster block");
    assert!(
        block.contains("  tls {"),
        "routes have a tls block: {block}"
    );
    assert!(block.contains("ca_file:"), "routes check the CA: {block}");
    assert!(conf.contains("include \"tls.conf\""), "clients too: {conf}");
    for i in 0..3 {
        let peers = cluster.routed_to(i).await;
        let expected: Vec<String> = (0..3)
            .filter(|j| *j != i)
            .map(|j| format!("drover-{j}"))
            .collect();
        assert_eq!(peers, expected, "node {i} routes to both peers over TLS");
    }

    // A node with the route password but no TLS, dialling node 0's route.
    let route = conf
        .lines()
        .find_map(|l| l.trim().strip_prefix("\"nats-route://"))
        .map(|rest| rest.trim_end_matches('"').to_string())
        .expect("route URLs carry the route user and password");
    let plain_dir = tmp.path().join("plain");
    std::fs::create_dir_all(&plain_dir).unwrap();
    let plain_conf = plain_dir.join("plain.conf");
    std::fs::write(
        &plain_conf,
        format!(
            "server_name: plain\nlisten: \"127.0.0.1:{}\"\n\
             cluster {{\n  name: drover\n  listen: \"127.0.0.1:{}\"\n  routes: [\"nats-route://{route}\"]\n}}\n",
            free_port(),
            free_port()
        ),
    )
    .unwrap();
    let node_log = cluster.nodes[0].dir.join("nats-server.log");
    // Only what node 0 logs from here on counts.
    let before = std::fs::read_to_string(&node_log).unwrap_or_default().len();
    let mut plain = Command::new(nats_server_bin())
        .arg("-c")
        .arg(&plain_conf)
        .arg("-l")
        .arg(plain_dir.join("plain.log"))
        .spawn()
        .unwrap();
    let said = wait_for(
        "node 0 to refuse the plaintext route",
        Duration::from_secs(30),
        || async {
            let t = std::fs::read_to_string(&node_log).unwrap_or_default();
            t.get(before..)?
                .lines()
                .find(|l| l.contains("TLS route handshake error"))
                .map(str::to_string)
        },
    )
    .await;
    eprintln!("node 0: {said}");
    // Still running and still dialling: it is not among node 0's routes.
    assert!(
        plain.try_wait().unwrap().is_none(),
        "the plaintext node runs"
    );
    assert_eq!(
        cluster.routed_to(0).await,
        ["drover-1", "drover-2"],
        "the plaintext node never joined"
    );
    let _ = plain.kill();
    let _ = plain.wait();
}

#[test]
fn a_broker_certificate_for_clients_only_is_refused_until_init_issues_a_new_one() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("cp");
    init(&data);
    let nodes = tmp.path().join("node");
    assert!(
        broker_config_tls(&data, &nodes).status.success(),
        "a certificate from this drover init serves routes"
    );

    // What an earlier `drover init` made: server authentication only, for
    // the same names (so only the usage makes init issue it again).
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(control_plane::tls::default_names()).unwrap();
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.self_signed(&key).unwrap();
    let tls = data.join("tls");
    std::fs::write(tls.join("nats.pem"), cert.pem()).unwrap();
    std::fs::write(tls.join("nats.key"), key.serialize_pem()).unwrap();
    let out = broker_config_tls(&data, &nodes);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "refused: {err}");
    assert!(err.contains("clientAuth"), "says what is missing: {err}");
    assert!(err.contains("drover init"), "says what to do: {err}");
    assert!(out.stdout.is_empty(), "no configuration is printed");

    // `drover init` again (its ca.key is there): a new broker certificate.
    init(&data);
    let out = broker_config_tls(&data, &nodes);
    assert!(
        out.status.success(),
        "after drover init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(
        std::fs::read_to_string(tls.join("nats.pem")).unwrap(),
        cert.pem(),
        "the clients-only certificate was replaced"
    );
}

/// What an operator trial found: a route host the broker certificate does
/// not name is refused (the routes would fail their handshake later), with
/// the `drover init --tls-name` that fixes it; and `--out` never replaces
/// a file that is not a node configuration (a mistyped path onto the
/// broker's key).
#[test]
fn broker_config_refuses_unnamed_route_hosts_and_an_out_onto_another_file() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("cp");
    init(&data);
    let dir = tmp.path().join("node");
    let run = |routes: &[&str], out: &Path| {
        let mut cmd = Command::new(bin("drover"));
        cmd.args(["broker-config", "--name", "drover-1", "--tls"]);
        for r in routes {
            cmd.args(["--route", r]);
        }
        cmd.arg("--store-dir")
            .arg(dir.join("js"))
            .arg("--resolver-dir")
            .arg(dir.join("resolver"))
            .arg("--out")
            .arg(out)
            .env("DROVER_DATA_DIR", &data)
            .output()
            .unwrap()
    };
    let conf = tmp.path().join("nats-1.conf");
    let out = run(&["127.0.0.1:16222", "nats9.example:6222"], &conf);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("nats9.example") && err.contains("run `drover init --tls-name nats9.example`"),
        "{err}"
    );
    assert!(!conf.exists(), "nothing written");

    // A key as --out: refused, the key unchanged.
    let key = data.join("tls").join("nats.key");
    let before = std::fs::read(&key).unwrap();
    let out = run(&["127.0.0.1:16222", "127.0.0.1:16223"], &key);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("refusing to replace"),
        "{err}"
    );
    assert_eq!(std::fs::read(&key).unwrap(), before);

    // An earlier configuration is replaced.
    for _ in 0..2 {
        let out = run(&["127.0.0.1:16222", "127.0.0.1:16223"], &conf);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The harness these clusters stand on (nine ports each): parallel tests
/// never get the same loopback port
/// (a shared port once made a test talk to another test's control plane).
#[test]
fn free_ports_are_never_handed_out_twice_even_from_parallel_threads() {
    let threads: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(|| (0..100).map(|_| free_port()).collect::<Vec<_>>()))
        .collect();
    let ports: Vec<u16> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let distinct: std::collections::HashSet<u16> = ports.iter().copied().collect();
    assert_eq!(distinct.len(), ports.len(), "a port was handed out twice");
    let taken: Vec<u16> = ports
        .into_iter()
        .filter(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_err())
        .collect();
    assert!(
        taken.is_empty(),
        "handed out but something listens: {taken:?}"
    );
}
