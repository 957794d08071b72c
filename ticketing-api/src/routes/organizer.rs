//! `/api/organizer/*`: becoming an organizer.

use axum::{Router, extract::State, http::StatusCode, routing::post};
use serde::Deserialize;
use shared::http::Json;

use crate::{
    AppState,
    accounts::organizers::{self, Application},
    error::ApiResult,
    extract::CurrentUser,
};

pub fn router() -> Router<AppState> {
    Router::new().route("/organizer/applications", post(apply))
}

#[derive(Deserialize)]
struct ApplyBody {
    company: String,
    #[serde(default)]
    details: String,
}

async fn apply(
    State(state): State<AppState>,
    caller: CurrentUser,
    Json(body): Json<ApplyBody>,
) -> ApiResult<(StatusCode, Json<Application>)> {
    let application = organizers::apply(&state.db, caller.id, &body.company, &body.details).await?;
    Ok((StatusCode::CREATED, Json(application)))
}
