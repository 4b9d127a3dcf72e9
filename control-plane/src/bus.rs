//! The broker side of the control plane: connecting, declaring streams and
//! consumers (idempotently, at every start), and the per-agent command queue.

use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::{
    self,
    consumer::{pull, AckPolicy, DeliverPolicy},
    stream::{DiscardPolicy, RetentionPolicy, StorageType},
    ErrorCode,
};
use bus_schema::subjects;
use tracing::{info, warn};

use crate::config::Config;

/// Connects to the broker at `cfg.nats_url` (one URL, or a comma-separated
/// list of a cluster's nodes: the client reconnects to any of them) as the user in `creds`, with
/// TLS when the configuration asks for it ([`Config::nats_tls`]: `nats_ca`,
/// `<data_dir>/tls/ca.pem`, or a `tls://` URL). Every connection the control
/// plane makes goes through here.
pub async fn connect(
    cfg: &Config,
    name: &str,
    creds: &std::path::Path,
) -> anyhow::Result<async_nats::Client> {
    let url = &cfg.nats_url;
    if let Some(ca) = cfg.nats_ca_file() {
        anyhow::ensure!(
            ca.is_file(),
            "nats_ca {} does not exist (the CA the broker's certificate is checked against)",
            ca.display()
        );
    }
    let opts = async_nats::ConnectOptions::with_credentials_file(creds)
        .await
        .with_context(|| {
            format!(
                "reading NATS credentials {} (made by `drover init`)",
                creds.display()
            )
        })?;
    cfg.nats_tls(opts)
        .name(name)
        .retry_on_initial_connect()
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Disconnected => warn!("disconnected from NATS; reconnecting"),
                async_nats::Event::Connected => info!("connected to NATS"),
                other => info!(event = %other, "NATS event"),
            }
        })
        .connect(server_addrs(url))
        .await
        .with_context(|| format!("connecting to NATS at {url}"))
}

/// The broker addresses in a comma-separated list (blank entries skipped).
pub fn server_addrs(urls: &str) -> Vec<String> {
    urls.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(String::from)
        .collect()
}

/// Waits until a client is connected (it connects in the background), so the
/// first request does not race the handshake.
pub async fn wait_connected(client: &async_nats::Client, max: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + max;
    while client.connection_state() != async_nats::connection::State::Connected {
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("not connected to NATS after {max:?}; is nats-server running, and are the credentials valid?");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    client.flush().await.context("first round trip to NATS")?;
    Ok(())
}

/// Tries of one declaration ([`declare`]) before start-up gives up.
pub const DECLARE_TRIES: u32 = 6;

/// Runs one declaration on the broker (a stream, a consumer, a bucket), in
/// at most [`DECLARE_TRIES`] tries, pausing 250 ms per try so far plus up to
/// 2 s of jitter between them. A refusal the broker gives for good (see
/// [`refused_for_good`]: a configuration it will not take, subjects another
/// stream holds, JetStream off, a limit reached) ends the tries at once;
/// any other refusal (no leader yet, too few peers so far, a name another
/// replica is creating this moment) and an unanswered request are tried
/// again. Every declaration at start-up goes
/// through here, because on a cluster two replicas that start together send
/// the same creation at the same moment, and nats-server (2.15) answers
/// neither: both requests time out although the stream is made (measured:
/// `tests/cluster_chaos.rs`, `docs/cluster.md`). The next try finds it. The
/// random pause breaks the lockstep so the two do not collide again.
/// Errors: the last try's error, with `what` in its context.
pub async fn declare<T, F, Fut>(what: &str, attempt: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    declare_paced(
        what,
        Duration::from_millis(250),
        Duration::from_secs(2),
        attempt,
    )
    .await
}

/// [`declare`] with its pauses given: `step` per try so far, plus up to
/// `jitter`.
async fn declare_paced<T, F, Fut>(
    what: &str,
    step: Duration,
    jitter: Duration,
    mut attempt: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut tries = 0u32;
    loop {
        tries += 1;
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(e) if refused_for_good(&e) => {
                return Err(e.context(format!(
                    "declaring {what}: the broker refused it (not tried again; \
                     change the configuration or the broker's, then start again)"
                )))
            }
            Err(e) if tries < DECLARE_TRIES => {
                warn!(what, try_ = tries, error = %format!("{e:#}"), "declaring on the broker failed; trying again");
                let jitter_ms = rand::random::<u64>() % (jitter.as_millis() as u64 + 1);
                tokio::time::sleep(step * tries + Duration::from_millis(jitter_ms)).await;
            }
            Err(e) => return Err(e.context(format!("declaring {what} ({DECLARE_TRIES} tries)"))),
        }
    }
}

