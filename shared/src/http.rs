//! The HTTP plumbing every web service shares (feature `http`).
//!
//! - [`apply_common_layers`]: request id, one tracing span per request, per-route metrics,
//!   body limit (413), timeout (408), and [`json_errors`] so that every error a layer or the
//!   router produces on its own (404, 405, 408, 413, ...) still has the contract's JSON body
//!   (in [`layers`], which says what each costs); [`apply_hot_layers`] for routes answered
//!   from memory.
//! - [`ops_router`]: `/healthz`, `/readyz` and `/metrics`.
//! - [`Json`], [`Path`], [`Query`]: extractors whose rejections are contract errors, and which
//!   refuse text containing a NUL character (422 `invalid_text`) for every handler at once:
//!   Postgres cannot store U+0000 in `text` or `jsonb`, no person types it, and refusing it at
//!   the door means no handler can turn it into a 500 or a half-done write.
//! - [`Server`]: a router on a bound listener, run until the shutdown signal.

use std::{
    future::Future,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::Arc,
};

use axum::{
    Router,
    body::Bytes,
    extract::{
        FromRequest, FromRequestParts, Request,
        rejection::{JsonRejection, PathRejection, QueryRejection},
    },
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header, request::Parts},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
};
use tokio::net::TcpListener;

use crate::{config::HttpConfig, error::ErrorBody, telemetry};

pub mod layers;

pub use layers::{Layers, apply_layers};

/// The request-id header: set by the gateway, or made here, echoed on every response, and
/// carried into logs (and later into RabbitMQ message headers).
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A contract error response: `status` with `{"error": code, "message": message}`.
pub fn error_response(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (status, axum::Json(ErrorBody::new(code, message))).into_response()
}

/// Wraps `router` in the layers every service has. Call it last, after all routes are added.
pub fn apply_common_layers<S>(router: Router<S>, config: &HttpConfig) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    apply_layers(router, config, Layers::ALL)
}

/// The layers for a router of hot routes only (answered from memory, no body to wait for):
/// [`Layers::HOT`]. Same request ids, spans, metrics and error bodies as
/// [`apply_common_layers`].
pub fn apply_hot_layers<S>(router: Router<S>, config: &HttpConfig) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    apply_layers(router, config, Layers::HOT)
}

/// Gives every error response the contract's JSON body, including those made by layers and
/// the router itself (which answer with plain text or nothing). Part of the common layers;
/// public for a router that wants only this.
pub async fn json_errors(request: Request, next: Next) -> Response {
    json_error_body(next.run(request).await)
}

/// The contract's JSON body for an error response that has none (a JSON one is kept).
fn json_error_body(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|ct| ct.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (code, message) = match status {
        StatusCode::NOT_FOUND => ("not_found", "There is nothing at this address."),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "This address does not take that method.",
        ),
        StatusCode::REQUEST_TIMEOUT => ("timeout", "The request took too long."),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "The request body is too large."),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "Send JSON with Content-Type: application/json.",
        ),
        StatusCode::TOO_MANY_REQUESTS => ("rate_limited", "Too many requests; try again later."),
        s if s.is_server_error() => ("internal", "Something went wrong on our side."),
        _ => ("bad_request", "The request is not valid."),
    };
    let mut fixed = error_response(status, code, message);
    // Keep headers that matter to the client (Retry-After, Allow, the request id).
    for name in [header::RETRY_AFTER, header::ALLOW, REQUEST_ID] {
        if let Some(value) = response.headers().get(&name) {
            fixed.headers_mut().insert(name, value.clone());
        }
    }
    fixed
}

/// The answer to text containing a NUL character (U+0000), in a body, a query or a path.
fn nul_refused() -> Response {
    error_response(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_text",
        "Text may not contain the NUL character (U+0000).",
    )
}

