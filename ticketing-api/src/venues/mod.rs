//! Venues: where events happen, and their seat layouts. No axum types here; `crate::error`
//! translates [`VenueError`] into HTTP.
//!
//! A venue belongs to the organizer who created it; only they and admins see it (others get
//! "not found", so ids reveal nothing). Its layout is checked once, on creation, and never
//! changes afterwards: events copy its seats, so editing a layout would split them.

pub mod layout;
pub mod svg;

use serde::{Deserialize, Serialize};
use shared::{domain::Role, ids::UserId, ids::VenueId};
use sqlx::{PgPool, types::Json};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::accounts::audit;
pub use layout::{Layout, LayoutInput};

/// Who is acting on venues and events: an organizer acts on their own, an admin on any.
#[derive(Debug, Clone, Copy)]
pub struct Actor {
    pub id: UserId,
    pub is_admin: bool,
}

impl Actor {
    /// `None` for fans, who may not manage venues or events.
    pub fn new(id: UserId, role: Role) -> Option<Self> {
        match role {
            Role::Fan => None,
            Role::Organizer => Some(Self {
                id,
                is_admin: false,
            }),
            Role::Admin => Some(Self { id, is_admin: true }),
        }
    }

    /// May this actor act on something owned by `owner`?
    pub fn may_manage(&self, owner: UserId) -> bool {
        self.is_admin || self.id == owner
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VenueError {
    #[error("{0}")]
    InvalidField(String),
    #[error("{0}")]
    InvalidLayout(String),
    #[error("{0}")]
    UnsafeSvg(String),
    #[error("no such venue")]
    NotFound,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// A venue as its owner sees it, layout included.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Venue {
    pub id: VenueId,
    pub organizer_id: UserId,
    pub name: String,
    pub city: String,
    pub capacity: i32,
    /// Section names in the venue's order (what ticket classes refer to).
    pub sections: Vec<String>,
    pub layout: Layout,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A venue in a list: no layout (an SVG one can be large).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct VenueSummary {
    pub id: VenueId,
    pub organizer_id: UserId,
    pub name: String,
    pub city: String,
    pub capacity: i32,
    /// `grid` or `svg`.
    pub layout_kind: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct VenueRow {
    id: VenueId,
    organizer_id: UserId,
    name: String,
    city: String,
    capacity: i32,
    layout: Json<Layout>,
    created_at: OffsetDateTime,
}

impl From<VenueRow> for Venue {
    fn from(row: VenueRow) -> Self {
        let layout = row.layout.0;
        Self {
            id: row.id,
            organizer_id: row.organizer_id,
            name: row.name,
            city: row.city,
            capacity: row.capacity,
            sections: layout.sections(),
            layout,
            created_at: row.created_at,
        }
    }
}

/// A venue to create, as the client sends it.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewVenue {
    /// 1 to 200 characters.
    pub name: String,
    /// At most 200 characters.
    #[serde(default)]
    pub city: Option<String>,
    pub layout: LayoutInput,
}

/// Trimmed text of `min..=max` characters without control characters.
fn text_field(what: &str, value: &str, min: usize, max: usize) -> Result<String, VenueError> {
    let value = value.trim();
    let length = value.chars().count();
    if length < min || length > max || value.chars().any(char::is_control) {
        return Err(VenueError::InvalidField(format!(
            "The {what} has {min} to {max} characters, none of them control characters."
        )));
    }
    Ok(value.to_string())
}

/// Creates a venue owned by `actor`. Audited.
pub async fn create(db: &PgPool, actor: Actor, new: NewVenue) -> Result<Venue, VenueError> {
    let name = text_field("name", &new.name, 1, 200)?;
    let city = text_field("city", new.city.as_deref().unwrap_or_default(), 0, 200)?;
    // Checking an SVG of 512 KiB with 100,000 seats is CPU work: off the async threads.
    let layout = tokio::task::spawn_blocking(move || new.layout.parse())
        .await
        .map_err(|err| anyhow::anyhow!("layout check panicked: {err}"))??;
    let capacity = i32::try_from(layout.capacity()).map_err(anyhow::Error::from)?;
    let id = VenueId::new();
    let mut tx = db.begin().await?;
    let row = sqlx::query_as::<_, VenueRow>(
        "INSERT INTO venues (id, organizer_id, name, city, layout, capacity)
         VALUES ($1, $2, $3, $4, $5, $6)
         RETURNING id, organizer_id, name, city, capacity, layout, created_at",
    )
    .bind(id)
    .bind(actor.id)
    .bind(&name)
    .bind(&city)
    .bind(Json(&layout))
    .bind(capacity)
    .fetch_one(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        actor.id,
        "venue.create",
        "venue",
        &id.to_string(),
        serde_json::json!({"name": name, "capacity": capacity, "kind": layout.kind()}),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(venue.id = %id, capacity, kind = layout.kind(), "venue created");
    Ok(row.into())
}

/// A venue the actor may manage; anyone else's is "not found".
pub async fn get(db: &PgPool, actor: Actor, id: VenueId) -> Result<Venue, VenueError> {
    let row = sqlx::query_as::<_, VenueRow>(
        "SELECT id, organizer_id, name, city, capacity, layout, created_at
         FROM venues WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await?
    .filter(|row| actor.may_manage(row.organizer_id))
    .ok_or(VenueError::NotFound)?;
    Ok(row.into())
}

/// The actor's venues (every venue for an admin), newest first.
pub async fn list(
    db: &PgPool,
    actor: Actor,
    limit: i64,
    offset: i64,
) -> Result<(Vec<VenueSummary>, i64), VenueError> {
    // `$1 IS NULL` lists everything: only admins pass no owner.
    let owner = (!actor.is_admin).then_some(actor.id);
    Ok(crate::sql::page(
        db,
        "SELECT id, organizer_id, name, city, capacity, layout->>'kind' AS layout_kind, created_at
         FROM venues WHERE $1::uuid IS NULL OR organizer_id = $1
         ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3",
        "SELECT count(*) FROM venues WHERE $1::uuid IS NULL OR organizer_id = $1",
        owner,
        limit,
        offset,
    )
    .await?)
}

/// The checked SVG drawing of a venue with an SVG layout. Public: it is the background of the
/// seat map every fan sees, and holds nothing but the drawing.
pub async fn layout_svg(db: &PgPool, id: VenueId) -> Result<String, VenueError> {
    let svg: Option<(String,)> = sqlx::query_as(
        "SELECT layout->>'svg' FROM venues WHERE id = $1 AND layout->>'kind' = 'svg'",
    )
    .bind(id)
    .fetch_optional(db)
    .await?;
    svg.map(|(svg,)| svg).ok_or(VenueError::NotFound)
}

/// The owner and layout of a venue the actor may put an event in; `None` when there is no
/// such venue or it belongs to another organizer.
pub async fn layout_for_event(
    db: &PgPool,
    actor: Actor,
    id: VenueId,
) -> Result<Option<(UserId, Layout)>, sqlx::Error> {
    let row: Option<(UserId, Json<Layout>)> =
        sqlx::query_as("SELECT organizer_id, layout FROM venues WHERE id = $1")
            .bind(id)
            .fetch_optional(db)
            .await?;
    Ok(row
        .filter(|(owner, _)| actor.may_manage(*owner))
        .map(|(owner, layout)| (owner, layout.0)))
}
