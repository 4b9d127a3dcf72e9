//! `GET /metrics` on a running stack (real nats-server, control plane,
//! agent and rootd): the exposition parses with a real OpenMetrics parser,
//! needs a token, names no host by default, and its counters and gauges
//! move when heartbeats and commands flow. Per-host gauges appear only
//! with `metrics_per_host`.

mod common;

use std::time::Duration;

use common::{wait_for, Stack};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_need_a_token_and_move_with_traffic() {
    let mut stack = Stack::start().await;
    let host = stack.start_host("prom-1").await;
    let (_, agent) = stack.get(&format!("/agents/{}", host.id)).await;
    let hostname = agent["hostname"].as_str().unwrap().to_string();

    // No token, no metrics; a bad one neither.
    let (code, _) = stack.metrics_raw(None).await;
    assert_eq!(code, 401);
    let (code, _) = stack.metrics_raw(Some("not-a-token")).await;
    assert_eq!(code, 401);

    let s = stack.scrape().await;
    assert_eq!(s.kind("drover_heartbeats_ingested"), Some("counter"));
    assert_eq!(s.kind("drover_results_ingested"), Some("counter"));
    assert_eq!(s.kind("drover_commands"), Some("gauge"));
    assert_eq!(s.kind("drover_consumer_pending"), Some("gauge"));
    assert_eq!(
        s.value("drover_agents", "drover_agents", &[("status", "online")]),
        Some(1.0),
        "{}",
        s.text
    );
    assert_eq!(
        s.value("drover_broker_up", "drover_broker_up", &[]),
        Some(1.0)
    );
    for q in ["heartbeats", "results", "jobs"] {
        assert!(
            s.value(
                "drover_consumer_pending",
                "drover_consumer_pending",
                &[("queue", q)]
            )
            .is_some(),
            "no backlog for {q}: {}",
            s.text
        );
    }
    assert!(
        s.value(
            "drover_stream_messages",
            "drover_stream_messages",
            &[("stream", "DROVER_HB")]
        )
        .is_some(),
        "{}",
        s.text
    );
    // The duties lease is held here and the duties have run.
    let runs = |s: &common::Scrape| {
        s.value(
            "drover_duty_runs",
            "drover_duty_runs_total",
            &[("duty", "schedules")],
        )
    };
    assert_eq!(
        s.value("drover_duties_lease_held", "drover_duties_lease_held", &[]),
        Some(1.0)
    );
    // Every metric the shipped Grafana dashboard queries is exported.
    let dash = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/grafana-dashboard.json"),
    )
    .unwrap();
    let mut names: Vec<&str> = dash
        .match_indices("drover_")
        .map(|(i, _)| {
            let rest = &dash[i..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect();
    names.sort();
    names.dedup();
    assert!(names.len() > 10, "{names:?}");
    for n in names {
        assert!(
            s.text.contains(n),
            "the dashboard queries {n}, not exported:\n{}",
            s.text
        );
    }
    // By default nothing names a host.
    assert!(!s.text.contains(&host.id), "{}", s.text);
    if hostname.len() > 3 {
        assert!(!s.text.contains(&hostname), "{}", s.text);
    }
    assert!(!s.families.contains_key("drover_host_cpu_percent"));

    // Heartbeats move the heartbeat counter.
    let hb0 = s
        .value(
            "drover_heartbeats_ingested",
            "drover_heartbeats_ingested_total",
            &[],
        )
        .unwrap();
    let runs0 = runs(&s).unwrap_or(0.0);
    wait_for(
        "the heartbeat counter to move",
        Duration::from_secs(30),
        || async {
            let s = stack.scrape().await;
            let hb = s.value(
                "drover_heartbeats_ingested",
                "drover_heartbeats_ingested_total",
                &[],
            )?;
            (hb > hb0 && runs(&s).unwrap_or(0.0) > runs0).then_some(())
        },
    )
    .await;

    // A command moves the results counter and the succeeded gauge (read
    // from the database, cached a few seconds).
    let r0 = stack
        .scrape()
        .await
        .value(
            "drover_results_ingested",
            "drover_results_ingested_total",
            &[],
        )
        .unwrap();
    let c = stack.ping(&host.id).await;
    assert_eq!(c["status"], "succeeded", "{c}");
    wait_for(
        "results and commands to show",
        Duration::from_secs(30),
        || async {
            let s = stack.scrape().await;
            let r = s.value(
                "drover_results_ingested",
                "drover_results_ingested_total",
                &[],
            )?;
            let ok = s.value(
                "drover_commands",
                "drover_commands",
                &[("status", "succeeded")],
            )?;
            (r > r0 && ok >= 1.0).then_some(())
        },
    )
    .await;

    // Per-host gauges only when asked for.
    stack
        .restart_cp_with(&[("DROVER_METRICS_PER_HOST", "true")])
        .await;
    let s = wait_for("per-host gauges", Duration::from_secs(30), || async {
        let s = stack.scrape().await;
        s.value(
            "drover_host_mem_total_bytes",
            "drover_host_mem_total_bytes",
            &[("agent", &host.id)],
        )
        .filter(|v| *v > 0.0)
        .map(|_| s)
    })
    .await;
    assert!(
        s.families.contains_key("drover_host_cpu_percent"),
        "{}",
        s.text
    );
}