/// Does this JSON text spell a NUL character? Valid JSON can only carry U+0000 as the escape
/// `\u0000` (a raw control byte inside a string is a syntax error), so one pass over the
/// escapes finds it; an escaped backslash (`\\u0000`, the six characters of literal text) is
/// skipped as the pair it is.
fn json_has_nul(body: &[u8]) -> bool {
    let mut i = 0;
    while i < body.len() {
        if body[i] == b'\\' {
            if body.get(i + 1) == Some(&b'u') && body.get(i + 2..i + 6) == Some(&b"0000"[..]) {
                return true;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    body.contains(&0)
}

/// Does this part of a URI (still percent-encoded) decode to text with a NUL character? `%`
/// always starts an escape, so `%00` is exactly an encoded NUL wherever it appears.
fn uri_has_nul(raw: &str) -> bool {
    raw.contains("%00")
}

/// Is the request's body declared as JSON (`application/json` or `application/*+json`)? The
/// same test `axum::Json` makes.
fn is_json_content_type(headers: &HeaderMap) -> bool {
    let Some(essence) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|essence| essence.trim().to_ascii_lowercase())
    else {
        return false;
    };
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// `axum::Json`, but a body that cannot be read answers with the contract's error body:
/// 400 `malformed_json`, 422 `invalid_body` (wrong types, missing fields), 422 `invalid_text`
/// (a NUL character anywhere in the body), 415, 413.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = JsonError;

    async fn from_request(request: Request, state: &S) -> Result<Self, JsonError> {
        if !is_json_content_type(request.headers()) {
            return Err(JsonError::NotJson);
        }
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|err| JsonError::Rejected(err.into()))?;
        if json_has_nul(&body) {
            return Err(JsonError::Nul);
        }
        let axum::Json(value) = axum::Json::<T>::from_bytes(&body).map_err(JsonError::Rejected)?;
        Ok(Self(value))
    }
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Why a JSON body was refused.
#[derive(Debug)]
pub enum JsonError {
    /// No `Content-Type: application/json`.
    NotJson,
    /// The body spells a NUL character.
    Nul,
    /// The body could not be read or did not parse into the expected type.
    Rejected(JsonRejection),
}

impl IntoResponse for JsonError {
    fn into_response(self) -> Response {
        let rejection = match self {
            Self::NotJson => {
                return error_response(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "Send JSON with Content-Type: application/json.",
                );
            }
            Self::Nul => return nul_refused(),
            Self::Rejected(rejection) => rejection,
        };
        match rejection {
            JsonRejection::JsonDataError(err) => error_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                // serde's text names the field and the expected type; it holds no secrets.
                err.body_text(),
            ),
            JsonRejection::JsonSyntaxError(_) => error_response(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                "The request body is not valid JSON.",
            ),
            JsonRejection::MissingJsonContentType(_) => error_response(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Send JSON with Content-Type: application/json.",
            ),
            other => {
                let status = other.status();
                if status == StatusCode::PAYLOAD_TOO_LARGE {
                    error_response(
                        status,
                        "payload_too_large",
                        "The request body is too large.",
                    )
                } else {
                    error_response(status, "bad_request", other.body_text())
                }
            }
        }
    }
}

/// `axum::extract::Path`, but a malformed id answers 400 `invalid_path` with the contract body,
/// and a segment that parses but holds an encoded NUL (a text segment) 422 `invalid_text`.
#[derive(Debug, Clone, Copy)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = PathError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, PathError> {
        let axum::extract::Path(value) = axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map_err(PathError::Rejected)?;
        // After the parse: a segment that is not even a valid id is `invalid_path` first.
        if uri_has_nul(parts.uri.path()) {
            return Err(PathError::Nul);
        }
        Ok(Self(value))
    }
}

#[derive(Debug)]
pub enum PathError {
    Nul,
    Rejected(PathRejection),
}

impl IntoResponse for PathError {
    fn into_response(self) -> Response {
        match self {
            Self::Nul => nul_refused(),
            Self::Rejected(rejection) => error_response(
                StatusCode::BAD_REQUEST,
                "invalid_path",
                rejection.body_text(),
            ),
        }
    }
}

/// `axum::extract::Query`, but a bad query string answers 400 `invalid_query`, and one with an
/// encoded NUL 422 `invalid_text`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = QueryError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, QueryError> {
        if parts.uri.query().is_some_and(uri_has_nul) {
            return Err(QueryError::Nul);
        }
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state)
                .await
                .map_err(QueryError::Rejected)?;
        Ok(Self(value))
    }
}

#[derive(Debug)]
pub enum QueryError {
    Nul,
    Rejected(QueryRejection),
}

impl IntoResponse for QueryError {
    fn into_response(self) -> Response {
        match self {
            Self::Nul => nul_refused(),
            Self::Rejected(rejection) => error_response(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                rejection.body_text(),
            ),
        }
    }
}

type Check = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

/// What `/readyz` checks: the backing services this process depends on.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(&'static str, Check)>,
}

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn postgres(self, pool: sqlx::PgPool) -> Self {
        self.check("postgres", move || {
            let pool = pool.clone();
            async move { crate::db::ping(&pool).await }
        })
    }

    pub fn redis(self, redis: crate::cache::Redis) -> Self {
        self.check("redis", move || {
            let redis = redis.clone();
            async move { crate::cache::ping(&redis).await }
        })
    }

    pub fn rabbitmq(self, connection: Arc<lapin::Connection>) -> Self {
        self.check("rabbitmq", move || {
            let up = crate::messaging::is_connected(&connection);
            async move { up }
        })
    }

    pub fn check<F, Fut>(mut self, name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        self.checks
            .push((name, Arc::new(move || Box::pin(check()))));
        self
    }

    async fn report(&self) -> (bool, serde_json::Map<String, serde_json::Value>) {
        let mut all_up = true;
        let mut report = serde_json::Map::new();
        for (name, check) in &self.checks {
            let up = tokio::time::timeout(std::time::Duration::from_secs(2), check())
                .await
                .unwrap_or(false);
            all_up &= up;
            report.insert((*name).to_string(), up.into());
        }
        (all_up, report)
    }
}

