//! Unit tests of manifests: parsing, loading, inputs and masking.

use super::*;
use serde_json::json;

const YML: &str = r#"
id: demo
name: Demo
version: "1.0"
description: A demo app
category: web
inputs:
  - name: server_name
    type: hostname
    label: Server name
    required: true
  - name: enable_tls
    type: boolean
    label: TLS
    default: false
  - name: tls_email
    type: email
    label: Email for certificates
    required: true
    visible_if: { enable_tls: true }
  - name: admin_password
    type: password
    label: Admin password
    min_length: 12
  - name: flavour
    type: select
    label: Flavour
    allowed_values: [small, large]
    default: small
scripts: { install: install.sh }
timeout_secs: 600
idempotent: true
"#;

fn demo() -> Manifest {
    Manifest::parse(YML, Path::new("demo/manifest.yml")).unwrap()
}

#[test]
fn visible_if_hides_and_shows() {
    let m = demo();
    let ok = m
        .check_inputs(json!({"server_name": "example.org"}).as_object().unwrap())
        .unwrap();
    assert!(!ok.contains_key("tls_email"));
    assert_eq!(ok["flavour"], "small");
    let err = m
        .check_inputs(
            json!({"server_name": "example.org", "enable_tls": true})
                .as_object()
                .unwrap(),
        )
        .unwrap_err();
    assert_eq!(err[0].field, "tls_email");
}

#[test]
fn hidden_inputs_chain_are_ignored_and_compare_as_text() {
    let yml = YML.replace(
        "    visible_if: { enable_tls: true }\n",
        "    visible_if: { enable_tls: true }\n  - name: ocsp\n    type: string\n    label: OCSP\n    required: true\n    visible_if: { tls_email: [\"a@b.org\"] }\n",
    );
    let m = Manifest::parse(&yml, Path::new("x")).unwrap();
    // tls_email hidden: the ocsp it would show is not required.
    let r = m
        .resolve_inputs(
            json!({"server_name": "x.org", "tls_email": "a@b.org", "ocsp": "1"})
                .as_object()
                .unwrap(),
        )
        .unwrap();
    let ignored: Vec<&str> = r.ignored.iter().map(|i| i.field.as_str()).collect();
    assert_eq!(ignored, vec!["tls_email", "ocsp"]);
    assert!(!r.kept.contains_key("tls_email") && !r.checked.contains_key("ocsp"));
    assert_eq!(r.kept.len(), 1);
    // "true" shows what true shows.
    let err = m
        .check_inputs(
            json!({"server_name": "x.org", "enable_tls": "true"})
                .as_object()
                .unwrap(),
        )
        .unwrap_err();
    assert_eq!(err[0].field, "tls_email");
}

#[test]
fn manifest_faults_are_named() {
    let looped = YML.replace(
        "    default: false\n",
        "    default: false\n    visible_if: { tls_email: x@y.org }\n",
    );
    let e = Manifest::parse(&looped, Path::new("x")).unwrap_err();
    assert!(e.to_string().contains("loop"), "{e}");
    let bad_default = YML.replace("default: small", "default: huge");
    let e = Manifest::parse(&bad_default, Path::new("x")).unwrap_err();
    assert!(e.to_string().contains("default"), "{e}");
}

#[test]
fn hostile_values_are_refused_and_env_is_upper_case() {
    let m = demo();
    for bad in ["a;reboot", "$(reboot)", "`id`", "a\nb", "../etc"] {
        let r = m.check_inputs(json!({"server_name": bad}).as_object().unwrap());
        assert!(r.is_err(), "{bad:?}");
    }
    let r = m.check_inputs(
        json!({"server_name": "x.org", "nope": 1})
            .as_object()
            .unwrap(),
    );
    assert!(r.is_err());
    let ok = m
        .check_inputs(
            json!({"server_name": "x.org", "admin_password": "correct horse battery"})
                .as_object()
                .unwrap(),
        )
        .unwrap();
    let env = m.env(&ok);
    assert!(env.contains(&("SERVER_NAME".into(), "x.org".into())));
    assert_eq!(m.secrets(&ok), vec!["correct horse battery".to_string()]);
    assert_eq!(
        scrub("pw is correct horse battery!", &m.secrets(&ok)),
        format!("pw is {MASK}!")
    );
    let masked = m.mask(json!({"admin_password": "x"}).as_object().unwrap());
    assert_eq!(masked["admin_password"], MASK);
}

/// The installers shipped in `manifests/` all load, and their scripts
/// are at least valid bash.
#[test]
fn shipped_manifests_load_and_scripts_parse() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests");
    let (good, bad) = load_all(&root);
    assert!(bad.is_empty(), "{bad:?}");
    let ids: Vec<&str> = good.iter().map(|m| m.id.as_str()).collect();
    for want in [
        "nginx",
        "mariadb",
        "redis",
        "docker",
        "postgresql",
        "caddy",
        "node-exporter",
    ] {
        assert!(ids.contains(&want), "{want} in {ids:?}");
    }
    for m in &good {
        let (_, dir) = load(&root, &m.id).unwrap();
        let mut scripts = vec![m.scripts.install.clone()];
        scripts.extend(m.scripts.uninstall.clone());
        for s in scripts {
            let p = script_path(&dir, &s).unwrap();
            let out = std::process::Command::new("bash")
                .arg("-n")
                .arg(&p)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}: {}",
                p.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

#[test]
fn ids_and_scripts_cannot_leave_the_directory() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("demo")).unwrap();
    std::fs::write(root.path().join("demo/manifest.yml"), YML).unwrap();
    std::fs::write(root.path().join("demo/install.sh"), "#!/bin/sh\n").unwrap();
    let (m, dir) = load(root.path(), "demo").unwrap();
    assert_eq!(m.id, "demo");
    assert!(script_path(&dir, "install.sh").is_ok());
    assert!(script_path(&dir, "../demo/install.sh").is_err());
    assert!(script_path(&dir, "/bin/sh").is_err());
    for bad in ["../demo", "demo/../demo", "/etc", "..", "demo;x"] {
        assert!(load(root.path(), bad).is_err(), "{bad}");
    }
    // A symlink that points out of the root is refused.
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir(outside.path().join("evil")).unwrap();
    std::fs::write(
        outside.path().join("evil/manifest.yml"),
        YML.replace("id: demo", "id: evil"),
    )
    .unwrap();
    std::os::unix::fs::symlink(outside.path().join("evil"), root.path().join("evil")).unwrap();
    assert!(matches!(
        load(root.path(), "evil"),
        Err(ManifestError::Escapes(_))
    ));
    let bad_script = YML.replace("install: install.sh", "install: ../x.sh");
    assert!(Manifest::parse(&bad_script, Path::new("x")).is_err());
}
