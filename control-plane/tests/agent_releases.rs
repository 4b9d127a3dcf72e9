//! Agent releases end to end with real processes: nats-server, `drover
//! serve` on SQLite and the real `drover` CLI binary. The release key is
//! made with `drover releases keygen`, releases are signed locally and
//! published with `drover releases publish --version`, and what the control
//! plane stored is read back from the broker's object store. The refusals:
//! no release key configured, a manifest signed by another key, tampered
//! bytes, the same version with other bytes, a viewer publishing or
//! yanking; and after a yank, an `agent.update` naming that release (by
//! version or by its SHA-256 under another version) is refused at
//! submission, as is one not signed by the fleet's key.

mod common;

use std::os::unix::fs::PermissionsExt;

use base64::{engine::general_purpose::STANDARD, Engine};
use bus_schema::signing::release::{self, ReleaseKey, ReleaseSigner};
use common::*;
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;

fn text(out: &std::process::Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A fake agent binary of `len` bytes (content from `seed`): the control
/// plane never runs it, only checks and stores it.
fn binary(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Signs a manifest for `bytes` as `version` with `signer`: (text, sig).
fn signed(signer: &ReleaseSigner, bytes: &[u8], version: &str) -> (String, String) {
    let m = release::manifest_for(bytes, version, &release::platform(), "stable", "", "", 1);
    signer.sign(&m).unwrap()
}

/// `POST /api/v1/releases` by hand: raw body, manifest and signature in
/// headers, with `token`.
async fn post_release(
    stack: &Stack,
    token: &str,
    manifest: &str,
    sig: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/releases", stack.base))
        .bearer_auth(token)
        .header("content-type", "application/octet-stream")
        .header("x-drover-release-manifest", STANDARD.encode(manifest))
        .header("x-drover-release-signature", sig)
        .body(body)
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    (code, r.json().await.unwrap_or(Value::Null))
}

/// The object's bytes in the releases bucket, `None` when absent.
async fn object(stack: &Stack, name: &str) -> Option<Vec<u8>> {
    let js = async_nats::jetstream::new(stack.client().await);
    let store = js
        .get_object_store(bus_schema::subjects::RELEASES_BUCKET)
        .await
        .ok()?;
    let mut obj = store.get(name).await.ok()?;
    let mut out = vec![];
    obj.read_to_end(&mut out).await.unwrap();
    Some(out)
}

/// An `agent.update` job for every host, with the release's manifest.
fn update_job(version: &str, manifest: &str, sig: &str) -> Value {
    json!({
        "selector": {"all": true},
        "action": "agent.update",
        "params": {"version": version, "manifest": manifest, "signature": sig},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releases_are_signed_published_listed_yanked_and_refused_when_wrong() {
    let mut stack = Stack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("release.key");
    let key_arg = key_path.to_str().unwrap();

    // --- keygen: seed 0600 and .pub; never overwritten.
    let out = stack.drover(&["releases", "keygen", "--out", key_arg, "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let kg: Value = serde_json::from_slice(&out.stdout).unwrap();
    let pub_path = dir.path().join("release.key.pub");
    let mode = std::fs::metadata(&key_path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the seed file is private");
    let signer = ReleaseSigner::load(&key_path).unwrap();
    let key = ReleaseKey::load(&pub_path).unwrap();
    assert_eq!(signer.public(), key);
    assert_eq!(kg["fingerprint"], key.fingerprint());
    let seed_before = std::fs::read(&key_path).unwrap();
    let again = stack.drover(&["releases", "keygen", "--out", key_arg]);
    assert!(!again.status.success(), "{}", text(&again));
    assert!(text(&again).contains("exists already"), "{}", text(&again));
    assert_eq!(std::fs::read(&key_path).unwrap(), seed_before);

    // --- no release key on the control plane: a clear refusal, nothing stored.
    let bin_path = dir.path().join("drover-agent");
    // Over 4 MiB: the body limit of this route is the larger one.
    let bytes = binary(5 * 1024 * 1024 + 17, 1);
    std::fs::write(&bin_path, &bytes).unwrap();
    let bin_arg = bin_path.to_str().unwrap();
    let publish = |stack: &Stack, version: &str, extra: &[&str]| {
        let mut args = vec![
            "releases",
            "publish",
            bin_arg,
            "--key",
            key_arg,
            "--version",
        ];
        args.push(version);
        args.extend_from_slice(extra);
        stack.drover(&args)
    };
    let out = publish(&stack, "1.2.3", &[]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("no release key is configured") && text(&out).contains("release_key"),
        "{}",
        text(&out)
    );
    let (code, v) = stack.get("/releases").await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["release_key"]["configured"], false, "{v}");
    assert_eq!(v["agent_releases"], json!([]), "{v}");
    let (m_text, m_sig) = signed(&signer, b"x", "0.0.1");
    let job = update_job("0.0.1", &m_text, &m_sig);
    let (code, v) = stack.post("/jobs", &job).await;
    assert_eq!(code, 422, "{v}");
    assert!(v["error"].as_str().unwrap().contains("release key"), "{v}");

    // --- the key configured as the path of the .pub file.
    stack
        .restart_cp_with(&[("DROVER_RELEASE_KEY", pub_path.to_str().unwrap())])
        .await;
    let (_, v) = stack.get("/releases").await;
    assert_eq!(v["release_key"]["fingerprint"], key.fingerprint(), "{v}");

    // --- publish; the identical release again is unchanged.
    let out = publish(
        &stack,
        "1.2.3",
        &["--channel", "beta", "--notes", "first cut", "--json"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let pv: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(pv["created"], true, "{pv}");
    let out = publish(
        &stack,
        "1.2.3",
        &["--channel", "beta", "--notes", "first cut"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("unchanged"),
        "{}",
        text(&out)
    );
    // The same bytes with other notes: refused, never silently kept.
    let out = publish(
        &stack,
        "1.2.3",
        &["--channel", "beta", "--notes", "second thoughts"],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("never changes"), "{}", text(&out));

    // --- list and show (JSON), and the human list names the key.
    let out = stack.drover(&["releases", "list", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rels = list["agent_releases"].as_array().unwrap();
    assert_eq!(rels.len(), 1, "{list}");
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    assert_eq!(rels[0]["version"], "1.2.3");
    assert_eq!(rels[0]["channel"], "beta");
    assert_eq!(rels[0]["platform"], release::platform());
    assert_eq!(rels[0]["sha256"], sha);
    assert_eq!(rels[0]["size"], bytes.len() as u64);
    assert_eq!(rels[0]["notes"], "first cut");
    assert_eq!(rels[0]["yanked"], false);
    // The agent binary is not a package.
    assert_eq!(list["releases"], json!([]), "{list}");
    let out = stack.drover(&["releases", "list"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&key.fingerprint()),
        "{}",
        text(&out)
    );
    let out = stack.drover(&["releases", "show", "1.2.3", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &shown["releases"][0];
    let opened = key
        .open(
            r["manifest"].as_str().unwrap(),
            r["signature"].as_str().unwrap(),
        )
        .unwrap();
    opened.check_bytes(&bytes).unwrap();
    assert_eq!(shown["yanked"], false);

    // --- the object holds exactly the bytes.
    let name = opened.object_name();
    assert_eq!(r["object_name"], name);
    assert!(object(&stack, &name).await.as_deref() == Some(&bytes[..]));

    // --- a manifest signed by another key: refused, nothing stored.
    let other = dir.path().join("other.key");
    let out = stack.drover(&["releases", "keygen", "--out", other.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let out = stack.drover(&[
        "releases",
        "publish",
        bin_arg,
        "--key",
        other.to_str().unwrap(),
        "--version",
        "1.2.4",
    ]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("does not verify"), "{}", text(&out));
    let (code, _) = stack.get("/releases/1.2.4").await;
    assert_eq!(code, 404);
    let name_124 = format!("drover-agent-1.2.4-{}", release::platform());
    assert!(object(&stack, &name_124).await.is_none());

    // --- tampered bytes (one byte flipped, same size): refused.
    let (t_text, t_sig) = signed(&signer, &bytes, "1.2.5");
    let mut tampered = bytes.clone();
    tampered[4096] ^= 1;
    let (code, v) = post_release(&stack, &stack.token, &t_text, &t_sig, tampered).await;
    assert_eq!(code, 422, "{v}");
    assert!(v["error"].as_str().unwrap().contains("altered"), "{v}");
    // A manifest edited after signing: refused too.
    let edited = t_text.replace("1.2.5", "1.2.6");
    let (code, v) = post_release(&stack, &stack.token, &edited, &t_sig, bytes.clone()).await;
    assert_eq!(code, 422, "{v}");
    let (code, _) = stack.get("/releases/1.2.5").await;
    assert_eq!(code, 404);
    assert!(object(
        &stack,
        &format!("drover-agent-1.2.5-{}", release::platform())
    )
    .await
    .is_none());

    // --- the same version with other bytes: 409, the first one stays.
    let other_bytes = binary(4096, 9);
    let (o_text, o_sig) = signed(&signer, &other_bytes, "1.2.3");
    let (code, v) = post_release(&stack, &stack.token, &o_text, &o_sig, other_bytes).await;
    assert_eq!(code, 409, "{v}");
    assert!(v["error"].as_str().unwrap().contains("new version"), "{v}");
    assert!(object(&stack, &name).await.as_deref() == Some(&bytes[..]));

    // --- a viewer can neither publish nor yank.
    let (code, tok) = stack
        .post("/api-tokens", &json!({"name": "watcher", "role": "viewer"}))
        .await;
    assert_eq!(code, 201, "{tok}");
    let viewer = tok["token"].as_str().unwrap().to_string();
    let (v_text, v_sig) = signed(&signer, b"viewer build", "2.0.0");
    let (code, v) = post_release(&stack, &viewer, &v_text, &v_sig, b"viewer build".to_vec()).await;
    assert_eq!(code, 403, "{v}");
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/releases/1.2.3/yank", stack.base))
        .bearer_auth(&viewer)
        .json(&json!({"reason": "no"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let (code, _) = stack.get("/releases/2.0.0").await;
    assert_eq!(code, 404);

    // --- before the yank an agent.update with the release passes the
    // release checks (the job is refused only for having no hosts).
    let (code, v) = stack
        .post(
            "/jobs",
            &update_job(
                "1.2.3",
                shown["releases"][0]["manifest"].as_str().unwrap(),
                r_sig(&shown),
            ),
        )
        .await;
    assert_eq!(code, 422, "{v}");
    assert!(!v["error"].as_str().unwrap().contains("release"), "{v}");

    // --- yank: a reason is required; then show says yanked.
    let (code, v) = stack
        .post("/releases/1.2.3/yank", &json!({"reason": " "}))
        .await;
    assert_eq!(code, 400, "{v}");
    let out = stack.drover(&[
        "releases",
        "yank",
        "1.2.3",
        "--reason",
        "crashes on start with cgroup v1",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let out = stack.drover(&["releases", "show", "1.2.3", "--json"]);
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["yanked"], true, "{shown}");
    assert_eq!(
        shown["releases"][0]["yank_reason"],
        "crashes on start with cgroup v1"
    );
    let (code, _) = stack
        .post("/releases/1.2.3/yank", &json!({"reason": "again"}))
        .await;
    assert_eq!(code, 409);

    // --- an agent.update with the yanked release is refused with the reason.
    let manifest = shown["releases"][0]["manifest"]
        .as_str()
        .unwrap()
        .to_string();
    let sig = r_sig(&shown).to_string();
    let (code, v) = stack
        .post("/jobs", &update_job("1.2.3", &manifest, &sig))
        .await;
    assert_eq!(code, 422, "{v}");
    let err = v["error"].as_str().unwrap();
    assert!(
        err.contains("yanked") && err.contains("crashes on start with cgroup v1"),
        "{v}"
    );
    // The same bytes signed under another version: still the yanked build.
    let (s_text, s_sig) = signed(&signer, &bytes, "1.2.9");
    let (code, v) = stack
        .post("/jobs", &update_job("1.2.9", &s_text, &s_sig))
        .await;
    assert_eq!(code, 422, "{v}");
    assert!(v["error"].as_str().unwrap().contains("yanked"), "{v}");
    // A release signed by another key never reaches a host.
    let stranger = ReleaseSigner::generate();
    let (x_text, x_sig) = signed(&stranger, b"evil", "3.0.0");
    let (code, v) = stack
        .post("/jobs", &update_job("3.0.0", &x_text, &x_sig))
        .await;
    assert_eq!(code, 422, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("does not verify"),
        "{v}"
    );

    // --- publish and yank are in the audit trail.
    let (_, audit) = stack.get("/audit").await;
    let audit = audit.to_string();
    assert!(
        audit.contains("release.publish") && audit.contains("release.yank"),
        "{audit}"
    );
}

fn r_sig(shown: &Value) -> &str {
    shown["releases"][0]["signature"].as_str().unwrap()
}

/// install.sh pins the release key: run for real (`--root DIR
/// --no-start`, as `host_install.rs` does, with the real packages), it
/// writes `release_key` into agent.toml and rootd.toml; before a key is
/// configured the script carries none and writes no such line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_sh_pins_the_release_key_on_the_host() {
    let mut stack = Stack::start().await;
    let pkgs = common::packages::build();
    let work = stack.tmp.path().join("install");
    std::fs::create_dir_all(work.join("tmp")).unwrap();
    let script = stack.fetch_install_script(&work);
    let text_of = |p: &std::path::Path| std::fs::read_to_string(p).unwrap();
    assert!(
        text_of(&script).contains("DROVER_RELEASE_KEY=''\n"),
        "no key yet"
    );

    let key = ReleaseSigner::generate().public();
    stack
        .restart_cp_with(&[
            ("DROVER_RELEASES_DIR", pkgs.dir.to_str().unwrap()),
            ("DROVER_RELEASE_KEY", &key.to_base64()),
        ])
        .await;
    let script = stack.fetch_install_script(&work);
    let root = work.join("root");
    std::fs::create_dir(&root).unwrap();
    let token = stack.token(1, "1h", true).await;
    let out = run_install(
        &script,
        &[
            "--root",
            root.to_str().unwrap(),
            "--no-start",
            "--token",
            &token,
        ],
        &work.join("tmp"),
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let line = format!("release_key = \"{}\"", key.to_base64());
    let etc = root.join("etc/drover");
    for f in ["agent.toml", "rootd.toml"] {
        let t = text_of(&etc.join(f));
        assert_eq!(t.matches(&line).count(), 1, "{f}:\n{t}");
    }
}