/// `/healthz` (the process answers), `/readyz` (its dependencies answer), `/metrics`.
pub fn ops_router<S>(readiness: Readiness) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let metrics = telemetry::metrics_handle();
    Router::new()
        .route(
            "/healthz",
            // A constant body: the probe is polled, and a JSON map per answer is waste.
            get(|| async {
                (
                    [(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    )],
                    r#"{"status":"ok"}"#,
                )
            }),
        )
        .route(
            "/readyz",
            get(move || {
                let readiness = readiness.clone();
                async move {
                    let (ready, checks) = readiness.report().await;
                    let status = if ready {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    };
                    let body = serde_json::json!({
                        "status": if ready { "ready" } else { "unavailable" },
                        "checks": checks,
                    });
                    (status, axum::Json(body))
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("text/plain; version=0.0.4"),
                        )],
                        metrics.render(),
                    )
                }
            }),
        )
}

/// The client's IP: the peer address, or the first `X-Forwarded-For` hop when the service runs
/// behind the gateway (`TRUST_FORWARDED_FOR`). Never trust the header on a public port.
pub fn client_ip(headers: &HeaderMap, peer: SocketAddr, trust_forwarded_for: bool) -> IpAddr {
    if trust_forwarded_for
        && let Some(ip) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|first| first.trim().parse().ok())
    {
        return ip;
    }
    peer.ip()
}

/// A web service bound to its address (port 0 in tests) but not serving yet.
pub struct Server {
    listener: TcpListener,
    router: Router,
}

impl Server {
    pub async fn bind(addr: SocketAddr, router: Router) -> anyhow::Result<Self> {
        use anyhow::Context;
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        Ok(Self { listener, router })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(anyhow::Error::from)
    }
}

/// The router of a service whose only HTTP surface (for now) is operations: the ops
/// endpoints at the root and under `api_prefix`, JSON 404s elsewhere, the common layers.
pub fn ops_only_router(readiness: Readiness, api_prefix: &str, config: &HttpConfig) -> Router {
    let ops = ops_router(readiness);
    let router = Router::new().nest(api_prefix, ops.clone()).merge(ops);
    apply_common_layers(router, config)
}

/// The OpenAPI security scheme `bearer` (`Authorization: Bearer <access token>`), for the
/// `modifiers(...)` of a service's document.
#[derive(Debug, Clone, Copy)]
pub struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("JWT (EdDSA)")
                        .build(),
                ),
            );
    }
}

/// Why a caller is not authenticated. Each service turns it into its own error type; the
/// status, code and message are the same everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    Missing,
    Expired,
    Invalid,
    Banned,
}

impl AuthFailure {
    pub fn status(self) -> StatusCode {
        match self {
            Self::Banned => StatusCode::FORBIDDEN,
            Self::Missing | Self::Expired | Self::Invalid => StatusCode::UNAUTHORIZED,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::Missing => "unauthorized",
            Self::Expired => "token_expired",
            Self::Invalid => "invalid_token",
            Self::Banned => "banned",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Self::Missing => "Log in and send the access token as `Authorization: Bearer <token>`.",
            Self::Expired => "The access token has expired; refresh it.",
            Self::Invalid => "The access token is not valid.",
            Self::Banned => "This account is banned.",
        }
    }
}

impl IntoResponse for AuthFailure {
    fn into_response(self) -> Response {
        error_response(self.status(), self.code(), self.message())
    }
}

/// The caller of a request carrying `Authorization: Bearer <access token>`, checked locally
/// (signature, audience, expiry) and against the ban list when the service keeps one.
pub fn authenticate(
    headers: &HeaderMap,
    keys: &crate::tokens::TokenKeys,
    bans: Option<&crate::bans::BanList>,
) -> Result<crate::tokens::AccessClaims, AuthFailure> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    authenticate_token(token, keys, bans)
}

/// The same for an access token that arrives another way (a WebSocket's query string).
pub fn authenticate_token(
    token: Option<&str>,
    keys: &crate::tokens::TokenKeys,
    bans: Option<&crate::bans::BanList>,
) -> Result<crate::tokens::AccessClaims, AuthFailure> {
    authenticate_token_verified(token, keys, bans).map(|verified| verified.claims)
}

/// [`authenticate_token`] with the token's times, for a caller that must stop serving at its
/// expiry (a WebSocket outlives the request that opened it).
pub fn authenticate_token_verified(
    token: Option<&str>,
    keys: &crate::tokens::TokenKeys,
    bans: Option<&crate::bans::BanList>,
) -> Result<crate::tokens::Verified<crate::tokens::AccessClaims>, AuthFailure> {
    use crate::tokens::{AccessClaims, TokenError};
    let token = token
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .ok_or(AuthFailure::Missing)?;
    let verified = keys
        .verify::<AccessClaims>(token)
        .map_err(|err| match err {
            TokenError::Expired => AuthFailure::Expired,
            _ => AuthFailure::Invalid,
        })?;
    if bans.is_some_and(|bans| bans.is_banned(verified.claims.sub)) {
        return Err(AuthFailure::Banned);
    }
    Ok(verified)
}
