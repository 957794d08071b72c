//! Figures: an organizer's own events and the live sales dashboard of each
//! (`/api/organizer/events`, `/api/events/{id}/dashboard`), and the platform's figures for
//! admins (`/api/admin/stats`). Thin over [`crate::reports`].

use axum::extract::State;
use shared::{
    error::ErrorBody,
    http::{Json, Path, Query},
    ids::EventId,
};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{Page, Pagination, venues::Organizer};
use crate::{
    AppState,
    error::ApiResult,
    events::{self, EventSummary},
    extract::Admin,
    reports::{self, Dashboard, PlatformFigures},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(my_events))
        .routes(routes!(dashboard))
        .routes(routes!(platform))
}

/// The caller's own events, cancelled and past ones included, the latest first.
#[utoipa::path(
    get, path = "/organizer/events", tag = "organizers", security(("bearer" = [])),
    params(Pagination),
    responses(
        (status = 200, body = Page<EventSummary>),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`: fans", body = ErrorBody),
        (status = 422, description = "`invalid_pagination`", body = ErrorBody),
    ),
)]
async fn my_events(
    State(state): State<AppState>,
    Organizer(actor): Organizer,
    Query(pagination): Query<Pagination>,
) -> ApiResult<Json<Page<EventSummary>>> {
    let page = pagination.resolve()?;
    let (items, total) =
        events::organized_by(&state.db, actor.id, page.per_page, page.offset()).await?;
    Ok(Json(page.answer(items, total)))
}

/// The live sale of one event: free / held / sold seats and revenue per class, bookings,
/// and the waiting room's length and admission rate. The event's organizer, or an admin.
#[utoipa::path(
    get, path = "/events/{id}/dashboard", tag = "events", security(("bearer" = [])),
    params(("id" = EventId, Path)),
    responses(
        (status = 200, body = Dashboard),
        (status = 400, description = "`invalid_path`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`: fans", body = ErrorBody),
        (status = 404, description = "`not_found` (also another organizer's event)", body = ErrorBody),
    ),
)]
async fn dashboard(
    State(state): State<AppState>,
    Organizer(actor): Organizer,
    Path(id): Path<EventId>,
) -> ApiResult<Json<Dashboard>> {
    Ok(Json(reports::dashboard(&state, actor, id).await?))
}

/// Users, events, tickets sold and revenue across the platform. Admins only.
#[utoipa::path(
    get, path = "/admin/stats", tag = "admin", security(("bearer" = [])),
    responses(
        (status = 200, body = PlatformFigures),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`: not an admin", body = ErrorBody),
    ),
)]
async fn platform(
    State(state): State<AppState>,
    _admin: Admin,
) -> ApiResult<Json<PlatformFigures>> {
    Ok(Json(reports::platform(&state.db).await?))
}
