//! Helpers of the maintenance-window tests: requests with any method as
//! the admin token, a window body open at this minute, a window's runs and
//! a run's host rows, and the database rows a scan and an approval leave
//! (for tests of the runner that do not exercise the scan's ingest). It
//! starts nothing.

use std::time::Duration;

use chrono::{Datelike, Timelike};
use serde_json::{json, Value};

use super::*;

/// `method` `{base}/api/v1{path}` as the admin token.
pub async fn req(
    stack: &Stack,
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    api_request(
        &reqwest::Client::new(),
        &stack.base,
        &stack.token,
        method,
        path,
        body,
    )
    .await
}

/// The raw text of a GET (CSV exports).
pub async fn get_text(stack: &Stack, path: &str) -> (u16, String, String) {
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1{path}", stack.base))
        .bearer_auth(&stack.token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (status, ct, r.text().await.unwrap())
}

/// A window body (for `POST /api/v1/windows`) that is open now: today's
/// weekday in UTC, starting this minute, for 60 minutes; `extra`'s fields
/// are merged in.
pub fn open_now(name: &str, extra: Value) -> Value {
    let now = chrono::Utc::now();
    let day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        [now.weekday().num_days_from_monday() as usize];
    let mut v = json!({
        "name": name,
        "selector": {"all": true},
        "days": [day],
        "start": format!("{:02}:{:02}", now.hour(), now.minute()),
        "duration_minutes": 60,
        "timezone": "UTC",
        "reboot": "never",
    });
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        for (k, x) in e {
            o.insert(k.clone(), x.clone());
        }
    }
    v
}

/// A weekday that is not today (UTC): a window on it is closed now.
pub fn not_today() -> &'static str {
    let today = chrono::Utc::now().weekday().num_days_from_monday() as usize;
    ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][(today + 3) % 7]
}

/// Creates a window, asserting 201; returns it.
pub async fn create_window(stack: &Stack, body: &Value) -> Value {
    let (code, w) = stack.post("/windows", body).await;
    assert_eq!(code, 201, "{body}: {w}");
    w
}

/// Waits (up to `max`) until the window has a run that `done` accepts
/// (with its host rows); returns it.
pub async fn wait_run(
    stack: &Stack,
    window_id: &str,
    what: &str,
    max: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    wait_for(what, max, || async {
        let (_, runs) = stack.get(&format!("/windows/{window_id}/runs")).await;
        let id = runs["runs"][0]["id"].as_str()?.to_string();
        let (_, r) = stack.get(&format!("/windows/runs/{id}")).await;
        done(&r).then_some(r)
    })
    .await
}

/// The host row of `agent` in a run's detail.
pub fn run_host<'a>(run: &'a Value, agent: &str) -> &'a Value {
    run["hosts"]
        .as_array()
        .and_then(|hs| hs.iter().find(|h| h["agent_id"] == agent))
        .unwrap_or_else(|| panic!("no host {agent} in run {run}"))
}

/// The rows a successful `pkg.scan` ingest leaves for one pending update on
/// an apt host (inventory and patch state), for tests of the runner alone.
pub async fn seed_update(
    db: &sea_orm::DatabaseConnection,
    agent: &str,
    package: &str,
    current: &str,
    candidate: &str,
) {
    use control_plane::updates::entities::{host_state, inventory};
    use sea_orm::{ActiveValue::Set, EntityTrait};
    let now = bus_schema::now_ms();
    inventory::Entity::insert(inventory::ActiveModel {
        agent_id: Set(agent.into()),
        package: Set(package.into()),
        arch: Set("all".into()),
        current_version: Set(current.into()),
        candidate_version: Set(candidate.into()),
        origin: Set("test".into()),
        security: Set(false),
        severity: Set(None),
        advisories: Set("[]".into()),
        held: Set(false),
        first_seen: Set(now),
        last_seen: Set(now),
        scan_command_id: Set("seeded".into()),
    })
    .exec(db)
    .await
    .unwrap();
    host_state::Entity::insert(host_state::ActiveModel {
        agent_id: Set(agent.into()),
        manager: Set("apt".into()),
        last_scan_at: Set(Some(now)),
        last_scan_command: Set(Some("seeded".into())),
        last_scan_status: Set(Some("succeeded".into())),
        last_scan_error: Set(None),
        upgradable: Set(1),
        security: Set(0),
        reboot_required: Set(false),
        reboot_packages: Set("[]".into()),
        reboot_since: Set(None),
        updated_at: Set(now),
    })
    .exec(db)
    .await
    .unwrap();
}

