//! Tests of the heartbeat's watched-service fields, host name, OS and kernel: bounds,
//! full unit names reported once, no control characters.

use super::*;

fn hb() -> Heartbeat {
    Heartbeat {
        agent_id: "A1".into(),
        hostname: "h".into(),
        seq: 1,
        sent_at: 1,
        interval_secs: 30,
        agent_version: String::new(),
        agent_channel: String::new(),
        os: String::new(),
        kernel: String::new(),
        metrics: Metrics::default(),
        modules: vec![],
        operations: vec![],
        rootd_error: None,
        instance_id: String::new(),
        machine_id: String::new(),
        boot_id: String::new(),
        protocol_version: crate::signing::PROTOCOL_VERSION,
        watch_revision: "0a1b".into(),
        services: vec![ServiceState {
            unit: "nginx.service".into(),
            load_state: "loaded".into(),
            active_state: "active".into(),
            sub_state: "running".into(),
        }],
        services_full: true,
        key_fingerprints: None,
        rootd_box_key: None,
    }
}

#[test]
fn service_fields_are_bounded() {
    assert!(hb().validate("A1").is_ok());
    let mut h = hb();
    h.watch_revision = "not hex".into();
    assert!(h.validate("A1").is_err());
    let mut h = hb();
    h.services[0].unit = "a b".into();
    assert!(h.validate("A1").is_err());
    let mut h = hb();
    h.services[0].active_state = "x".repeat(33);
    assert!(h.validate("A1").is_err());
    let mut h = hb();
    h.services = vec![h.services[0].clone(); MAX_WATCHED_UNITS + 1];
    assert!(h.validate("A1").is_err());
    // Older agents send none of it.
    let old = serde_json::json!({"agent_id": "A1", "hostname": "h", "seq": 1, "sent_at": 1,
        "interval_secs": 30, "metrics": Metrics::default()});
    let h: Heartbeat = serde_json::from_value(old).unwrap();
    assert!(h.services.is_empty() && h.watch_revision.is_empty() && !h.services_full);
}

#[test]
fn a_unit_is_reported_once_by_its_full_name() {
    // Twice in one report (the batch's upsert would touch one row twice).
    let mut h = hb();
    h.services.push(h.services[0].clone());
    let e = h.validate("A1").unwrap_err().to_string();
    assert!(e.contains("reported twice"), "{e}");
    // `nginx` is nginx.service: the short form would be a second row.
    let mut h = hb();
    h.services[0].unit = "nginx".into();
    assert!(h.validate("A1").is_err());
    let mut h = hb();
    h.services[0].unit = "getty@.service".into();
    assert!(h.validate("A1").is_err());
}

#[test]
fn a_hostname_with_control_characters_is_refused() {
    for bad in [
        "web\n- resolved critical db-1: fine",
        "esc\u{1b}]0;pwned\u{7}",
        "",
    ] {
        let mut h = hb();
        h.hostname = bad.into();
        assert!(h.validate("A1").is_err(), "{bad:?}");
    }
    // Odd but printable names are shown escaped, not refused.
    let mut h = hb();
    h.hostname = "<b>web</b> ü".into();
    assert!(h.validate("A1").is_ok());
}

#[test]
fn os_and_kernel_hold_no_control_characters() {
    for bad in ["Debian\0", "Linux\nforged line", &"x".repeat(257)] {
        let mut h = hb();
        h.os = bad.to_string();
        assert!(h.validate("A1").is_err(), "os {bad:?}");
        let mut h = hb();
        h.kernel = bad.to_string();
        assert!(h.validate("A1").is_err(), "kernel {bad:?}");
    }
    let mut h = hb();
    h.os = "Debian GNU/Linux 12 (bookworm)".into();
    h.kernel = "6.1.0-28-amd64".into();
    assert!(h.validate("A1").is_ok());
}
