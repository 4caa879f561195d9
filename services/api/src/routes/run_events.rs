//! `GET /api/v1/tenants/{tenant_id}/runs/{id}/events`: a run's events as a resumable
//! Server-Sent Events stream, for programs that prefer plain HTTP to socket.io.
//!
//! Each event's `id:` is its `seq` in the run (only durable events carry one; heartbeats are
//! comments); a client resumes with `Last-Event-ID` (what EventSource sends by itself) or
//! `?after=`, and gets exactly the events after it. The stream follows Postgres (a short
//! poll of `agent_events` by `seq` under row-level security, so a gap is impossible whatever
//! Redis does) and ends after the run's terminal status.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use sb_agents::feed;
use sb_contracts::agents::RunEvent;
use sb_kernel::{RunId, TenantId};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::core::key_auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Id, Query, Tenant};
use crate::realtime::events::{RunEventPayload, run_event_name};
use crate::state::ApiState;

/// How often a stream with nothing new looks again.
const POLL: Duration = Duration::from_millis(250);
/// Events read per query.
const PAGE: i64 = 500;
/// The heartbeat comment's interval (proxies close idle connections).
const HEARTBEAT: Duration = Duration::from_secs(15);

pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(events))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Start after this `seq` (the last one seen); `Last-Event-ID` wins when both are sent.
    after: Option<i32>,
}

/// Who may read the tenant's runs: a member (bearer access token, any role) or a program with
/// one of the tenant's API keys (`Authorization: Bearer sb_live_…`).
pub struct Reader {
    tenant: TenantId,
}

impl FromRequestParts<ApiState> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if let Some(secret) = bearer.filter(|b| b.starts_with(sb_auth::api_key::KEY_PREFIX)) {
            let client = parts.extensions.get::<sb_runtime::ClientIp>().map(|c| c.0);
            let key = key_auth::authenticate(state, secret, client)
                .await?
                .map_err(key_auth::KeyRefusal::into_error)?;
            let in_path = axum::extract::RawPathParams::from_request_parts(parts, state)
                .await
                .ok()
                .and_then(|params| {
                    params
                        .iter()
                        .find(|(name, _)| *name == "tenant_id")
                        .and_then(|(_, v)| uuid::Uuid::parse_str(v).ok())
                });
            if in_path != Some(key.tenant.as_uuid()) {
                return Err(ApiError::not_found("tenant"));
            }
            return Ok(Self { tenant: key.tenant });
        }
        // A member: the usual extractor; its transaction is not needed past this check.
        let member = Tenant::<crate::extract::Viewer>::from_request_parts(parts, state).await?;
        Ok(Self {
            tenant: member.id(),
        })
    }
}

/// The run's events as Server-Sent Events: every event after the cursor from Postgres, then
/// new ones as they are written, until the run's terminal `run.status`. `event:` is the event
/// type, `id:` its `seq`, `data:` the event as JSON (as socket.io sends it); `: heartbeat`
/// comments every 15 s.
#[utoipa::path(get, path = "/runs/{id}/events", tag = "runs",
    params(EventsQuery,
        ("Last-Event-ID" = Option<i32>, Header, description = "Resume after this `seq` (sent by EventSource on reconnect)")),
    responses((status = 200, content_type = "text/event-stream", body = RunEventPayload,
        description = "A stream of the run's events; each `data:` is one of these")))]
async fn events(
    reader: Reader,
    axum::extract::State(state): axum::extract::State<ApiState>,
    Id(run): Id<RunId>,
    Query(query): Query<EventsQuery>,
    headers: HeaderMap,
) -> ApiResult<(
    [(HeaderName, &'static str); 1],
    Sse<impl Stream<Item = Result<Event, Infallible>>>,
)> {
    let after = match headers.get("last-event-id") {
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<i32>().ok())
            .ok_or_else(|| {
                ApiError::invalid("Last-Event-ID", "must be a run's seq (an integer)")
            })?,
        None => query.after.unwrap_or(0),
    };
    let mut tx = state.infra.app_db.begin(reader.tenant).await?;
    feed::head(&mut tx, run)
        .await?
        .ok_or_else(|| ApiError::not_found("run"))?;
    tx.commit().await?;
    let follow = Follow {
        state,
        tenant: reader.tenant,
        run,
        cursor: after.max(0),
        buffer: VecDeque::new(),
        ended: false,
    };
    let stream = futures_util::stream::unfold(follow, |mut f| async move {
        f.next().await.map(|event| (Ok(event), f))
    });
    let sse = Sse::new(stream).keep_alive(KeepAlive::new().interval(HEARTBEAT).text("heartbeat"));
    // nginx (ingress-nginx, most reverse proxies) would otherwise buffer the stream.
    Ok(([(HeaderName::from_static("x-accel-buffering"), "no")], sse))
}

/// The stream's state: where it is in the run, and what it read but has not sent yet.
struct Follow {
    state: ApiState,
    tenant: TenantId,
    run: RunId,
    cursor: i32,
    buffer: VecDeque<RunEvent>,
    ended: bool,
}

impl Follow {
    /// The next event, waiting for it; `None` once the run's terminal status was sent.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                self.cursor = event.seq;
                self.ended = feed::is_terminal(&event);
                return Some(self.event(&event));
            }
            if self.ended {
                return None;
            }
            match self.read().await {
                Ok(true) => {}
                Ok(false) => tokio::time::sleep(POLL).await,
                Err(e) => {
                    tracing::warn!(error = %e.detail, run = %self.run, "an event stream could not read; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Reads what follows the cursor; false when there is nothing yet. A run that ended
    /// without anything left to send ends the stream.
    async fn read(&mut self) -> ApiResult<bool> {
        let mut tx = self.state.infra.app_db.begin(self.tenant).await?;
        let events = feed::after(&mut tx, self.run, self.cursor, PAGE).await?;
        if events.is_empty() {
            let head = feed::head(&mut tx, self.run).await?;
            tx.commit().await?;
            // Gone (deleted with its tenant) or over with nothing left: the stream is done.
            self.ended = head.is_none_or(|h| h.status.is_terminal() && h.last_seq <= self.cursor);
            return Ok(self.ended);
        }
        tx.commit().await?;
        self.buffer.extend(events);
        Ok(true)
    }

    fn event(&self, event: &RunEvent) -> Event {
        let payload = RunEventPayload::new(self.tenant, event);
        Event::default()
            .id(event.seq.to_string())
            .event(run_event_name(&event.kind))
            .data(serde_json::to_string(&payload).unwrap_or_default())
    }
}
