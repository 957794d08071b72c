//! `GET /api/tickets/{id}/pdf` (the ticket's owner) and `POST /api/checkin` (door scanners).

use axum::{
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use shared::{
    domain::Role,
    error::ErrorBody,
    http::{Json, Path},
    ids::{EventId, TicketId, UserId},
    ticket_pdf,
    tokens::TicketClaims,
};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    AppState,
    error::{ApiError, ApiResult},
    extract::CurrentUser,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ticket_pdf))
        .routes(routes!(check_in))
}

/// One ticket as a PDF page (event, venue, date, seat, class, holder, booking reference, and a
/// QR of its signed code). The whole booking's PDF, a page per ticket, comes by email.
#[utoipa::path(
    get, path = "/tickets/{ticket_id}/pdf", tag = "bookings", security(("bearer" = [])),
    params(("ticket_id" = TicketId, Path)),
    responses(
        (status = 200, description = "`application/pdf`: the ticket's page", content_type = "application/pdf", body = Vec<u8>),
        (status = 404, description = "`not_found` (also for other fans' tickets)", body = ErrorBody),
    ),
)]
async fn ticket_pdf(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(ticket_id): Path<TicketId>,
) -> ApiResult<Response> {
    let not_found = || ApiError::NotFound("ticket");
    let (booking_id, owner) = ticket_pdf::ticket_owner(&state.db, ticket_id)
        .await?
        .ok_or_else(not_found)?;
    if owner != caller.id {
        return Err(not_found());
    }
    let booking = ticket_pdf::load(&state.db, booking_id)
        .await?
        .and_then(|booking| booking.only(ticket_id))
        .ok_or_else(not_found)?;
    let filename = format!(
        "ticket-{}-{}.pdf",
        booking.reference(),
        booking.tickets[0]
            .seat_label
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect::<String>()
    );
    let pdf = tokio::task::spawn_blocking(move || ticket_pdf::render(&booking))
        .await
        .map_err(|err| anyhow::anyhow!("the PDF renderer panicked: {err}"))??;
    Ok((
        [
            (header::CONTENT_TYPE, "application/pdf".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("inline; filename=\"{filename}\""),
            ),
            (header::CACHE_CONTROL, "private, no-store".to_string()),
        ],
        pdf,
    )
        .into_response())
}

#[derive(Deserialize, ToSchema)]
struct CheckInBody {
    /// The text of the ticket's QR code.
    code: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum CheckInResult {
    Valid,
    AlreadyCheckedIn,
    Invalid,
}

/// The ticket a valid or already used code names.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
struct CheckedTicket {
    ticket_id: TicketId,
    event_id: EventId,
    seat_label: String,
    class: String,
    holder_name: String,
    #[serde(with = "time::serde::rfc3339")]
    checked_in_at: OffsetDateTime,
    checked_in_by: Option<UserId>,
}

#[derive(Debug, Serialize, ToSchema)]
struct CheckInView {
    result: CheckInResult,
    #[serde(skip_serializing_if = "Option::is_none")]
    ticket: Option<CheckedTicket>,
}

impl CheckInView {
    fn invalid() -> Self {
        Self {
            result: CheckInResult::Invalid,
            ticket: None,
        }
    }
}

/// Scan a ticket at the door: `valid` the first time (atomically: of two scanners racing, one
/// wins), `already_checked_in` after, `invalid` for a bad, tampered or expired code, a ticket
/// that no longer stands, or another organizer's event. For the event's organizer and admins.
#[utoipa::path(
    post, path = "/checkin", tag = "bookings", security(("bearer" = [])),
    request_body = CheckInBody,
    responses(
        (status = 200, body = CheckInView),
        (status = 403, description = "`forbidden`: fans cannot check tickets in", body = ErrorBody),
    ),
)]
async fn check_in(
    State(state): State<AppState>,
    caller: CurrentUser,
    Json(body): Json<CheckInBody>,
) -> ApiResult<Json<CheckInView>> {
    if caller.role == Role::Fan {
        return Err(ApiError::forbidden(
            "forbidden",
            "Only the event's organizer checks tickets in.",
        ));
    }
    let Ok(verified) = state.keys.ticket.verify::<TicketClaims>(body.code.trim()) else {
        return Ok(Json(CheckInView::invalid()));
    };
    let TicketClaims { tid, evt } = verified.claims;
    let organizer: Option<(UserId,)> =
        sqlx::query_as("SELECT organizer_id FROM events WHERE id = $1")
            .bind(evt)
            .fetch_optional(&state.db)
            .await?;
    let Some((organizer,)) = organizer else {
        return Ok(Json(CheckInView::invalid()));
    };
    if caller.role != Role::Admin && organizer != caller.id {
        return Ok(Json(CheckInView::invalid()));
    }

    // One statement: only the scan that flips NULL to now() gets a row back.
    let admitted: Option<CheckedTicket> = sqlx::query_as(
        "WITH admitted AS (
             UPDATE tickets t SET checked_in_at = now(), checked_in_by = $2
              WHERE t.id = $1 AND t.event_id = $3 AND t.checked_in_at IS NULL
                AND EXISTS (SELECT 1 FROM bookings b
                             WHERE b.id = t.booking_id AND b.status = 'confirmed')
          RETURNING t.id, t.event_id, t.seat_id, t.class_id, t.booking_id, t.checked_in_at,
                    t.checked_in_by
         )
         SELECT a.id AS ticket_id, a.event_id, s.label AS seat_label, c.name AS class,
                u.name AS holder_name, a.checked_in_at, a.checked_in_by
           FROM admitted a
           JOIN seats s ON s.id = a.seat_id
           JOIN ticket_classes c ON c.id = a.class_id
           JOIN bookings b ON b.id = a.booking_id
           JOIN users u ON u.id = b.user_id",
    )
    .bind(tid)
    .bind(caller.id)
    .bind(evt)
    .fetch_optional(&state.db)
    .await?;
    if let Some(ticket) = admitted {
        return Ok(Json(CheckInView {
            result: CheckInResult::Valid,
            ticket: Some(ticket),
        }));
    }
    // Not admitted now: used before, or not a standing ticket of this event.
    let used: Option<CheckedTicket> = sqlx::query_as(
        "SELECT t.id AS ticket_id, t.event_id, s.label AS seat_label, c.name AS class,
                u.name AS holder_name, t.checked_in_at, t.checked_in_by
           FROM tickets t
           JOIN seats s ON s.id = t.seat_id
           JOIN ticket_classes c ON c.id = t.class_id
           JOIN bookings b ON b.id = t.booking_id
           JOIN users u ON u.id = b.user_id
          WHERE t.id = $1 AND t.event_id = $2 AND t.checked_in_at IS NOT NULL
            AND b.status = 'confirmed'",
    )
    .bind(tid)
    .bind(evt)
    .fetch_optional(&state.db)
    .await?;
    Ok(Json(match used {
        Some(ticket) => CheckInView {
            result: CheckInResult::AlreadyCheckedIn,
            ticket: Some(ticket),
        },
        None => CheckInView::invalid(),
    }))
}
