//! `/api/auth/*`: register, login, refresh, logout.

use axum::{
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use shared::{error::ErrorBody, http::Json};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::UserView;
use crate::{
    AppState,
    accounts::{
        AccountError,
        sessions::{self, Session},
        users::{self, NewUser},
    },
    error::{ApiError, ApiResult},
    extract::ClientIp,
    rate_limit::Outcome,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
}

const REFRESH_COOKIE: &str = "refresh_token";

#[derive(Deserialize, ToSchema)]
struct RegisterBody {
    email: String,
    /// 8 to 128 characters.
    password: String,
    name: String,
}

#[derive(Serialize, ToSchema)]
struct Registered {
    user: UserView,
}

/// Create a fan account.
#[utoipa::path(
    post, path = "/auth/register", tag = "accounts",
    request_body = RegisterBody,
    responses(
        (status = 201, body = Registered),
        (status = 409, description = "`email_taken`", body = ErrorBody),
        (status = 422, description = "`invalid_email`, `weak_password`, `invalid_field`", body = ErrorBody),
        (status = 429, description = "`rate_limited`, with Retry-After", body = ErrorBody),
    ),
)]
async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(body): Json<RegisterBody>,
) -> ApiResult<(StatusCode, Json<Registered>)> {
    state
        .auth_limiter
        .check_register(ip)
        .map_err(|retry_after| ApiError::RateLimited { retry_after })?;
    let new = NewUser::parse(&body.email, &body.password, &body.name)?;
    let user = users::register(&state.db, new).await?;
    tracing::info!(user.id = %user.id, "account created");
    Ok((
        StatusCode::CREATED,
        Json(Registered {
            user: UserView::from(user),
        }),
    ))
}

#[derive(Deserialize, ToSchema)]
struct LoginBody {
    email: String,
    password: String,
}

/// What login and refresh answer; the refresh token travels in an HttpOnly cookie.
#[derive(Serialize, ToSchema)]
struct SessionBody {
    access_token: String,
    /// Always `Bearer`.
    token_type: &'static str,
    /// Seconds until the access token expires.
    expires_in: u64,
    /// Only on login.
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<UserView>,
}

/// Log in: an access token, and a rotating refresh token in the `refresh_token` cookie.
///
/// Limited per client address (hundreds a minute, for fans behind one NAT) and, against
/// password guessing, by failed attempts per account: a few per 15 minutes from one address,
/// more from all addresses (see the ticketing API's `rate_limit` module). A limited attempt is
/// refused even with the right password.
#[utoipa::path(
    post, path = "/auth/login", tag = "accounts",
    request_body = LoginBody,
    responses(
        (status = 200, body = SessionBody),
        (status = 401, description = "`invalid_credentials`", body = ErrorBody),
        (status = 403, description = "`banned`", body = ErrorBody),
        (status = 429, description = "`rate_limited`, with Retry-After", body = ErrorBody),
        (status = 503, description = "`unavailable`: the limits cannot be checked (Redis)", body = ErrorBody),
    ),
)]
async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(body): Json<LoginBody>,
) -> ApiResult<Response> {
    let attempt = state.auth_limiter.begin_login(&body.email, ip).await?;
    let outcome = users::authenticate(&state.db, &body.email, &body.password).await;
    attempt
        .settle(match &outcome {
            Ok(_) => Outcome::LoggedIn,
            Err(AccountError::InvalidCredentials) => Outcome::WrongPassword,
            Err(_) => Outcome::NotAGuess,
        })
        .await;
    let user = outcome?;
    let session = sessions::start(&state.db, &state.keys.access, &state.auth, &user).await?;
    Ok(session_response(
        &state,
        &session,
        Some(UserView::from(user)),
    ))
}

/// Trade the refresh cookie for a new access token; the cookie rotates. Presenting a spent
/// refresh token revokes every session of that login.
#[utoipa::path(
    post, path = "/auth/refresh", tag = "accounts",
    params(("refresh_token" = Option<String>, Cookie, description = "The refresh token login or the last refresh set (HttpOnly, path `/api/auth`)")),
    responses(
        (status = 200, body = SessionBody),
        (status = 401, description = "`invalid_refresh_token`, `refresh_token_reused`", body = ErrorBody),
        (status = 403, description = "`banned`", body = ErrorBody),
    ),
)]
async fn refresh(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    let presented = cookie(&headers, REFRESH_COOKIE).ok_or_else(|| {
        ApiError::unauthorized("invalid_refresh_token", "There is no refresh cookie.")
    })?;
    let session = sessions::refresh(&state.db, &state.keys.access, &state.auth, presented).await?;
    Ok(session_response(&state, &session, None))
}

/// End the session of the refresh cookie (always succeeds).
#[utoipa::path(
    post, path = "/auth/logout", tag = "accounts",
    params(("refresh_token" = Option<String>, Cookie, description = "The session to end, if any")),
    responses((status = 204, description = "Logged out; the cookie is cleared")),
)]
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
fn session_response(state: &AppState, session: &Session, user: Option<UserView>) -> Response {
    let body = SessionBody {
        access_token: session.access_token.clone(),
        token_type: "Bearer",
        expires_in: session.expires_in.as_secs(),
        user,
    };
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
