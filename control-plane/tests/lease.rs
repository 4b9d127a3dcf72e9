//! The duties lease (`control_plane::lease`) against a real nats-server:
//! two participants in this process, each on its own connection: exactly
//! one holds; a holder that dies is replaced within a bound, one whose
//! entry was overwritten stops at once, a released lease is taken over.
//! The lease's use by `drover serve` replicas is `patch_schedule.rs`'s.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use control_plane::lease::{self, Lease};

/// A plain nats-server with JetStream (no accounts) on a free port.
async fn plain_nats(dir: &Path) -> Nats {
    std::fs::create_dir_all(dir).unwrap();
    let conf = dir.join("nats.conf");
    std::fs::write(
        &conf,
        "# JetStream for the lease test\njetstream: enabled\n",
    )
    .unwrap();
    Nats::start(&dir.join("server"), &conf).await
}

async fn jetstream(url: &str) -> async_nats::jetstream::Context {
    async_nats::jetstream::new(async_nats::connect(url).await.unwrap())
}

/// Samples both participants for `window` and fails if both ever hold.
async fn never_both(a: &Lease, b: &Lease, window: Duration) {
    let end = Instant::now() + window;
    for _ in 0..1000 {
        assert!(
            !(a.is_held() && b.is_held()),
            "both participants hold the lease"
        );
        if Instant::now() >= end {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_has_one_holder_and_moves_when_it_dies_or_is_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let nats = plain_nats(tmp.path()).await;
    let ttl = Duration::from_secs(3);
    let js1 = jetstream(&nats.url()).await;
    let js2 = jetstream(&nats.url()).await;
    // The bucket as `drover serve` declares it, with a short TTL.
    let store1 = control_plane::bus::ensure_lease_bucket(&js1, ttl)
        .await
        .unwrap();
    let store2 = control_plane::bus::ensure_lease_bucket(&js2, ttl)
        .await
        .unwrap();

    let a = Lease::start(store1.clone(), lease::DUTIES_KEY, ttl)
        .await
        .unwrap();
    wait_for(
        "the first participant to take the lease",
        ttl * 2,
        || async { a.is_held().then_some(()) },
    )
    .await;
    let b = Lease::start(store2.clone(), lease::DUTIES_KEY, ttl)
        .await
        .unwrap();
    // Over more than one renewal period: exactly one holds, and the entry
    // names it.
    never_both(&a, &b, ttl).await;
    assert!(a.is_held() && !b.is_held());
    let holder = lease::current(&store2, lease::DUTIES_KEY)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(holder.id, a.id());
    assert_eq!(holder.pid, std::process::id());
    assert_eq!(
        b.subscribe().borrow().holder.as_ref().map(|h| h.id.clone()),
        Some(a.id())
    );

    // The holder dies (no release: its entry stays until it ages out).
    let killed = Instant::now();
    drop(a);
    drop(js1);
    wait_for("the second participant to take over", ttl * 3, || async {
        b.is_held().then_some(())
    })
    .await;
    let took = killed.elapsed();
    println!("lease moved to the other participant {took:?} after its holder died (TTL {ttl:?})");
    assert!(took < ttl * 2, "took {took:?}, TTL {ttl:?}");

    // Another writer overwrites the entry: the holder stops at once (it
    // watches the key), without waiting for its next renewal.
    let foreign = lease::Holder {
        id: "someone-else".into(),
        hostname: "elsewhere".into(),
        pid: 1,
        expires_at: 0,
    };
    let overwritten = Instant::now();
    store1
        .put(
            lease::DUTIES_KEY,
            serde_json::to_vec(&foreign).unwrap().into(),
        )
        .await
        .unwrap();
    wait_for("the overwritten holder to stop", ttl, || async {
        (!b.is_held()).then_some(())
    })
    .await;
    println!(
        "overwritten holder stopped after {:?}",
        overwritten.elapsed()
    );
    // The foreign entry is never renewed: it ages out and b takes it back.
    wait_for(
        "the lease to come back after the foreign entry aged out",
        ttl * 3,
        || async { b.is_held().then_some(()) },
    )
    .await;

    // A holder that stops cleanly hands over at once.
    let js3 = jetstream(&nats.url()).await;
    let store3 = js3.get_key_value(lease::BUCKET).await.unwrap();
    let c = Lease::start(store3, lease::DUTIES_KEY, ttl).await.unwrap();
    never_both(&b, &c, Duration::from_millis(500)).await;
    assert!(!c.is_held());
    let released = Instant::now();
    b.release().await;
    wait_for("a released lease to be taken", ttl, || async {
        c.is_held().then_some(())
    })
    .await;
    println!("released lease taken after {:?}", released.elapsed());
}
