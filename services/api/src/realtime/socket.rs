//! A connected socket: the rooms the server joins it to, and its two requests, `subscribe`
//! and `unsubscribe`. Clients never name a room themselves.

use std::sync::Arc;

use sb_kernel::RunId;
use serde::Deserialize;
use serde_json::json;
use socketioxide::extract::{AckSender, SocketRef, State, TryData};
use uuid::Uuid;

use super::Adapter;
use super::auth::{Principal, Session};
use super::events::{self, metrics};
use super::feed::{self, Subscribed};
use crate::state::ApiState;

/// The socket's session, set by the connect middleware.
pub fn session(socket: &SocketRef<Adapter>) -> Option<Arc<Session>> {
    socket.extensions.get::<Arc<Session>>()
}

/// The connect handler (after the middleware accepted the credential).
pub async fn connected(socket: SocketRef<Adapter>) {
    let Some(session) = session(&socket) else {
        let _ = socket.disconnect();
        return;
    };
    for tenant in session.tenants() {
        socket.join(events::tenant_room(tenant));
    }
    match &session.principal {
        Principal::User { user, .. } => socket.join(events::user_room(user)),
        Principal::Key(key) => socket.join(events::key_room(key.key)),
    }
    metrics::connected();
    socket.on_disconnect(async || metrics::disconnected());
    socket.on("subscribe", subscribe);
    socket.on("unsubscribe", unsubscribe);
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscribeRequest {
    run_id: Uuid,
    /// Replay what came after this `seq` (the last one the client saw); 0 or absent: all.
    #[serde(default)]
    after_seq: i32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnsubscribeRequest {
    run_id: Uuid,
}

fn refused(code: &str, message: &str) -> serde_json::Value {
    json!({"ok": false, "error": code, "message": message})
}

async fn subscribe(
    socket: SocketRef<Adapter>,
    TryData(request): TryData<serde_json::Value>,
    ack: AckSender<Adapter>,
    State(state): State<ApiState>,
) {
    let Some(session) = session(&socket) else {
        return;
    };
    let request = request
        .ok()
        .and_then(|v| serde_json::from_value::<SubscribeRequest>(v).ok());
    let Some(request) = request else {
        let _ = ack.send(&refused(
            "invalid_request",
            "send {run_id: <uuid>, after_seq?: <last seq seen>}",
        ));
        return;
    };
    let run = RunId::from_uuid(request.run_id);
    let answer = match feed::subscribe(&state, &socket, &session, run, request.after_seq).await {
        Ok(Subscribed::Live { tenant, last_seq }) => {
            json!({"ok": true, "run_id": run, "tenant_id": tenant, "last_seq": last_seq})
        }
        Ok(Subscribed::NotFound) => refused(
            "not_found",
            "no such run in your tenants, or it is not yours to see",
        ),
        Err(e) => {
            feed::unsubscribe(&socket, &session, run);
            tracing::warn!(error = %e.detail, run = %run, "a subscription failed");
            refused("unavailable", "the subscription failed; try again shortly")
        }
    };
    let _ = ack.send(&answer);
}

async fn unsubscribe(
    socket: SocketRef<Adapter>,
    TryData(request): TryData<serde_json::Value>,
    ack: AckSender<Adapter>,
) {
    let request = request
        .ok()
        .and_then(|v| serde_json::from_value::<UnsubscribeRequest>(v).ok());
    let (Some(session), Some(request)) = (session(&socket), request) else {
        let _ = ack.send(&refused("invalid_request", "send {run_id: <uuid>}"));
        return;
    };
    feed::unsubscribe(&socket, &session, RunId::from_uuid(request.run_id));
    let _ = ack.send(&json!({"ok": true}));
}
