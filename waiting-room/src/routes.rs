//! The waiting room's HTTP surface: thin handlers over [`crate::queue`].

use std::{convert::Infallible, time::Duration};

use axum::{
    Router,
    extract::{FromRequestParts, State},
    http::{HeaderMap, StatusCode, header, request::Parts},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
    routing::get,
};
use futures_util::stream::{self, Stream};
use rand::RngExt;
use serde::{Deserialize, Serialize};
use shared::{
    http::{BearerAuth, Json, Path, Query, error_response},
    ids::{EventId, UserId},
    openapi::CommonResponses,
    tokens::{AdmissionClaims, QueueClaims, QueuePlace, TokenError},
};
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    AppState,
    queue::{QueueError, QueueState, Standing},
};

/// A contract error: status, code, message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: &'static str,
}

impl ApiError {
    const fn new(status: StatusCode, code: &'static str, message: &'static str) -> Self {
        Self {
            status,
            code,
            message,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(self.status, self.code, self.message)
    }
}

impl From<QueueError> for ApiError {
    fn from(err: QueueError) -> Self {
        match err {
            QueueError::UnknownEvent => Self::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "There is no such event.",
            ),
            QueueError::Cancelled => Self::new(
                StatusCode::CONFLICT,
                "event_cancelled",
                "The event is cancelled.",
            ),
            other => {
                tracing::error!(error = %other, "waiting room failure");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Something went wrong on our side.",
                )
            }
        }
    }
}

/// The fan, from `Authorization: Bearer <access token>`.
#[derive(Debug, Clone, Copy)]
pub struct Fan(pub UserId);

impl FromRequestParts<AppState> for Fan {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        shared::http::authenticate(&parts.headers, &state.keys.access, Some(&state.bans))
            .map(|claims| Self(claims.sub))
            .map_err(|failure| ApiError::new(failure.status(), failure.code(), failure.message()))
    }
}

/// Checks a queue token for `event`: 401 when missing, forged or expired, 403 for another event.
/// The fan, and the place their join sealed in the token.
fn queue_fan(
    state: &AppState,
    token: Option<&str>,
    event: EventId,
) -> Result<(UserId, Option<QueuePlace>), ApiError> {
    let token = token
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "queue_token_required",
            "Send the queue token from join as header `X-Queue-Token`.",
        ))?;
    let verified = state
        .keys
        .admission
        .open::<QueueClaims>(token)
        .map_err(|err| match err {
            TokenError::Expired => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "queue_token_expired",
                "The queue token has expired; join again.",
            ),
            _ => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_queue_token",
                "The queue token is not valid.",
            ),
        })?;
    if verified.claims.evt != event {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "wrong_event",
            "This queue token is for another event.",
        ));
    }
    if state.bans.is_banned(verified.claims.sub) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "banned",
            "This account is banned.",
        ));
    }
    Ok((verified.claims.sub, verified.claims.place))
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct StatusBody {
    pub state: QueueState,
    pub position: u64,
    pub eta_seconds: u64,
    pub poll_after_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admission_token: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JoinBody {
    pub queue_token: String,
    #[serde(flatten)]
    pub status: StatusBody,
}

/// When to poll again: sooner near the front, ±20% jitter so clients do not poll in lock-step.
/// Far back, a quarter of the expected wait, 5 to 15 s: a fan an hour from the front learns
/// nothing from polling every few seconds (100,000 of them polling every 5 s would be 20,000
/// reads a second of nothing), and at most 15 s keeps four polls inside the 60 s grace after
/// which a fan who was not seen is dropped (a load test with 30 s lost fans to slow polls).
fn poll_after_ms(standing: &Standing) -> u64 {
    let base = base_poll_ms(standing);
    let factor = rand::rng().random_range(0.8..=1.2);
    (base as f64 * factor) as u64
}

fn base_poll_ms(standing: &Standing) -> u64 {
    let eta_ms = standing.eta_seconds.saturating_mul(1000);
    match standing.state {
        QueueState::Waiting if standing.position <= 100 => 1_000,
        QueueState::Waiting if standing.position <= 2_000 => 2_000,
        QueueState::Waiting => (eta_ms / 4).clamp(5_000, 15_000),
        // Halving the time to the opening, so the last poll lands just after it.
        QueueState::PreQueue => (eta_ms / 2).clamp(1_000, 15_000),
        _ => 5_000,
    }
}

fn body(state: &AppState, event: EventId, user: UserId, standing: &Standing) -> StatusBody {
    let admission_token = (standing.state == QueueState::Admitted).then(|| {
        let ttl = match standing.admitted_until_ms {
            Some(until) => {
                let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
                let left = (i128::from(until) - now).max(1000) as u64;
                Duration::from_millis(left).max(Duration::from_secs(1))
            }
            None => state.queues.config().admission_token_ttl,
        };
        let claims = AdmissionClaims {
            sub: user,
            evt: event,
            jti: Uuid::new_v4(),
        };
        state.keys.admission.sign(claims, ttl).ok()
    });
    StatusBody {
        state: standing.state,
        position: standing.position,
        eta_seconds: standing.eta_seconds,
        poll_after_ms: poll_after_ms(standing),
        admission_token: admission_token.flatten(),
    }
}

/// Join the event's waiting room (again: the same place). With high demand off, the answer is
/// `admitted` at once, with an admission token.
#[utoipa::path(
    post, path = "/api/queue/{event_id}/join", tag = "waiting room", security(("bearer" = [])),
    params(("event_id" = EventId, Path)),
    responses(
        (status = 200, body = JoinBody),
        (status = 401, description = "`unauthorized`, `invalid_token`, `token_expired`", body = shared::error::ErrorBody),
        (status = 403, description = "`banned`", body = shared::error::ErrorBody),
        (status = 404, description = "`not_found`", body = shared::error::ErrorBody),
        (status = 409, description = "`event_cancelled`", body = shared::error::ErrorBody),
    ),
)]
async fn join(
    State(state): State<AppState>,
    Path(event): Path<EventId>,
    Fan(user): Fan,
) -> Result<Json<JoinBody>, ApiError> {
    let joined = state.queues.join(event, user).await?;
    let queue_token = state
        .keys
        .admission
        .seal(
            QueueClaims {
                sub: user,
                evt: event,
                place: joined.place,
            },
            state.queues.config().queue_token_ttl,
        )
        .map_err(|err| {
            tracing::error!(error = %err, "cannot sign a queue token");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Something went wrong on our side.",
            )
        })?;
    Ok(Json(JoinBody {
        queue_token,
        status: body(&state, event, user, &joined.standing),
    }))
}

