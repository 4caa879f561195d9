//! Access that ends while sockets are open: a member removed from a tenant, or a user erased.
//! The api publishes it on `{prefix}realtime:access` after the change has committed; every
//! instance acts on its own sockets of that user: they leave `tenant:{id}` and every
//! subscription to that tenant's runs (`run:{id}` and its cursor), and the tenant leaves the
//! socket's session, so no later event of the tenant reaches them. An erased user's sockets are
//! disconnected. Pub/sub can lose a message in a Redis blip, so after each resubscription every
//! instance checks its sockets' memberships again in Postgres.
//!
//! Why a channel of our own and not the adapter's remote `leave`: socketioxide-redis 0.4 can
//! make a room's sockets leave a room on every instance, but a run subscription is a cursor in
//! the socket's session and run events reach sockets through the run feed, not through the
//! adapter; only the instance holding the socket can drop those.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt;
use sb_kernel::{TenantId, UserId};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::auth::{Principal, Session};
use super::events::{self, tenant_room};
use super::pubsub::PubSub;
use super::socket::session;
use super::{Adapter, Io};
use crate::core::me;
use crate::state::ApiState;

/// A user's access to one tenant (or, `tenant_id: None`, to everything) ended.
#[derive(Debug, Serialize, Deserialize)]
pub struct AccessEnded {
    pub user_id: UserId,
    pub tenant_id: Option<TenantId>,
}

fn channel(prefix: &str) -> String {
    format!("{prefix}realtime:access")
}

/// Tells every api instance that `user` lost `tenant` (or every tenant, when erased). Call it
/// after the commit. If Redis is down the message is lost; the check after Redis comes back
/// catches up.
pub async fn ended(state: &ApiState, user: UserId, tenant: Option<TenantId>) {
    let message = AccessEnded {
        user_id: user,
        tenant_id: tenant,
    };
    let Ok(body) = serde_json::to_vec(&message) else {
        return;
    };
    let mut redis = state.infra.redis();
    let published: Result<i64, _> = redis::cmd("PUBLISH")
        .arg(channel(&state.prefix))
        .arg(body)
        .query_async(&mut redis)
        .await;
    if let Err(e) = published {
        tracing::warn!(error = %e, user = %user, "could not tell the realtime edge that access ended; sockets keep the tenant's rooms until Redis is back");
    }
}

/// Acts on the channel's messages for this instance's sockets.
pub async fn listen(state: ApiState, io: Io, pubsub: PubSub, shutdown: CancellationToken) {
    let mut messages = pubsub.listen(channel(&state.prefix), 1024);
    loop {
        let message = tokio::select! {
            () = shutdown.cancelled() => return,
            message = messages.next() => message,
        };
        let Some((_, bytes)) = message else { return };
        match serde_json::from_slice::<AccessEnded>(&bytes) {
            Ok(ended) => apply(&io, &ended),
            Err(e) => tracing::warn!(error = %e, "an unreadable access message"),
        }
    }
}

fn apply(io: &Io, ended: &AccessEnded) {
    for socket in io.to(events::user_room(ended.user_id)).sockets() {
        let Some(session) = session(&socket) else {
            continue;
        };
        match ended.tenant_id {
            Some(tenant) => leave(&socket, &session, tenant),
            None => {
                let _ = socket.disconnect();
            }
        }
    }
}

/// The socket leaves `tenant`: its room, its runs' rooms and cursors, and the session's list
/// (which `subscribe` checks again after creating a cursor, so one racing this is undone).
pub fn leave(
    socket: &socketioxide::extract::SocketRef<Adapter>,
    session: &Session,
    tenant: TenantId,
) {
    session.drop_tenant(tenant);
    socket.leave(tenant_room(tenant));
    let mut runs = session.lock();
    runs.retain(|run, cursor| {
        let keep = cursor.tenant != tenant;
        if !keep {
            socket.leave(events::run_room(*run));
        }
        keep
    });
    tracing::debug!(socket = %socket.id, tenant = %tenant, "access ended: left the tenant's rooms");
}

/// After each resubscription (a message may have been lost meanwhile), people's sockets are
/// checked against their memberships in Postgres, one query per user.
pub async fn recheck(state: ApiState, io: Io, pubsub: PubSub, shutdown: CancellationToken) {
    let mut changes = pubsub.resubscriptions();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = changes.changed() => if changed.is_err() { return },
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut by_user: HashMap<UserId, Vec<_>> = HashMap::new();
        for socket in io.sockets() {
            if let Some(session) = session(&socket)
                && let Principal::User { user, .. } = &session.principal
            {
                by_user.entry(*user).or_default().push((socket, session));
            }
        }
        for (user, sockets) in by_user {
            let memberships = match me::memberships(&state, user).await {
                Ok(list) => list,
                Err(e) => {
                    tracing::warn!(error = %e.detail, "could not check sockets' memberships again");
                    break;
                }
            };
            for (socket, session) in sockets {
                for tenant in session.tenants() {
                    if !memberships.iter().any(|m| m.tenant_id == tenant.as_uuid()) {
                        leave(&socket, &session, tenant);
                    }
                }
            }
        }
    }
}
