//! `/api/admin/dead-letters`: the booking commands the registration workers gave up on (see
//! `registration_worker::dead_letters`), for admins to see and resolve. Admins only; resolving
//! is audited in the same transaction. The rows are written by the workers, never here.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use shared::{
    error::ErrorBody,
    http::{Json, Path, Query},
    ids::{BookingId, EventId, UserId},
};
use sqlx::PgPool;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{Page, Pagination};
use crate::{
    AppState,
    accounts::audit,
    error::{ApiError, ApiResult},
    extract::Admin,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_dead_letters))
        .routes(routes!(resolve))
}

/// A dead-lettered booking command.
#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct DeadLetterView {
    pub id: i64,
    /// The booking the command named; absent when the message did not parse.
    pub booking_id: Option<BookingId>,
    pub event_id: Option<EventId>,
    /// The message body as text, at most 16 KiB.
    pub payload: String,
    /// The broker's reason (`rejected`, `delivery_limit`, ...) and, for a message that does not
    /// parse, the parse error.
    pub reason: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub first_death_at: Option<OffsetDateTime>,
    pub death_count: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub resolved_at: Option<OffsetDateTime>,
    pub resolved_by: Option<UserId>,
    pub note: Option<String>,
    /// The status of the booking the command named, if it exists (`rejected` with reason
    /// `processing_failed` when the worker ended it).
    pub booking_status: Option<String>,
}

const COLUMNS: &str = "d.id, d.booking_id, d.event_id, d.payload, d.reason, d.first_death_at,
     d.death_count, d.recorded_at, d.resolved_at, d.resolved_by, d.note,
     (SELECT b.status FROM bookings b WHERE b.id = d.booking_id) AS booking_status";

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct DeadLetterFilter {
    /// `open` (default), `resolved` or `all`.
    status: Option<String>,
    #[param(minimum = 1, maximum = 100_000)]
    page: Option<i64>,
    #[param(minimum = 1, maximum = 100)]
    per_page: Option<i64>,
}

/// Dead-lettered booking commands, newest first.
#[utoipa::path(
    get, path = "/admin/dead-letters", tag = "admin", security(("bearer" = [])),
    params(DeadLetterFilter),
    responses(
        (status = 200, body = Page<DeadLetterView>),
        (status = 400, description = "`invalid_query`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`: not an admin", body = ErrorBody),
        (status = 422, description = "`invalid_status`, `invalid_pagination`", body = ErrorBody),
    ),
)]
async fn list_dead_letters(
    State(state): State<AppState>,
    _admin: Admin,
    Query(filter): Query<DeadLetterFilter>,
) -> ApiResult<Json<Page<DeadLetterView>>> {
    // A fixed set of conditions, never text from the request.
    let condition = match filter.status.as_deref().unwrap_or("open") {
        "open" => "d.resolved_at IS NULL",
        "resolved" => "d.resolved_at IS NOT NULL",
        "all" => "TRUE",
        _ => {
            return Err(ApiError::invalid(
                "invalid_status",
                "status is open, resolved or all.",
            ));
        }
    };
    let page = Pagination::new(filter.page, filter.per_page).resolve()?;
    let items = sqlx::query_as::<_, DeadLetterView>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM dead_letters d WHERE {condition}
         ORDER BY d.id DESC LIMIT $1 OFFSET $2"
    )))
    .bind(page.per_page)
    .bind(page.offset())
    .fetch_all(&state.db)
    .await?;
    let (total,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM dead_letters d WHERE {condition}"
    )))
    .fetch_one(&state.db)
    .await?;
    Ok(Json(page.answer(items, total)))
}

#[derive(Deserialize, ToSchema)]
struct ResolveBody {
    /// What was done about it: 1 to 1000 characters, kept with the row and in the audit log.
    note: String,
}

/// Mark a dead letter resolved, with a note. Audited.
#[utoipa::path(
    post, path = "/admin/dead-letters/{id}/resolve", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path)),
    request_body = ResolveBody,
    responses(
        (status = 200, body = DeadLetterView),
        (status = 400, description = "`invalid_path`, `malformed_json`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`already_resolved`", body = ErrorBody),
        (status = 422, description = "`invalid_field`, `invalid_body`", body = ErrorBody),
    ),
)]
async fn resolve(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<i64>,
    Json(body): Json<ResolveBody>,
) -> ApiResult<Json<DeadLetterView>> {
    let note = body.note.trim();
    if note.is_empty() || note.chars().count() > 1000 || note.contains('\0') {
        return Err(ApiError::invalid(
            "invalid_field",
            "A resolution needs a note of 1 to 1000 characters.",
        ));
    }
    let resolved = mark_resolved(&state.db, id, admin.id, note).await?;
    tracing::info!(dead_letter.id = id, admin.id = %admin.id, "dead letter resolved");
    Ok(Json(resolved))
}

async fn mark_resolved(
    db: &PgPool,
    id: i64,
    admin: UserId,
    note: &str,
) -> Result<DeadLetterView, ApiError> {
    let mut tx = db.begin().await?;
    // Locked, so two admins resolving at once get one 200 and one 409.
    let current: Option<(Option<OffsetDateTime>, Option<BookingId>)> =
        sqlx::query_as("SELECT resolved_at, booking_id FROM dead_letters WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some((resolved_at, booking_id)) = current else {
        return Err(ApiError::NotFound("dead letter"));
    };
    if resolved_at.is_some() {
        return Err(ApiError::conflict(
            "already_resolved",
            "This dead letter is resolved already.",
        ));
    }
    sqlx::query(
        "UPDATE dead_letters SET resolved_at = now(), resolved_by = $2, note = $3 WHERE id = $1",
    )
    .bind(id)
    .bind(admin)
    .bind(note)
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        admin,
        "dead_letter.resolve",
        "dead_letter",
        &id.to_string(),
        serde_json::json!({"note": note, "booking_id": booking_id}),
    )
    .await?;
    let view = sqlx::query_as::<_, DeadLetterView>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM dead_letters d WHERE d.id = $1"
    )))
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(view)
}
