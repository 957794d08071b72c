//! `ApiError`: every way a request can fail, and the one place where that becomes HTTP.
//!
//! Internal causes are logged here, once, with the request's span; the client only ever sees
//! the contract body `{"error", "message"}`.
//!
//! One safety net lives here too: text Postgres cannot store (a NUL character in `text` or
//! `jsonb`) is the client's input, so it answers 422 `invalid_text`, never 500, whichever
//! route let it through. The shared extractors already refuse such text at the door; this
//! catches a route that reads its input some other way.

use std::time::Duration;

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use shared::http::error_response;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The input is well-formed but not acceptable (bad email, short password, ...): 422.
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// Not logged in, or the token is bad: 401.
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },
    /// Logged in, but not allowed: 403.
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request conflicts with the current state (email taken, already pending, ...): 409.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("too many requests")]
    RateLimited { retry_after: Duration },
    /// 409 `seats_unavailable`, naming the seats someone else has.
    #[error("{message}")]
    SeatsUnavailable {
        message: String,
        seat_ids: Vec<shared::ids::SeatId>,
    },
    /// A dependency is briefly unavailable: 503 with Retry-After.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            message: message.into(),
        }
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::Unauthorized {
            code,
            message: message.into(),
        }
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::Forbidden {
            code,
            message: message.into(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        Self::Internal(anyhow::Error::new(err).context("database"))
    }
}

