//! Helpers for rollout tests and the rollout bench: a release row put into
//! `agent_releases` directly (publishing is tested elsewhere), a fleet of
//! `drover-agent simulate` agents that fake the install, and waiting on a
//! rollout through the API. Owns no assertion about rollouts.

use std::path::Path;
use std::time::Duration;

use sea_orm::{ActiveValue::Set, EntityTrait};
use serde_json::Value;

use super::*;

/// The version simulated fleets start at.
pub const SIM_FROM_VERSION: &str = "1.0.0";

/// The release key rollout tests sign with: a fixed seed, for tests only.
pub fn test_release_signer() -> bus_schema::signing::release::ReleaseSigner {
    bus_schema::signing::release::ReleaseSigner::from_seed(&[7; 32])
}

/// Restarts the control plane pinning [`test_release_signer`]'s public
/// half as its `release_key`, as an operator configures it: without one,
/// every `agent.update` is refused at submission.
pub async fn pin_test_release_key(stack: &mut Stack) {
    let key = test_release_signer().public().to_base64();
    stack
        .restart_cp_with(&[("DROVER_RELEASE_KEY", key.as_str())])
        .await;
}

/// Inserts a release `version` for this platform, signed by
/// [`test_release_signer`] (the simulator does not check the bytes; the
/// control plane checks the signature at submission); returns its id.
pub async fn insert_release(stack: &Stack, version: &str) -> String {
    use bus_schema::signing::release::{manifest_for, platform};
    let bytes = format!("simulated drover-agent {version}").into_bytes();
    let m = manifest_for(
        &bytes,
        version,
        &platform(),
        "stable",
        "",
        "",
        bus_schema::now_ms(),
    );
    let (text, sig) = test_release_signer().sign(&m).unwrap();
    let id = uuid::Uuid::now_v7().simple().to_string();
    use control_plane::agent_releases::entity as release;
    release::Entity::insert(release::ActiveModel {
        id: Set(id.clone()),
        version: Set(version.into()),
        platform: Set(platform()),
        channel: Set("stable".into()),
        sha256: Set(m.sha256.clone()),
        size: Set(m.size as i64),
        manifest: Set(text),
        signature: Set(sig),
        min_control_plane: Set(String::new()),
        notes: Set(String::new()),
        object_name: Set(m.object_name()),
        published_at: Set(bus_schema::now_ms()),
        published_by: Set("test".into()),
        yanked_at: Set(None),
        yanked_by: Set(None),
        yank_reason: Set(None),
    })
    .exec(&stack.db().await)
    .await
    .unwrap();
    id
}

/// Marks a release yanked, as `drover releases yank` would.
pub async fn yank_release(stack: &Stack, id: &str) {
    use control_plane::agent_releases::entity as release;
    release::Entity::update(release::ActiveModel {
        id: Set(id.into()),
        yanked_at: Set(Some(bus_schema::now_ms())),
        yanked_by: Set(Some("test".into())),
        yank_reason: Set(Some("broken on arm".into())),
        ..Default::default()
    })
    .exec(&stack.db().await)
    .await
    .unwrap();
}

/// `count` simulated agents at [`SIM_FROM_VERSION`] heartbeating every
/// second, state kept in `dir` (so the process can stop and come back),
/// plus `extra` flags; waits until they are up and returns the process
/// and their ids.
pub async fn sim_fleet(
    stack: &Stack,
    token: &str,
    count: usize,
    dir: &Path,
    extra: &[&str],
) -> (Proc, Vec<String>) {
    std::fs::create_dir_all(dir).unwrap();
    let ids_file = dir.join("ids");
    let mut args: Vec<std::ffi::OsString> = vec![
        "--state-dir".into(),
        dir.into(),
        "--ids-file".into(),
        ids_file.clone().into(),
        "--agent-version".into(),
        SIM_FROM_VERSION.into(),
        "--prefix".into(),
        dir.file_name().unwrap().into(),
    ];
    args.extend(extra.iter().map(|s| s.into()));
    let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let log = format!("{}.log", dir.file_name().unwrap().to_string_lossy());
    let p = stack.spawn_simulate(count, token, 1, &refs, &log);
    wait_for("the simulated fleet", Duration::from_secs(120), || async {
        p.log_text().contains("ready ").then_some(())
    })
    .await;
    let ids: Vec<String> = std::fs::read_to_string(&ids_file)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    for id in &ids {
        stack.wait_online(id).await;
    }
    (p, ids)
}

/// Restarts a simulated fleet kept in `dir` (same identities).
pub fn sim_restart(stack: &Stack, token: &str, count: usize, dir: &Path) -> Proc {
    let args: Vec<std::ffi::OsString> = vec![
        "--state-dir".into(),
        dir.into(),
        "--agent-version".into(),
        SIM_FROM_VERSION.into(),
        "--prefix".into(),
        dir.file_name().unwrap().into(),
    ];
    let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    stack.spawn_simulate(count, token, 1, &refs, "restarted.log")
}

/// `GET /rollouts/<id>` until `pred` holds (at most `max`).
pub async fn wait_rollout(
    stack: &Stack,
    id: &str,
    what: &str,
    max: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    wait_for(what, max, || async {
        let (code, v) = stack.get(&format!("/rollouts/{id}")).await;
        assert_eq!(code, 200, "{v}");
        pred(&v).then_some(v)
    })
    .await
}

/// How many runs the `rollouts` duty has finished on this replica.
pub async fn rollout_ticks(stack: &Stack) -> u64 {
    let (_, v) = stack.get("/duties").await;
    v["duties"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["name"] == "rollouts"))
        .and_then(|d| d["runs"].as_u64())
        .unwrap_or(0)
}

/// Waits until the rollouts duty has finished `n` more runs (so a whole
/// round ran after whatever happened before the call).
pub async fn wait_rollout_ticks(stack: &Stack, n: u64) {
    let start = rollout_ticks(stack).await;
    wait_for(
        "the rollouts duty to run",
        Duration::from_secs(30),
        || async { (rollout_ticks(stack).await >= start + n).then_some(()) },
    )
    .await;
}

/// Hosts of a rollout's detail that were sent an update.
pub fn sent(v: &Value) -> usize {
    v["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| !h["command_id"].is_null())
        .count()
}
