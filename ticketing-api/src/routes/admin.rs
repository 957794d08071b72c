//! `/api/admin/*`: organizer approvals, user search and bans, the audit log. Admins only;
//! every change is written to the audit log in the same transaction.

use axum::{
    Router,
    extract::State,
    routing::{get, post},
};
use serde::Deserialize;
use shared::{
    http::{Json, Path, Query},
    ids::UserId,
};

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

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/organizer-applications", get(list_applications))
        .route("/admin/organizers/{user_id}/approve", post(approve))
        .route("/admin/organizers/{user_id}/reject", post(reject))
        .route("/admin/users", get(search_users))
        .route("/admin/users/{user_id}/ban", post(ban))
        .route("/admin/users/{user_id}/unban", post(unban))
        .route("/admin/audit-log", get(audit_log))
}

#[derive(Deserialize)]
struct ApplicationFilter {
    status: Option<String>,
    page: Option<i64>,
    per_page: Option<i64>,
}

async fn list_applications(
    State(state): State<AppState>,
    Admin(_): Admin,
    Query(filter): Query<ApplicationFilter>,
) -> ApiResult<Json<Vec<Application>>> {
    let status = filter.status.as_deref().unwrap_or("pending");
    if !["pending", "approved", "rejected"].contains(&status) {
        return Err(ApiError::invalid(
            "invalid_status",
            "status is pending, approved or rejected.",
        ));
    }
    let (page, per_page) = Pagination::new(filter.page, filter.per_page).resolve()?;
    let items = organizers::list(&state.db, status, per_page, (page - 1) * per_page).await?;
    Ok(Json(items))
}

async fn approve(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(user_id): Path<UserId>,
) -> ApiResult<Json<UserView>> {
    let user = organizers::decide(&state.db, admin.id, user_id, Decision::Approve, "").await?;
    Ok(Json(user.into()))
}

async fn reject(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(user_id): Path<UserId>,
) -> ApiResult<Json<UserView>> {
    let user = organizers::decide(&state.db, admin.id, user_id, Decision::Reject, "").await?;
    Ok(Json(user.into()))
}

#[derive(Deserialize)]
struct UserSearch {
    #[serde(default)]
    q: String,
    page: Option<i64>,
    per_page: Option<i64>,
}

async fn search_users(
    State(state): State<AppState>,
    Admin(_): Admin,
    Query(search): Query<UserSearch>,
) -> ApiResult<Json<Page<UserView>>> {
    if search.q.chars().count() > 200 {
        return Err(ApiError::invalid(
            "invalid_query",
            "q has at most 200 characters.",
        ));
    }
    let (page, per_page) = Pagination::new(search.page, search.per_page).resolve()?;
    let (users, total) =
        users::search(&state.db, search.q.trim(), per_page, (page - 1) * per_page).await?;
    Ok(Json(Page {
        items: users.into_iter().map(UserView::from).collect(),
        page,
        per_page,
        total,
    }))
}

#[derive(Deserialize)]
struct BanBody {
    reason: String,
}

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

async fn unban(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(user_id): Path<UserId>,
) -> ApiResult<Json<UserView>> {
    let user = users::unban(&state.db, admin.id, user_id).await?;
    Ok(Json(user.into()))
}

async fn audit_log(
    State(state): State<AppState>,
    Admin(_): Admin,
    Query(pagination): Query<Pagination>,
) -> ApiResult<Json<Page<AuditEntry>>> {
    let (page, per_page) = pagination.resolve()?;
    let (items, total) = audit::list(&state.db, per_page, (page - 1) * per_page).await?;
    Ok(Json(Page {
        items,
        page,
        per_page,
        total,
    }))
}
