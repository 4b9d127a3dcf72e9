//! Watched services in tests: a `systemctl` test double whose `show`
//! answers come from per-unit state files the test edits (systemd cannot
//! run as PID 1 here, so it is a double), a host started with it, and the
//! API calls the services tests make (PUT and DELETE included). It starts
//! only what it names and asserts nothing.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::*;

/// A `systemctl` double in `dir`: `show ... -- UNIT...` prints one block
/// per unit (blank line between), `LoadState=loaded`, and the active and
/// sub state from `states/UNIT` (`failed failed`), `active running` when
/// that file is absent. Returns the program and the states directory.
pub fn systemctl_states_double(dir: &Path) -> (PathBuf, PathBuf) {
    let states = dir.join("states");
    std::fs::create_dir_all(&states).unwrap();
    std::fs::create_dir_all(dir.join("run-systemd-system")).unwrap();
    let prog = dir.join("systemctl");
    std::fs::write(
        &prog,
        format!(
            "#!/bin/sh\n\
             [ \"$1\" = show ] || exit 0\n\
             seen=0; first=1\n\
             for a in \"$@\"; do\n\
               if [ $seen = 1 ]; then\n\
                 [ $first = 1 ] || echo\n\
                 first=0; st=active; sub=running\n\
                 if [ -f {states:?}/\"$a\" ]; then read st sub < {states:?}/\"$a\"; fi\n\
                 printf 'LoadState=loaded\\nActiveState=%s\\nSubState=%s\\n' \"$st\" \"$sub\"\n\
               fi\n\
               [ \"$a\" = -- ] && seen=1\n\
             done\n\
             exit 0\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
    (prog, states)
}

/// Sets what the double says of `unit` (full name): `active_state sub_state`.
pub fn set_unit_state(states: &Path, unit: &str, active: &str, sub: &str) {
    let tmp = states.join(format!(".{unit}.tmp"));
    std::fs::write(&tmp, format!("{active} {sub}\n")).unwrap();
    std::fs::rename(tmp, states.join(unit)).unwrap();
}

/// A host whose rootd uses [`systemctl_states_double`]; returns it and the
/// states directory.
pub async fn host_with_unit_states(stack: &Stack, name: &str) -> (Host, PathBuf) {
    let dir = stack.tmp.path().join(format!("{name}-systemctl"));
    let (prog, states) = systemctl_states_double(&dir);
    let host = stack
        .start_host_configured(
            name,
            &format!(
                "systemctl = {:?}\nsystemd_run_dir = {:?}\n",
                prog,
                dir.join("run-systemd-system")
            ),
        )
        .await;
    (host, states)
}

/// An admin request with any method: status and JSON answer.
pub async fn api_send(
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

/// The rows of `GET /api/v1/services{query}`.
pub async fn service_rows(stack: &Stack, query: &str) -> Vec<Value> {
    let (code, body) = stack.get(&format!("/services{query}")).await;
    assert_eq!(code, 200, "GET /services{query}: {body}");
    body["services"].as_array().cloned().unwrap_or_default()
}
