//! What every api instance runs for its own sockets: the run feed, key invalidations, the
//! catch-up after Redis came back, and the watch that disconnects sockets whose credential
//! expired or was revoked.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;
use sb_contracts::invalidation::{self, Invalidation};
use sb_contracts::realtime::{TenantUsage, usage_channel};
use sb_kernel::{ApiKeyId, TenantId};
use socketioxide::extract::SocketRef;
use tokio_util::sync::CancellationToken;

use super::auth::{Principal, Session};
use super::events::{self, FeedItem, KEY_REVOKED, KeyRevoked, USAGE_TICK, UsageTick, metrics};
use super::feed;
use super::pubsub::PubSub;
use super::socket::session;
use super::{Adapter, Io};
use crate::core::tokens::Claims;
use crate::core::{key_auth, sessions};
use crate::state::ApiState;

/// How often sockets' credentials are checked against expiry and the deny-list.
const WATCH_EVERY: Duration = Duration::from_secs(2);

/// Delivers run events from the feed channel to this instance's subscribed sockets.
pub async fn run_feed(state: ApiState, io: Io, pubsub: PubSub, shutdown: CancellationToken) {
    let mut messages = pubsub.listen(events::feed_channel(&state.prefix), 16_384);
    loop {
        let message = tokio::select! {
            () = shutdown.cancelled() => return,
            message = messages.next() => message,
        };
        let Some((_, bytes)) = message else { return };
        match serde_json::from_slice::<FeedItem>(&bytes) {
            Ok(item) => dispatch(&state, &io, &item),
            Err(e) => tracing::warn!(error = %e, "an unreadable run feed message"),
        }
    }
}

/// Hands a run event to each local socket subscribed to its run: the next event goes out at
/// once; anything else (a replay holds the cursor, a hole to fill) in a task of its own.
fn dispatch(state: &ApiState, io: &Io, item: &FeedItem) {
    let run = item.event.run_id;
    for socket in io.to(events::run_room(run)).sockets() {
        let Some(cursor) = session(&socket).and_then(|s| s.cursor(run)) else {
            continue;
        };
        if cursor.tenant != item.tenant_id {
            continue;
        }
        if let Ok(mut last) = cursor.last.try_lock() {
            if item.event.seq <= *last {
                continue;
            }
            if item.event.seq == *last + 1 && feed::try_send(&socket, cursor.tenant, &item.event) {
                *last = item.event.seq;
                continue;
            }
        }
        let (state, event) = (state.clone(), item.event.clone());
        tokio::spawn(async move {
            if let Err(e) = feed::deliver(&state, &socket, &cursor, &event).await {
                tracing::warn!(error = %e.detail, run = %event.run_id, "could not deliver a run event");
            }
        });
    }
}

/// After each resubscription (Redis restarted or the connection dropped), every local
/// subscription catches up from Postgres on what pub/sub lost meanwhile.
pub async fn resubscribed(state: ApiState, io: Io, pubsub: PubSub, shutdown: CancellationToken) {
    let mut changes = pubsub.resubscriptions();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = changes.changed() => if changed.is_err() { return },
        }
        // Subscriptions are confirmed one channel at a time: let them all land first.
        tokio::time::sleep(Duration::from_millis(200)).await;
        for socket in io.sockets() {
            let Some(session) = session(&socket) else {
                continue;
            };
            let cursors: Vec<_> = session.lock().values().cloned().collect();
            for cursor in cursors {
                let (state, socket) = (state.clone(), socket.clone());
                tokio::spawn(async move {
                    if let Err(e) = feed::resume(&state, &socket, &cursor).await {
                        tracing::warn!(error = %e.detail, "could not catch a subscription up");
                    }
                });
            }
        }
    }
}

/// Key invalidations (the gateways' channel): a revoked, expired or deleted key's sockets get
/// `key.revoked` and are disconnected; its tenant's other sockets get `key.revoked` too.
/// Every instance hears the message and acts on its own sockets only.
pub async fn invalidations(state: ApiState, io: Io, pubsub: PubSub, shutdown: CancellationToken) {
    let mut messages = pubsub.listen(invalidation::channel(&state.prefix), 1024);
    loop {
        let message = tokio::select! {
            () = shutdown.cancelled() => return,
            message = messages.next() => message,
        };
        let Some((_, bytes)) = message else { return };
        let text = String::from_utf8_lossy(&bytes);
        if let Some(Invalidation::ApiKey(id)) = Invalidation::decode(&text)
            && let Err(e) = key_changed(&state, &io, ApiKeyId::from_uuid(id)).await
        {
            tracing::warn!(error = %e.detail, key = %id, "could not check a changed key");
        }
    }
}