/// An approval row as `POST /api/v1/updates/approvals` stores it: `package`
/// at `version` for every host, by `who`.
pub async fn seed_approval(
    db: &sea_orm::DatabaseConnection,
    package: &str,
    version: &str,
    who: &str,
) -> String {
    use control_plane::updates::entities::approval;
    use sea_orm::{ActiveValue::Set, EntityTrait};
    let id = uuid::Uuid::now_v7().simple().to_string();
    approval::Entity::insert(approval::ActiveModel {
        id: Set(id.clone()),
        decision: Set("approve".into()),
        scope: Set("package".into()),
        package: Set(Some(package.into())),
        version: Set(Some(version.into())),
        selector: Set("{\"all\":true}".into()),
        note: Set(String::new()),
        created_by: Set(who.into()),
        created_at: Set(bus_schema::now_ms()),
        expires_at: Set(None),
        revoked_at: Set(None),
        revoked_by: Set(None),
    })
    .exec(db)
    .await
    .unwrap();
    id
}

/// How many rounds the `windows` duty has run on this control plane
/// (`GET /api/v1/duties`).
pub async fn window_ticks(stack: &Stack) -> u64 {
    let (_, d) = stack.get("/duties").await;
    d["duties"]
        .as_array()
        .and_then(|ds| ds.iter().find(|x| x["name"] == "windows"))
        .and_then(|x| x["runs"].as_u64())
        .unwrap_or(0)
}

/// Waits until the `windows` duty ran `n` more rounds than now.
pub async fn wait_window_ticks(stack: &Stack, n: u64) {
    let from = window_ticks(stack).await;
    wait_for(
        &format!("{n} rounds of the window runner"),
        Duration::from_secs(60),
        || async { (window_ticks(stack).await >= from + n).then_some(()) },
    )
    .await
}

/// Points a host's agent at a boot id file the test writes (`boot_id_file`,
/// for tests only: the kernel's boot id changes only with a real reboot)
/// and restarts the agent so it reads `boot_id`; waits until the control
/// plane has stored it.
pub async fn fake_boot(stack: &Stack, host: &mut Host, file: &std::path::Path, boot_id: &str) {
    use control_plane::db::entities::agent;
    use sea_orm::EntityTrait;
    std::fs::write(file, format!("{boot_id}\n")).unwrap();
    let toml = std::fs::read_to_string(&host.agent_toml).unwrap();
    if !toml.contains("boot_id_file") {
        std::fs::write(&host.agent_toml, format!("{toml}boot_id_file = {file:?}\n")).unwrap();
    }
    host.agent.stop();
    host.agent = spawn_agent(&host.agent_toml, &host.dir);
    let db = stack.db().await;
    wait_for(
        &format!("agent {} to report boot id {boot_id}", host.id),
        Duration::from_secs(60),
        || async {
            let a = agent::Entity::find_by_id(host.id.clone())
                .one(&db)
                .await
                .ok()??;
            (a.boot_id.as_deref() == Some(boot_id)).then_some(())
        },
    )
    .await;
}

/// The host's inventory rows as (package, current, candidate, security).
pub async fn inventory_of(
    db: &sea_orm::DatabaseConnection,
    agent: &str,
) -> Vec<(String, String, String, bool)> {
    use control_plane::updates::entities::inventory;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
    inventory::Entity::find()
        .filter(inventory::Column::AgentId.eq(agent))
        .order_by_asc(inventory::Column::Package)
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                r.package,
                r.current_version,
                r.candidate_version,
                r.security,
            )
        })
        .collect()
}

