//! `/api/organizer/*`: becoming an organizer.

use axum::{extract::State, http::StatusCode};
use serde::Deserialize;
use shared::{error::ErrorBody, http::Json};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    AppState,
    accounts::organizers::{self, Application},
    error::ApiResult,
    extract::CurrentUser,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(apply))
}

#[derive(Deserialize, ToSchema)]
struct ApplyBody {
    company: String,
    #[serde(default)]
    details: String,
}

/// Ask to become an organizer; an admin decides.
#[utoipa::path(
    post, path = "/organizer/applications", tag = "organizers", security(("bearer" = [])),
    request_body = ApplyBody,
    responses(
        (status = 201, body = Application),
        (status = 409, description = "`application_pending`, `already_organizer`", body = ErrorBody),
        (status = 422, description = "`invalid_field`", body = ErrorBody),
    ),
)]
async fn apply(
    State(state): State<AppState>,
    caller: CurrentUser,
    Json(body): Json<ApplyBody>,
) -> ApiResult<(StatusCode, Json<Application>)> {
    let application = organizers::apply(&state.db, caller.id, &body.company, &body.details).await?;
    Ok((StatusCode::CREATED, Json(application)))
}
