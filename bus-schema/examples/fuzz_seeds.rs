//! Writes the seed corpora of the fuzz targets (`fuzz/corpus/<target>/`):
//! real messages of every type the targets decode, encoded the way Drover
//! encodes them, each prefixed with the selector byte its target reads
//! first. Every seed is decoded back here before it is written, so a seed
//! that stopped matching the wire types fails this program, not the fuzzer.
//!
//! Owns only the seeds; the targets and their checks live in `fuzz/`.
//!
//! Usage: `cargo run -p bus-schema --example fuzz_seeds -- fuzz/corpus`

use std::path::{Path, PathBuf};

use bus_schema::{codec, enroll, jobs, rootd_proto, signing};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

/// One envelope as its `envelope` selector number, type check and JSON
/// shape.
struct Seed {
    which: u8,
    name: &'static str,
    check: fn(&[u8], Option<&str>) -> Result<(), String>,
    value: Value,
}

fn is<T: DeserializeOwned>(bytes: &[u8], ct: Option<&str>) -> Result<(), String> {
    codec::decode::<T>(bytes, ct)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn seeds() -> Vec<Seed> {
    let command = json!({"id": "01J0CMD", "agent_id": "UA", "action": "sys.ping",
        "params": {"units": ["nginx.service"], "n": 3}, "issued_at": 1_700_000_000_000i64,
        "expires_at": 1_700_000_060_000i64, "timeout_secs": 30, "requested_by": "admin",
        "source": "user", "job_id": "J1"});
    let heartbeat = json!({"agent_id": "UA", "hostname": "web-1", "seq": 7, "sent_at": 5,
        "interval_secs": 30, "agent_version": "0.1.0", "agent_channel": "stable",
        "protocol_version": signing::PROTOCOL_VERSION, "watch_revision": "ab12",
        "services": [{"unit": "nginx.service", "load_state": "loaded",
            "active_state": "active", "sub_state": "running"}],
        "services_full": true, "os": "debian", "kernel": "6.1.0",
        "metrics": {"cpu_percent": 12.5, "mem_used_bytes": 1, "mem_total_bytes": 2,
            "disk_used_bytes": 3, "disk_total_bytes": 4, "load1": 0.5, "load5": 0.25,
            "load15": 0.125, "uptime_secs": 99},
        "modules": ["sys", "pkg"],
        "operations": [{"command_id": "c", "action": "sys.ping", "source": "system",
            "started_at": 1}],
        "rootd_error": null, "instance_id": "i-1", "machine_id": "m1", "boot_id": "b-1"});
    let claim = json!({"token": "drt_x", "public_key": "UA", "machine_id": "m1",
        "hostname": "web-1", "facts": {"os_id": "debian"}, "at": 1, "reply_key": "XK",
        "display_name": "web one", "labels": {"env": "prod"}, "protocol_version": 2});
    let job = json!({"selector": {"labels": {"env": "prod"}}, "action": "pkg.install",
        "params": {"packages": ["curl"]}, "timeout_secs": 60, "ttl_secs": 600,
        "idempotency_key": "k1", "issued_at": 1, "expires_at": 2});
    let signed = json!({"v": signing::PROTOCOL_VERSION, "body": [1, 2, 3],
        "signature": [4, 5, 6], "key_id": "SHA256:x"});
    vec![
        Seed {
            which: 0,
            name: "command",
            check: is::<bus_schema::Command>,
            value: command,
        },
        Seed {
            which: 1,
            name: "heartbeat",
            check: is::<bus_schema::Heartbeat>,
            value: heartbeat,
        },
        Seed {
            which: 2,
            name: "result",
            check: is::<bus_schema::CommandResult>,
            value: json!({"command_id": "c", "agent_id": "UA", "status": "succeeded",
                "exit_code": 0, "summary": "ok", "data": {"lines": [1, 2]}, "attempt": 1,
                "at": 3}),
        },
        Seed {
            which: 3,
            name: "signed_command",
            check: is::<bus_schema::SignedCommand>,
            value: signed.clone(),
        },
        Seed {
            which: 4,
            name: "output",
            check: is::<bus_schema::OutputLine>,
            value: json!({"command_id": "c", "seq": 1, "stream": "stdout", "line": "hi",
                "at": 1}),
        },
        Seed {
            which: 5,
            name: "event",
            check: is::<bus_schema::Event>,
            value: json!({"kind": "command", "command_id": "c", "agent_id": "UA",
                "action": "sys.ping", "status": "running"}),
        },
        Seed {
            which: 6,
            name: "service",
            check: is::<bus_schema::ServiceState>,
            value: json!({"unit": "nginx.service", "load_state": "loaded",
                "active_state": "active", "sub_state": "running"}),
        },
        Seed {
            which: 7,
            name: "agent_signed",
            check: is::<signing::agent::AgentSigned>,
            value: json!({"v": signing::PROTOCOL_VERSION, "body": [1], "signature": [2]}),
        },
        Seed {
            which: 8,
            name: "refusal",
            check: is::<enroll::RefusalReport>,
            value: json!({"agent_id": "UA", "reason": "bad_signature", "detail": "x",
                "at": 1}),
        },
        Seed {
            which: 9,
            name: "claim",
            check: is::<enroll::EnrollClaim>,
            value: claim.clone(),
        },
        Seed {
            which: 10,
            name: "reply",
            check: is::<enroll::EnrollReply>,
            value: json!({"status": "approved", "message": "ok", "user_jwt": "e.y.j",
                "control_plane_key": "k", "control_plane_fingerprint": "f",
                "agent_id": "UA", "claim_at": 1}),
        },
        Seed {
            which: 11,
            name: "answer",
            check: is::<enroll::EnrollAnswer>,
            value: json!({"unreadable": {"message": "bad"}}),
        },
        Seed {
            which: 12,
            name: "signed_job",
            check: is::<signing::SignedJob>,
            value: signed,
        },
        Seed {
            which: 13,
            name: "job",
            check: is::<jobs::JobSubmission>,
            value: job.clone(),
        },
        Seed {
            which: 14,
            name: "root_request",
            check: is::<rootd_proto::RootRequest>,
            value: json!({"type": "service_states", "units": ["nginx.service"]}),
        },
        Seed {
            which: 15,
            name: "root_frame",
            check: is::<rootd_proto::RootFrame>,
            value: json!({"type": "done", "status": "succeeded", "exit_code": 0,
                "summary": "ok", "data": {"a": [1, "b", null, true, 1.5]}}),
        },
        Seed {
            which: 16,
            name: "update_record",
            check: is::<rootd_proto::UpdateRecord>,
            value: json!({"command_id": "c", "from_version": "0.1.0", "to_version": "0.2.0",
                "state": "pending", "reason": "", "started_at": 1, "deadline_at": 2}),
        },
        Seed {
            which: 17,
            name: "value",
            check: is::<Value>,
            value: json!({"deep": [[{"x": [1, -2, 3.5e10, "s"]}]], "u": 18446744073709551615u64}),
        },
    ]
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).expect("corpus directory");
    std::fs::write(dir.join(name), bytes).expect("seed file");
}