/// The fan's place, ETA and when to ask again; the admission token once admitted.
#[utoipa::path(
    get, path = "/api/queue/{event_id}/status", tag = "waiting room",
    params(
        ("event_id" = EventId, Path),
        ("X-Queue-Token" = String, Header, description = "The queue token from join"),
    ),
    responses(
        (status = 200, body = StatusBody),
        (status = 401, description = "`queue_token_required`, `invalid_queue_token`, `queue_token_expired`", body = shared::error::ErrorBody),
        (status = 403, description = "`wrong_event`", body = shared::error::ErrorBody),
    ),
)]
async fn status(
    State(state): State<AppState>,
    Path(event): Path<EventId>,
    headers: HeaderMap,
) -> Result<Json<StatusBody>, ApiError> {
    let token = match headers.get("x-queue-token") {
        Some(value) => Some(value.to_str().map_err(|_| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_queue_token",
                "The queue token is not valid.",
            )
        })?),
        None => None,
    };
    let (user, place) = queue_fan(&state, token, event)?;
    let standing = state.queues.standing(event, user, place).await?;
    Ok(Json(body(&state, event, user, &standing)))
}

/// One event of the live status stream, as `text/event-stream` frames it: `event: status` and
/// the [`StatusBody`] as JSON in `data`. Describes the stream in the OpenAPI document; the
/// frames themselves are written by axum's `Event`.
#[derive(ToSchema)]
#[expect(
    dead_code,
    reason = "only describes the event stream in the OpenAPI document"
)]
struct StatusEvent {
    /// Always `status`.
    #[schema(pattern = "^status$")]
    event: String,
    /// A `StatusBody` as JSON.
    #[schema(content_media_type = "application/json")]
    data: String,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct PushQuery {
    /// The queue token from join (EventSource cannot send headers).
    queue_token: Option<String>,
}

/// The status as server-sent events (`event: status`), sent whenever it changes, with
/// keep-alive comments. Driven by this instance's ticks: every stream of an event wakes with
/// the tick's summary and computes its fan's standing in memory (an open stream counts as
/// being seen), sending only when the fan's view changed.
#[utoipa::path(
    get, path = "/api/queue/{event_id}/events", tag = "waiting room",
    params(("event_id" = EventId, Path), PushQuery),
    responses(
        (status = 200, description = "`text/event-stream`: `event: status` frames whose `data` is a `StatusBody` as JSON", content_type = "text/event-stream", body = StatusEvent),
        (status = 401, description = "as for status", body = shared::error::ErrorBody),
        (status = 403, description = "`wrong_event`", body = shared::error::ErrorBody),
    ),
)]
async fn events(
    State(state): State<AppState>,
    Path(event): Path<EventId>,
    Query(query): Query<PushQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let (user, place) = queue_fan(&state, query.queue_token.as_deref(), event)?;
    // Fail before the stream starts if the queue cannot be read at all.
    let first = state.queues.standing(event, user, place).await?;
    let mut summaries = state.queues.view(event).subscribe();
    summaries.mark_unchanged();
    let start = (
        state,
        summaries,
        Some(first),
        None::<(QueueState, u64, u64)>,
    );
    let stream = stream::unfold(
        start,
        move |(state, mut summaries, mut pending, mut last)| async move {
            loop {
                let standing = match pending.take() {
                    Some(standing) => standing,
                    None => {
                        // The sender lives as long as the view; a closed channel ends the stream.
                        summaries.changed().await.ok()?;
                        match state.queues.standing(event, user, place).await {
                            Ok(standing) => standing,
                            Err(err) => {
                                tracing::warn!(%event, error = %err, "push: status failed");
                                continue;
                            }
                        }
                    }
                };
                let key = (standing.state, standing.position, standing.eta_seconds);
                if last == Some(key) {
                    continue;
                }
                last = Some(key);
                let body = body(&state, event, user, &standing);
                let event = Event::default()
                    .event("status")
                    .json_data(&body)
                    .unwrap_or_else(|_| Event::default().comment("unserializable"));
                return Some((Ok(event), (state, summaries, None, last)));
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Waiting room",
        description = "The virtual waiting room of high-demand events. Errors are always `{\"error\": code, \"message\": text}`."
    ),
    modifiers(&BearerAuth),
    tags((name = "waiting room", description = "The queue in front of high-demand sales: join, status, live status")),
)]
struct ApiDoc;

/// The queue routes and their OpenAPI document, with the answers of the shared plumbing
/// (`shared::openapi::CommonResponses`).
fn documented() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(join))
        .routes(routes!(status))
        .routes(routes!(events))
        .split_for_parts();
    CommonResponses.apply(&mut doc);
    (router, doc)
}

