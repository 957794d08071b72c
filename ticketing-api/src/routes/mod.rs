//! The HTTP surface. One file per resource; each is a thin `router()` over domain code.
//! [`openapi`] assembles the document served at `/api/openapi.json`.

mod admin;
mod auth;
mod bookings;
mod dead_letters;
mod demand;
mod events;
mod holds;
mod me;
pub mod openapi;
mod organizer;
mod reports;
pub mod seats;
mod tickets;
mod venues;
pub mod web;

use std::sync::Arc;

use axum::{
    Router,
    http::{StatusCode, header},
    routing::get,
};
use serde::{Deserialize, Serialize};
use shared::{
    http::{BearerAuth, Readiness, apply_common_layers, error_response, ops_router},
    openapi::CommonResponses,
};
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;

use crate::{AppState, Config, accounts::User, error::ApiError};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Ticketing API",
        description = "Every public endpoint behind the gateway: accounts, organizers, admin, venues, events, holds, registrations, bookings and tickets (the ticketing API), the waiting room (`/api/queue/...`) and the push channel (`/ws`, the notifier). Errors are always `{\"error\": code, \"message\": text}`; when a service is unreachable the gateway answers 503 `service_unavailable` with Retry-After. Text containing a NUL character (U+0000), in a body, a query string or a path, is refused everywhere with 422 `invalid_text`."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "accounts", description = "Sign-up, login, sessions"),
        (name = "organizers", description = "Becoming an organizer"),
        (name = "admin", description = "Admins only; every change is audited"),
        (name = "holds", description = "Short, exclusive claims on seats while a fan checks out"),
        (name = "bookings", description = "Registrations, bookings and tickets"),
        (name = "venues", description = "Organizers' venues and their seat layouts"),
        (name = "events", description = "Events, ticket classes and their seats; reading is public"),
    ),
)]
struct ApiDoc;

/// Every documented route under `/api`, and the OpenAPI document generated from them (with
/// the answers of the shared plumbing).
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest(
            "/api",
            OpenApiRouter::new()
                .merge(auth::router())
                .merge(me::router())
                .merge(organizer::router())
                .merge(admin::router())
                .merge(dead_letters::router())
                .merge(venues::router())
                .merge(events::router())
                .merge(demand::router())
                .merge(holds::router())
                .merge(seats::router())
                .merge(bookings::router())
                .merge(tickets::router())
                .merge(reports::router()),
        )
        .split_for_parts();
    CommonResponses.apply(&mut doc);
    (router, doc)
}

/// The whole app: `/api/...`, `/api/openapi.json`, the ops endpoints (also under `/api` for
/// the gateway), and the browser UI's static files when the API runs without the gateway.
pub fn router(state: AppState, config: &Config) -> Router {
    let readiness = Readiness::new()
        .postgres(state.db.clone())
        .redis(state.redis.clone());
    let ops = ops_router(readiness);
    let (documented, doc) = api();
    // Rendered once: the document only changes with the code.
    let spec: Arc<str> = openapi::gateway_document(doc)
        .to_json()
        .unwrap_or_else(|_| "{}".into())
        .into();
    let api = documented
        .with_state(state)
        .route(
            "/api/openapi.json",
            get(move || {
                let spec = spec.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        spec.to_string(),
                    )
                }
            }),
        )
        .nest("/api", ops.clone())
        // Unknown API paths are JSON 404s, never the web UI's index.html.
        .route(
            "/api/{*rest}",
            axum::routing::any(|| async {
                error_response(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    "There is no such API endpoint.",
                )
            }),
        );
    let app = api
        .merge(ops)
        .fallback_service(web::files(&config.web_root));
    // Outermost, so the 408 and 413 of the common layers get it too.
    apply_common_layers(app, &config.http).layer(axum::middleware::map_response(web::nosniff))
}

/// A user as the API shows them (never the hash, never internal columns).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: shared::ids::UserId,
    pub email: String,
    pub name: String,
    pub role: shared::domain::Role,
    pub organizer_status: shared::domain::OrganizerStatus,
    pub banned: bool,
}

impl From<User> for UserView {
    fn from(user: User) -> Self {
        Self {
            id: user.id,
            email: user.email,
            name: user.name,
            role: user.role,
            organizer_status: user.organizer_status,
            banned: user.banned_at.is_some(),
        }
    }
}

/// The text of a search box (`?q=`): at most 200 characters, trimmed.
pub fn search_text(q: &str) -> Result<&str, ApiError> {
    if q.chars().count() > 200 {
        return Err(ApiError::invalid(
            "invalid_query",
            "q has at most 200 characters.",
        ));
    }
    Ok(q.trim())
}

/// `?page=&per_page=`: pages count from 1, at most 100 items a page.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Pagination {
    #[param(minimum = 1, maximum = 100_000)]
    pub page: Option<i64>,
    #[param(minimum = 1, maximum = 100)]
    pub per_page: Option<i64>,
}

impl Pagination {
    pub fn new(page: Option<i64>, per_page: Option<i64>) -> Self {
        Self { page, per_page }
    }

    /// The page asked for, after checking the range.
    pub fn resolve(&self) -> Result<PageRequest, ApiError> {
        let page = self.page.unwrap_or(1);
        let per_page = self.per_page.unwrap_or(20);
        if !(1..=100_000).contains(&page) || !(1..=100).contains(&per_page) {
            return Err(ApiError::invalid(
                "invalid_pagination",
                "page counts from 1; per_page is 1 to 100.",
            ));
        }
        Ok(PageRequest { page, per_page })
    }
}

/// A checked page request: `LIMIT per_page OFFSET offset()`.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    pub page: i64,
    pub per_page: i64,
}

impl PageRequest {
    pub fn offset(&self) -> i64 {
        (self.page - 1) * self.per_page
    }

    /// The answer: this page's items out of `total`.
    pub fn answer<T>(&self, items: Vec<T>, total: i64) -> Page<T> {
        Page {
            items,
            page: self.page,
            per_page: self.per_page,
            total,
        }
    }
}

/// A page of a list, as every list endpoint answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub page: i64,
    pub per_page: i64,
    pub total: i64,
}