/// JetStream API errors no later try changes: the configuration itself is
/// refused (invalid, subjects another stream holds, replicas on a single
/// server), JetStream is off, or an account or server limit is reached.
/// Only these stop start-up at once; every other code is tried again, because
/// some pass (no leader yet, too few peers so far, a name or a stream another
/// replica is creating this moment, a catch-all creation error). Source:
/// `async_nats::jetstream::ErrorCode`, from nats-server's errors.json.
const REFUSED_FOR_GOOD: [ErrorCode; 10] = [
    ErrorCode::STREAM_INVALID_CONFIG,
    ErrorCode::STREAM_SUBJECT_OVERLAP,
    ErrorCode::STREAM_REPLICAS_NOT_SUPPORTED,
    ErrorCode::JETSTREAM_NOT_ENABLED,
    ErrorCode::JETSTREAM_NOT_ENABLED_FOR_ACCOUNT,
    ErrorCode::ACCOUNT_RESOURCES_EXCEEDED,
    ErrorCode::MAXIMUM_CONSUMERS_LIMIT,
    ErrorCode::MAXIMUM_STREAMS_LIMIT,
    ErrorCode::MEMORY_RESOURCES_EXCEEDED,
    ErrorCode::STORAGE_RESOURCES_EXCEEDED,
];

/// Whether `e` is the broker's answer with one of [`REFUSED_FOR_GOOD`].
/// Other codes, timeouts, lost connections, "no responders" and errors
/// without a code are not (they may pass).
pub fn refused_for_good(e: &anyhow::Error) -> bool {
    api_error_code(e).is_some_and(|code| REFUSED_FOR_GOOD.contains(&code))
}

/// The JetStream API error code in `e` or any of its causes, when the
/// broker answered with one (`err_code`, not the HTTP-like `code`).
fn api_error_code(e: &anyhow::Error) -> Option<ErrorCode> {
    use jetstream::context::{CreateStreamError, CreateStreamErrorKind as S};
    use jetstream::context::{GetStreamError, GetStreamErrorKind as G};
    use jetstream::stream::{ConsumerError, ConsumerErrorKind as C};
    // async-nats keeps the broker's answer in the error's kind, never as a
    // cause of its own; other errors (a KV bucket's) hold these as causes.
    e.chain().find_map(|cause| {
        let answer = if let Some(x) = cause.downcast_ref::<CreateStreamError>() {
            match x.kind() {
                S::JetStream(j) => Some(j),
                _ => None,
            }
        } else if let Some(x) = cause.downcast_ref::<GetStreamError>() {
            match x.kind() {
                G::JetStream(j) => Some(j),
                _ => None,
            }
        } else if let Some(x) = cause.downcast_ref::<ConsumerError>() {
            match x.kind() {
                C::JetStream(j) => Some(j),
                _ => None,
            }
        } else {
            None
        };
        answer.map(|j| j.error_code())
    })
}

