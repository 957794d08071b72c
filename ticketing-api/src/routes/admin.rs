//! `/api/admin/*`: organizer approvals, user search and bans, the audit log. Admins only;
//! every change is written to the audit log in the same transaction.

use axum::extract::State;
use serde::Deserialize;
use shared::{
    error::ErrorBody,
    http::{Json, Path, Query},
    ids::UserId,
};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{Page, Pagination, UserView};
use crate::{
    AppState,
    accounts::{
        audit::{self, AuditEntry},
        organizers::{self, Application, Decision},
        users,
    },
    error::{ApiError, ApiResult},
    extract::Admin,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_applications))
        .routes(routes!(approve))
        .routes(routes!(reject))
        .routes(routes!(search_users))
        .routes(routes!(ban))
        .routes(routes!(unban))
        .routes(routes!(audit_log))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ApplicationFilter {
    /// `pending` (default), `approved` or `rejected`.
    status: Option<String>,
    #[param(minimum = 1, maximum = 100_000)]
    page: Option<i64>,
    #[param(minimum = 1, maximum = 100)]
    per_page: Option<i64>,
}

/// Organizer applications in one status, oldest first.
#[utoipa::path(
    get, path = "/admin/organizer-applications", tag = "admin", security(("bearer" = [])),
    params(ApplicationFilter),
    responses(
        (status = 200, body = Vec<Application>),
        (status = 403, description = "`forbidden`: not an admin", body = ErrorBody),
        (status = 422, description = "`invalid_status`, `invalid_pagination`", body = ErrorBody),
    ),
)]
async fn list_applications(
    State(state): State<AppState>,
    _admin: Admin,
    Query(filter): Query<ApplicationFilter>,
) -> ApiResult<Json<Vec<Application>>> {
    let status = filter.status.as_deref().unwrap_or("pending");
    if !["pending", "approved", "rejected"].contains(&status) {
        return Err(ApiError::invalid(
            "invalid_status",
            "status is pending, approved or rejected.",
        ));
    }
    let page = Pagination::new(filter.page, filter.per_page).resolve()?;
    let items = organizers::list(&state.db, status, page.per_page, page.offset()).await?;
    Ok(Json(items))
}

/// Approve a user's pending application: their role becomes `organizer`. Audited.
#[utoipa::path(
    post, path = "/admin/organizers/{user_id}/approve", tag = "admin", security(("bearer" = [])),
    params(("user_id" = UserId, Path)),
    responses(
        (status = 200, body = UserView),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 409, description = "`no_pending_application`", body = ErrorBody),
    ),
)]
async fn approve(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(user_id): Path<UserId>,
) -> ApiResult<Json<UserView>> {
    let user = organizers::decide(&state.db, admin.id, user_id, Decision::Approve, "").await?;
    Ok(Json(user.into()))
}

/// Reject a user's pending application. Audited.
#[utoipa::path(
    post, path = "/admin/organizers/{user_id}/reject", tag = "admin", security(("bearer" = [])),
    params(("user_id" = UserId, Path)),
    responses(
        (status = 200, body = UserView),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 409, description = "`no_pending_application`", body = ErrorBody),
    ),
)]
async fn reject(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(user_id): Path<UserId>,
) -> ApiResult<Json<UserView>> {
    let user = organizers::decide(&state.db, admin.id, user_id, Decision::Reject, "").await?;
    Ok(Json(user.into()))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct UserSearch {
    /// Part of an email or a name, matched literally and case-insensitively.
    #[serde(default)]
    #[param(max_length = 200)]
    q: String,
    #[param(minimum = 1, maximum = 100_000)]
    page: Option<i64>,
    #[param(minimum = 1, maximum = 100)]
    per_page: Option<i64>,
}

/// Search users, newest first.
#[utoipa::path(
    get, path = "/admin/users", tag = "admin", security(("bearer" = [])),
    params(UserSearch),
    responses(
        (status = 200, body = Page<UserView>),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 422, description = "`invalid_query`, `invalid_pagination`", body = ErrorBody),
    ),
)]
async fn search_users(
    State(state): State<AppState>,
    _admin: Admin,
    Query(search): Query<UserSearch>,
) -> ApiResult<Json<Page<UserView>>> {
    let q = super::search_text(&search.q)?;
    let page = Pagination::new(search.page, search.per_page).resolve()?;
    let (users, total) = users::search(&state.db, q, page.per_page, page.offset()).await?;
    Ok(Json(page.answer(
        users.into_iter().map(UserView::from).collect(),
        total,
    )))
}

#[derive(Deserialize, ToSchema)]
struct BanBody {
    /// 1 to 500 characters, kept in the audit log.
    reason: String,
}

/// Ban a user: logins refused, sessions revoked, live tokens refused within seconds. Audited.
#[utoipa::path(
    post, path = "/admin/users/{user_id}/ban", tag = "admin", security(("bearer" = [])),
    params(("user_id" = UserId, Path)),
    request_body = BanBody,
    responses(
        (status = 200, body = UserView),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`cannot_ban_admin`", body = ErrorBody),
        (status = 422, description = "`invalid_field`", body = ErrorBody),
    ),
)]
async fn ban(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(user_id): Path<UserId>,
    Json(body): Json<BanBody>,
) -> ApiResult<Json<UserView>> {
    let reason = body.reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(ApiError::invalid(
            "invalid_field",
            "A ban needs a reason of 1 to 500 characters.",
        ));
    }
    let user = users::ban(&state.db, admin.id, user_id, reason).await?;
    // This instance refuses the user's tokens at once; the others within a reload.
    state.bans.insert(user.id);
    tracing::info!(user.id = %user.id, admin.id = %admin.id, "user banned");
    Ok(Json(user.into()))
}

/// Lift a ban. Audited.
#[utoipa::path(
    post, path = "/admin/users/{user_id}/unban", tag = "admin", security(("bearer" = [])),
    params(("user_id" = UserId, Path)),
    responses(
        (status = 200, body = UserView),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ),
)]
async fn unban(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(user_id): Path<UserId>,
) -> ApiResult<Json<UserView>> {
    let user = users::unban(&state.db, admin.id, user_id).await?;
    Ok(Json(user.into()))
}

/// The audit log, newest first.
#[utoipa::path(
    get, path = "/admin/audit-log", tag = "admin", security(("bearer" = [])),
    params(Pagination),
    responses(
        (status = 200, body = Page<AuditEntry>),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 422, description = "`invalid_pagination`", body = ErrorBody),
    ),
)]
async fn audit_log(
    State(state): State<AppState>,
    _admin: Admin,
    Query(pagination): Query<Pagination>,
) -> ApiResult<Json<Page<AuditEntry>>> {
    let page = pagination.resolve()?;
    let (items, total) = audit::list(&state.db, page.per_page, page.offset()).await?;
    Ok(Json(page.answer(items, total)))
}
