//! The agent's side of the rootd socket: send one signed command, relay the
//! output lines, return the outcome.

use std::path::Path;

use anyhow::Context;
use bus_schema::rootd_proto::{self, RootFrame, RootRequest};
use bus_schema::{OutputStream, SignedCommand};
use futures::{SinkExt, StreamExt};
use tokio::net::UnixStream;
use tokio_util::codec::Framed;

/// How an action ended, wherever it ran (the wire crate's one type).
pub use bus_schema::Outcome;

/// Sends `signed` to rootd and calls `on_line` for each output line.
pub async fn run(
    socket: &Path,
    signed: &SignedCommand,
    mut on_line: impl FnMut(OutputStream, String),
) -> anyhow::Result<Outcome> {
    let stream = UnixStream::connect(socket)
        .await
        .with_context(|| format!("connecting to rootd at {}", socket.display()))?;
    let mut framed = Framed::new(stream, rootd_proto::codec());
    let req = RootRequest::Run {
        command: signed.clone(),
    };
    framed
        .send(bytes::Bytes::from(bus_schema::encode(&req)))
        .await
        .context("sending the request to rootd")?;
    while let Some(frame) = framed.next().await {
        let frame = frame.context("reading from rootd")?;
        let frame: RootFrame =
            bus_schema::codec::decode_limited(&frame, None, rootd_proto::MAX_FRAME_BYTES)
                .context("rootd sent a frame we cannot read")?;
        match frame {
            RootFrame::Started { .. } => {}
            RootFrame::Output { stream, line } => on_line(stream, line),
            RootFrame::Done {
                status,
                exit_code,
                summary,
                data,
            } => {
                return Ok(Outcome {
                    status,
                    exit_code,
                    summary,
                    data,
                })
            }
            RootFrame::Refused { reason, label } => {
                let summary = format!("rootd refused ({label}): {reason}");
                // A skewed clock is a fault to fix, not a refused request.
                return Ok(if label == bus_schema::RefusalReason::ClockSkew.as_str() {
                    Outcome::failed(summary)
                } else {
                    Outcome::rejected(summary)
                });
            }
            RootFrame::Capabilities { .. }
            | RootFrame::UpdateStatus { .. }
            | RootFrame::ServiceStates { .. } => {
                anyhow::bail!("rootd answered a run request with something else")
            }
        }
    }
    anyhow::bail!("rootd closed the connection before the action finished")
}

/// What rootd says it can do: its modules, and its public box key (what
/// secrets for this host are sealed to; `None` from an older rootd).
#[derive(Debug, Clone, Default)]
pub struct RootdCapabilities {
    pub modules: Vec<String>,
    pub box_key: Option<String>,
}

/// The modules rootd can run on this host now, and its box key.
pub async fn capabilities(socket: &Path) -> anyhow::Result<RootdCapabilities> {
    let stream = UnixStream::connect(socket)
        .await
        .with_context(|| format!("connecting to rootd at {}", socket.display()))?;
    let mut framed = Framed::new(stream, rootd_proto::codec());
    framed
        .send(bytes::Bytes::from(bus_schema::encode(
            &RootRequest::Capabilities,
        )))
        .await
        .context("asking rootd for its capabilities")?;
    let frame = framed
        .next()
        .await
        .context("rootd closed the connection")?
        .context("reading from rootd")?;
    match bus_schema::codec::decode_limited(&frame, None, rootd_proto::MAX_FRAME_BYTES)
        .context("rootd sent a frame we cannot read")?
    {
        RootFrame::Capabilities {
            modules,
            missing,
            box_key,
        } => {
            for (m, why) in missing {
                tracing::debug!(module = %m, reason = %why, "rootd module unavailable");
            }
            Ok(RootdCapabilities { modules, box_key })
        }
        RootFrame::Refused { reason, label } => {
            anyhow::bail!("rootd refused ({label}): {reason}")
        }
        other => anyhow::bail!("unexpected answer from rootd: {other:?}"),
    }
}

/// The states of `units` (full names), one per unit in order, as rootd
/// reads them with `systemctl show`.
pub async fn service_states(
    socket: &Path,
    units: &[String],
) -> anyhow::Result<Vec<bus_schema::ServiceState>> {
    let stream = UnixStream::connect(socket)
        .await
        .with_context(|| format!("connecting to rootd at {}", socket.display()))?;
    let mut framed = Framed::new(stream, rootd_proto::codec());
    let req = RootRequest::ServiceStates {
        units: units.to_vec(),
    };
    framed
        .send(bytes::Bytes::from(bus_schema::encode(&req)))
        .await
        .context("asking rootd for service states")?;
    let frame = framed
        .next()
        .await
        .context("rootd closed the connection")?
        .context("reading from rootd")?;
    match bus_schema::codec::decode_limited(&frame, None, rootd_proto::MAX_FRAME_BYTES)
        .context("rootd sent a frame we cannot read")?
    {
        RootFrame::ServiceStates { states } => Ok(states),
        RootFrame::Refused { reason, label } => {
            anyhow::bail!("rootd refused ({label}): {reason}")
        }
        other => anyhow::bail!("unexpected answer from rootd: {other:?}"),
    }
}
