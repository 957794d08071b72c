//! `/api/events/{id}/holds`, `/api/holds/{id}`: taking, reading and releasing holds.

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
};
use serde::Deserialize;
use shared::{
    error::ErrorBody,
    http::{Json, Path},
    ids::{EventId, HoldId, SeatId},
};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    AppState,
    error::{ApiError, ApiResult},
    extract::CurrentUser,
    holds::{self, HoldRequest, PlacedHold},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(place))
        .routes(routes!(get_hold, release))
}

/// Either `seat_ids`, or `class` with `quantity` (best available). Anything else the client
/// sends, such as a price, is ignored.
#[derive(Deserialize, ToSchema)]
struct HoldBody {
    seat_ids: Option<Vec<SeatId>>,
    class: Option<String>,
    quantity: Option<u32>,
}

impl HoldBody {
    fn into_request(self) -> Result<HoldRequest, ApiError> {
        match (self.seat_ids, self.class, self.quantity) {
            (Some(seat_ids), None, None) => Ok(HoldRequest::Seats(seat_ids)),
            (None, Some(class), Some(quantity)) => Ok(HoldRequest::Best { class, quantity }),
            _ => Err(ApiError::invalid(
                "invalid_hold_request",
                "Send either {\"seat_ids\": [...]} or {\"class\": name, \"quantity\": n}.",
            )),
        }
    }
}

/// Hold seats for the event's hold length: chosen seats (all or nothing), or the best
/// `quantity` seats of a class. A new hold replaces the fan's previous hold on this event.
#[utoipa::path(
    post, path = "/events/{event_id}/holds", tag = "holds", security(("bearer" = [])),
    params(
        ("event_id" = EventId, Path),
        ("X-Admission-Token" = Option<String>, Header, description = "The waiting room's admission token; required while the event is in high-demand mode, ignored otherwise"),
    ),
    request_body = HoldBody,
    responses(
        (status = 201, body = PlacedHold),
        (status = 403, description = "`admission_required` (high-demand mode, no token), `invalid_admission` (expired, another fan's, another event's, not valid, or the fan is not admitted now: their admission was spent on an order, has ended, or was handed out while the gate was off)", body = ErrorBody),
        (status = 404, description = "`not_found`: no such event", body = ErrorBody),
        (status = 409, description = "`seats_unavailable` (with `seat_ids`), `sale_not_open`, `sale_closed`, `event_cancelled`", body = ErrorBody),
        (status = 422, description = "`no_seats`, `too_many_seats`, `duplicate_seats`, `unknown_seats`, `unknown_class`, `invalid_hold_request`", body = ErrorBody),
    ),
)]
async fn place(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(event_id): Path<EventId>,
    headers: HeaderMap,
    Json(body): Json<HoldBody>,
) -> ApiResult<(StatusCode, Json<PlacedHold>)> {
    let request = body.into_request()?;
    let admission = admission_token(&headers);
    let hold = holds::place(&state, event_id, caller.id, request, admission).await?;
    Ok((StatusCode::CREATED, Json(hold)))
}

/// The `X-Admission-Token` header, if any. A value that is not text counts as a token that
/// does not verify, so it is refused (`invalid_admission`) where a token is needed and
/// ignored elsewhere.
pub(super) fn admission_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(crate::gate::ADMISSION_HEADER)
        .map(|value| value.to_str().unwrap_or("\u{fffd}"))
}

/// The caller's own live hold.
#[utoipa::path(
    get, path = "/holds/{hold_id}", tag = "holds", security(("bearer" = [])),
    params(("hold_id" = HoldId, Path)),
    responses(
        (status = 200, body = PlacedHold),
        (status = 404, description = "`not_found`: expired, released, or not yours", body = ErrorBody),
    ),
)]
async fn get_hold(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(hold_id): Path<HoldId>,
) -> ApiResult<Json<PlacedHold>> {
    Ok(Json(holds::get(&state, hold_id, caller.id).await?))
}

/// Release the caller's own hold; its seats are free at once.
#[utoipa::path(
    delete, path = "/holds/{hold_id}", tag = "holds", security(("bearer" = [])),
    params(("hold_id" = HoldId, Path)),
    responses(
        (status = 204, description = "Released"),
        (status = 404, description = "`not_found`: expired, released, or not yours", body = ErrorBody),
    ),
)]
async fn release(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(hold_id): Path<HoldId>,
) -> ApiResult<StatusCode> {
    holds::release(&state, hold_id, caller.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
