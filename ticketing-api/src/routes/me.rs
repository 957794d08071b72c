//! `/api/me`: who am I.

use axum::extract::State;
use shared::{error::ErrorBody, http::Json};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::UserView;
use crate::{
    AppState,
    accounts::{AccountError, users},
    error::{ApiError, ApiResult},
    extract::CurrentUser,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(me))
}

/// The caller's account.
#[utoipa::path(
    get, path = "/me", tag = "accounts", security(("bearer" = [])),
    responses(
        (status = 200, body = UserView),
        (status = 401, description = "`unauthorized`, `invalid_token`, `token_expired`", body = ErrorBody),
        (status = 403, description = "`banned`", body = ErrorBody),
    ),
)]
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
