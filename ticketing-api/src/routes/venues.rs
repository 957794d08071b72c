//! `/api/venues`: organizers create and read their venues; admins read all. Another
//! organizer's venue answers 404, exactly like one that does not exist.
//!
//! The SVG drawing is served back from its own address with a Content-Security-Policy that
//! forbids scripts and `nosniff`, on top of the allow-list check made at upload.

use axum::{
    extract::{FromRequestParts, State},
    http::{StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use shared::{
    error::ErrorBody,
    http::{Json, Path, Query},
    ids::VenueId,
};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{Page, Pagination};
use crate::{
    AppState,
    error::{ApiError, ApiResult},
    extract::CurrentUser,
    venues::{self, Actor, NewVenue, Venue, VenueSummary},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_venue, list_venues))
        .routes(routes!(get_venue))
        .routes(routes!(layout_svg))
}

/// The caller, who must be an organizer or an admin (fans get 403 `forbidden`).
#[derive(Debug, Clone, Copy)]
pub struct Organizer(pub Actor);

impl FromRequestParts<AppState> for Organizer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let user = CurrentUser::from_request_parts(parts, state).await?;
        Actor::new(user.id, user.role).map(Self).ok_or_else(|| {
            ApiError::forbidden("forbidden", "Only organizers and admins may do this.")
        })
    }
}

/// Create a venue with a grid or an SVG layout. Audited.
///
/// Grid: 1 to 50 sections named with 1 to 20 of `A-Z a-z 0-9 _`, 1 to 1000 rows of 1 to 1000
/// seats, 200,000 seats at most; seats are labelled `SECTION-ROW-SEAT`. SVG: at most 512 KiB,
/// only plain drawing elements (no script, event handlers, external links, DOCTYPE or
/// processing instructions), and 1 to 100,000 seats with unique labels of 1 to 40 of
/// `A-Z a-z 0-9 _ -` and coordinates from 0 to 1,000,000; a seat's section is the one given
/// or its label's part before the first `-`.
#[utoipa::path(
    post, path = "/venues", tag = "venues", security(("bearer" = [])),
    request_body = NewVenue,
    responses(
        (status = 201, body = Venue),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`: fans may not create venues", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 422, description = "`invalid_field`, `invalid_layout`, `unsafe_svg`, `invalid_body`", body = ErrorBody),
    ),
)]
async fn create_venue(
    State(state): State<AppState>,
    Organizer(actor): Organizer,
    Json(body): Json<NewVenue>,
) -> ApiResult<(StatusCode, Json<Venue>)> {
    let venue = venues::create(&state.db, actor, body).await?;
    Ok((StatusCode::CREATED, Json(venue)))
}

/// Your venues (every venue for an admin), newest first.
#[utoipa::path(
    get, path = "/venues", tag = "venues", security(("bearer" = [])),
    params(Pagination),
    responses(
        (status = 200, body = Page<VenueSummary>),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 422, description = "`invalid_pagination`", body = ErrorBody),
    ),
)]
async fn list_venues(
    State(state): State<AppState>,
    Organizer(actor): Organizer,
    Query(pagination): Query<Pagination>,
) -> ApiResult<Json<Page<VenueSummary>>> {
    let page = pagination.resolve()?;
    let (items, total) = venues::list(&state.db, actor, page.per_page, page.offset()).await?;
    Ok(Json(page.answer(items, total)))
}

/// One of your venues, with its layout. Another organizer's venue is 404.
#[utoipa::path(
    get, path = "/venues/{id}", tag = "venues", security(("bearer" = [])),
    params(("id" = VenueId, Path)),
    responses(
        (status = 200, body = Venue),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ),
)]
async fn get_venue(
    State(state): State<AppState>,
    Organizer(actor): Organizer,
    Path(id): Path<VenueId>,
) -> ApiResult<Json<Venue>> {
    Ok(Json(venues::get(&state.db, actor, id).await?))
}

/// The venue's SVG drawing (public: it is the seat map's background). Served as
/// `image/svg+xml` with `Content-Security-Policy: default-src 'none'; style-src
/// 'unsafe-inline'` and `X-Content-Type-Options: nosniff`. 404 for grid venues.
#[utoipa::path(
    get, path = "/venues/{id}/layout.svg", tag = "venues",
    params(("id" = VenueId, Path)),
    responses(
        (status = 200, content_type = "image/svg+xml", body = String),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ),
)]
async fn layout_svg(State(state): State<AppState>, Path(id): Path<VenueId>) -> ApiResult<Response> {
    let svg = venues::layout_svg(&state.db, id).await?;
    let headers = [
        (header::CONTENT_TYPE, "image/svg+xml"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        // Layouts never change; a day of caching keeps seat-map page loads off the database.
        (header::CACHE_CONTROL, "public, max-age=86400"),
    ];
    Ok((headers, svg).into_response())
}