/// Declares every stream Drover uses. Safe to run on every start and from
/// every replica: an existing stream is updated to this configuration.
pub async fn ensure_streams(js: &jetstream::Context, cfg: &Config) -> anyhow::Result<()> {
    let streams = [
        jetstream::stream::Config {
            name: subjects::HB_STREAM.into(),
            description: Some("agent heartbeats and metrics".into()),
            subjects: vec![subjects::HB_ALL.into()],
            max_age: Duration::from_secs(600),
            max_messages_per_subject: 10,
            storage: StorageType::File,
            num_replicas: cfg.stream_replicas,
            ..Default::default()
        },
        jetstream::stream::Config {
            name: subjects::RES_STREAM.into(),
            description: Some("command results, signed by agents".into()),
            subjects: vec![subjects::RES_ALL.into(), subjects::SEC_ALL.into()],
            max_age: Duration::from_secs(7 * 24 * 3600),
            storage: StorageType::File,
            num_replicas: cfg.stream_replicas,
            ..Default::default()
        },
        jetstream::stream::Config {
            name: subjects::OUT_STREAM.into(),
            description: Some("output lines of running commands".into()),
            subjects: vec![subjects::OUT_ALL.into()],
            max_age: Duration::from_secs(3 * 24 * 3600),
            max_bytes: 1 << 30,
            storage: StorageType::File,
            num_replicas: cfg.stream_replicas,
            ..Default::default()
        },
    ];
    // The command shards: one subject and one consumer per agent each.
    let shards = (0..subjects::CMD_SHARDS).map(|k| {
        let (name, filter) = subjects::cmd_stream_of_shard(k);
        jetstream::stream::Config {
            name,
            description: Some("signed commands, one subject and one consumer per agent".into()),
            subjects: vec![filter],
            retention: RetentionPolicy::WorkQueue,
            // The per-agent queue cap is the broker's: a full queue refuses
            // the publish instead of dropping old work.
            max_messages_per_subject: cfg.max_pending_per_agent,
            discard: DiscardPolicy::New,
            discard_new_per_subject: true,
            allow_message_ttl: true,
            max_consumers: cfg.max_agents,
            duplicate_window: Duration::from_secs(120),
            // A backstop only: every command carries its own TTL (at most
            // 30 days, `commands::validate`), so this never cuts one short.
            max_age: Duration::from_secs(31 * 86_400),
            storage: StorageType::File,
            num_replicas: cfg.command_replicas(),
            ..Default::default()
        }
    });
    // Each replica starts at a random place in the list, so two replicas
    // starting together rarely ask for the same stream at the same moment.
    let mut all: Vec<_> = streams.into_iter().chain(shards).collect();
    let start = rand::random::<u64>() as usize % all.len();
    all.rotate_left(start);
    for s in all {
        let name = s.name.clone();
        declare(&format!("stream {name}"), || async {
            js.create_or_update_stream(s.clone()).await?;
            Ok(())
        })
        .await?;
    }
    Ok(())
}

/// The control plane's own consumers, shared by every replica.
pub async fn control_plane_consumers(
    js: &jetstream::Context,
) -> anyhow::Result<(
    jetstream::consumer::PullConsumer,
    jetstream::consumer::PullConsumer,
)> {
    let hb = js
        .get_stream(subjects::HB_STREAM)
        .await?
        .get_or_create_consumer(
            subjects::CP_HB_CONSUMER,
            pull::Config {
                durable_name: Some(subjects::CP_HB_CONSUMER.into()),
                // Acking the last message of a batch acks the whole batch.
                ack_policy: AckPolicy::All,
                deliver_policy: DeliverPolicy::All,
                ack_wait: Duration::from_secs(30),
                max_ack_pending: 50_000,
                ..Default::default()
            },
        )
        .await
        .context("declaring the heartbeat consumer")?;
    let res = js
        .get_stream(subjects::RES_STREAM)
        .await?
        .get_or_create_consumer(
            subjects::CP_RES_CONSUMER,
            pull::Config {
                durable_name: Some(subjects::CP_RES_CONSUMER.into()),
                ack_policy: AckPolicy::Explicit,
                deliver_policy: DeliverPolicy::All,
                ack_wait: Duration::from_secs(30),
                max_ack_pending: 50_000,
                ..Default::default()
            },
        )
        .await
        .context("declaring the result consumer")?;
    Ok((hb, res))
}

