//! `/api/events`: anyone lists, searches and reads events; the event's organizer (or an admin)
//! creates, changes, cancels and deletes them. Another organizer's event answers 404 to every
//! change, exactly like one that does not exist; fans get 403 `forbidden`.

use axum::{extract::State, http::StatusCode};
use serde::Deserialize;
use shared::{
    error::ErrorBody,
    http::{Json, Path, Query},
    ids::EventId,
};
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{Page, Pagination, venues::Organizer};
use crate::{
    AppState,
    error::ApiResult,
    events::{self, Event, EventPatch, EventSummary, NewEvent},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_event, list_events))
        .routes(routes!(get_event, update_event, delete_event))
        .routes(routes!(cancel_event))
}

/// Create an event in one of your venues, with its ticket classes and every seat. Audited.
///
/// Every seat of the venue belongs to exactly one class: the first class (in this order)
/// whose `sections` include the seat's section; the first class without `sections` takes the
/// seats left over. The inventory is ready when this answers 201.
#[utoipa::path(
    post, path = "/events", tag = "events", security(("bearer" = [])),
    request_body = NewEvent,
    responses(
        (status = 201, body = Event),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`: fans may not create events", body = ErrorBody),
        (status = 422, description = "`invalid_field`, `invalid_time`, `invalid_currency`, `mixed_currencies`, `duplicate_class`, `unknown_venue` (also another organizer's venue), `unknown_section`, `seats_without_class`, `empty_class`, `invalid_body`", body = ErrorBody),
    ),
)]
async fn create_event(
    State(state): State<AppState>,
    Organizer(actor): Organizer,
    Json(body): Json<NewEvent>,
) -> ApiResult<(StatusCode, Json<Event>)> {
    let event = events::create(&state.db, actor, body).await?;
    super::seats::warm_inventory(&state, event.id);
    Ok((StatusCode::CREATED, Json(event)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct EventSearch {
    /// Part of the title, matched literally and case-insensitively.
    #[serde(default)]
    #[param(max_length = 200)]
    q: String,
    #[param(minimum = 1, maximum = 100_000)]
    page: Option<i64>,
    #[param(minimum = 1, maximum = 100)]
    per_page: Option<i64>,
}

/// Events that are not cancelled, soonest first. Public.
#[utoipa::path(
    get, path = "/events", tag = "events",
    params(EventSearch),
    responses(
        (status = 200, body = Page<EventSummary>),
        (status = 400, description = "`invalid_query`", body = ErrorBody),
        (status = 422, description = "`invalid_query`, `invalid_pagination`", body = ErrorBody),
    ),
)]
async fn list_events(
    State(state): State<AppState>,
    Query(search): Query<EventSearch>,
) -> ApiResult<Json<Page<EventSummary>>> {
    let q = super::search_text(&search.q)?;
    let page = Pagination::new(search.page, search.per_page).resolve()?;
    let (items, total) = events::search(&state.db, q, page.per_page, page.offset()).await?;
    Ok(Json(page.answer(items, total)))
}

/// One event with its venue, classes, prices and per-class capacity. Public; cancelled
/// events are shown with status `cancelled`.
#[utoipa::path(
    get, path = "/events/{id}", tag = "events",
    params(("id" = EventId, Path)),
    responses(
        (status = 200, body = Event),
        (status = 400, description = "`invalid_path`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ),
)]
async fn get_event(
    State(state): State<AppState>,
    Path(id): Path<EventId>,
) -> ApiResult<Json<Event>> {
    let mut event = events::get(&state.db, id).await?;
    super::seats::add_live_counts(&state, id, &mut event.availability).await;
    Ok(Json(event))
}

/// Change title, description, times, hold length, order limit, and class prices (only while
/// nothing is sold). The venue and the classes' sections never change. Audited.
#[utoipa::path(
    patch, path = "/events/{id}", tag = "events", security(("bearer" = [])),
    params(("id" = EventId, Path)),
    request_body = EventPatch,
    responses(
        (status = 200, body = Event),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found` (also another organizer's event)", body = ErrorBody),
        (status = 409, description = "`event_has_sales` (prices), `sale_opened` (moving `sale_opens_at` of a sale that has opened), `event_cancelled`", body = ErrorBody),
        (status = 422, description = "`invalid_field`, `invalid_time`, `unknown_class`, `invalid_body` (also unknown fields such as `venue_id`)", body = ErrorBody),
    ),
)]
async fn update_event(
    State(state): State<AppState>,
    Organizer(actor): Organizer,
    Path(id): Path<EventId>,
    Json(patch): Json<EventPatch>,
) -> ApiResult<Json<Event>> {
    Ok(Json(events::update(&state, actor, id, patch).await?))
}

/// Cancel the event (idempotent). Audited once.
#[utoipa::path(
    post, path = "/events/{id}/cancel", tag = "events", security(("bearer" = [])),
    params(("id" = EventId, Path)),
    responses(
        (status = 200, body = Event),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ),
)]
async fn cancel_event(
    State(state): State<AppState>,
    Organizer(actor): Organizer,
    Path(id): Path<EventId>,
) -> ApiResult<Json<Event>> {
    Ok(Json(events::cancel(&state, actor, id).await?))
}

/// Delete an event that has no booking at all, with its classes and seats. Audited.
#[utoipa::path(
    delete, path = "/events/{id}", tag = "events", security(("bearer" = [])),
    params(("id" = EventId, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`event_has_sales`: cancel it instead", body = ErrorBody),
    ),
)]
async fn delete_event(
    State(state): State<AppState>,
    Organizer(actor): Organizer,
    Path(id): Path<EventId>,
) -> ApiResult<StatusCode> {
    events::delete(&state, actor, id).await?;
    state.catalogs.forget(id);
    Ok(StatusCode::NO_CONTENT)
}