impl From<shared::cache::redis::RedisError> for ApiError {
    fn from(err: shared::cache::redis::RedisError) -> Self {
        Self::Internal(anyhow::Error::new(err).context("redis"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Invalid { code, message } => {
                error_response(StatusCode::UNPROCESSABLE_ENTITY, code, message)
            }
            Self::Unauthorized { code, message } => {
                let mut response = error_response(StatusCode::UNAUTHORIZED, code, message);
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                response
            }
            Self::Forbidden { code, message } => {
                error_response(StatusCode::FORBIDDEN, code, message)
            }
            Self::NotFound(what) => error_response(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("No such {what}."),
            ),
            Self::Conflict { code, message } => error_response(StatusCode::CONFLICT, code, message),
            Self::SeatsUnavailable { message, seat_ids } => (
                StatusCode::CONFLICT,
                axum::Json(serde_json::json!({
                    "error": "seats_unavailable",
                    "message": message,
                    "seat_ids": seat_ids,
                })),
            )
                .into_response(),
            Self::RateLimited { retry_after } => {
                let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                let mut response = error_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    format!("Too many attempts; try again in {secs} s."),
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
                response
            }
            Self::Unavailable(message) => {
                let mut response =
                    error_response(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message);
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(1));
                response
            }
            Self::Internal(err) if is_unstorable_text(&err) => {
                tracing::warn!(error = ?err, "text with a NUL reached Postgres");
                error_response(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_text",
                    "Text may not contain the NUL character (U+0000).",
                )
            }
            Self::Internal(err) => {
                tracing::error!(error = ?err, "request failed");
                error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Something went wrong on our side.",
                )
            }
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Did Postgres refuse text it cannot store: SQLSTATE 22021 (`character_not_in_repertoire`,
/// a NUL in `text`) or 22P05 (`untranslatable_character`, `\u0000` in `jsonb`)? Both can only
/// come from input. The failing statement wrote nothing, and the transaction around it (routes
/// that write several rows use one) is rolled back when it is dropped.
fn is_unstorable_text(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<sqlx::Error>()
            .and_then(sqlx::Error::as_database_error)
            .and_then(|db| db.code())
            .is_some_and(|code| code == "22021" || code == "22P05")
    })
}

impl From<crate::accounts::AccountError> for ApiError {
    fn from(err: crate::accounts::AccountError) -> Self {
        use crate::accounts::AccountError as E;
        let message = err.to_string();
        match err {
            E::InvalidEmail(message) => Self::invalid("invalid_email", message),
            E::WeakPassword(message) => Self::invalid("weak_password", message),
            E::InvalidField(message) => Self::invalid("invalid_field", message),
            E::EmailTaken => Self::conflict("email_taken", message),
            E::InvalidCredentials => Self::unauthorized("invalid_credentials", message),
            E::Banned => Self::forbidden("banned", message),
            E::InvalidRefreshToken => Self::unauthorized("invalid_refresh_token", message),
            E::RefreshTokenReused => Self::unauthorized("refresh_token_reused", message),
            E::UserNotFound => Self::NotFound("user"),
            E::AlreadyOrganizer => Self::conflict("already_organizer", message),
            E::ApplicationPending => Self::conflict("application_pending", message),
            E::NoPendingApplication => Self::conflict("no_pending_application", message),
            E::CannotBanAdmin => Self::conflict("cannot_ban_admin", message),
            E::Database(err) => err.into(),
            E::Internal(err) => Self::Internal(err),
        }
    }
}

impl From<crate::events::EventError> for ApiError {
    fn from(err: crate::events::EventError) -> Self {
        use crate::events::EventError as E;
        let message = err.to_string();
        match err {
            E::InvalidField(_) => Self::invalid("invalid_field", message),
            E::InvalidTime(_) => Self::invalid("invalid_time", message),
            E::InvalidCurrency(_) => Self::invalid("invalid_currency", message),
            E::MixedCurrencies => Self::invalid("mixed_currencies", message),
            E::DuplicateClass(_) => Self::invalid("duplicate_class", message),
            E::UnknownVenue => Self::invalid("unknown_venue", message),
            E::UnknownSection(_) => Self::invalid("unknown_section", message),
            E::SeatsWithoutClass(_) => Self::invalid("seats_without_class", message),
            E::EmptyClass(_) => Self::invalid("empty_class", message),
            E::UnknownClass(_) => Self::invalid("unknown_class", message),
            E::NotFound => Self::NotFound("event"),
            E::HasSales(_) => Self::conflict("event_has_sales", message),
            E::SaleOpened => Self::conflict("sale_opened", message),
            E::Cancelled => Self::conflict("event_cancelled", message),
            E::Database(err) => err.into(),
            E::Internal(err) => Self::Internal(err),
        }
    }
}

impl From<crate::venues::VenueError> for ApiError {
    fn from(err: crate::venues::VenueError) -> Self {
        use crate::venues::VenueError as E;
        let message = err.to_string();
        match err {
            E::InvalidField(_) => Self::invalid("invalid_field", message),
            E::InvalidLayout(_) => Self::invalid("invalid_layout", message),
            E::UnsafeSvg(_) => Self::invalid("unsafe_svg", message),
            E::NotFound => Self::NotFound("venue"),
            E::Database(err) => err.into(),
            E::Internal(err) => Self::Internal(err),
        }
    }
}

impl From<crate::reports::ReportError> for ApiError {
    fn from(err: crate::reports::ReportError) -> Self {
        use crate::reports::ReportError as E;
        match err {
            E::NotFound => Self::NotFound("event"),
            E::Event(err) => err.into(),
            E::Inventory(err) => err.into(),
            E::Redis(err) => err.into(),
            E::Db(err) => err.into(),
        }
    }
}

impl From<crate::holds::HoldError> for ApiError {
    fn from(err: crate::holds::HoldError) -> Self {
        use crate::holds::HoldError as E;
        let message = err.to_string();
        match err {
            E::EventNotFound => Self::NotFound("event"),
            E::HoldNotFound => Self::NotFound("hold"),
            E::Gate(err) => err.into(),
            E::EventCancelled => Self::conflict("event_cancelled", message),
            E::SaleNotOpen => Self::conflict("sale_not_open", message),
            E::SaleClosed => Self::conflict("sale_closed", message),
            E::NoSeats => Self::invalid("no_seats", message),
            E::TooManySeats(_) => Self::invalid("too_many_seats", message),
            E::DuplicateSeats => Self::invalid("duplicate_seats", message),
            E::UnknownSeats(ids) => Self::invalid(
                "unknown_seats",
                format!(
                    "{message}: {}",
                    ids.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            E::UnknownClass(_) => Self::invalid("unknown_class", message),
            E::SeatsUnavailable(seat_ids) => Self::SeatsUnavailable { message, seat_ids },
            E::NotEnoughSeats { .. } => Self::SeatsUnavailable {
                message,
                seat_ids: Vec::new(),
            },
            E::Inventory(shared::inventory::InventoryError::Loading) => Self::Unavailable(message),
            E::Inventory(err) => Self::Internal(anyhow::Error::new(err).context("inventory")),
            E::Database(err) => err.into(),
        }
    }
}

/// The seat inventory read outside a hold (seat maps, live counts, dashboards) fails as a
/// hold would: 503 while the inventory is loading, 500 otherwise.
impl From<shared::inventory::InventoryError> for ApiError {
    fn from(err: shared::inventory::InventoryError) -> Self {
        crate::holds::HoldError::from(err).into()
    }
}

impl From<crate::bookings::BookingError> for ApiError {
    fn from(err: crate::bookings::BookingError) -> Self {
        use crate::bookings::BookingError as E;
        let message = err.to_string();
        match err {
            E::Hold(err) => err.into(),
            E::Register(err) => err.into(),
            E::NotFound => Self::NotFound("booking"),
            E::InvalidIdempotencyKey => Self::invalid("invalid_idempotency_key", message),
            E::Redis(err) => Self::Internal(anyhow::Error::new(err).context("redis")),
            E::Database(err) => err.into(),
        }
    }
}

impl From<shared::booking::RegisterError> for ApiError {
    fn from(err: shared::booking::RegisterError) -> Self {
        use shared::booking::RegisterError as E;
        let message = err.to_string();
        match err {
            E::Gate(err) => err.into(),
            // The rejection's reason is the code: the same word a queued booking ends with.
            E::Rejected(why) => Self::conflict(why.code(), message),
            E::EventNotFound => Self::NotFound("event"),
            E::InProgress => Self::conflict("registration_in_progress", message),
            E::QueueUnavailable => Self::Unavailable(message),
            E::Inventory(shared::inventory::InventoryError::Loading) => Self::Unavailable(message),
            E::Inventory(err) => Self::Internal(anyhow::Error::new(err).context("inventory")),
            E::Redis(err) => Self::Internal(anyhow::Error::new(err).context("redis")),
            E::Database(err) => err.into(),
            E::Internal(err) => Self::Internal(err),
        }
    }
}

impl From<crate::gate::GateError> for ApiError {
    fn from(err: crate::gate::GateError) -> Self {
        use crate::gate::GateError as E;
        let message = err.to_string();
        match err {
            E::AdmissionRequired => Self::forbidden("admission_required", message),
            E::InvalidAdmission(_) | E::NotAdmitted => {
                Self::forbidden("invalid_admission", message)
            }
        }
    }
}

impl From<crate::rate_limit::LoginRefused> for ApiError {
    fn from(refused: crate::rate_limit::LoginRefused) -> Self {
        use crate::rate_limit::LoginRefused as E;
        match refused {
            E::Limited(retry_after) => Self::RateLimited { retry_after },
            E::Unavailable(err) => {
                tracing::warn!(error = %err, "login limits unavailable");
                Self::Unavailable("Logging in is briefly unavailable; try again.".into())
            }
        }
    }
}

impl From<shared::http::AuthFailure> for ApiError {
    fn from(failure: shared::http::AuthFailure) -> Self {
        let message = failure.message().to_string();
        match failure {
            shared::http::AuthFailure::Banned => Self::forbidden(failure.code(), message),
            _ => Self::unauthorized(failure.code(), message),
        }
    }
}
