//! `/api/me`: who am I.

use axum::{Router, extract::State, routing::get};
use shared::http::Json;

use super::UserView;
use crate::{
    AppState,
    accounts::{AccountError, users},
    error::{ApiError, ApiResult},
    extract::CurrentUser,
};

pub fn router() -> Router<AppState> {
    Router::new().route("/me", get(me))
}

async fn me(State(state): State<AppState>, caller: CurrentUser) -> ApiResult<Json<UserView>> {
    match users::get(&state.db, caller.id).await {
        Ok(user) => Ok(Json(user.into())),
        // A valid token for a user that no longer exists: the session is over.
        Err(AccountError::UserNotFound) => Err(ApiError::unauthorized(
            "invalid_token",
            "This account no longer exists.",
        )),
        Err(err) => Err(err.into()),
    }
}
