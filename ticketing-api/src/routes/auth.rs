//! `/api/auth/*`: register, login, refresh, logout.

use axum::{
    Router,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use serde::Deserialize;
use shared::http::Json;

use super::UserView;
use crate::{
    AppState,
    accounts::{
        sessions::{self, Session},
        users::{self, NewUser},
    },
    error::{ApiError, ApiResult},
    extract::ClientIp,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/register", post(register))
        .route("/auth/login", post(login))
        .route("/auth/refresh", post(refresh))
        .route("/auth/logout", post(logout))
}

const REFRESH_COOKIE: &str = "refresh_token";

#[derive(Deserialize)]
struct RegisterBody {
    email: String,
    password: String,
    name: String,
}

async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(body): Json<RegisterBody>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    state
        .auth_limiter
        .check(ip)
        .map_err(|retry_after| ApiError::RateLimited { retry_after })?;
    let new = NewUser::parse(&body.email, &body.password, &body.name)?;
    let user = users::register(&state.db, new).await?;
    tracing::info!(user.id = %user.id, "account created");
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "user": UserView::from(user) })),
    ))
}

#[derive(Deserialize)]
struct LoginBody {
    email: String,
    password: String,
}

async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(body): Json<LoginBody>,
) -> ApiResult<Response> {
    state
        .auth_limiter
        .check(ip)
        .map_err(|retry_after| ApiError::RateLimited { retry_after })?;
    let user = users::authenticate(&state.db, &body.email, &body.password).await?;
    let session = sessions::start(&state.db, &state.keys.access, &state.auth, &user).await?;
    Ok(session_response(
        &state,
        &session,
        Some(serde_json::to_value(UserView::from(user)).map_err(anyhow::Error::from)?),
    ))
}

async fn refresh(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    let presented = cookie(&headers, REFRESH_COOKIE).ok_or_else(|| {
        ApiError::unauthorized("invalid_refresh_token", "There is no refresh cookie.")
    })?;
    let session = sessions::refresh(&state.db, &state.keys.access, &state.auth, presented).await?;
    Ok(session_response(&state, &session, None))
}

async fn logout(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    if let Some(presented) = cookie(&headers, REFRESH_COOKIE) {
        sessions::end(&state.db, presented).await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, refresh_cookie(&state, "", 0));
    Ok(response)
}

/// `{access_token, token_type, expires_in[, user]}` plus the rotated refresh cookie.
fn session_response(
    state: &AppState,
    session: &Session,
    user: Option<serde_json::Value>,
) -> Response {
    let mut body = serde_json::json!({
        "access_token": session.access_token,
        "token_type": "Bearer",
        "expires_in": session.expires_in.as_secs(),
    });
    if let Some(user) = user {
        body["user"] = user;
    }
    let mut response = Json(body).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        refresh_cookie(
            state,
            &session.refresh_token,
            session.refresh_expires_in.as_secs(),
        ),
    );
    response
}

/// HttpOnly (scripts cannot read it), SameSite=Strict (other sites cannot send it), and only
/// sent to `/api/auth`, where it is used.
fn refresh_cookie(state: &AppState, value: &str, max_age_secs: u64) -> HeaderValue {
    let secure = if state.auth.cookie_secure {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{REFRESH_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/api/auth; Max-Age={max_age_secs}{secure}"
    ))
    .expect("a base64url token makes a valid header value")
}

/// The value of cookie `name`, if the request carries it.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, value)| *key == name && !value.is_empty())
        .map(|(_, value)| value)
}
