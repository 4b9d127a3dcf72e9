//! `drover serve` meeting a broker that refuses one of its declarations for
//! good: it stops at once, naming the stream, the broker's error code and
//! what to do, instead of trying five more times over ~15 s. Real
//! nats-server and control plane; the refusal is made real by a stream of
//! another owner holding the subjects of Drover's output stream. Does not
//! cover the refusals that may pass (no leader yet, a name another replica
//! is creating): `bus.rs`'s unit tests and `cluster_chaos.rs` do.

mod common;

use std::time::Duration;

use async_nats::jetstream;
use common::{wait_for, Stack};

#[tokio::test]
async fn a_declaration_the_broker_refuses_for_good_stops_the_start_at_once() {
    let mut stack = Stack::start().await;
    let js = jetstream::new(stack.client().await);
    stack.cp.stop();

    // Another owner takes the subjects of Drover's output stream.
    let out = bus_schema::subjects::OUT_STREAM;
    js.delete_stream(out).await.unwrap();
    js.create_stream(jetstream::stream::Config {
        name: "NOT_DROVERS".into(),
        subjects: vec![bus_schema::subjects::OUT_ALL.into()],
        ..Default::default()
    })
    .await
    .unwrap();

    let port: u16 = stack.base.rsplit(':').next().unwrap().parse().unwrap();
    // The log file is appended to: read only what this start writes.
    let earlier = stack.cp.log_text().len();
    let mut cp = Stack::spawn_cp(&stack.data_dir, &stack.nats.url(), port);
    wait_for("drover serve to stop", Duration::from_secs(60), || {
        let stopped = !cp.running();
        async move { stopped.then_some(()) }
    })
    .await;
    let log = cp.log_text()[earlier..].to_string();
    let about_out: Vec<&str> = log.lines().filter(|l| l.contains(out)).collect();
    assert!(
        !about_out.iter().any(|l| l.contains("trying again")),
        "a refusal for good was tried again:\n{log}"
    );
    assert!(log.contains(&format!("declaring stream {out}")), "{log}");
    assert!(log.contains("not tried again"), "{log}");
    // nats-server's code for subjects another stream holds.
    assert!(log.contains("error code 10065"), "{log}");

    // Nothing was changed on the broker: the other owner's stream is
    // untouched and Drover's was not made beside it.
    let names: Vec<String> = {
        use futures::StreamExt;
        js.stream_names()
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect()
    };
    assert!(names.contains(&"NOT_DROVERS".to_string()), "{names:?}");
    assert!(!names.contains(&out.to_string()), "{names:?}");
}
