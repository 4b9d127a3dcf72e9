//! The app catalogue and installers, end to end: manifests listed with their
//! forms, inputs checked by the control plane and again by rootd, inputs
//! reaching scripts only as environment variables (never through a shell),
//! secrets masked everywhere, output streamed to `drover logs --follow`, and
//! the real nginx and redis installers run twice.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bus_schema::rootd_proto::RootFrame;
use bus_schema::SignedCommand;
use common::{ask_rootd, bin, repo_manifests, wait_for, Host, Stack};
use serde_json::{json, Value};

const SECRET: &str = "s3cret-Value-never-shown";

/// A harmless app whose script records what it was given.
fn probe_manifests(root: &Path, record: &Path) -> PathBuf {
    let dir = root.join("manifests");
    std::fs::create_dir_all(dir.join("probe")).unwrap();
    std::fs::write(
        dir.join("probe/manifest.yml"),
        r#"
id: probe
name: Probe
version: "0.1"
description: Records its inputs.
category: test
inputs:
  - name: greeting
    type: string
    label: Greeting
    required: true
    max_length: 200
  - name: count
    type: integer
    label: Count
    min: 1
    max: 5
    default: 2
  - name: use_secret
    type: boolean
    label: Use a secret
    default: false
  - name: secret
    type: password
    label: Secret
    required: true
    visible_if: { use_secret: true }
  - name: fail_with
    type: select
    label: Exit code
    allowed_values: ["0", "1", "2", "3"]
    default: "0"
scripts: { install: install.sh, uninstall: uninstall.sh }
timeout_secs: 60
idempotent: true
"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("probe/install.sh"),
        format!(
            "#!/usr/bin/env bash\nset -euo pipefail\nprintf '%s\\n' \"$GREETING\" > {rec:?}\nprintf 'count=%s\\n' \"$COUNT\" >> {rec:?}\nfor i in $(seq 1 \"$COUNT\"); do echo \"line $i of $COUNT\"; done\nif [[ \"${{USE_SECRET}}\" == true ]]; then echo \"the secret is $SECRET\"; echo \"to stderr: $SECRET\" >&2; fi\nexit \"$FAIL_WITH\"\n",
            rec = record
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("probe/uninstall.sh"),
        "#!/usr/bin/env bash\necho removed\n",
    )
    .unwrap();
    dir
}

async fn install_on(stack: &Stack, host: &Host, app: &str, inputs: Value) -> (u16, Value) {
    stack
        .post(
            &format!("/apps/{app}/install"),
            &json!({"selector": {"agents": [host.id]}, "inputs": inputs}),
        )
        .await
}

/// Installs and waits; returns the host's command row.
async fn install_and_wait(
    stack: &Stack,
    host: &Host,
    app: &str,
    inputs: Value,
    max: Duration,
) -> Value {
    let (s, job) = install_on(stack, host, app, inputs).await;
    assert_eq!(s, 201, "{job}");
    let id = job["job_id"].as_str().unwrap().to_string();
    stack.wait_job_done(&id, max).await;
    let (_, hosts) = stack.get(&format!("/jobs/{id}/hosts")).await;
    let cid = hosts["hosts"][0]["command_id"]
        .as_str()
        .unwrap()
        .to_string();
    stack.get(&format!("/commands/{cid}")).await.1
}

fn signed_install(stack: &Stack, agent: &str, params: Value) -> SignedCommand {
    common::signed_command(stack, agent, "app.install", params)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalogue_lists_the_shipped_installers_with_their_forms() {
    let stack = Stack::start().await;
    let (s, v) = stack.get("/apps").await;
    assert_eq!(s, 200);
    let ids: Vec<&str> = v["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    for want in [
        "nginx",
        "mariadb",
        "redis",
        "docker",
        "postgresql",
        "caddy",
        "node-exporter",
    ] {
        assert!(ids.contains(&want), "{want} listed: {ids:?}");
    }
    let (s, nginx) = stack.get("/apps/nginx").await;
    assert_eq!(s, 200);
    let tls_cert = nginx["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "tls_cert")
        .unwrap();
    assert_eq!(tls_cert["visible_if"], json!({"enable_tls": true}));
    assert_eq!(tls_cert["env"], "TLS_CERT");
    let (_, redis) = stack.get("/apps/redis").await;
    let pw = redis["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "password")
        .unwrap();
    assert_eq!(pw["sensitive"], true);
    assert!(pw["default"].is_null());

    // Ids that try to leave the manifest directory never touch the disk.
    for bad in ["..%2F..%2Fetc", "nginx;id", "NGINX", "%2Fetc"] {
        let (s, v) = stack.get(&format!("/apps/{bad}")).await;
        assert!(s == 400 || s == 404, "{bad}: {s} {v}");
    }
    let (s, _) = stack.get("/apps/nope").await;
    assert_eq!(s, 404);
    // The action catalogue carries JSON Schemas for the forms.
    let (_, actions) = stack.get("/actions").await;
    let uc = actions["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "mariadb.user_create")
        .unwrap();
    assert_eq!(uc["runs_in"], "rootd");
    assert!(
        uc["params_schema"]["properties"]["password"].is_object(),
        "{uc}"
    );
    let out = Command::new(bin("drover"))
        .args(["apps", "list"])
        .env("DROVER_API", &stack.base)
        .env("DROVER_TOKEN", &stack.token)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("node-exporter"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inputs_reach_the_script_as_plain_values_and_secrets_stay_masked() {
    let tmp = tempfile::tempdir().unwrap();
    let record = tmp.path().join("record.txt");
    let pwned = tmp.path().join("pwned");
    let manifests = probe_manifests(tmp.path(), &record);
    let stack = Stack::start_with_manifests(&manifests).await;
    let host = stack
        .start_host_configured("h1", &format!("manifests_dir = {:?}", manifests))
        .await;
    let (_, agent) = stack.get(&format!("/agents/{}", host.id)).await;
    assert!(
        agent["modules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "app"),
        "{agent}"
    );

    // Shell metacharacters arrive as the literal text, and run nothing.
    let hostile = format!(
        "hi; touch {p} $(touch {p}) `touch {p}` | tee {p} && ../../etc",
        p = pwned.display()
    );
    let c = install_and_wait(
        &stack,
        &host,
        "probe",
        json!({"greeting": hostile, "count": 3}),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(c["status"], "succeeded", "{c}");
    let got = std::fs::read_to_string(&record).unwrap();
    assert_eq!(got, format!("{hostile}\ncount=3\n"));
    assert!(!pwned.exists(), "a metacharacter reached a shell");

    // A newline is refused by the control plane: nothing is created.
    let (_, before) = stack.get("/jobs").await;
    let (s, v) = install_on(&stack, &host, "probe", json!({"greeting": "a\nb"})).await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["fields"][0]["field"], "greeting", "{v}");
    let (s, v) = install_on(&stack, &host, "probe", json!({"greeting": "x", "count": 9})).await;
    assert_eq!(s, 422, "{v}");
    let (s, v) = install_on(&stack, &host, "probe", json!({"greeting": "x", "nope": 1})).await;
    assert_eq!(s, 422, "{v}");
    // visible_if: the secret is required only when use_secret is on.
    let (s, v) = install_on(
        &stack,
        &host,
        "probe",
        json!({"greeting": "x", "use_secret": true}),
    )
    .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["fields"][0]["field"], "secret");
    let (_, after) = stack.get("/jobs").await;
    assert_eq!(
        before["jobs"].as_array().map(|a| a.len()),
        after["jobs"].as_array().map(|a| a.len()),
        "refused installs created no job"
    );

    // A secret: used by the script, masked in output, API, logs and DB.
    let c = install_and_wait(
        &stack,
        &host,
        "probe",
        json!({"greeting": "with secret", "use_secret": true, "secret": SECRET}),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(c["status"], "succeeded", "{c}");
    let cid = c["id"].as_str().unwrap().to_string();
    assert_eq!(
        c["params"]["inputs"]["secret"],
        bus_schema::catalogue::MASK,
        "{c}"
    );
    // The agent has the broker confirm every output line before it sends
    // the result, so a final command already has all its lines: no wait.
    let (_, out) = stack.get(&format!("/commands/{cid}/output")).await;
    assert_eq!(out["final"], true, "{out}");
    let lines: Vec<&str> = out["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x["line"].as_str())
        .collect();
    for prefix in ["line 1 of 2", "line 2 of 2", "the secret is", "to stderr:"] {
        assert!(
            lines.iter().any(|l| l.starts_with(prefix)),
            "{prefix:?} stored before the result: {out}"
        );
    }
    let text = out.to_string();
    assert!(text.contains("the secret is ********"), "{text}");
    assert!(!text.contains(SECRET));
    // drover logs prints the same lines, in order.
    let logs = Command::new(bin("drover"))
        .args(["logs", &cid, "--follow"])
        .env("DROVER_API", &stack.base)
        .env("DROVER_TOKEN", &stack.token)
        .output()
        .unwrap();
    assert!(
        logs.status.success(),
        "{}",
        String::from_utf8_lossy(&logs.stderr)
    );
    let stdout = String::from_utf8_lossy(&logs.stdout);
    assert!(
        stdout.contains("line 1 of 2\nline 2 of 2\nthe secret is ********"),
        "{stdout}"
    );
    assert!(String::from_utf8_lossy(&logs.stderr).contains("to stderr: ********"));
    let (_, job_list) = stack.get("/jobs").await;
    let (_, cmd_list) = stack.get(&format!("/agents/{}/commands", host.id)).await;
    for (what, text) in [
        ("control plane log", stack.cp.log_text()),
        ("agent log", host.agent.log_text()),
        ("rootd log", host.rootd.log_text()),
        ("jobs API", job_list.to_string()),
        ("commands API", cmd_list.to_string()),
        (
            "drover logs",
            format!("{stdout}{}", String::from_utf8_lossy(&logs.stderr)),
        ),
    ] {
        assert!(!text.contains(SECRET), "the secret leaked into the {what}");
    }
    assert!(
        !stack.database_holds(SECRET.as_bytes()),
        "the secret is in the database"
    );

    // The script's exit codes mean validation / install / configuration.
    for (code, word) in [
        ("1", "validation"),
        ("2", "installation"),
        ("3", "configuration"),
    ] {
        let c = install_and_wait(
            &stack,
            &host,
            "probe",
            json!({"greeting": "x", "fail_with": code}),
            Duration::from_secs(60),
        )
        .await;
        assert_eq!(c["status"], "failed", "{c}");
        assert_eq!(c["exit_code"], code.parse::<i64>().unwrap());
        assert!(c["summary"].as_str().unwrap().contains(word), "{c}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rootd_checks_app_ids_and_inputs_again() {
    let tmp = tempfile::tempdir().unwrap();
    let record = tmp.path().join("record.txt");
    let manifests = probe_manifests(tmp.path(), &record);
    // An app directory that is a symlink out of the manifest directory.
    let outside = tmp.path().join("outside/evil");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(
        outside.join("manifest.yml"),
        std::fs::read_to_string(manifests.join("probe/manifest.yml"))
            .unwrap()
            .replace("id: probe", "id: evil"),
    )
    .unwrap();
    std::fs::copy(
        manifests.join("probe/install.sh"),
        outside.join("install.sh"),
    )
    .unwrap();
    std::os::unix::fs::symlink(&outside, manifests.join("evil")).unwrap();
    let stack = Stack::start_with_manifests(&manifests).await;
    let host = stack
        .start_host_configured("h1", &format!("manifests_dir = {:?}", manifests))
        .await;

    // Straight to rootd with genuine signatures: a traversal id, an
    // escaping symlink, and inputs the control plane would have refused.
    for (params, label) in [
        (json!({"app": "../probe"}), "invalid_params"),
        (json!({"app": "probe/../../x"}), "invalid_params"),
    ] {
        let f = ask_rootd(
            &host.socket,
            &signed_install(&stack, &host.id, params.clone()),
        )
        .await;
        assert!(
            matches!(&f, RootFrame::Refused { label: l, .. } if l == label),
            "{params}: {f:?}"
        );
    }
    for (params, needle) in [
        (
            json!({"app": "evil", "inputs": {"greeting": "x"}}),
            "leaves the manifest directory",
        ),
        (
            json!({"app": "probe", "inputs": {"greeting": "a\nb"}}),
            "control characters",
        ),
        (
            json!({"app": "probe", "inputs": {"greeting": "x", "count": "$(id)"}}),
            "whole number",
        ),
        (json!({"app": "probe", "inputs": {}}), "required"),
    ] {
        let f = ask_rootd(
            &host.socket,
            &signed_install(&stack, &host.id, params.clone()),
        )
        .await;
        match f {
            RootFrame::Done {
                status, summary, ..
            } => {
                assert_eq!(status, bus_schema::CommandStatus::Rejected, "{params}");
                assert!(summary.contains(needle), "{params}: {summary}");
            }
            other => panic!("{params}: {other:?}"),
        }
    }
    assert!(!record.exists(), "no script ran");
    // The control plane refuses the same before signing.
    let (s, _) = stack.get("/apps/evil").await;
    assert_eq!(s, 400);
}

/// Real installers, run twice: the second run changes nothing, and the
/// service answers. Needs root and apt (CI has both); installs nginx and
/// redis on this machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_and_redis_install_for_real_twice() {
    if !nix::unistd::getuid().is_root() || which("apt-get").is_none() {
        eprintln!("SKIPPED: the real installers need root and apt-get");
        return;
    }
    let stack = Stack::start().await;
    let host = stack
        .start_host_configured("h1", &format!("manifests_dir = {:?}", repo_manifests()))
        .await;
    let port = common::free_port();
    let nginx_inputs =
        json!({"server_name": "drover.test", "port": port, "root_dir": "/var/www/drover-test"});
    let first = install_and_wait(
        &stack,
        &host,
        "nginx",
        nginx_inputs.clone(),
        Duration::from_secs(600),
    )
    .await;
    assert_eq!(first["status"], "succeeded", "{first}");
    let body = http_get(port).await;
    assert!(body.contains("installed by Drover"), "{body}");
    let second = install_and_wait(
        &stack,
        &host,
        "nginx",
        nginx_inputs,
        Duration::from_secs(300),
    )
    .await;
    assert_eq!(second["status"], "succeeded", "{second}");
    assert!(
        second["result"]["last_line"]
            .as_str()
            .unwrap_or("")
            .contains("RESULT changed=0"),
        "second run changed something: {second}"
    );
    assert!(http_get(port).await.contains("installed by Drover"));

    let rport = common::free_port();
    let redis_inputs =
        json!({"port": rport, "require_password": true, "password": "redis-Passw0rd-long-enough"});
    let first = install_and_wait(
        &stack,
        &host,
        "redis",
        redis_inputs.clone(),
        Duration::from_secs(600),
    )
    .await;
    assert_eq!(first["status"], "succeeded", "{first}");
    let second = install_and_wait(
        &stack,
        &host,
        "redis",
        redis_inputs,
        Duration::from_secs(300),
    )
    .await;
    assert_eq!(second["status"], "succeeded", "{second}");
    assert!(
        second["result"]["last_line"]
            .as_str()
            .unwrap_or("")
            .contains("RESULT changed=0"),
        "{second}"
    );
    // Redis answers, and only with the password.
    let pong = Command::new("redis-cli")
        .args(["-p", &rport.to_string(), "ping"])
        .env("REDISCLI_AUTH", "redis-Passw0rd-long-enough")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&pong.stdout).trim(), "PONG");
    let denied = Command::new("redis-cli")
        .args(["-p", &rport.to_string(), "ping"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&denied.stdout).contains("NOAUTH"),
        "{denied:?}"
    );
    assert!(!host.rootd.log_text().contains("redis-Passw0rd-long-enough"));

    // Leave the machine as it was: uninstall stops both.
    for app in ["redis", "nginx"] {
        let (s, v) = stack
            .post(
                &format!("/agents/{}/commands?wait=120", host.id),
                &json!({"action": "app.uninstall", "params": {"app": app}}),
            )
            .await;
        assert!(s == 200 || s == 201, "{v}");
        let id = v["id"].as_str().unwrap().to_string();
        let c = stack.wait_final(&id, Duration::from_secs(120)).await;
        assert_eq!(c["status"], "succeeded", "{c}");
    }
}

fn which(p: &str) -> Option<PathBuf> {
    ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        .iter()
        .map(|d| Path::new(d).join(p))
        .find(|p| p.exists())
}

async fn http_get(port: u16) -> String {
    wait_for(
        &format!("an HTTP answer on port {port}"),
        Duration::from_secs(30),
        || async {
            let r = reqwest::get(format!("http://127.0.0.1:{port}/"))
                .await
                .ok()?;
            r.text().await.ok()
        },
    )
    .await
}