/// The waiting room's OpenAPI document: served at `/api/queue/openapi.json`, committed as
/// `shared/openapi/waiting-room.json` (a test keeps the two equal) and merged from there into
/// the gateway-wide document the ticketing API serves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    documented().1
}

/// The queue routes, and their OpenAPI document at `/api/queue/openapi.json`.
pub fn router(state: AppState) -> Router {
    let (router, doc) = documented();
    let spec: std::sync::Arc<str> = doc.to_json().unwrap_or_else(|_| "{}".into()).into();
    router
        .route(
            "/api/queue/openapi.json",
            get(move || {
                let spec = spec.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        spec.to_string(),
                    )
                }
            }),
        )
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standing(state: QueueState, position: u64, eta_seconds: u64) -> Standing {
        Standing {
            state,
            position,
            eta_seconds,
            admitted_until_ms: None,
        }
    }

    #[test]
    fn fans_far_back_poll_less_often_and_never_less_than_every_15_seconds() {
        let poll = |state, position, eta| base_poll_ms(&standing(state, position, eta));
        assert_eq!(poll(QueueState::Waiting, 1, 0), 1_000);
        assert_eq!(poll(QueueState::Waiting, 1_500, 10), 2_000);
        assert_eq!(poll(QueueState::Waiting, 5_000, 8), 5_000);
        assert_eq!(poll(QueueState::Waiting, 50_000, 40), 10_000);
        assert_eq!(poll(QueueState::Waiting, 90_000, 3_600), 15_000);
        assert_eq!(poll(QueueState::PreQueue, 0, 600), 15_000);
        assert_eq!(poll(QueueState::PreQueue, 0, 10), 5_000);
        assert_eq!(poll(QueueState::PreQueue, 0, 0), 1_000);
        let jittered = poll_after_ms(&standing(QueueState::Waiting, 90_000, 3_600));
        assert!((12_000..=18_000).contains(&jittered), "{jittered}");
    }
}
