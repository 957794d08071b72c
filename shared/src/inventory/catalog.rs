//! The seats and classes of one event as the inventory needs them, loaded from Postgres.
//!
//! Seats never change after an event is created, so a process loads an event's catalog once
//! and shares it. Prices are deliberately not here: they may change before the first sale,
//! and a booking's total is always read from Postgres inside its transaction.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError, RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use sqlx::PgPool;

use crate::ids::{ClassId, EventId, SeatId};

/// Seats of one row have the same `row_rank`; scores order a class best seat first.
const ROW_STRIDE: i64 = 1_000_000;

#[derive(Debug, Clone)]
pub struct ClassInfo {
    pub id: ClassId,
    pub name: String,
    /// 0-based order of the event's classes; the inventory's class number.
    pub position: u16,
    pub capacity: u32,
}

#[derive(Debug, Clone)]
pub struct SeatInfo {
    pub id: SeatId,
    pub label: String,
    /// The class's position.
    pub class: u16,
    pub section: String,
    pub row_rank: i32,
    pub seat_no: i32,
    pub x: f32,
    pub y: f32,
}

impl SeatInfo {
    /// Best-first order within the class; adjacent seats of one row differ by exactly 1.
    pub fn score(&self) -> i64 {
        i64::from(self.row_rank) * ROW_STRIDE + i64::from(self.seat_no)
    }
}

#[derive(Debug, Clone)]
pub struct Catalog {
    pub event_id: EventId,
    /// Indexed by class position.
    pub classes: Vec<ClassInfo>,
    /// Indexed by seat `idx`.
    pub seats: Vec<SeatInfo>,
    by_id: HashMap<SeatId, u32>,
}

#[derive(sqlx::FromRow)]
struct SeatRow {
    id: SeatId,
    idx: i32,
    label: String,
    position: i32,
    section: String,
    row_rank: i32,
    seat_no: i32,
    x: f32,
    y: f32,
}

impl Catalog {
    /// The event's catalog, or `None` if there is no such event.
    pub async fn load(db: &PgPool, event_id: EventId) -> Result<Option<Self>, sqlx::Error> {
        let classes: Vec<(ClassId, String, i32)> = sqlx::query_as(
            "SELECT id, name, position FROM ticket_classes WHERE event_id = $1 ORDER BY position",
        )
        .bind(event_id)
        .fetch_all(db)
        .await?;
        if classes.is_empty() {
            return Ok(None);
        }
        let rows: Vec<SeatRow> = sqlx::query_as(
            "SELECT s.id, s.idx, s.label, c.position, s.section, s.row_rank, s.seat_no, s.x, s.y
             FROM seats s JOIN ticket_classes c ON c.id = s.class_id
             WHERE s.event_id = $1 ORDER BY s.idx",
        )
        .bind(event_id)
        .fetch_all(db)
        .await?;
        let mut classes: Vec<ClassInfo> = classes
            .into_iter()
            .map(|(id, name, position)| ClassInfo {
                id,
                name,
                position: u16::try_from(position).unwrap_or(u16::MAX),
                capacity: 0,
            })
            .collect();
        let mut seats = Vec::with_capacity(rows.len());
        let mut by_id = HashMap::with_capacity(rows.len());
        for (expected, row) in rows.into_iter().enumerate() {
            // idx is dense by construction (UNIQUE (event_id, idx), 0..capacity-1).
            debug_assert_eq!(usize::try_from(row.idx).ok(), Some(expected));
            let class = u16::try_from(row.position).unwrap_or(u16::MAX);
            if let Some(info) = classes.get_mut(usize::from(class)) {
                info.capacity += 1;
            }
            by_id.insert(row.id, u32::try_from(expected).unwrap_or(u32::MAX));
            seats.push(SeatInfo {
                id: row.id,
                label: row.label,
                class,
                section: row.section,
                row_rank: row.row_rank,
                seat_no: row.seat_no,
                x: row.x,
                y: row.y,
            });
        }
        Ok(Some(Self {
            event_id,
            classes,
            seats,
            by_id,
        }))
    }

    /// A catalog from parts (tools and tests); seat `i` of `seats` has idx `i`.
    pub fn from_parts(
        event_id: EventId,
        mut classes: Vec<ClassInfo>,
        seats: Vec<SeatInfo>,
    ) -> Self {
        for class in &mut classes {
            class.capacity = 0;
        }
        for seat in &seats {
            if let Some(class) = classes.get_mut(usize::from(seat.class)) {
                class.capacity += 1;
            }
        }
        let by_id = seats
            .iter()
            .enumerate()
            .map(|(idx, seat)| (seat.id, u32::try_from(idx).unwrap_or(u32::MAX)))
            .collect();
        Self {
            event_id,
            classes,
            seats,
            by_id,
        }
    }

    /// The seat's `idx`, if it belongs to this event.
    pub fn idx_of(&self, seat: SeatId) -> Option<u32> {
        self.by_id.get(&seat).copied()
    }

    pub fn seat(&self, idx: u32) -> Option<&SeatInfo> {
        self.seats.get(usize::try_from(idx).ok()?)
    }

    pub fn class_named(&self, name: &str) -> Option<&ClassInfo> {
        self.classes.iter().find(|class| class.name == name)
    }
}

/// The catalogs this process has loaded. Seats never change after creation, so an entry never
/// goes stale; a deleted event is forgotten with [`CatalogCache::forget`]. A `RwLock`'d map
/// suits it: reads on every hold, a write once per event per process.
///
/// Loading is single-flight per event: at a sale's opening thousands of admitted fans ask for
/// the same uncached catalog at once, and one load (tens of milliseconds for a big venue)
/// serves them all instead of each taking a pooled connection for its own copy.
#[derive(Debug, Clone, Default)]
pub struct CatalogCache {
    loaded: Arc<RwLock<HashMap<EventId, Arc<Catalog>>>>,
    loading: Arc<Mutex<HashMap<EventId, Arc<tokio::sync::Mutex<()>>>>>,
    loads: Arc<AtomicU64>,
}

impl CatalogCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The event's catalog, loading it on first use; `None` if there is no such event.
    pub async fn get(
        &self,
        db: &PgPool,
        event: EventId,
    ) -> Result<Option<Arc<Catalog>>, sqlx::Error> {
        if let Some(catalog) = self.cached(event) {
            return Ok(Some(catalog));
        }
        let gate = self
            .loading
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(event)
            .or_default()
            .clone();
        let _loading = gate.lock().await;
        // Whoever held the gate before us may have loaded it.
        if let Some(catalog) = self.cached(event) {
            return Ok(Some(catalog));
        }
        self.loads.fetch_add(1, Ordering::Relaxed);
        let loaded = Catalog::load(db, event)
            .await
            .map(|found| found.map(Arc::new));
        if let Ok(Some(catalog)) = &loaded {
            self.loaded
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(event, catalog.clone());
        }
        // Loaded, missing or failed: the gate is done either way (ids that name no event must
        // not pile up gates; a later caller retries a failed load).
        self.loading
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&event);
        loaded
    }

    /// How many times this cache read a catalog from Postgres.
    pub fn loads(&self) -> u64 {
        self.loads.load(Ordering::Relaxed)
    }

    fn cached(&self, event: EventId) -> Option<Arc<Catalog>> {
        self.loaded
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&event)
            .cloned()
    }

    pub fn forget(&self, event: EventId) {
        self.loaded
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&event);
    }
}
