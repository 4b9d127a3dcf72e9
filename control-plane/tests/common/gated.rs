//! A test app, `gated`, whose install script runs until the test creates
//! its gate file: for holding a command "running" as long as a test needs
//! (outages, crashes, redelivery). It owns the app's manifest and a stack
//! and host that can run it; what the tests do while it runs stays in them.

use std::path::{Path, PathBuf};

use super::*;

/// An app whose install script runs until the test creates `gate` (at most
/// 300 s, so a failed test leaves no endless loop behind).
pub fn gated_manifests(root: &Path, gate: &Path) -> PathBuf {
    let dir = root.join("manifests");
    std::fs::create_dir_all(dir.join("gated")).unwrap();
    std::fs::write(
        dir.join("gated/manifest.yml"),
        "id: gated\nname: Gated\nversion: \"0.1\"\ndescription: Runs until the test opens its gate.\ncategory: test\ninputs: []\nscripts: { install: install.sh }\ntimeout_secs: 300\nidempotent: true\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("gated/install.sh"),
        format!(
            "#!/bin/sh\ni=0\nwhile [ ! -e {gate:?} ]; do\n  i=$((i + 1)); [ $i -gt 3000 ] && exit 1\n  sleep 0.1\ndone\necho opened\n"
        ),
    )
    .unwrap();
    dir
}

/// A stack (its control plane started with `cp_env`) and one host that can
/// run the `gated` app; the path is its gate.
pub async fn gated_stack(cp_env: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf, Stack, Host) {
    let tmp = tempfile::tempdir().unwrap();
    let gate = tmp.path().join("gate");
    let manifests = gated_manifests(tmp.path(), &gate);
    let mut stack = Stack::start_with_manifests(&manifests).await;
    if !cp_env.is_empty() {
        // Before the host enrols: its command consumer is made with these.
        stack.restart_cp_with(cp_env).await;
    }
    let h = stack
        .start_host_configured("h", &format!("manifests_dir = {manifests:?}"))
        .await;
    (tmp, gate, stack, h)
}
