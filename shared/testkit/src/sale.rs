//! A sale straight in Postgres: an organizer, a venue and an event (optionally in high-demand
//! mode, optionally with a ticket class), for tests of a service that only reads them (the
//! waiting room, the notifier). Tests that go through the API's own creation (seats laid out,
//! the inventory loaded) use `api::TestApp::on_sale` instead.

use shared::{
    domain::Role,
    ids::{EventId, UserId},
};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

/// What to write; [`Default`] is a 100-seat "Harbour Jazz Night" at the Arena in Oslo, on
/// sale from now, in normal mode.
#[derive(Debug, Clone)]
pub struct NewSale {
    pub title: &'static str,
    pub organizer_name: &'static str,
    pub capacity: i32,
    /// When the sale opens, from now (negative: already open).
    pub opens_in: time::Duration,
    /// High-demand mode: fans go through the waiting room, admitted at `admit_per_minute`,
    /// at most `max_active` shopping at once (the columns' defaults: 600 and 1000).
    pub high_demand: bool,
    pub admit_per_minute: i32,
    pub max_active: i32,
    /// A ticket class "Normal" at this price (minor units, EUR).
    pub class_price: Option<i64>,
}

impl Default for NewSale {
    fn default() -> Self {
        Self {
            title: "Harbour Jazz Night",
            organizer_name: "Olga Organizer",
            capacity: 100,
            opens_in: time::Duration::ZERO,
            high_demand: false,
            admit_per_minute: 600,
            max_active: 1000,
            class_price: None,
        }
    }
}

/// The rows written.
#[derive(Debug, Clone, Copy)]
pub struct Sale {
    pub organizer: UserId,
    pub venue: Uuid,
    pub event: EventId,
    /// The class "Normal", when [`NewSale::class_price`] asked for one.
    pub class: Option<Uuid>,
}

impl NewSale {
    /// A high-demand sale admitting `admit_per_minute`, at most `max_active` shopping at once,
    /// open since a minute ago.
    pub fn high_demand(admit_per_minute: i32, max_active: i32) -> Self {
        Self {
            high_demand: true,
            admit_per_minute,
            max_active,
            opens_in: time::Duration::seconds(-60),
            ..Self::default()
        }
    }

    pub async fn insert(&self, db: &PgPool) -> Sale {
        let organizer = UserId::new();
        sqlx::query(
            "INSERT INTO users (id, email, name, password_hash, role)
             VALUES ($1, $2, $3, 'not-a-hash', $4)",
        )
        .bind(organizer)
        .bind(crate::users::address(organizer))
        .bind(self.organizer_name)
        .bind(Role::Organizer.as_str())
        .execute(db)
        .await
        .expect("organizer");
        let venue = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO venues (id, organizer_id, name, city, layout, capacity)
             VALUES ($1, $2, 'Arena', 'Oslo', '{\"kind\": \"grid\", \"sections\": []}', $3)",
        )
        .bind(venue)
        .bind(organizer)
        .bind(self.capacity)
        .execute(db)
        .await
        .expect("venue");
        let event = EventId::new();
        let now = OffsetDateTime::now_utc();
        sqlx::query(
            "INSERT INTO events (id, organizer_id, venue_id, title, starts_at, sale_opens_at,
                                 capacity, high_demand, admit_per_minute, max_active)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(event)
        .bind(organizer)
        .bind(venue)
        .bind(self.title)
        .bind(now + time::Duration::days(30))
        .bind(now + self.opens_in)
        .bind(self.capacity)
        .bind(self.high_demand)
        .bind(self.admit_per_minute)
        .bind(self.max_active)
        .execute(db)
        .await
        .expect("event");
        let class = match self.class_price {
            Some(price) => {
                let class = Uuid::now_v7();
                sqlx::query(
                    "INSERT INTO ticket_classes (id, event_id, name, price_minor, currency, position)
                     VALUES ($1, $2, 'Normal', $3, 'EUR', 0)",
                )
                .bind(class)
                .bind(event)
                .bind(price)
                .execute(db)
                .await
                .expect("class");
                Some(class)
            }
            None => None,
        };
        Sale {
            organizer,
            venue,
            event,
            class,
        }
    }
}
