//! Test helpers for secrets sealed to rootd: rootd's box key as it reports
//! it, commands signed with their secrets sealed the way the control plane
//! seals them (for tests that speak to rootd directly), and a search of
//! real files for a secret's bytes. Owns no processes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use bus_schema::sealed::{self, BoxPublicKey};
use serde_json::Value;

use super::Stack;

/// rootd's public box key, asked the way the agent asks (`Capabilities`).
pub async fn rootd_box_key(socket: &Path) -> BoxPublicKey {
    use bus_schema::rootd_proto::{RootFrame, RootRequest};
    use futures::{SinkExt, StreamExt};
    let stream = tokio::net::UnixStream::connect(socket).await.unwrap();
    let mut framed = tokio_util::codec::Framed::new(stream, bus_schema::rootd_proto::codec());
    framed
        .send(bytes::Bytes::from(bus_schema::encode(
            &RootRequest::Capabilities,
        )))
        .await
        .unwrap();
    let f = tokio::time::timeout(Duration::from_secs(20), framed.next())
        .await
        .expect("rootd answers a capabilities request within 20 s")
        .expect("rootd answers")
        .unwrap();
    match bus_schema::codec::decode_limited(&f, None, usize::MAX).unwrap() {
        RootFrame::Capabilities {
            box_key: Some(k), ..
        } => BoxPublicKey::parse(&k).unwrap(),
        other => panic!("rootd answered a capabilities request without a box key: {other:?}"),
    }
}

/// A signed command for `agent` whose values at `paths` (`password`,
/// `inputs/token`) are sealed to `key`, as the control plane sends it.
pub fn sealed_command(
    stack: &Stack,
    agent: &str,
    action: &str,
    params: Value,
    key: &BoxPublicKey,
    paths: &[&str],
) -> bus_schema::SignedCommand {
    let now = bus_schema::now_ms();
    let id = uuid::Uuid::now_v7().simple().to_string();
    let (params, _) = sealed::seal_params(key, &id, &params, |p| paths.contains(&p)).unwrap();
    stack.signer().sign(&bus_schema::Command {
        id,
        agent_id: agent.into(),
        action: action.into(),
        params,
        issued_at: now,
        expires_at: now + 60_000,
        timeout_secs: 60,
        requested_by: "test".into(),
        source: bus_schema::Source::User,
        job_id: None,
        clock_skew_ms: None,
    })
}

/// The forms of `secret` searched for: its bytes, and its base64 (padded
/// and unpadded, standard and URL-safe alphabets).
pub fn secret_forms(secret: &str) -> Vec<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let b = secret.as_bytes();
    vec![
        b.to_vec(),
        STANDARD.encode(b).into_bytes(),
        STANDARD_NO_PAD.encode(b).into_bytes(),
        URL_SAFE_NO_PAD.encode(b).into_bytes(),
    ]
}

/// Every regular file under `roots` (recursively, symlinks not followed)
/// except those under `skip`, and how many were read. Panics if a root is
/// missing, so a search never passes by looking nowhere.
pub fn files_to_search(roots: &[&Path], skip: &[&Path]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = roots
        .iter()
        .map(|r| {
            assert!(r.exists(), "{} exists", r.display());
            r.to_path_buf()
        })
        .collect();
    let mut visited = 0usize;
    while let Some(p) = stack.pop() {
        visited += 1;
        assert!(visited < 200_000, "bounded walk");
        if skip.iter().any(|s| p.starts_with(s)) {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        } else if meta.is_file() {
            out.push(p);
        }
    }
    out
}

/// The files under `roots` (minus `skip`) holding any form of `secret`.
pub fn files_with_secret(roots: &[&Path], skip: &[&Path], secret: &str) -> Vec<PathBuf> {
    let forms = secret_forms(secret);
    files_to_search(roots, skip)
        .into_iter()
        .filter(|f| {
            let Ok(bytes) = std::fs::read(f) else {
                return false;
            };
            forms
                .iter()
                .any(|n| bytes.windows(n.len()).any(|w| w == n.as_slice()))
        })
        .collect()
}

/// Whether any file under `root` holds `needle` (to prove a search looks
/// where the data is).
pub fn any_file_holds(root: &Path, needle: &str) -> bool {
    files_to_search(&[root], &[]).iter().any(|f| {
        std::fs::read(f).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
    })
}
