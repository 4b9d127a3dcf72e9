//! Talking to rootd directly, past the agent: genuinely signed commands and
//! the framed Unix-socket protocol, with a deadline on every answer. It
//! starts no rootd (hosts are started by `stack.rs`).

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::*;

/// A genuine command for `agent`, signed with the control plane's key, that
/// expires in a minute: for talking to rootd directly, past the agent.
pub fn signed_command(
    stack: &Stack,
    agent: &str,
    action: &str,
    params: Value,
) -> bus_schema::SignedCommand {
    let now = bus_schema::now_ms();
    stack.signer().sign(&bus_schema::Command {
        id: uuid::Uuid::now_v7().simple().to_string(),
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

/// Sends one request to rootd's socket and returns its last frame (`Done` or
/// `Refused`).
pub async fn ask_rootd(
    socket: &Path,
    signed: &bus_schema::SignedCommand,
) -> bus_schema::rootd_proto::RootFrame {
    ask_rootd_all(socket, signed).await.pop().unwrap()
}

/// How long a direct request to rootd may take before the test fails instead
/// of hanging: the slowest action asked directly is a real `pkg.scan`.
const ROOTD_ANSWER_WITHIN: Duration = Duration::from_secs(300);

/// Every frame rootd sends for one request, the final one last.
pub async fn ask_rootd_all(
    socket: &Path,
    signed: &bus_schema::SignedCommand,
) -> Vec<bus_schema::rootd_proto::RootFrame> {
    use bus_schema::rootd_proto::{RootFrame, RootRequest};
    use futures::{SinkExt, StreamExt};
    let mut framed = rootd_connection(socket).await;
    framed
        .send(bytes::Bytes::from(bus_schema::encode(&RootRequest::Run {
            command: signed.clone(),
        })))
        .await
        .unwrap();
    let frames = async {
        let mut frames = Vec::new();
        loop {
            let f = framed.next().await.expect("rootd answers").unwrap();
            let frame: RootFrame = bus_schema::codec::decode_limited(&f, None, usize::MAX).unwrap();
            let last = !matches!(frame, RootFrame::Started { .. } | RootFrame::Output { .. });
            frames.push(frame);
            if last {
                return frames;
            }
        }
    };
    tokio::time::timeout(ROOTD_ANSWER_WITHIN, frames)
        .await
        .unwrap_or_else(|_| panic!("rootd did not finish answering within {ROOTD_ANSWER_WITHIN:?}"))
}

/// The modules rootd can run on this host now, asked the way the agent asks.
pub async fn rootd_modules(socket: &Path) -> Vec<String> {
    use bus_schema::rootd_proto::{RootFrame, RootRequest};
    use futures::{SinkExt, StreamExt};
    let mut framed = rootd_connection(socket).await;
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
        RootFrame::Capabilities { modules, .. } => modules,
        other => panic!("rootd answered a capabilities request with {other:?}"),
    }
}

async fn rootd_connection(
    socket: &Path,
) -> tokio_util::codec::Framed<tokio::net::UnixStream, tokio_util::codec::LengthDelimitedCodec> {
    let stream = tokio::net::UnixStream::connect(socket).await.unwrap();
    tokio_util::codec::Framed::new(stream, bus_schema::rootd_proto::codec())
}
