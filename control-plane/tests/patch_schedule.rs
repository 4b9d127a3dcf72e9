//! Patch management: scheduled scans on a real stack (nats-server, `drover serve`, a real
//! agent and rootd running `pkg.scan` against this machine's apt): jobs with
//! `source: system` and `requested_by: schedule:<name>`, one per slot,
//! recorded on the schedule; disabling stops them; bad input is refused and
//! stores nothing; the pages show the system source; with two `drover
//! serve` replicas on one database only the lease holder schedules, and
//! killing it moves the scheduling to the other.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// Jobs that schedule `name` submitted, newest first (`GET /jobs` views).
async fn schedule_jobs(stack: &Stack, name: &str) -> Vec<Value> {
    schedule_jobs_at(&stack.base, &stack.token, name).await
}

/// [`schedule_jobs`] as the control plane at `base` answers.
async fn schedule_jobs_at(base: &str, token: &str, name: &str) -> Vec<Value> {
    let http = reqwest::Client::new();
    let (code, v) = api_request(&http, base, token, reqwest::Method::GET, "/jobs", None).await;
    assert_eq!(code, 200, "{v}");
    v["jobs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|j| j["requested_by"] == format!("schedule:{name}"))
        .collect()
}

async fn schedule(stack: &Stack, id: &str) -> Value {
    let (code, v) = stack.get(&format!("/schedules/{id}")).await;
    assert_eq!(code, 200, "{v}");
    v
}

/// The current minute of the hour (UTC).
fn chrono_minute_now() -> i64 {
    bus_schema::now_ms() / 60_000 % 60
}

/// Runs of the `schedules` duty on the replica at `base` so far.
async fn duty_runs(stack: &Stack) -> u64 {
    let (code, v) = stack.get("/duties").await;
    assert_eq!(code, 200, "{v}");
    v["duties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "schedules")
        .unwrap()["runs"]
        .as_u64()
        .unwrap()
}

/// Waits until the scheduler has ticked `n` more times than `from`.
async fn wait_ticks(stack: &Stack, from: u64, n: u64) {
    wait_for(
        &format!("{n} scheduler ticks"),
        Duration::from_secs(n * 3 + 10),
        || async { (duty_runs(stack).await >= from + n).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_scans_run_as_the_system_once_per_slot() {
    if !Path::new("/usr/bin/apt-get").exists() {
        println!("SKIPPED: apt-get is not installed (pkg.scan runs against this machine's apt)");
        return;
    }
    let stack = Stack::start().await;
    let mut host = stack.start_host("sched").await;
    stack.wait_online(&host.id).await;
    let good = json!({
        "name": "every5", "action": "pkg.scan", "selector": {"agents": [host.id]},
        "cron": "*/5 * * * * *", "timezone": "Europe/Berlin", "enabled": true,
        // No `apt-get update` of this machine's lists every five seconds.
        "params": {"refresh": false},
    });

    // Bad input: refused with what to write, nothing stored.
    let with = |k: &str, v: Value| {
        let mut b = good.clone();
        b[k] = v;
        b
    };
    for (body, says) in [
        (with("cron", json!("61 * * * *")), "five fields"),
        (with("cron", json!("* * *")), "five fields"),
        (with("cron", json!("0 0 30 2 *")), "never fires"),
        (with("params", json!({"refresh": "yes"})), "params"),
        (with("params", json!({"bogus": 1})), "params"),
        (with("timezone", json!("Mars/Olympus")), "IANA"),
        (
            with("action", json!("pkg.install")),
            "only schedulable action is pkg.scan",
        ),
        (with("selector", json!({})), "selector"),
        (with("selector", json!({"bogus": 1})), "selector"),
        (with("name", json!("no spaces")), "letters, digits"),
    ] {
        let (code, v) = stack.post("/schedules", &body).await;
        assert_eq!(code, 422, "{body} -> {v}");
        let e = v["error"].as_str().unwrap();
        assert!(e.contains(says), "{body}: {e}");
    }
    let (code, v) = stack.get("/schedules").await;
    assert_eq!(code, 200);
    assert_eq!(v["schedules"], json!([]), "refused input stored nothing");

    // A schedule with seconds, read in Europe/Berlin.
    let (code, s) = stack.post("/schedules", &good).await;
    assert_eq!(code, 201, "{s}");
    let id = s["id"].as_str().unwrap().to_string();
    assert_eq!(s["next_run_at"].as_i64().unwrap() % 5000, 0, "{s}");
    let (code, v) = stack.post("/schedules", &good).await;
    assert_eq!(code, 409, "a second schedule of one name: {v}");

    // It produces a pkg.scan job as the system, which succeeds on the host.
    let first = wait_for(
        "the first scheduled job",
        Duration::from_secs(30),
        || async { schedule_jobs(&stack, "every5").await.pop() },
    )
    .await;
    assert_eq!(first["source"], "system", "{first}");
    assert_eq!(first["action"], "pkg.scan");
    let job_id = first["id"].as_str().unwrap().to_string();
    let done = stack.wait_job_done(&job_id, Duration::from_secs(300)).await;
    assert_eq!(done["counts"]["succeeded"], 1, "{done}");
    let (_, hosts) = stack.get(&format!("/jobs/{job_id}/hosts")).await;
    let cmd_id = hosts["hosts"][0]["command_id"].as_str().unwrap();
    let (_, cmd) = stack.get(&format!("/commands/{cmd_id}")).await;
    assert_eq!(cmd["source"], "system", "{cmd}");
    assert_eq!(cmd["requested_by"], "schedule:every5", "{cmd}");
    assert_eq!(cmd["result"]["manager"], "apt", "{cmd}");

    // The schedule records its runs.
    let rec = schedule(&stack, &id).await;
    assert!(rec["last_run_at"].as_i64().is_some(), "{rec}");
    assert!(rec["last_job_id"].as_str().is_some(), "{rec}");
    // No error, unless a slot came while the previous scan still ran (a
    // loaded machine): that slot is skipped, and says so.
    let last_error = rec["last_error"].as_str().unwrap_or_default();
    assert!(
        last_error.is_empty() || last_error.starts_with("skipped a run: the previous job"),
        "{rec}"
    );

    // A few slots: one job each, each keyed by its own slot.
    let jobs = wait_for("three scheduled jobs", Duration::from_secs(40), || async {
        let j = schedule_jobs(&stack, "every5").await;
        (j.len() >= 3).then_some(j)
    })
    .await;
    let keys: Vec<String> = jobs
        .iter()
        .map(|j| j["idempotency_key"].as_str().unwrap().to_string())
        .collect();
    let slots: BTreeSet<i64> = keys
        .iter()
        .map(|k| k.rsplit('-').next().unwrap().parse::<i64>().unwrap())
        .collect();
    assert_eq!(slots.len(), jobs.len(), "one job per slot: {keys:?}");
    assert!(slots.iter().all(|s| s % 5000 == 0), "{slots:?}");
    let span = slots.last().unwrap() - slots.first().unwrap();
    assert!(
        (jobs.len() as i64) <= span / 5000 + 1,
        "{} jobs over {} slots",
        jobs.len(),
        span / 5000 + 1
    );

    // Runs missed while no control plane was up run once, not once per
    // missed slot: an hourly schedule whose next run was five hours ago (as
    // the database says after a long outage) makes one job, and its next
    // run is the coming slot (half an hour or more away).
    let minute = (chrono_minute_now() + 30) % 60;
    let (code, m) = stack
        .post(
            "/schedules",
            &json!({"name": "missed", "selector": {"agents": [host.id]},
                    "cron": format!("{minute} * * * *"), "timezone": "UTC"}),
        )
        .await;
    assert_eq!(code, 201, "{m}");
    assert_eq!(
        m["params"],
        json!({"refresh": true}),
        "a scheduled scan refreshes the package lists unless told not to"
    );
    let (code, v) = api_request(
        &reqwest::Client::new(),
        &stack.base,
        &stack.token,
        reqwest::Method::PUT,
        &format!("/schedules/{}", m["id"].as_str().unwrap()),
        Some(&json!({"params": {"refresh": false}})),
    )
    .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["params"], json!({"refresh": false}));
    let missed_id = m["id"].as_str().unwrap().to_string();
    {
        use control_plane::schedules::entity;
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        let db = stack.db().await;
        let five_hours_ago = bus_schema::now_ms() - 5 * 3_600_000;
        entity::Entity::update_many()
            .col_expr(
                entity::Column::NextRunAt,
                sea_orm::sea_query::Expr::value(five_hours_ago),
            )
            .filter(entity::Column::Id.eq(missed_id.clone()))
            .exec(&db)
            .await
            .unwrap();
    }
    wait_for("the missed run", Duration::from_secs(20), || async {
        (!schedule_jobs(&stack, "missed").await.is_empty()).then_some(())
    })
    .await;
    let runs = duty_runs(&stack).await;
    wait_ticks(&stack, runs, 3).await;
    assert_eq!(
        schedule_jobs(&stack, "missed").await.len(),
        1,
        "one run for five missed slots"
    );
    let rec = schedule(&stack, &missed_id).await;
    assert!(
        rec["next_run_at"].as_i64().unwrap() > bus_schema::now_ms(),
        "{rec}"
    );
    let (code, _) = api_request(
        &reqwest::Client::new(),
        &stack.base,
        &stack.token,
        reqwest::Method::DELETE,
        &format!("/schedules/{missed_id}"),
        None,
    )
    .await;
    assert_eq!(code, 200);

    // The pages show the system as the source, apart from users.
    stack.add_user("olga", "operator", "operator-password-1");
    let web = stack.login("olga", "operator-password-1").await;
    let (code, page) = web.get_html("/jobs").await;
    assert_eq!(code, 200);
    assert!(page.contains("src-system"), "jobs page");
    assert!(
        page.contains("(schedule:every5)"),
        "jobs page names the schedule"
    );
    let (_, page) = web.get_html(&format!("/jobs/{job_id}")).await;
    assert!(
        page.contains("src-system") && page.contains("(schedule:every5)"),
        "job page"
    );
    let (_, page) = web.get_html(&format!("/agents/{}", host.id)).await;
    assert!(page.contains("(schedule:every5)"), "host page's commands");
    let (code, page) = web.get_html("/schedules").await;
    assert_eq!(code, 200);
    assert!(
        page.contains("every5") && page.contains("*/5 * * * * *"),
        "schedules page"
    );
    assert!(page.contains("href=\"/jobs/"), "last job link");
    assert!(page.contains("/api/v1/schedules/") && page.contains("schedule-form"));
    // The CLI says the same.
    let out = stack.drover(&["jobs"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("system (schedule:every5)"), "{text}");

    // A write from the page without its CSRF token is refused.
    let (code, _) = web
        .send(
            reqwest::Method::POST,
            &format!("/api/v1/schedules/{id}/disable"),
            None,
            false,
        )
        .await;
    assert_eq!(code, 403);
    assert_eq!(schedule(&stack, &id).await["enabled"], true);

    // Disabled (the CLI): no more jobs.
    let out = stack.drover(&["schedules", "disable", "every5", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["enabled"], false);
    assert_eq!(v["next_run_at"], Value::Null);
    // A tick in flight at the change may still finish; after two more
    // the count is settled.
    let runs = duty_runs(&stack).await;
    wait_ticks(&stack, runs, 2).await;
    let settled = schedule_jobs(&stack, "every5").await.len();
    let runs = duty_runs(&stack).await;
    // More than two slots' worth of ticks.
    wait_ticks(&stack, runs, 12).await;
    assert_eq!(
        schedule_jobs(&stack, "every5").await.len(),
        settled,
        "disabled schedule made a job"
    );

    let out = stack.drover(&["schedules", "list", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["schedules"][0]["name"], "every5");
    assert_eq!(v["schedules"][0]["enabled"], false);

    // Audited, with the schedule named.
    let (_, audit) = stack.get("/audit").await;
    let text = audit.to_string();
    assert!(
        text.contains("schedule.create") && text.contains("schedule.disable"),
        "{text}"
    );

    // The replica says it holds the lease and the duty ran cleanly.
    let (_, d) = stack.get("/duties").await;
    assert_eq!(d["lease"]["held"], true, "{d}");
    let sched = d["duties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "schedules")
        .unwrap();
    assert_eq!(sched["last_error"], Value::Null, "{d}");

    // Removed.
    let out = stack.drover(&["schedules", "remove", "every5"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, v) = stack.get("/schedules").await;
    assert_eq!(v["schedules"], json!([]));

    // A job that outlasts its interval (its host is down, so its scan stays
    // queued) is not joined by another: the next slots are skipped, said.
    host.agent.stop();
    let (code, s) = stack
        .post(
            "/schedules",
            &json!({"name": "slow", "selector": {"agents": [host.id]},
                    "cron": "*/2 * * * * *", "timezone": "UTC",
                    "params": {"refresh": false}}),
        )
        .await;
    assert_eq!(code, 201, "{s}");
    let id = s["id"].as_str().unwrap().to_string();
    let skipped = wait_for("a skipped slot", Duration::from_secs(30), || async {
        let s = schedule(&stack, &id).await;
        s["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("still running"))
            .then_some(s)
    })
    .await;
    assert_eq!(
        schedule_jobs(&stack, "slow").await.len(),
        1,
        "one job while it runs: {skipped}"
    );
}

/// `GET {base}/api/v1{path}` as `token`; `None` while nothing answers there.
async fn try_get(base: &str, token: &str, path: &str) -> Option<Value> {
    let r = reqwest::Client::new()
        .get(format!("{base}/api/v1{path}"))
        .bearer_auth(token)
        .send()
        .await
        .ok()?;
    r.json().await.ok()
}

/// A second `drover serve` on the stack's data directory (its lock is
/// shared), database and broker, on its own port and log.
fn second_replica(stack: &Stack, port: u16) -> Proc {
    let mut cmd = Command::new(bin("drover"));
    cmd.arg("serve")
        .env("DROVER_DATA_DIR", &stack.data_dir)
        .env("DROVER_NATS_URL", stack.nats.url())
        .env("DROVER_LISTEN", format!("127.0.0.1:{port}"))
        .env("DROVER_MANIFESTS_DIR", stack.data_dir.join("manifests"))
        .env("DROVER_LEASE_TTL_SECS", "3");
    Proc::spawn(
        "drover serve (second)",
        cmd,
        stack.data_dir.join("second.log"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_schedule_once_and_the_survivor_takes_over() {
    if !Path::new("/usr/bin/apt-get").exists() {
        println!("SKIPPED: apt-get is not installed (pkg.scan runs against this machine's apt)");
        return;
    }
    let mut stack = Stack::start().await;
    if stack.pg.is_some() {
        println!("SKIPPED: the second replica is started for SQLite only");
        return;
    }
    stack
        .restart_cp_with(&[("DROVER_LEASE_TTL_SECS", "3")])
        .await;
    let host = stack.start_host("two").await;
    stack.wait_online(&host.id).await;
    let port = free_port();
    let mut second = second_replica(&stack, port);
    let second_base = format!("http://127.0.0.1:{port}");
    let duties_of = |base: String| {
        let token = stack.token.clone();
        async move {
            try_get(&base, &token, "/duties")
                .await
                .unwrap_or(Value::Null)
        }
    };
    wait_for(
        "the second replica to answer",
        Duration::from_secs(30),
        || async {
            let v = duties_of(second_base.clone()).await;
            v["lease"].is_object().then_some(())
        },
    )
    .await;
    let one = duties_of(stack.base.clone()).await;
    let two = duties_of(second_base.clone()).await;
    assert_eq!(
        one["lease"]["held"], true,
        "the first replica started first: {one}"
    );
    assert_eq!(two["lease"]["held"], false, "{two}");
    assert_eq!(two["lease"]["holder"]["id"], one["lease"]["id"], "{two}");

    let (code, s) = stack
        .post(
            "/schedules",
            &json!({"name": "ha", "selector": "all", "cron": "*/2 * * * * *", "timezone": "UTC",
                    "params": {"refresh": false}}),
        )
        .await;
    assert_eq!(code, 201, "{s}");
    wait_for("two scheduled jobs", Duration::from_secs(30), || async {
        (schedule_jobs(&stack, "ha").await.len() >= 2).then_some(())
    })
    .await;
    // Only the holder ran the scheduler.
    let two = duties_of(second_base.clone()).await;
    let ran = |v: &Value| {
        v["duties"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == "schedules")
            .unwrap()["runs"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(
        ran(&two),
        0,
        "the replica without the lease ran the scheduler: {two}"
    );

    // Kill the holder: the survivor takes the lease and the scheduling.
    let before = schedule_jobs_at(&second_base, &stack.token, "ha")
        .await
        .len();
    let killed = Instant::now();
    stack.cp.kill9();
    wait_for(
        "the survivor to take the lease",
        Duration::from_secs(15),
        || async { (duties_of(second_base.clone()).await["lease"]["held"] == true).then_some(()) },
    )
    .await;
    println!(
        "the survivor took the lease {:?} after the holder was killed",
        killed.elapsed()
    );
    wait_for(
        "a job scheduled by the survivor",
        Duration::from_secs(20),
        || async {
            let n = schedule_jobs_at(&second_base, &stack.token, "ha")
                .await
                .len();
            (n > before).then_some(())
        },
    )
    .await;
    let jobs = schedule_jobs_at(&second_base, &stack.token, "ha").await;
    let keys: BTreeSet<String> = jobs
        .iter()
        .map(|j| j["idempotency_key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), jobs.len(), "one job per slot across replicas");
    second.stop();
}