/// Deliveries of one command before the broker gives up on it.
pub const MAX_DELIVER: i64 = 5;

/// Agents whose command consumer exists on the broker.
pub async fn existing_agent_consumers(js: &jetstream::Context) -> anyhow::Result<Vec<String>> {
    use futures::StreamExt;
    let mut out = Vec::new();
    for k in 0..subjects::CMD_SHARDS {
        let stream = js
            .get_stream_no_info(subjects::cmd_stream_of_shard(k).0)
            .await?;
        let mut names = stream.consumer_names();
        while let Some(n) = names.next().await {
            if let Some(agent) = n?.strip_prefix("agent-") {
                out.push(agent.to_string());
            }
        }
    }
    Ok(out)
}

/// Creates an agent's durable command consumer if it is not there. The agent
/// itself may only read from it, never create it.
/// `ack_wait` is [`crate::config::Config::command_ack_wait`].
pub async fn ensure_agent_consumer(
    js: &jetstream::Context,
    agent: &str,
    ack_wait: Duration,
) -> anyhow::Result<()> {
    let name = subjects::agent_consumer(agent);
    let stream = js.get_stream_no_info(subjects::cmd_stream(agent)).await?;
    stream
        .get_or_create_consumer::<pull::Config>(
            &name,
            pull::Config {
                durable_name: Some(name.clone()),
                filter_subject: subjects::command(agent),
                ack_policy: AckPolicy::Explicit,
                // Redelivery with backoff, then give up (the control plane
                // hears the advisory and ends the command `failed`). A
                // running command's progress acks keep it from redelivery.
                ack_wait,
                max_deliver: MAX_DELIVER,
                backoff: vec![ack_wait, ack_wait * 2, ack_wait * 4, ack_wait * 10],
                max_ack_pending: 8,
                // State in the broker's memory: a file per consumer cost a
                // state-file rewrite per delivery and ack (two thirds of the
                // broker's CPU in a fan-out). The queue keeper duty
                // (`queues::repair`) re-declares the queues a broker
                // restart forgets.
                memory_storage: true,
                // The shard stream's replicas (a work-queue stream's
                // consumers must have them): `Config::command_replicas`,
                // weighed in `docs/cluster.md`.
                num_replicas: 0,
                ..Default::default()
            },
        )
        .await
        .with_context(|| format!("creating command consumer {name}"))?;
    Ok(())
}

/// Declares the lease bucket ([`crate::lease::BUCKET`]) with one replica:
/// [`ensure_lease_bucket_replicated`] with `replicas` 1.
pub async fn ensure_lease_bucket(
    js: &jetstream::Context,
    ttl: Duration,
) -> anyhow::Result<jetstream::kv::Store> {
    ensure_lease_bucket_replicated(js, ttl, 1).await
}

