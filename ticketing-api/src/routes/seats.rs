//! `/api/events/{id}/seats` and `/api/events/{id}/availability`: what is free, held and sold.
//!
//! The seat map is built from the event's catalog (in memory) and one Redis call, so it stays
//! fast for a 100,000-seat stadium. `?format=compact` sends the same map as parallel arrays and
//! one character per seat (`f`ree, `h`eld, `s`old) — about a fifth of the JSON — and
//! `?format=state` only that string, for a browser that already has the layout and polls.

use axum::{
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use shared::{
    error::ErrorBody,
    http::{Json, Path, Query},
    ids::{EventId, SeatId},
    inventory::{ClassCounts, SeatState},
};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    AppState,
    error::{ApiError, ApiResult},
    events::ClassAvailability,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(seat_map))
        .routes(routes!(availability))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct SeatMapQuery {
    /// `json` (default), `compact` or `state`.
    format: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct SeatView {
    id: SeatId,
    label: String,
    class: String,
    section: String,
    x: f32,
    y: f32,
    state: SeatState,
}

#[derive(Serialize, ToSchema)]
struct SeatMap {
    seats: Vec<SeatView>,
}

/// The compact seat map: entry `i` of every array is the seat with idx `i`.
#[derive(Serialize, ToSchema)]
struct CompactSeatMap {
    classes: Vec<String>,
    ids: Vec<SeatId>,
    labels: Vec<String>,
    /// Index into `classes`.
    class: Vec<u16>,
    x: Vec<f32>,
    y: Vec<f32>,
    /// One character per seat: `f` free, `h` held, `s` sold.
    state: String,
}

fn state_string(states: &[SeatState]) -> String {
    states
        .iter()
        .map(|state| match state {
            SeatState::Free => 'f',
            SeatState::Held => 'h',
            SeatState::Sold => 's',
        })
        .collect()
}

/// Every seat of the event with its live state.
#[utoipa::path(
    get, path = "/events/{event_id}/seats", tag = "events",
    params(("event_id" = EventId, Path), SeatMapQuery),
    responses(
        (status = 200, description = "`json`: `SeatMap`; `compact`: `CompactSeatMap`; `state`: text", body = SeatMap),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 422, description = "`invalid_format`", body = ErrorBody),
    ),
)]
async fn seat_map(
    State(state): State<AppState>,
    Path(event_id): Path<EventId>,
    Query(query): Query<SeatMapQuery>,
) -> ApiResult<Response> {
    let format = query.format.as_deref().unwrap_or("json");
    if !["json", "compact", "state"].contains(&format) {
        return Err(ApiError::invalid(
            "invalid_format",
            "format is json, compact or state.",
        ));
    }
    let catalog = state
        .catalogs
        .get(&state.db, event_id)
        .await?
        .ok_or(ApiError::NotFound("event"))?;
    let states = state.inventory.snapshot(&catalog).await?;
    let class_names: Vec<String> = catalog.classes.iter().map(|c| c.name.clone()).collect();
    let response = match format {
        "state" => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            state_string(&states),
        )
            .into_response(),
        "compact" => Json(CompactSeatMap {
            ids: catalog.seats.iter().map(|seat| seat.id).collect(),
            labels: catalog
                .seats
                .iter()
                .map(|seat| seat.label.clone())
                .collect(),
            class: catalog.seats.iter().map(|seat| seat.class).collect(),
            x: catalog.seats.iter().map(|seat| seat.x).collect(),
            y: catalog.seats.iter().map(|seat| seat.y).collect(),
            state: state_string(&states),
            classes: class_names,
        })
        .into_response(),
        _ => Json(SeatMap {
            seats: catalog
                .seats
                .iter()
                .zip(&states)
                .map(|(seat, state)| SeatView {
                    id: seat.id,
                    label: seat.label.clone(),
                    class: class_names
                        .get(usize::from(seat.class))
                        .cloned()
                        .unwrap_or_default(),
                    section: seat.section.clone(),
                    x: seat.x,
                    y: seat.y,
                    state: *state,
                })
                .collect(),
        })
        .into_response(),
    };
    Ok(response)
}

/// Free, held and sold seats per class, live.
#[utoipa::path(
    get, path = "/events/{event_id}/availability", tag = "events",
    params(("event_id" = EventId, Path)),
    responses(
        (status = 200, body = Vec<ClassAvailability>),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ),
)]
async fn availability(
    State(state): State<AppState>,
    Path(event_id): Path<EventId>,
) -> ApiResult<Json<Vec<ClassAvailability>>> {
    Ok(Json(class_availability(&state, event_id).await?))
}

/// Per-class availability with live counts.
async fn class_availability(
    state: &AppState,
    event_id: EventId,
) -> Result<Vec<ClassAvailability>, ApiError> {
    let catalog = state
        .catalogs
        .get(&state.db, event_id)
        .await?
        .ok_or(ApiError::NotFound("event"))?;
    let counts: Vec<ClassCounts> = state.inventory.counts(&catalog).await?;
    Ok(catalog
        .classes
        .iter()
        .zip(counts)
        .map(|(class, counts)| ClassAvailability {
            class_id: class.id,
            class: class.name.clone(),
            capacity: i64::from(class.capacity),
            free: Some(counts.free),
            held: Some(counts.held),
            sold: Some(counts.sold),
        })
        .collect())
}

/// Fills an event's availability with live counts. The event page must load even when the
/// inventory cannot be read, so a failure leaves the counts out and is logged.
pub async fn add_live_counts(
    state: &AppState,
    event_id: EventId,
    classes: &mut [ClassAvailability],
) {
    match class_availability(state, event_id).await {
        Ok(live) => {
            for class in classes.iter_mut() {
                if let Some(counts) = live.iter().find(|c| c.class_id == class.class_id) {
                    (class.free, class.held, class.sold) = (counts.free, counts.held, counts.sold);
                }
            }
        }
        Err(err) => {
            tracing::warn!(event.id = %event_id, error = %err, "no live counts for the event")
        }
    }
}

/// Loads a new event's catalog and builds its Redis inventory in the background, so that the
/// first fan does not wait for it. A failure is only logged: the first request retries.
pub fn warm_inventory(state: &AppState, event_id: EventId) {
    let state = state.clone();
    tokio::spawn(async move {
        let warmed = async {
            let catalog = state
                .catalogs
                .get(&state.db, event_id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("the event is gone"))?;
            state.inventory.ensure_loaded(&catalog).await?;
            anyhow::Ok(())
        };
        if let Err(err) = warmed.await {
            tracing::warn!(event.id = %event_id, error = %err, "could not warm the inventory");
        }
    });
}
