//! Events and their ticket classes: create (with the seat inventory, in one transaction),
//! read, search, update, cancel, delete. No axum types here; `crate::error` translates
//! [`EventError`] into HTTP.
//!
//! Rules this module keeps:
//! - Prices only come from ticket classes; one currency per event.
//! - Every seat of the venue belongs to exactly one class, and when `create` returns the seats
//!   exist, numbered in the order `seating` documents (a contract with the holds code).
//! - Only the event's organizer or an admin changes an event; anyone else is told it does not
//!   exist. Every change is audited in its own transaction.
//! - Class prices change only while nothing is sold; an event with bookings is never deleted
//!   (cancelled instead).
//! - The sale's opening moves only until the sale has opened, and a move reaches the waiting
//!   room's gate in the same step (a postponed sale neither shuffles nor admits at the old time).
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | [`EventError`], the limits, and the items the rest of the crate uses |
//! | `model.rs` | what clients send ([`NewEvent`], [`EventPatch`]) and get ([`Event`], [`EventSummary`], ...) |
//! | `validate.rs` | the checks that need no database: text, ranges, prices, times, classes |
//! | [`seating`] | which class each seat belongs to, and the seats' `idx` order (pure) |
//! | `seats.rs` | a new event's seats as columns, and their chunked `INSERT ... UNNEST` |
//! | `store.rs` | the rows, [`create`] and [`get`] |
//! | `change.rs` | [`update`], [`cancel`], [`delete`]: under the event's row lock, audited |
//! | `search.rs` | lists: [`search`] (public) and [`organized_by`] (an organizer's dashboard) |

mod change;
mod model;
mod search;
pub mod seating;
mod seats;
mod store;
mod validate;

pub use change::{cancel, delete, update};
pub use model::{
    ClassAvailability, ClassPrice, Event, EventPatch, EventStatus, EventSummary, NewClass,
    NewEvent, TicketClass, VenueRef,
};
pub use search::{organized_by, search};
pub use store::{create, get};

use shared::ids::ClassId;

use seating::PlanError;

pub const MAX_CLASSES: usize = 20;
pub const MAX_PRICE: i64 = 100_000_000;
pub const DEFAULT_HOLD_SECONDS: i64 = 600;
pub const DEFAULT_MAX_SEATS_PER_ORDER: i64 = 6;

/// Why an event could not be created, read or changed.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("{0}")]
    InvalidField(String),
    #[error("{0}")]
    InvalidTime(String),
    #[error("{0}")]
    InvalidCurrency(String),
    #[error("all classes of an event use the same currency")]
    MixedCurrencies,
    #[error("two classes are called {0:?}; class names are unique in an event")]
    DuplicateClass(String),
    #[error("no such venue among yours")]
    UnknownVenue,
    #[error("{0}")]
    UnknownSection(String),
    #[error("{0}")]
    SeatsWithoutClass(String),
    #[error("{0}")]
    EmptyClass(String),
    #[error("this event has no class {0}")]
    UnknownClass(ClassId),
    #[error("no such event")]
    NotFound,
    #[error("{0}")]
    HasSales(&'static str),
    #[error("the sale has opened: its opening time can no longer move")]
    SaleOpened,
    #[error("this event is cancelled")]
    Cancelled,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<PlanError> for EventError {
    fn from(err: PlanError) -> Self {
        let message = err.to_string();
        match err {
            PlanError::UnknownSection { .. } => Self::UnknownSection(message),
            PlanError::RepeatedSection { .. } => Self::InvalidField(message),
            PlanError::SeatsWithoutClass(_) => Self::SeatsWithoutClass(message),
            PlanError::EmptyClass(_) => Self::EmptyClass(message),
        }
    }
}
