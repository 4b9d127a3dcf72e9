//! `GET /readyz`: whether this replica can serve, for a load balancer.
//! Checks the database (one cheap query), the broker connection and this
//! replica's shared consumers (heartbeats, results) on the broker, each
//! bounded by [`CHECK_TIMEOUT`]; also reports, for information only,
//! whether this replica holds the duties lease. Owns the checks and the
//! response's shape; not the routing (`http/mod.rs`) nor the lease.

use std::time::Duration;

use axum::{extract::State, http::StatusCode, response::IntoResponse, Json};
use bus_schema::subjects;
use sea_orm::ConnectionTrait;
use serde_json::{json, Value};

use crate::state::AppState;

/// The longest any one check may take before it counts as failed.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /readyz` (public, nothing secret): 200 when every check passes,
/// 503 otherwise, with the body `{"ready": bool, "failing": [name...],
/// "checks": {"database": {"ok", "error"?}, "broker": {"ok", "state"},
/// "consumers": {"ok", "error"?}}, "duties_lease": {"held": bool,
/// "holder": id|null}}`. `duties_lease` never changes readiness.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let broker_up = matches!(
        state.nats.connection_state(),
        async_nats::connection::State::Connected
    );
    let (database, consumers) = tokio::join!(database(&state), consumers(&state, broker_up));
    let broker = json!({
        "ok": broker_up,
        "state": if broker_up { "connected" } else { "disconnected" },
    });
    let checks = [
        ("database", database),
        ("broker", broker),
        ("consumers", consumers),
    ];
    let failing: Vec<&str> = checks
        .iter()
        .filter(|(_, v)| v["ok"] != json!(true))
        .map(|(n, _)| *n)
        .collect();
    let ready = failing.is_empty();
    let lease = state.duties.lease().borrow().clone();
    let body = json!({
        "ready": ready,
        "failing": failing,
        "checks": checks.iter().map(|(k, v)| (k.to_string(), v.clone())).collect::<serde_json::Map<String, Value>>(),
        "duties_lease": {
            "held": lease.is_held(),
            "holder": lease.holder.as_ref().map(|h| h.id.clone()),
        },
    });
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}

/// `SELECT 1` within [`CHECK_TIMEOUT`].
async fn database(state: &AppState) -> Value {
    let q = state.db.execute_unprepared("SELECT 1");
    match tokio::time::timeout(CHECK_TIMEOUT, q).await {
        Ok(Ok(_)) => json!({"ok": true}),
        Ok(Err(e)) => json!({"ok": false, "error": short(&e.to_string())}),
        Err(_) => json!({"ok": false, "error": "timed out"}),
    }
}

/// The heartbeat and result consumers this replica pulls from still exist
/// on the broker (looked up within [`CHECK_TIMEOUT`]).
async fn consumers(state: &AppState, broker_up: bool) -> Value {
    if !broker_up {
        return json!({"ok": false, "error": "broker disconnected"});
    }
    let look = async {
        for (stream, consumer) in [
            (subjects::HB_STREAM, subjects::CP_HB_CONSUMER),
            (subjects::RES_STREAM, subjects::CP_RES_CONSUMER),
        ] {
            let s = state
                .js
                .get_stream(stream)
                .await
                .map_err(|e| format!("stream {stream}: {e}"))?;
            s.consumer_info(consumer)
                .await
                .map_err(|e| format!("consumer {consumer}: {e}"))?;
        }
        Ok::<(), String>(())
    };
    match tokio::time::timeout(CHECK_TIMEOUT, look).await {
        Ok(Ok(())) => json!({"ok": true}),
        Ok(Err(e)) => json!({"ok": false, "error": short(&e)}),
        Err(_) => json!({"ok": false, "error": "timed out"}),
    }
}

/// An error message cut to 200 characters (no paths or secrets are in
/// these, but a load balancer's log need not hold a novel).
fn short(s: &str) -> String {
    s.chars().take(200).collect()
}