/// Declares the lease bucket ([`crate::lease::BUCKET`]): one value per key,
/// entries age out after `ttl` (an abandoned lease frees itself), `replicas`
/// copies ([`Config::stream_replicas`]: 3 on a cluster, so the lease
/// outlives a broker node). Safe on every start and from every replica.
pub async fn ensure_lease_bucket_replicated(
    js: &jetstream::Context,
    ttl: Duration,
    replicas: usize,
) -> anyhow::Result<jetstream::kv::Store> {
    js.create_or_update_key_value(jetstream::kv::Config {
        num_replicas: replicas,
        bucket: crate::lease::BUCKET.into(),
        description: "control-plane leases (which replica runs the periodic duties)".into(),
        history: 1,
        max_age: ttl,
        storage: StorageType::File,
        ..Default::default()
    })
    .await
    .with_context(|| format!("declaring the KV bucket {}", crate::lease::BUCKET))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    const STEP: Duration = Duration::from_millis(1);

    #[tokio::test]
    async fn a_declaration_left_unanswered_is_tried_again() {
        let calls = AtomicU32::new(0);
        let got = declare_paced("stream X", STEP, STEP, || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => anyhow::bail!("timed out"),
                n => Ok(n),
            }
        })
        .await
        .unwrap();
        assert_eq!(got, 2);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_declaration_that_keeps_failing_gives_up_and_says_what() {
        let calls = AtomicU32::new(0);
        let err = declare_paced("the lease bucket", STEP, STEP, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            anyhow::bail!("no responders") as anyhow::Result<()>
        })
        .await
        .unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), DECLARE_TRIES);
        let text = format!("{err:#}");
        assert!(text.contains("declaring the lease bucket"), "{text}");
        assert!(text.contains("no responders"), "{text}");
    }

    /// The broker's answer with `err_code`, as async-nats decodes it.
    fn api(err_code: u64, description: &str) -> jetstream::Error {
        serde_json::from_value(serde_json::json!({
            "code": 400, "err_code": err_code, "description": description
        }))
        .unwrap()
    }

    fn create_stream_error(err_code: u64) -> anyhow::Error {
        use jetstream::context::{CreateStreamError, CreateStreamErrorKind};
        CreateStreamError::new(CreateStreamErrorKind::JetStream(api(err_code, "refused"))).into()
    }

    #[test]
    fn refusals_for_good_are_told_from_those_that_may_pass() {
        // Subjects another stream holds, an invalid configuration: for good,
        // also under a context and inside another error (a KV bucket's).
        assert!(refused_for_good(&create_stream_error(10065)));
        assert!(refused_for_good(
            &create_stream_error(10052).context("declaring stream DROVER_HB")
        ));
        let kv = jetstream::context::CreateKeyValueError::with_source(
            jetstream::context::CreateKeyValueErrorKind::BucketCreate,
            jetstream::context::CreateStreamError::new(
                jetstream::context::CreateStreamErrorKind::JetStream(api(10052, "bad")),
            ),
        );
        assert!(refused_for_good(&anyhow::Error::from(kv)));
        let consumer = jetstream::stream::ConsumerError::new(
            jetstream::stream::ConsumerErrorKind::JetStream(api(10026, "too many consumers")),
        );
        assert!(refused_for_good(&anyhow::Error::from(consumer)));
        // No leader yet, too few peers so far, a name another replica is
        // creating now, a catch-all creation error, a code of 0, a
        // timeout, no responders: may pass.
        for code in [10004, 10005, 10008, 10009, 10058, 10049, 0] {
            assert!(!refused_for_good(&create_stream_error(code)), "{code}");
        }
        // A stream another replica made a moment ago, not yet found by the
        // next call (nats-server has answered so while a creation settles).
        let not_found = jetstream::context::GetStreamError::new(
            jetstream::context::GetStreamErrorKind::JetStream(api(10059, "stream not found")),
        );
        assert!(!refused_for_good(&anyhow::Error::from(not_found)));
        let timed_out = jetstream::context::CreateStreamError::new(
            jetstream::context::CreateStreamErrorKind::TimedOut,
        );
        assert!(!refused_for_good(&anyhow::Error::from(timed_out)));
        assert!(!refused_for_good(&anyhow::anyhow!("no responders")));
    }

    #[tokio::test]
    async fn a_refusal_for_good_is_not_tried_again_and_says_what_to_do() {
        let calls = AtomicU32::new(0);
        let err = declare_paced("stream DROVER_HB", STEP, STEP, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(create_stream_error(10065)) as anyhow::Result<()>
        })
        .await
        .unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let text = format!("{err:#}");
        assert!(text.contains("declaring stream DROVER_HB"), "{text}");
        assert!(text.contains("not tried again"), "{text}");
        assert!(text.contains("error code 10065"), "{text}");
    }
}
