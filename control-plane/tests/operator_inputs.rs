//! What operators and automation send, taken at its word, end to end with a
//! real nats-server, control plane, agent and rootd: idempotency keys scoped
//! by requester and bound to their request (REST, web session, CLI, bus,
//! app installs), fact selectors that match whole values and follow the
//! heartbeat, and app manifests whose hidden inputs are neither required,
//! passed nor recorded, and whose faults are a 4xx naming the problem.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{wait_for, Stack};
use serde_json::{json, Value};

/// The audit entries of one action, newest first.
async fn audit(stack: &Stack, action: &str) -> Vec<Value> {
    let (code, v) = stack.get(&format!("/audit?action={action}")).await;
    assert_eq!(code, 200, "{v}");
    v["entries"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_are_scoped_bound_to_their_request_and_expire() {
    use bus_schema::jobs::JobSubmission;
    use bus_schema::signing::automation::AutomationKey;
    let stack = Stack::start().await;
    let h = stack.start_host("h1").await;
    let ping = json!({"selector": {"agents": [h.id]}, "action": "sys.ping", "idempotency_key": "deploy-1"});

    // The same request twice: one job, the second answer says it is a replay.
    let (code, first) = stack.post("/jobs", &ping).await;
    assert_eq!(code, 201, "{first}");
    let job_a = first["id"].as_str().unwrap().to_string();
    let (code, again) = stack.post("/jobs", &ping).await;
    assert_eq!(code, 200, "{again}");
    assert_eq!(again["id"], job_a.as_str());

    // The same key for another request: 409 naming the first job.
    let other =
        json!({"selector": {"all": true}, "action": "sys.info", "idempotency_key": "deploy-1"});
    let (code, conflict) = stack.post("/jobs", &other).await;
    assert_eq!(code, 409, "{conflict}");
    assert_eq!(conflict["job_id"], job_a.as_str(), "{conflict}");
    assert!(
        conflict["error"].as_str().unwrap().contains(&job_a),
        "{conflict}"
    );
    assert_eq!(first["replayed"], false, "{first}");
    assert_eq!(again["replayed"], true, "{again}");
    // The CLI says so too, and fails.
    let out = stack.drover(&["run", "all", "sys.info", "--key", "deploy-1", "--wait", "0"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("409") && err.contains(&job_a), "{err}");

    // Another operator's key of the same text is another key.
    stack.add_user("alice", "operator", "alice-password-123");
    let alice = stack.login("alice", "alice-password-123").await;
    let (code, hers) = alice
        .send(reqwest::Method::POST, "/api/v1/jobs", Some(&other), true)
        .await;
    assert_eq!(code, 201, "{hers}");
    let job_b = hers["id"].as_str().unwrap().to_string();
    assert_ne!(job_b, job_a);
    assert_eq!(hers["requested_by"], "alice");

    // Two API tokens that share a name are two requesters.
    let mut token_jobs = Vec::new();
    for _ in 0..2 {
        let (code, t) = stack
            .post("/api-tokens", &json!({"name": "ops", "role": "operator"}))
            .await;
        assert_eq!(code, 201, "{t}");
        let r = reqwest::Client::new()
            .post(format!("{}/api/v1/jobs", stack.base))
            .bearer_auth(t["token"].as_str().unwrap())
            .json(&other)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
        let v: Value = r.json().await.unwrap();
        token_jobs.push(v["id"].as_str().unwrap().to_string());
    }
    assert_ne!(token_jobs[0], token_jobs[1]);
    assert!(!token_jobs.contains(&job_a) && !token_jobs.contains(&job_b));

    // The trail: one creation each, and the replay as a replay.
    let created = audit(&stack, "job.create").await;
    let by = |id: &str| -> Vec<String> {
        created
            .iter()
            .filter(|e| e["target"] == id)
            .map(|e| e["actor"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(by(&job_a).len(), 1, "{created:?}");
    assert_eq!(by(&job_b), vec!["alice".to_string()], "{created:?}");
    let replays = audit(&stack, "job.replay").await;
    assert_eq!(replays.len(), 1, "{replays:?}");
    assert_eq!(replays[0]["target"], job_a.as_str());

    // Keys expire (24 h): once past, the key may name a new request.
    let db = stack.db().await;
    use sea_orm::ConnectionTrait;
    db.execute_unprepared("UPDATE idempotency_keys SET expires_at = 1 WHERE key = 'deploy-1'")
        .await
        .unwrap();
    let (code, fresh) = stack.post("/jobs", &other).await;
    assert_eq!(code, 201, "{fresh}");
    assert_ne!(fresh["id"], job_a.as_str());

    // On the bus: scoped to the automation key, replays are replays, a
    // different request under the same key is refused and creates nothing.
    let ci = AutomationKey::generate();
    stack
        .add_automation_key("ci", "operator", &ci.public_base64())
        .await;
    let submission = |action: &str, key: &str| JobSubmission {
        selector: json!({"agents": [h.id]}),
        action: action.into(),
        params: json!({}),
        timeout_secs: None,
        ttl_secs: None,
        idempotency_key: key.into(),
        issued_at: bus_schema::now_ms(),
        expires_at: bus_schema::now_ms() + 60_000,
    };
    let js = async_nats::jetstream::new(stack.client().await);
    for s in [
        submission("sys.ping", "deploy-1"),
        submission("sys.ping", "deploy-1"),
        submission("sys.info", "deploy-1"),
        // A secret on the bus: refused, never turned into a job.
        JobSubmission {
            params: json!({"user": "app", "password": "bus-secret-123456",
                "database": "shop", "template": "app"}),
            ..submission("mariadb.user_create", "with-secret")
        },
        submission("sys.ping", "marker"),
    ] {
        js.publish(
            bus_schema::subjects::JOBS_SUBMIT,
            bus_schema::encode(&ci.sign(&s)).into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    let jobs = stack.wait_job_keyed("marker").await;
    let ci_jobs: Vec<&Value> = jobs
        .iter()
        .filter(|j| j["requested_by"] == "automation:ci" && j["idempotency_key"] == "deploy-1")
        .collect();
    assert_eq!(ci_jobs.len(), 1, "{jobs:?}");
    assert_eq!(ci_jobs[0]["action"], "sys.ping");
    let ci_job = ci_jobs[0]["id"].as_str().unwrap();
    let replays = audit(&stack, "job.replay").await;
    assert!(
        replays
            .iter()
            .any(|e| e["target"] == ci_job && e["actor"] == "automation:ci"),
        "{replays:?}"
    );
    let (_, sec) = stack.get("/security").await;
    let refused = sec["refused"].as_array().cloned().unwrap_or_default();
    assert!(
        refused
            .iter()
            .any(|r| r["reason"] == "idempotency_conflict"),
        "{sec}"
    );
    assert!(
        !jobs
            .iter()
            .any(|j| j["requested_by"] == "automation:ci" && j["action"] == "sys.info"),
        "{jobs:?}"
    );
    assert!(
        !jobs.iter().any(|j| j["idempotency_key"] == "with-secret"),
        "{jobs:?}"
    );
    // The refusal names the field, never the value (read from the table:
    // the security overview shows counts by reason, not details).
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT detail FROM refusals WHERE detail LIKE '%carries secrets%'".to_string(),
        ))
        .await
        .unwrap();
    assert_eq!(
        rows.len(),
        1,
        "the secret-carrying submission is refused once"
    );
    let detail: String = rows[0].try_get("", "detail").unwrap();
    assert!(
        detail.contains("password") && detail.contains("POST /api/v1/jobs"),
        "{detail}"
    );
    assert!(!detail.contains("bus-secret-123456"), "{detail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fact_selectors_match_whole_values_and_follow_the_heartbeat() {
    let stack = Stack::start().await;
    let h = stack.start_host("h1").await;
    let (_, agent) = stack.get(&format!("/agents/{}", h.id)).await;
    let kernel = agent["kernel"].as_str().unwrap().to_string();
    assert!(kernel.len() > 3, "{agent}");
    let count = |facts: Value| {
        let stack = &stack;
        let h = &h;
        async move {
            let (code, v) = stack
                .post("/jobs/preview", &json!({"agents": [h.id], "facts": facts}))
                .await;
            assert_eq!(code, 200, "{v}");
            v["count"].as_i64().unwrap()
        }
    };
    // A prefix is not the value (6.1 is not 6.18); a written glob is.
    assert_eq!(count(json!({"kernel": &kernel[..3]})).await, 0);
    assert_eq!(count(json!({"kernel": kernel})).await, 1);
    assert_eq!(
        count(json!({"kernel": format!("{}*", &kernel[..3])})).await,
        1
    );
    assert_eq!(count(json!({"kernel": kernel.to_uppercase()})).await, 1);

    // An empty value is an error that says what to write, on every path.
    for body in [
        json!({"agents": [h.id], "facts": {"kernel": ""}}),
        json!({"agents": [h.id], "labels": {"env": ""}}),
        json!({"hostname": ""}),
    ] {
        let (code, v) = stack.post("/jobs/preview", &body).await;
        assert_eq!(code, 422, "{body} {v}");
        assert!(v["error"].as_str().unwrap().contains("empty"), "{v}");
    }
    let (code, v) = stack
        .post(
            "/jobs",
            &json!({"selector": {"facts": {"kernel": ""}}, "action": "sys.ping"}),
        )
        .await;
    assert_eq!(code, 422, "{v}");
    assert!(v["error"].as_str().unwrap().contains("fact:kernel="), "{v}");
    let out = stack.drover(&["run", "fact:kernel=", "sys.ping", "--wait", "0"]);
    assert!(!out.status.success());
    let (_, jobs) = stack.get("/jobs").await;
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 0, "{jobs}");

    // Enrolled on an older kernel and OS, upgraded since: the values the
    // heartbeat reports are the ones selectors see.
    let db = stack.db().await;
    use sea_orm::ConnectionTrait;
    db.execute_unprepared(&format!(
        "UPDATE agents SET facts = '{{\"kernel\":\"5.10.0-old\",\"os\":\"Old OS 9\"}}', \
         kernel = '5.10.0-old', os = 'Old OS 9' WHERE id = '{}'",
        h.id
    ))
    .await
    .unwrap();
    wait_for(
        "a heartbeat to bring the kernel back",
        Duration::from_secs(30),
        || async { (count(json!({"kernel": kernel})).await == 1).then_some(()) },
    )
    .await;
    assert_eq!(count(json!({"kernel": "5.10.0-old"})).await, 0);
    assert_eq!(count(json!({"os": "Old OS 9"})).await, 0);
    let (_, agent) = stack.get(&format!("/agents/{}", h.id)).await;
    assert_eq!(agent["facts"]["kernel"], kernel.as_str(), "{agent}");
}

const HIDDEN_DEMO: &str = r#"
id: hidden-demo
name: Hidden demo
version: "1.0"
description: Inputs that show one another
category: test
inputs:
  - name: mode
    type: select
    label: Mode
    allowed_values: [basic, advanced]
    default: basic
  - name: advanced_opts
    type: boolean
    label: Advanced options
    default: true
    visible_if: { mode: advanced }
  - name: tuning
    type: string
    label: Tuning
    required: true
    visible_if: { advanced_opts: true }
  - name: listen_port
    type: port
    label: Port
    default: 8080
  - name: tls_note
    type: string
    label: TLS note
    required: true
    visible_if: { listen_port: 443 }
  - name: secret
    type: password
    label: Secret
    visible_if: { mode: advanced }
scripts: { install: install.sh }
timeout_secs: 60
idempotent: true
"#;

const SCRIPT: &str = "#!/bin/bash\nset -euo pipefail\n\
echo \"MODE=${MODE:-unset} TUNING=${TUNING:-unset} TLS_NOTE=${TLS_NOTE:-unset} SECRET=${SECRET:+given}\"\n";

fn write_app(root: &Path, id: &str, manifest: &str) {
    let dir = root.join(id);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("manifest.yml"), manifest).unwrap();
    std::fs::write(dir.join("install.sh"), SCRIPT).unwrap();
}

fn manifests(root: &Path) -> PathBuf {
    let m = root.join("manifests");
    write_app(&m, "hidden-demo", HIDDEN_DEMO);
    // Not YAML a manifest can be made of.
    write_app(&m, "broken", "id: broken\nname: [unclosed\n");
    // A default its own input refuses.
    write_app(
        &m,
        "bad-default",
        &HIDDEN_DEMO
            .replace("id: hidden-demo", "id: bad-default")
            .replace("default: 8080", "default: 70000"),
    );
    // visible_if conditions that loop.
    write_app(
        &m,
        "looping",
        &HIDDEN_DEMO
            .replace("id: hidden-demo", "id: looping")
            .replace(
                "    default: true\n    visible_if: { mode: advanced }",
                "    default: true\n    visible_if: { tuning: x }",
            ),
    );
    m
}

/// The last output line of a job's only command.
async fn output_of(stack: &Stack, job: &Value) -> String {
    let id = job["id"].as_str().unwrap();
    let done = stack.wait_job_done(id, Duration::from_secs(60)).await;
    assert_eq!(done["counts"]["succeeded"], 1, "{done}");
    let (_, hosts) = stack.get(&format!("/jobs/{id}/hosts")).await;
    let cmd = hosts["hosts"][0]["command_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, out) = stack.get(&format!("/commands/{cmd}/output")).await;
    out["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["line"].as_str().unwrap_or("").to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_inputs_are_not_required_passed_or_recorded_and_bad_manifests_are_4xx() {
    let tmp = tempfile::tempdir().unwrap();
    let m = manifests(tmp.path());
    let stack = Stack::start_with_manifests(&m).await;
    let h = stack
        .start_host_configured("h1", &format!("manifests_dir = {m:?}"))
        .await;
    let install = |inputs: Value, key: &str| {
        let stack = &stack;
        let body =
            json!({"selector": {"agents": [h.id]}, "inputs": inputs, "idempotency_key": key});
        async move { stack.post("/apps/hidden-demo/install", &body).await }
    };

    // `tuning` is required only when `advanced_opts` is shown and true;
    // `advanced_opts` is hidden in basic mode, so its default shows nothing.
    let (code, job) = install(json!({"mode": "basic"}), "i-1").await;
    assert_eq!(code, 201, "{job}");
    assert_eq!(job["ignored_inputs"], json!([]), "{job}");
    let out = output_of(&stack, &job).await;
    assert!(
        out.contains("MODE=basic TUNING=unset TLS_NOTE=unset"),
        "{out}"
    );

    // Values for hidden inputs: ignored, said so, neither passed nor recorded.
    let (code, job) = install(
        json!({"mode": "basic", "tuning": "hidden-tuning", "secret": "hidden-secret-1"}),
        "i-2",
    )
    .await;
    assert_eq!(code, 201, "{job}");
    let ignored: Vec<&str> = job["ignored_inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["field"].as_str().unwrap())
        .collect();
    assert_eq!(ignored, vec!["tuning", "secret"], "{job}");
    assert!(
        job["ignored_inputs"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("advanced_opts is true"),
        "{job}"
    );
    assert!(!job["params"].to_string().contains("tuning"), "{job}");
    assert!(!job["params"].to_string().contains("secret"), "{job}");
    let out = output_of(&stack, &job).await;
    assert!(
        out.contains("TUNING=unset") && !out.contains("SECRET=given"),
        "{out}"
    );
    let (_, trail) = stack.get("/audit?action=app.install").await;
    assert!(
        trail["entries"][0]["detail"]["ignored_inputs"][0]["field"] == "tuning",
        "{trail}"
    );

    // A value that shows an input counts as text, as in the install form:
    // the CLI sends "443", the manifest says 443.
    let (code, v) = install(json!({"listen_port": "443"}), "i-3").await;
    assert_eq!(code, 422, "{v}");
    assert_eq!(v["fields"][0]["field"], "tls_note", "{v}");
    let (code, job) = install(json!({"listen_port": "443", "tls_note": "on"}), "i-4").await;
    assert_eq!(code, 201, "{job}");
    assert_eq!(job["params"]["inputs"]["tls_note"], "on", "{job}");
    let out = output_of(&stack, &job).await;
    assert!(out.contains("TLS_NOTE=on"), "{out}");

    // The same key with other inputs is a conflict; with the same, a replay.
    let (code, v) = install(json!({"listen_port": "443", "tls_note": "off"}), "i-4").await;
    assert_eq!(code, 409, "{v}");
    assert_eq!(v["job_id"], job["id"], "{v}");
    let (code, v) = install(json!({"listen_port": "443", "tls_note": "on"}), "i-4").await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["replayed"], true, "{v}");

    // Straight through /jobs too: a hidden input's value is not carried.
    let (code, v) = stack
        .post(
            "/jobs",
            &json!({"selector": {"agents": [h.id]}, "action": "app.install",
                    "params": {"app": "hidden-demo", "inputs": {"mode": "basic", "tuning": "t"}}}),
        )
        .await;
    assert_eq!(code, 201, "{v}");
    assert!(!v["params"].to_string().contains("tuning"), "{v}");
    assert_eq!(v["ignored_inputs"][0]["field"], "tuning", "{v}");

    // A manifest that cannot be used: a 4xx naming the problem, on every path.
    for (app, says) in [
        ("broken", "broken"),
        ("bad-default", "default"),
        ("looping", "loop"),
    ] {
        let (code, v) = stack.get(&format!("/apps/{app}")).await;
        assert_eq!(code, 422, "{app}: {v}");
        assert!(v["error"].as_str().unwrap().contains(says), "{app}: {v}");
        let (code, v) = stack
            .post(
                &format!("/apps/{app}/install"),
                &json!({"selector": {"agents": [h.id]}, "inputs": {}}),
            )
            .await;
        assert_eq!(code, 422, "{app}: {v}");
        assert!(v["error"].as_str().unwrap().contains(says), "{app}: {v}");
        let (code, v) = stack
            .post(
                "/jobs",
                &json!({"selector": {"agents": [h.id]}, "action": "app.install", "params": {"app": app, "inputs": {}}}),
            )
            .await;
        assert_eq!(code, 422, "{app}: {v}");
    }
    let (_, list) = stack.get("/apps").await;
    assert_eq!(list["invalid"].as_array().unwrap().len(), 3, "{list}");
}

/// A NUL character anywhere an operator can type one — a filter, a path, a
/// JSON string — is a 400 that says so and writes nothing, on SQLite and on
/// PostgreSQL alike (PostgreSQL cannot store or compare a NUL: this input,
/// found by schemathesis on `GET /updates/history`, was a 500 there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_characters_are_refused_everywhere_and_change_nothing() {
    let stack = Stack::start().await;
    let h = stack.start_host("h1").await;
    for path in [
        "/updates/history?agent=x&package=%F1%8C%BF%A2%00X&page=2",
        "/audit?action=job.submit%00",
        "/agents/a%00b",
        "/jobs?page=1&action=sys.ping%00",
    ] {
        let (code, v) = stack.get(path).await;
        assert_eq!(code, 400, "{path}: {v}");
        assert!(v["error"].as_str().unwrap().contains("NUL"), "{path}: {v}");
    }
    let schedule = json!({
        "name": "nightly\u{0}", "cron": "0 3 * * *", "action": "pkg.scan",
        "selector": {"all": true},
    });
    let job = json!({
        "selector": {"agents": [h.id]}, "action": "sys.ping",
        "idempotency_key": "deploy-\u{0}",
    });
    for (path, body) in [("/schedules", &schedule), ("/jobs", &job)] {
        let (code, v) = stack.post(path, body).await;
        assert_eq!(code, 400, "{path}: {v}");
        assert!(v["error"].as_str().unwrap().contains("NUL"), "{path}: {v}");
    }
    let (_, v) = stack.get("/schedules").await;
    assert_eq!(v["schedules"], json!([]), "{v}");
    let (_, v) = stack.get("/jobs").await;
    assert_eq!(v["jobs"], json!([]), "{v}");
    // A backslash followed by the text "u0000" is not a NUL.
    let literal = json!({"selector": {"agents": [h.id]}, "action": "sys.ping", "idempotency_key": "a\\u0000"});
    let (code, v) = stack.post("/jobs", &literal).await;
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["idempotency_key"], "a\\u0000", "{v}");
    // The page routes too.
    let r = reqwest::get(format!("{}/agents/a%00b", stack.base))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
}