async fn key_changed(state: &ApiState, io: &Io, key: ApiKeyId) -> crate::error::ApiResult<()> {
    let tenant = match key_auth::still_valid(state, key).await? {
        Some((_, true)) => return Ok(()),
        Some((tenant, false)) => Some(tenant),
        None => None,
    };
    let sockets = io.to(events::key_room(key)).sockets();
    let tenant = tenant.or_else(|| {
        sockets
            .iter()
            .find_map(|s| session(s).and_then(|s| s.tenants().first().copied()))
    });
    if let Some(tenant) = tenant {
        let room = io.to(events::tenant_room(tenant));
        let count = room.clone().sockets().len();
        let payload = KeyRevoked {
            tenant_id: tenant,
            at: Utc::now(),
            key_id: key.as_uuid(),
        };
        if room.local().emit(KEY_REVOKED, &payload).await.is_ok() {
            metrics::sent(KEY_REVOKED, count);
        }
    }
    for socket in sockets {
        let _ = socket.disconnect();
    }
    Ok(())
}

/// Disconnects sockets whose access token or key expired, or whose token was revoked
/// (logout, every session of the user ended): the tokens are checked against the deny-list
/// a few hundred per Redis round trip.
pub async fn watch(state: ApiState, io: Io, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(WATCH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = Utc::now();
        let mut ended = Vec::new();
        let mut users: Vec<(SocketRef<Adapter>, Arc<Session>)> = Vec::new();
        for socket in io.sockets() {
            let Some(session) = session(&socket) else {
                continue;
            };
            if session.expires_at().is_some_and(|at| at <= now) {
                ended.push(socket);
            } else if matches!(session.principal, Principal::User { .. }) {
                users.push((socket, session));
            }
        }
        for chunk in users.chunks(500) {
            let claims: Vec<&Claims> = chunk
                .iter()
                .filter_map(|(_, s)| match &s.principal {
                    Principal::User { claims, .. } => Some(&**claims),
                    Principal::Key(_) => None,
                })
                .collect();
            match sessions::revoked_among(&state, &claims).await {
                Ok(revoked) => ended.extend(
                    chunk
                        .iter()
                        .zip(revoked)
                        .filter(|(_, revoked)| *revoked)
                        .map(|((socket, _), _)| socket.clone()),
                ),
                Err(e) => {
                    tracing::warn!(error = %e.detail, "could not check sockets' tokens against the deny-list");
                    break;
                }
            }
        }
        for socket in ended {
            tracing::debug!(socket = %socket.id, "credential expired or revoked: disconnecting");
            let _ = socket.disconnect();
        }
    }
}

/// Sums the ledger's per-batch totals and sends each tenant's local sockets a `usage.tick` at
/// most once a second. Every instance hears every batch and speaks only to its own sockets,
/// so each socket gets one tick however many instances there are.
pub async fn usage_ticks(state: ApiState, io: Io, pubsub: PubSub, shutdown: CancellationToken) {
    let mut messages = pubsub.listen(usage_channel(&state.prefix), 4096);
    let mut pending: HashMap<TenantId, TenantUsage> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            message = messages.next() => {
                let Some((_, bytes)) = message else { return };
                let Ok(batch) = serde_json::from_slice::<Vec<TenantUsage>>(&bytes) else {
                    tracing::warn!("an unreadable usage totals message");
                    continue;
                };
                for usage in batch {
                    pending
                        .entry(usage.tenant_id)
                        .and_modify(|total| total.add(&usage))
                        .or_insert(usage);
                }
            }
            _ = tick.tick() => {
                for (tenant, usage) in pending.drain() {
                    let room = io.to(events::tenant_room(tenant)).local();
                    let count = room.clone().sockets().len();
                    if count == 0 {
                        continue;
                    }
                    let tick = UsageTick { at: Utc::now(), usage: &usage };
                    if room.emit(USAGE_TICK, &tick).await.is_ok() {
                        metrics::sent(USAGE_TICK, count);
                    }
                }
            }
        }
    }
}
