//! `/api/events/{id}/registrations`, `/api/bookings/{id}`, `/api/me/bookings`.

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use shared::{
    domain::Role,
    error::ErrorBody,
    http::{Json, Path},
    ids::{BookingId, EventId, HoldId},
};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    AppState,
    bookings::{self, BookingView, QueuedView, Registration},
    error::ApiResult,
    extract::CurrentUser,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(get_booking))
        .routes(routes!(my_bookings))
}

#[derive(Deserialize, ToSchema)]
struct RegistrationBody {
    hold_id: HoldId,
}

/// Book the caller's hold. Prices come from the event's classes. Repeating the request (same
/// `Idempotency-Key`, or the same hold) returns the same booking.
#[utoipa::path(
    post, path = "/events/{event_id}/registrations", tag = "bookings", security(("bearer" = [])),
    params(
        ("event_id" = EventId, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 200 visible ASCII characters"),
        ("X-Admission-Token" = Option<String>, Header, description = "The waiting room's admission token; required while the event is in high-demand mode, ignored otherwise"),
    ),
    request_body = RegistrationBody,
    responses(
        (status = 201, description = "Confirmed (simple path), or a retry of a booking already written", body = BookingView),
        (status = 202, description = "Queued (high-demand mode): the broker has the command; follow it at `GET /api/bookings/ID` from `pending` to `confirmed` or `rejected`", body = QueuedView),
        (status = 503, description = "`unavailable`: the broker could not take the registration; nothing was queued, retry", body = ErrorBody),
        (status = 403, description = "`admission_required` (high-demand mode, no token), `invalid_admission` (expired, another fan's, another event's, not valid, or the fan is not admitted now: their admission was spent on an order, has ended, or was handed out while the gate was off)", body = ErrorBody),
        (status = 409, description = "`hold_expired`, `seats_already_sold`, `sale_closed`, `event_cancelled`, `registration_in_progress` (a retry while the first attempt still waits for the broker)", body = ErrorBody),
        (status = 422, description = "`invalid_idempotency_key`", body = ErrorBody),
    ),
)]
async fn register(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(event_id): Path<EventId>,
    headers: HeaderMap,
    Json(body): Json<RegistrationBody>,
) -> ApiResult<Response> {
    let idempotency_key = headers
        .get("idempotency-key")
        .map(|value| {
            value
                .to_str()
                .map_err(|_| bookings::BookingError::InvalidIdempotencyKey)
                .and_then(bookings::parse_idempotency_key)
        })
        .transpose()?;
    let admission = super::holds::admission_token(&headers);
    let request_id = headers
        .get(shared::http::REQUEST_ID)
        .and_then(|value| value.to_str().ok());
    let registration = bookings::register(
        &state,
        event_id,
        caller.id,
        body.hold_id,
        idempotency_key,
        admission,
        request_id,
    )
    .await?;
    match registration {
        Registration::Booked(booking) => {
            if booking.event_id != event_id {
                // The idempotency key was used for another event's booking: not a retry.
                return Err(crate::error::ApiError::conflict(
                    "idempotency_key_reused",
                    "This Idempotency-Key was already used for another booking.",
                ));
            }
            Ok((StatusCode::CREATED, Json(booking)).into_response())
        }
        Registration::Queued(booking_id) => Ok((
            StatusCode::ACCEPTED,
            Json(QueuedView {
                booking_id,
                status: "pending",
            }),
        )
            .into_response()),
    }
}

/// One booking: its owner's, or any for an admin. A queued booking reads `pending` until a
/// worker has written it, then `confirmed` or `rejected` (with a `reason`).
#[utoipa::path(
    get, path = "/bookings/{booking_id}", tag = "bookings", security(("bearer" = [])),
    params(("booking_id" = BookingId, Path)),
    responses(
        (status = 200, body = BookingView),
        (status = 404, description = "`not_found` (also for other fans' bookings)", body = ErrorBody),
    ),
)]
async fn get_booking(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(booking_id): Path<BookingId>,
) -> ApiResult<Json<BookingView>> {
    let booking =
        bookings::get_any(&state, booking_id, caller.id, caller.role == Role::Admin).await?;
    Ok(Json(booking))
}

/// The caller's bookings, newest first.
#[utoipa::path(
    get, path = "/me/bookings", tag = "bookings", security(("bearer" = [])),
    responses((status = 200, body = Vec<BookingView>)),
)]
async fn my_bookings(
    State(state): State<AppState>,
    caller: CurrentUser,
) -> ApiResult<Json<Vec<BookingView>>> {
    Ok(Json(bookings::list_for(&state.db, caller.id).await?))
}
