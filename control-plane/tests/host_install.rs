//! One-line host onboarding end to end, with real processes: a running
//! control plane (nats-server + `drover serve`), the real packages
//! (`packages::build()`) published at start and with `drover releases
//! publish`, the `/install.sh` it
//! serves fetched with curl and run with `sh --root DIR --no-start` (no
//! systemd here: `--root` is the script's mode for a directory without it),
//! then the installed `drover-rootd` and `drover-agent` started from DIR
//! with the configs the script wrote. And the refusals: an unsupported OS,
//! a wrong token, an expired token and a tampered artifact each leave DIR
//! exactly as it was and take no use of a token.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

fn text(out: &std::process::Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_sh_installs_configures_and_the_host_enrols_with_the_token_alone() {
    let mut stack = Stack::start().await;
    // Packages in releases_dir (here all four real ones) are published when
    // the control plane starts; the script picks the agent's .deb.
    let pkgs = common::packages::build();
    let deb = &pkgs.agent_deb;
    stack
        .restart_cp_with(&[("DROVER_RELEASES_DIR", pkgs.dir.to_str().unwrap())])
        .await;
    let (code, list) = stack.get("/releases").await;
    assert_eq!(code, 200, "{list}");
    assert_eq!(list["releases"].as_array().unwrap().len(), 4, "{list}");
    let name = deb.file_name().unwrap().to_str().unwrap();
    let listed = list["releases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("{name} not published: {list}"));
    assert_eq!(listed["format"], "deb");
    assert_eq!(listed["arch"], std::env::consts::ARCH);
    assert_eq!(listed["package"], "drover-agent");
    let cli = stack.drover(&["releases", "list"]);
    assert!(
        String::from_utf8_lossy(&cli.stdout).contains(listed["sha256"].as_str().unwrap()),
        "{}",
        text(&cli)
    );
    let work = stack.tmp.path().join("install");
    std::fs::create_dir_all(work.join("tmp")).unwrap();
    let script = stack.fetch_install_script(&work);
    let root = work.join("root");
    std::fs::create_dir(&root).unwrap();
    // Auto-approved, with a label of its own that wins over the host's.
    let (code, made) = stack
        .post(
            "/tokens",
            &serde_json::json!({"uses": 1, "expires": "1h", "auto_approve": true, "labels": {"env": "prod", "role": "web"}}),
        )
        .await;
    assert_eq!(code, 201, "{made}");
    let token = made["token"].as_str().unwrap().to_string();
    let out = run_install(
        &script,
        &[
            "--root",
            root.to_str().unwrap(),
            "--no-start",
            "--token",
            &token,
            "--name",
            "web-1",
            "--labels",
            "env=test,rack=r7",
        ],
        &work.join("tmp"),
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("Verified the package's signature"), "{said}");
    // The script's temporary directory is gone.
    assert_eq!(std::fs::read_dir(work.join("tmp")).unwrap().count(), 0);

    // What it wrote: the package's binaries, both configs, the credentials.
    let etc = root.join("etc/drover");
    for f in ["usr/bin/drover-agent", "usr/bin/drover-rootd"] {
        assert!(root.join(f).is_file(), "{f} missing");
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&etc.join("enroll.creds")), 0o600);
    assert_eq!(mode(&etc.join("rootd.toml")), 0o600);
    assert_eq!(mode(&root.join("var/lib/drover-agent")), 0o700);
    assert_eq!(
        std::fs::read_to_string(etc.join("enroll.creds")).unwrap(),
        std::fs::read_to_string(stack.data_dir.join("enroll.creds")).unwrap()
    );
    let agent_toml = std::fs::read_to_string(etc.join("agent.toml")).unwrap();
    let key = stack.control_plane_key();
    assert!(
        agent_toml.contains(&format!("control_plane_key = \"{key}\"")),
        "{agent_toml}"
    );
    assert!(
        agent_toml.contains(&format!("nats_url = \"{}\"", stack.nats.url())),
        "{agent_toml}"
    );
    assert!(
        !agent_toml.contains("nats_ca"),
        "no CA in a plaintext stack: {agent_toml}"
    );
    let rootd_toml = std::fs::read_to_string(etc.join("rootd.toml")).unwrap();
    assert!(rootd_toml.contains(&format!("agent_uid = {}", nix::unistd::getuid().as_raw())));
    assert!(rootd_toml.contains(&format!("control_plane_key = \"{key}\"")));

    // The installed binaries start from those configs and enrol with the
    // token alone (auto-approved by the token).
    let (_rootd, agent, id) = start_installed(&root, &work).await;
    let a = stack.wait_online(&id).await;
    assert_eq!(a["display_name"], "web-1", "{a}");
    assert_eq!(a["labels"]["env"], "prod", "the token's label wins: {a}");
    assert_eq!(a["labels"]["role"], "web", "{a}");
    assert_eq!(a["labels"]["rack"], "r7", "{a}");
    let hostname = a["hostname"].as_str().unwrap().to_string();
    let ping = stack.ping(&id).await;
    assert_eq!(ping["status"], "succeeded", "{ping}\n{}", agent.log_text());

    // Shown by name, with the host name beside it: the CLI and the fleet page.
    let listed = stack.drover(&["agents"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("web-1") && listed.contains("rack=r7"),
        "{listed}"
    );
    let page = reqwest::Client::new()
        .get(format!("{}/fleet", stack.base))
        .bearer_auth(&stack.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("web-1") && page.contains(&hostname), "{page}");
}

async fn token_uses(stack: &Stack, secret_id: &str) -> i64 {
    let (_, v) = stack.get("/tokens").await;
    v["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == secret_id)
        .map(|t| t["uses"].as_i64().unwrap())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_or_expired_tokens_tampered_packages_and_other_oses_leave_nothing_behind() {
    let stack = Stack::start().await;
    let deb = &common::packages::build().agent_deb;
    stack.publish_releases(&[deb]);
    // Publishing again changes nothing (same name and sha256).
    let again = stack.publish_releases(&[deb]);
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("unchanged"),
        "{}",
        text(&again)
    );
    let work = stack.tmp.path().join("refusals");
    let tmp = work.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let script = stack.fetch_install_script(&work);
    let root = work.join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("keep.txt"), "the operator's file\n").unwrap();
    let before = tree_snapshot(&root);
    let root_arg = root.to_str().unwrap().to_string();
    let refused = |args: &[&str], env: &[(&str, &Path)], needle: &str| {
        let mut all = vec!["--root", root_arg.as_str(), "--no-start"];
        all.extend_from_slice(args);
        let out = run_install(&script, &all, &tmp, env);
        let t = text(&out);
        assert!(!out.status.success(), "{t}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(needle),
            "wanted {needle:?}: {t}"
        );
        assert_eq!(tree_snapshot(&root), before, "the root changed: {t}");
        assert_eq!(
            std::fs::read_dir(&tmp).unwrap().count(),
            0,
            "temp left behind: {t}"
        );
    };
    let (code, made) = stack
        .post(
            "/tokens",
            &serde_json::json!({"uses": 3, "expires": "1h", "auto_approve": true}),
        )
        .await;
    assert_eq!(code, 201);
    let good = made["token"].as_str().unwrap().to_string();
    let good_id = made["id"].as_str().unwrap().to_string();
    assert!(made["install_line"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/install.sh | sudo sh -s -- --token {good}")));

    // An unsupported OS (the script reads this file instead of
    // /etc/os-release only when the variable is set).
    let os = work.join("os-release");
    std::fs::write(&os, "ID=alpine\nVERSION_ID=3.20\n").unwrap();
    refused(
        &["--token", &good],
        &[("DROVER_INSTALL_OS_RELEASE", &os)],
        "unsupported OS: ID=alpine",
    );
    // Bad input.
    refused(
        &["--token", &good, "--labels", "env=$(id)"],
        &[],
        "--labels",
    );
    refused(&["--token", &good, "--name", "a\"b"], &[], "--name");
    // A link planted in the root would send root's writes elsewhere.
    let victim = work.join("victim");
    std::fs::create_dir(&victim).unwrap();
    std::fs::create_dir_all(root.join("var/lib")).unwrap();
    std::os::unix::fs::symlink(&victim, root.join("var/lib/drover-agent")).unwrap();
    let planted = tree_snapshot(&root);
    {
        let all = ["--root", root_arg.as_str(), "--no-start", "--token", &good];
        let out = run_install(&script, &all, &tmp, &[]);
        let t = text(&out);
        assert!(!out.status.success(), "{t}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("is a symbolic link"),
            "{t}"
        );
        assert_eq!(tree_snapshot(&root), planted, "{t}");
        assert_eq!(std::fs::read_dir(&victim).unwrap().count(), 0, "{t}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&victim).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o755, "{t}");
    }
    std::fs::remove_file(root.join("var/lib/drover-agent")).unwrap();
    std::fs::remove_dir_all(root.join("var")).unwrap();
    refused(&[], &[], "--token is required");
    // A wrong token.
    refused(
        &["--token", "drvreg_0000000000000000000000000000000000000000"],
        &[],
        "HTTP 401): unknown registration token",
    );
    // An expired token.
    let (_, short) = stack
        .post("/tokens", &serde_json::json!({"uses": 5, "expires": "1s"}))
        .await;
    let short_secret = short["token"].as_str().unwrap().to_string();
    wait_for("the token to expire", Duration::from_secs(10), || async {
        let (_, v) = stack.get("/tokens").await;
        v["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == short["id"] && t["state"] == "expired")
            .then_some(())
    })
    .await;
    refused(
        &["--token", &short_secret],
        &[],
        "HTTP 410): registration token",
    );
    // The bootstrap checks a token without using it up.
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/enroll/bootstrap", stack.base))
        .bearer_auth(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(v["enroll_creds"]
        .as_str()
        .unwrap()
        .contains("BEGIN NATS USER JWT"));
    assert_eq!(token_uses(&stack, &good_id).await, 0);

    // A tampered artifact: same name, metadata and signature, other bytes.
    let name = deb.file_name().unwrap().to_str().unwrap().to_string();
    stack
        .tamper_artifact(&name, |b| {
            let last = b.len() - 1;
            b[last] ^= 0xff;
        })
        .await;
    refused(
        &["--token", &good],
        &[],
        "the signature does not verify against this control plane's key",
    );
    assert_eq!(token_uses(&stack, &good_id).await, 0);

    // Names that are not artifacts are refused before the bucket is asked.
    for bad in [
        "..%2F..%2Fetc%2Fpasswd",
        "..deb",
        "install.sh",
        "x_1_amd64.deb.sig",
    ] {
        let r = reqwest::get(format!("{}/releases/{bad}", stack.base))
            .await
            .unwrap();
        assert!(
            [400, 404].contains(&r.status().as_u16()),
            "{bad}: {}",
            r.status()
        );
    }
    // The bootstraps are in the audit trail by token id, never the secret.
    let (_, audit) = stack.get("/audit?limit=200").await;
    let trail = audit.to_string();
    assert!(
        trail.contains("enroll.bootstrap") && trail.contains(&good_id),
        "{trail}"
    );
    assert!(!trail.contains(&good) && !trail.contains(&short_secret));
}

/// `drover init` prints the full command-signing key and a first token's
/// install line (once); `drover tokens create` prints the line for its
/// token, and `--json` carries it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_and_tokens_create_print_the_key_and_the_install_line() {
    let tmp = tempfile::tempdir().unwrap();
    let init = |dir: &Path| {
        let out = Command::new(bin("drover"))
            .arg("init")
            .env("DROVER_DATA_DIR", dir)
            .env("DROVER_PUBLIC_URL", "https://cp.example:8443")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let data = tmp.path().join("cp");
    let first = init(&data);
    let key = bus_schema::CommandSigner::load(&data.join("signing.key"))
        .unwrap()
        .public()
        .to_base64();
    assert!(first.contains(&format!("\n{key}\n")), "{first}");
    let line = first
        .lines()
        .find(|l| l.contains("install.sh"))
        .unwrap_or_else(|| panic!("no install line: {first}"))
        .trim();
    // init made the API's certificate (a private CA): the line pins its key.
    let pin = control_plane::tls::spki_pin(&data.join("tls/http.pem")).unwrap();
    assert!(
        line.starts_with(&format!(
            "curl -fsSL --insecure --pinnedpubkey '{pin}' \
             https://cp.example:8443/install.sh | sudo sh -s -- --token drvreg_"
        )),
        "{line}"
    );
    // A second init makes no second token.
    let second = init(&data);
    assert!(
        second.contains(&key) && !second.contains("drvreg_"),
        "{second}"
    );

    let stack = Stack::start().await;
    let out = stack.drover(&["tokens", "create", "--uses", "2", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let secret = v["token"].as_str().unwrap();
    assert_eq!(
        v["install_line"],
        format!(
            "curl -fsSL {}/install.sh | sudo sh -s -- --token {secret}",
            stack.base
        )
    );
    let out = stack.drover(&["tokens", "create"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("/install.sh | sudo sh -s -- --token drvreg_"),
        "{said}"
    );
    // The Enrolment page has the place for the line and its copy button.
    let page = reqwest::Client::new()
        .get(format!("{}/enrolment", stack.base))
        .bearer_auth(&stack.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("data-field=\"install_line\"") && page.contains("data-copy=\"install_line\""),
        "{page}"
    );
}

/// Over TLS on every hop: the operator fetches the script with the CA
/// `drover init` made; the script trusts the CA it carries for the rest
/// (HTTPS), writes it as `nats_ca` with the broker's `tls://` URL, and the
/// host enrols over TLS and answers `sys.ping`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_sh_over_tls_carries_the_broker_ca() {
    let stack = TlsStack::start().await;
    let deb = &common::packages::build().agent_deb;
    let out = Command::new(bin("drover"))
        .args(["releases", "publish"])
        .arg(deb)
        .env("DROVER_DATA_DIR", &stack.data_dir)
        .env("DROVER_NATS_URL", stack.nats_tls_url())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let work = stack.tmp.path().join("install");
    std::fs::create_dir_all(work.join("tmp")).unwrap();
    let script = work.join("install.sh");
    let (code, made) = stack
        .post(
            "/tokens",
            &serde_json::json!({"uses": 1, "expires": "1h", "auto_approve": true}),
        )
        .await;
    assert_eq!(code, 201, "{made}");
    // The host has no CA yet: the line pins the API certificate's key, and
    // curl run with the line's own arguments fetches the script.
    let line = made["install_line"].as_str().unwrap();
    let fetch = line.split(" | ").next().unwrap();
    let argv: Vec<String> = fetch
        .split_whitespace()
        .map(|w| w.trim_matches('\'').to_string())
        .collect();
    assert_eq!(argv[0], "curl", "{line}");
    assert!(
        argv.iter().any(|a| a == "--pinnedpubkey")
            && argv.last().unwrap() == &format!("{}/install.sh", stack.base),
        "{line}"
    );
    let fetched = Command::new("curl")
        .args(&argv[1..])
        .arg("-o")
        .arg(&script)
        .output()
        .unwrap();
    assert!(fetched.status.success(), "{line}: {}", text(&fetched));
    // Another key is refused: the pin is what makes --insecure safe.
    let mut wrong = argv.clone();
    let i = wrong.iter().position(|a| a == "--pinnedpubkey").unwrap();
    wrong[i + 1] = "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into();
    let refused = Command::new("curl")
        .args(&wrong[1..])
        .arg("-o")
        .arg(work.join("wrong.sh"))
        .output()
        .unwrap();
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(!work.join("wrong.sh").exists());
    let root = work.join("root");
    let out = run_install(
        &script,
        &[
            "--root",
            root.to_str().unwrap(),
            "--no-start",
            "--token",
            made["token"].as_str().unwrap(),
            "--name",
            "tls-host",
        ],
        &work.join("tmp"),
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let etc = root.join("etc/drover");
    assert_eq!(
        std::fs::read(etc.join("ca.pem")).unwrap(),
        std::fs::read(stack.ca()).unwrap()
    );
    let agent_toml = std::fs::read_to_string(etc.join("agent.toml")).unwrap();
    assert!(
        agent_toml.contains(&format!("nats_url = \"{}\"", stack.nats_tls_url()))
            && agent_toml.contains(&format!("nats_ca = \"{}\"", etc.join("ca.pem").display())),
        "{agent_toml}"
    );

    let (_rootd, agent, id) = start_installed(&root, &work).await;
    let a = wait_for(
        "the agent online over TLS",
        Duration::from_secs(30),
        || async {
            let (code, v) = stack.get(&format!("/agents/{id}")).await;
            (code == 200 && v["status"] == "online").then_some(v)
        },
    )
    .await;
    assert_eq!(a["display_name"], "tls-host", "{a}");
    let (code, c) = stack
        .post(
            &format!("/agents/{id}/commands?wait=20"),
            &serde_json::json!({"action": "sys.ping"}),
        )
        .await;
    assert_eq!(code, 201, "{c}");
    let cid = c["id"].as_str().unwrap().to_string();
    let done = wait_for("sys.ping to finish", Duration::from_secs(30), || async {
        let (_, v) = stack.get(&format!("/commands/{cid}?wait=1")).await;
        ["succeeded", "failed", "rejected", "expired"]
            .contains(&v["status"].as_str().unwrap_or(""))
            .then_some(v)
    })
    .await;
    assert_eq!(done["status"], "succeeded", "{done}\n{}", agent.log_text());
}