fn prefixed(which: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![which];
    v.extend_from_slice(body);
    v
}

fn main() {
    let root = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz/corpus".into()),
    );
    for s in seeds() {
        let packed = codec::encode(&s.value);
        let text = serde_json::to_vec(&s.value).expect("JSON");
        if let Err(e) = (s.check)(&packed, None) {
            panic!("the {} seed does not decode: {e}", s.name);
        }
        if let Err(e) = (s.check)(&text, Some(codec::CONTENT_TYPE_JSON)) {
            panic!("the {} JSON seed does not decode: {e}", s.name);
        }
        write(
            &root.join("envelope_msgpack"),
            s.name,
            &prefixed(s.which, &packed),
        );
        write(
            &root.join("envelope_json"),
            s.name,
            &prefixed(s.which, &text),
        );
        if s.name == "heartbeat" {
            write(&root.join("heartbeat"), "msgpack", &prefixed(0, &packed));
            write(&root.join("heartbeat"), "json", &prefixed(1, &text));
        }
        if s.name.starts_with("root_") {
            let mut framed = (packed.len() as u32).to_be_bytes().to_vec();
            framed.extend_from_slice(&packed);
            write(&root.join("rootd_frames"), s.name, &framed);
        }
        if s.name == "claim" {
            write(&root.join("enroll_claim"), "claim", &prefixed(1, &packed));
            let agent =
                nkeys::KeyPair::new_from_raw(nkeys::KeyPairType::User, [9; 32]).expect("key");
            let env = codec::encode(&signing::agent::agent_sign(&agent, &s.value));
            write(&root.join("enroll_claim"), "signed", &prefixed(0, &env));
        }
        if s.name == "reply" {
            write(&root.join("enroll_claim"), "reply", &prefixed(3, &packed));
        }
        if s.name == "answer" {
            write(&root.join("enroll_claim"), "answer", &prefixed(2, &packed));
        }
        if s.name == "job" {
            write(&root.join("signed_job"), "job", &prefixed(1, &packed));
            write(
                &root.join("selector"),
                "job_json",
                &prefixed(1, &serde_json::to_vec(&s.value["selector"]).expect("JSON")),
            );
        }
        if s.name == "signed_job" {
            write(&root.join("signed_job"), "envelope", &prefixed(0, &packed));
        }
        if s.name == "command" {
            write(
                &root.join("signed_command"),
                "command",
                &prefixed(1, &packed),
            );
        }
        if s.name == "signed_command" {
            write(
                &root.join("signed_command"),
                "envelope",
                &prefixed(0, &packed),
            );
        }
    }
    for t in [
        "all",
        "label:env=prod,host:web-*",
        "id:UA,os:debian,fact:kernel=6.1.*",
    ] {
        write(
            &root.join("selector"),
            &t.replace([':', ',', '*', '='], "_"),
            &prefixed(0, t.as_bytes()),
        );
    }
    // Manifests: the ones shipped in the repository.
    let shipped = Path::new("manifests");
    if let Ok(dirs) = std::fs::read_dir(shipped) {
        for d in dirs.flatten() {
            if let Ok(text) = std::fs::read(d.path().join("manifest.yml")) {
                write(
                    &root.join("manifest"),
                    &d.file_name().to_string_lossy(),
                    &text,
                );
            }
        }
    }
    let release = json!({"name": "drover-agent", "version": "0.2.0", "platform": "linux-x86_64",
        "channel": "stable", "sha256": "00".repeat(32), "size": 10, "min_control_plane": "",
        "published_at": 1, "notes": "fixes"});
    let text = serde_json::to_string(&release).expect("JSON");
    write(
        &root.join("release_manifest"),
        "manifest",
        &prefixed(1, text.as_bytes()),
    );
    println!("seeds written under {}", root.display());
}