/// Posts a window with each field wrong in turn: each is a 422 whose
/// message names the field.
pub async fn assert_window_fields_checked(stack: &Stack) {
    let bad: Vec<(Value, &str)> = vec![
        (json!({"days": ["monday"]}), "days"),
        (json!({"days": []}), "days"),
        (json!({"start": "25:00"}), "start"),
        (json!({"duration_minutes": 0}), "duration_minutes"),
        (json!({"duration_minutes": 1441}), "duration_minutes"),
        (json!({"timezone": "Mars/Olympus"}), "timezone"),
        (json!({"max_hosts": 0}), "max_hosts"),
        (json!({"max_percent": 101}), "max_percent"),
        (json!({"max_hosts": 1, "max_percent": 10}), "not both"),
        (json!({"max_failures": -1}), "max_failures"),
        (json!({"reboot": "always"}), "reboot"),
        (
            json!({"reboot_deadline_minutes": 0}),
            "reboot_deadline_minutes",
        ),
        (json!({"selector": {}}), "selector"),
        (json!({"selector": "host:["}), "selector"),
        (json!({"name": ""}), "name"),
    ];
    for (patch, says) in bad {
        let mut body = open_now("other", patch.clone());
        if let (Some(o), Some(p)) = (body.as_object_mut(), patch.as_object()) {
            for (k, v) in p {
                o.insert(k.clone(), v.clone());
            }
        }
        let (code, e) = stack.post("/windows", &body).await;
        assert_eq!(code, 422, "{patch}: {e}");
        assert!(e["error"].as_str().unwrap().contains(says), "{patch}: {e}");
    }
}

