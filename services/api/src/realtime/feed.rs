//! A socket's run subscriptions: replay from Postgres, then live events, each exactly once and
//! in `seq` order.
//!
//! Each subscription has a cursor: the last `seq` delivered, behind an async lock. Subscribing
//! takes the lock, joins `run:{id}`, and only then reads the replay, so an event committed
//! meanwhile is either in the replay or arrives live after it; a live event whose `seq` is not
//! above the cursor is skipped, and one that leaves a hole (pub/sub dropped something, or
//! redeliveries came out of order) first fills the hole from Postgres. Postgres is the record;
//! Redis only says "something new".

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use sb_agents::feed;
use sb_contracts::agents::RunEvent;
use sb_kernel::{Role, RunId, TenantId};
use socketioxide::SendError;
use socketioxide::extract::SocketRef;
use tokio::sync::Mutex;

use super::Adapter;
use super::auth::{Principal, Session};
use super::events::{RunEventPayload, metrics, run_event_name};
use crate::core::access;
use crate::error::ApiResult;
use crate::state::ApiState;

/// Events read from Postgres per query during a replay.
const PAGE: i64 = 500;
/// How long a replay waits for a socket whose send buffer stays full before dropping it.
const SLOW_CLIENT: Duration = Duration::from_secs(10);

pub struct Cursor {
    pub tenant: TenantId,
    pub run: RunId,
    /// The last `seq` delivered to the socket.
    pub last: Mutex<i32>,
}

/// The socket could not take more: it is closed, or was too slow and has been disconnected.
#[derive(Debug)]
pub struct Gone;

/// Sends one run event to one socket, waiting (bounded) while its send buffer is full.
async fn send(socket: &SocketRef<Adapter>, tenant: TenantId, event: &RunEvent) -> Result<(), Gone> {
    let name = run_event_name(&event.kind);
    let payload = RunEventPayload::new(tenant, event);
    let started = tokio::time::Instant::now();
    loop {
        match socket.emit(name, &payload) {
            Ok(()) => {
                metrics::sent(name, 1);
                return Ok(());
            }
            Err(SendError::Socket(socketioxide::SocketError::InternalChannelFull))
                if started.elapsed() < SLOW_CLIENT =>
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(e) => {
                tracing::info!(socket = %socket.id, error = %e, "dropping a socket that cannot take its run events");
                let _ = socket.clone().disconnect();
                return Err(Gone);
            }
        }
    }
}

/// One attempt to send a live event (no waiting): false when the socket's buffer is full or
/// it is closed, and the caller falls back to [`deliver`].
pub fn try_send(socket: &SocketRef<Adapter>, tenant: TenantId, event: &RunEvent) -> bool {
    let name = run_event_name(&event.kind);
    let sent = socket
        .emit(name, &RunEventPayload::new(tenant, event))
        .is_ok();
    if sent {
        metrics::sent(name, 1);
    }
    sent
}

/// Delivers every event of the cursor's run after its position, from Postgres, advancing it.
/// The caller holds the cursor's lock (`last`).
async fn catch_up(
    state: &ApiState,
    socket: &SocketRef<Adapter>,
    cursor: &Cursor,
    last: &mut i32,
) -> ApiResult<Result<(), Gone>> {
    let mut tx = state.infra.app_db.begin(cursor.tenant).await?;
    loop {
        let events = feed::after(&mut tx, cursor.run, *last, PAGE).await?;
        let full = events.len() as i64 == PAGE;
        for event in &events {
            if send(socket, cursor.tenant, event).await.is_err() {
                return Ok(Err(Gone));
            }
            *last = event.seq;
        }
        if !full {
            break;
        }
    }
    tx.commit().await?;
    Ok(Ok(()))
}

/// What `subscribe` answers.
pub enum Subscribed {
    /// Replayed up to `last_seq`; live events follow.
    Live { tenant: TenantId, last_seq: i32 },
    /// No such run in any of the socket's tenants.
    NotFound,
}

/// Subscribes `socket` to `run` from `after` (exclusive): finds the run through row-level
/// security in the socket's tenants, joins its room, replays, and leaves the cursor for the
/// live events.
pub async fn subscribe(
    state: &ApiState,
    socket: &SocketRef<Adapter>,
    session: &Session,
    run: RunId,
    after: i32,
) -> ApiResult<Subscribed> {
    let Some(tenant) = owner(state, session, run).await? else {
        return Ok(Subscribed::NotFound);
    };
    let cursor = Arc::new(Cursor {
        tenant,
        run,
        last: Mutex::new(after.max(0)),
    });
    // Locked before the socket is in the room: live events wait for the replay.
    let mut last = cursor.last.lock().await;
    session.lock().insert(run, cursor.clone());
    socket.join(super::events::run_room(run));
    // Access to the tenant ended while this subscription was checked (`membership::leave`
    // drops the tenant before the cursors): undone here if the cursor came after it.
    if !session.has_tenant(tenant) {
        unsubscribe(socket, session, run);
        return Ok(Subscribed::NotFound);
    }
    if catch_up(state, socket, &cursor, &mut last).await?.is_err() {
        return Ok(Subscribed::NotFound);
    }
    Ok(Subscribed::Live {
        tenant,
        last_seq: *last,
    })
}

pub fn unsubscribe(socket: &SocketRef<Adapter>, session: &Session, run: RunId) {
    socket.leave(super::events::run_room(run));
    session.lock().remove(&run);
}

/// The tenant of the socket's that holds `run`, checked as the application role in each
/// tenant's transaction (row-level security decides, not this code). A person's membership
/// is checked again here, as REST checks it (`access::enter`): one removed from a tenant since
/// the handshake cannot subscribe to its runs.
async fn owner(state: &ApiState, session: &Session, run: RunId) -> ApiResult<Option<TenantId>> {
    for tenant in session.tenants() {
        let mut tx = match &session.principal {
            Principal::User { user, .. } => {
                match access::enter(state, *user, tenant, Role::Viewer, false).await {
                    Ok((tx, _)) => tx,
                    Err(e) if e.status == StatusCode::NOT_FOUND => continue,
                    Err(e) => return Err(e),
                }
            }
            Principal::Key(_) => state.infra.app_db.begin(tenant).await?,
        };
        let head = feed::head(&mut tx, run).await?;
        tx.commit().await?;
        if head.is_some() {
            return Ok(Some(tenant));
        }
    }
    Ok(None)
}

/// A live event for a subscribed socket: sent if it is the next one, skipped if already
/// delivered, and preceded by what is missing when it leaves a hole.
pub async fn deliver(
    state: &ApiState,
    socket: &SocketRef<Adapter>,
    cursor: &Cursor,
    event: &RunEvent,
) -> ApiResult<()> {
    let mut last = cursor.last.lock().await;
    if event.seq <= *last {
        return Ok(());
    }
    if event.seq == *last + 1 {
        if send(socket, cursor.tenant, event).await.is_ok() {
            *last = event.seq;
        }
        return Ok(());
    }
    let _ = catch_up(state, socket, cursor, &mut last).await?;
    Ok(())
}

/// After Redis came back: whatever pub/sub dropped meanwhile, from Postgres.
pub async fn resume(
    state: &ApiState,
    socket: &SocketRef<Adapter>,
    cursor: &Cursor,
) -> ApiResult<()> {
    let mut last = cursor.last.lock().await;
    let _ = catch_up(state, socket, cursor, &mut last).await?;
    Ok(())
}
