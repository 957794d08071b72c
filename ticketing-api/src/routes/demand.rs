//! `PUT /api/events/{id}/demand-mode`: the organizer switches high-demand mode (the waiting
//! room and admission tokens) on or off, live.

use axum::extract::State;
use shared::{
    error::ErrorBody,
    http::{Json, Path},
    ids::EventId,
};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::venues::Organizer;
use crate::{
    AppState,
    error::ApiResult,
    gate::{self, DemandMode, DemandModeView},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(set_demand_mode))
}

/// Turn high-demand mode on or off and set the waiting room's admission rate and cap. Takes
/// effect at once for new holds and registrations. Audited.
#[utoipa::path(
    put, path = "/events/{id}/demand-mode", tag = "events", security(("bearer" = [])),
    params(("id" = EventId, Path)),
    request_body = DemandMode,
    responses(
        (status = 200, body = DemandModeView),
        (status = 400, description = "`malformed_json`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`: fans", body = ErrorBody),
        (status = 404, description = "`not_found` (also another organizer's event)", body = ErrorBody),
        (status = 409, description = "`event_cancelled`", body = ErrorBody),
        (status = 422, description = "`invalid_field` (a rate out of 1 to 1,000,000), `invalid_body` (missing or unknown fields, wrong types)", body = ErrorBody),
    ),
)]
async fn set_demand_mode(
    State(state): State<AppState>,
    Organizer(actor): Organizer,
    Path(id): Path<EventId>,
    Json(body): Json<DemandMode>,
) -> ApiResult<Json<DemandModeView>> {
    Ok(Json(gate::set_demand_mode(&state, actor, id, body).await?))
}