/// `drover windows add|list|remove` against the stack: the JSON of `add`,
/// the table of `list`, a bad field refused with the API's words, and the
/// help's example.
pub fn assert_windows_cli(stack: &Stack) {
    let out = stack.drover(&[
        "windows",
        "add",
        "weekend",
        "--selector",
        "all",
        "--days",
        "sat,sun",
        "--start",
        "22:30",
        "--duration",
        "180",
        "--timezone",
        "Europe/Berlin",
        "--max-percent",
        "25",
        "--reboot",
        "if_required",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let added: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(added["days"], json!(["sat", "sun"]));
    assert_eq!(added["max_percent"], 25);
    let out = stack.drover(&["windows", "list"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("weekend") && table.contains("25%"),
        "{table}"
    );
    let out = stack.drover(&[
        "windows",
        "add",
        "bad",
        "--selector",
        "all",
        "--days",
        "someday",
        "--start",
        "02:00",
        "--duration",
        "60",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("days"),
        "{out:?}"
    );
    let out = stack.drover(&["windows", "remove", added["id"].as_str().unwrap(), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let help = stack.drover(&["windows", "add", "--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("Example:"));
}

/// Marks a host as needing a reboot in its patch state, as a scan that
/// found `/run/reboot-required` leaves it (for tests of the runner alone).
pub async fn seed_reboot_required(db: &sea_orm::DatabaseConnection, agent: &str) {
    use control_plane::updates::entities::host_state;
    use sea_orm::{ActiveValue::Set, EntityTrait};
    let now = bus_schema::now_ms();
    host_state::Entity::insert(host_state::ActiveModel {
        agent_id: Set(agent.into()),
        manager: Set("apt".into()),
        last_scan_at: Set(Some(now)),
        last_scan_command: Set(Some("seeded".into())),
        last_scan_status: Set(Some("succeeded".into())),
        last_scan_error: Set(None),
        upgradable: Set(0),
        security: Set(0),
        reboot_required: Set(true),
        reboot_packages: Set("[\"linux-image-amd64\"]".into()),
        reboot_since: Set(Some(now)),
        updated_at: Set(now),
    })
    .exec(db)
    .await
    .unwrap();
}

/// Asserts that no `pkg.install` or `pkg.upgrade` was ever issued to `agent`.
pub async fn assert_no_install(stack: &Stack, agent: &str) {
    let (_, cmds) = stack.get(&format!("/agents/{agent}/commands")).await;
    assert!(
        cmds["commands"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["action"] != "pkg.install" && c["action"] != "pkg.upgrade"),
        "nothing installed outside a window: {cmds}"
    );
}

/// Waits (up to 30 s) until the API shows `agent` offline.
pub async fn wait_offline(stack: &Stack, agent: &str) {
    wait_for(
        &format!("agent {agent} offline"),
        Duration::from_secs(30),
        || async {
            let (_, a) = stack.get(&format!("/agents/{agent}")).await;
            (a["status"] == "offline").then_some(())
        },
    )
    .await
}

/// Asserts the one history row of `package` on `agent` has `want`'s fields
/// and that its command was a system one requested by `requested_by`.
pub async fn assert_history(
    stack: &Stack,
    agent: &str,
    package: &str,
    want: &Value,
    requested_by: &str,
) {
    let (_, hist) = stack
        .get(&format!("/updates/history?agent={agent}&package={package}"))
        .await;
    assert_eq!(hist["total"], 1, "{hist}");
    let row = &hist["history"][0];
    for (k, v) in want.as_object().unwrap() {
        assert_eq!(&row[k], v, "{k} of {row}");
    }
    let (_, c) = stack
        .get(&format!(
            "/commands/{}",
            row["command_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(c["action"], "pkg.upgrade", "{c}");
    assert_eq!(
        (&c["source"], c["requested_by"].as_str()),
        (&json!("system"), Some(requested_by))
    );
}

/// Waits (up to 60 s) until the fixture's `shutdown` double has been run at
/// least `n` times; returns its calls. A run host says `rebooting` once
/// the command is issued; the double runs when the host has it.
pub async fn wait_shutdown_calls(repo: &AptRepo, n: usize) -> Vec<Vec<String>> {
    wait_for(
        &format!("{n} call(s) of the shutdown double"),
        Duration::from_secs(60),
        || async {
            let c = repo.shutdown_calls();
            (c.len() >= n).then_some(c)
        },
    )
    .await
}

/// The Windows page and its form's request as the browser sends it (the
/// selector in its text form, days as a list, empty numbers as null):
/// refused without the CSRF token and for viewers, taken from an
/// operator; the page shows the window, the form only to operators, and is
/// in the navigation; the history page renders with its export link.
pub async fn assert_windows_page_and_form(stack: &Stack, pw: &str) {
    stack.add_user("olga", "operator", pw);
    stack.add_user("vic", "viewer", pw);
    let olga = stack.login("olga", pw).await;
    let vic = stack.login("vic", pw).await;
    let form = json!({
        "name": "from-the-page", "selector": "all", "days": ["mon", "fri"], "start": "03:15",
        "duration_minutes": 90, "timezone": "UTC", "max_hosts": null, "max_percent": 50,
        "max_failures": null, "reboot": "if_required", "reboot_deadline_minutes": 15,
    });
    let (code, _) = olga
        .send(reqwest::Method::POST, "/api/v1/windows", Some(&form), false)
        .await;
    assert_eq!(code, 403, "no CSRF token");
    let (code, _) = vic
        .send(reqwest::Method::POST, "/api/v1/windows", Some(&form), true)
        .await;
    assert_eq!(code, 403, "viewers do not add windows");
    let (code, w3) = olga
        .send(reqwest::Method::POST, "/api/v1/windows", Some(&form), true)
        .await;
    assert_eq!(code, 201, "{w3}");
    let (code, html) = olga.get_html("/windows").await;
    assert_eq!(code, 200);
    assert!(
        html.contains("from-the-page") && html.contains("Add window"),
        "{html}"
    );
    assert!(html.contains("href=\"/windows\""), "in the navigation");
    let (_, html) = vic.get_html("/windows").await;
    assert!(html.contains("from-the-page") && !html.contains("Add window"));
    let (code, html) = vic.get_html("/updates/history?since=7d").await;
    assert_eq!(code, 200);
    assert!(
        html.contains("Export CSV") && html.contains("No installs match"),
        "{html}"
    );
}
