//! What a compromised host or a hostile publisher can do: connect with an
//! agent's real credentials and sign with its key, and craft pathological
//! MessagePack. Assertions about the product's answers stay in the tests.

use super::*;

/// A client holding one agent's real credentials (its user JWT and seed),
/// with the agent's own inbox prefix: what a compromised host can do.
pub async fn agent_client(stack: &Stack, host: &Host) -> async_nats::Client {
    agent_connect_options(host)
        .connect(stack.nats.url())
        .await
        .unwrap()
}

/// The connect options of [`agent_client`], for tests that add their own
/// (reconnect limits, [`record_server_errors`]) before connecting.
pub fn agent_connect_options(host: &Host) -> async_nats::ConnectOptions {
    let jwt = std::fs::read_to_string(host.state_dir.join("agent.jwt")).unwrap();
    let kp = std::sync::Arc::new(agent_key(host));
    async_nats::ConnectOptions::with_jwt(jwt.trim().to_string(), move |nonce| {
        let kp = kp.clone();
        async move { kp.sign(&nonce).map_err(async_nats::AuthError::new) }
    })
    .custom_inbox_prefix(bus_schema::subjects::inbox_prefix(&host.id))
}

/// A client with the shared enrolment-only credentials, as a new host has.
pub async fn enrolling_client(stack: &Stack) -> async_nats::Client {
    async_nats::ConnectOptions::with_credentials_file(stack.data_dir.join("enroll.creds"))
        .await
        .unwrap()
        .custom_inbox_prefix(bus_schema::subjects::ENROLL_INBOX_PREFIX)
        .connect(stack.nats.url())
        .await
        .unwrap()
}

/// The broker's complaints to one client (e.g. `Permissions Violation for
/// Publish to ...`), in the order they arrived.
pub type ServerErrors = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// `opts` with an event callback that records every error message the
/// broker sends the client, and the record it fills.
pub fn record_server_errors(
    opts: async_nats::ConnectOptions,
) -> (async_nats::ConnectOptions, ServerErrors) {
    let events = ServerErrors::default();
    let ev = events.clone();
    let opts = opts.event_callback(move |e| {
        let ev = ev.clone();
        async move {
            if let async_nats::Event::ServerError(async_nats::ServerError::Other(s)) = e {
                ev.lock().unwrap().push(s);
            }
        }
    });
    (opts, events)
}

/// The agent's own signing key pair, read from its state directory.
pub fn agent_key(host: &Host) -> nkeys::KeyPair {
    let seed = std::fs::read_to_string(host.state_dir.join("agent.seed")).unwrap();
    nkeys::KeyPair::from_seed(seed.trim()).unwrap()
}

/// `{"x": [[...nil...]]}` in MessagePack with `arrays` nested arrays under
/// the map: nesting depth `arrays + 1`. `nested_msgpack(1000)` is the ~1 KB
/// message that once overflowed a worker thread's stack.
pub fn nested_msgpack(arrays: usize) -> Vec<u8> {
    let mut v = b"\x81\xa1x".to_vec();
    v.extend(std::iter::repeat_n(0x91u8, arrays));
    v.push(0xc0);
    v
}
