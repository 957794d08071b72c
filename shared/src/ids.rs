//! Typed ids, so that a `SeatId` can never be passed where an `EventId` is meant.
//!
//! All are UUIDs on the wire and in Postgres. New ids are v7 (time-ordered), which keeps
//! B-tree inserts local when 50,000 tickets are written in a minute.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type)]
        #[cfg_attr(feature = "http", derive(utoipa::ToSchema))]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }
    };
}

id_type!(
    /// A person with an account (fan, organizer or admin).
    UserId
);
id_type!(
    /// A venue and its layout.
    VenueId
);
id_type!(
    /// One show on sale.
    EventId
);
id_type!(
    /// A ticket class of an event (VIP, Normal, ...).
    ClassId
);
id_type!(
    /// One seat of one event.
    SeatId
);
id_type!(
    /// A TTL hold on seats; its value is the owner token on every held seat key.
    HoldId
);
id_type!(
    /// A booking (an order), pending until persisted.
    BookingId
);
id_type!(
    /// One ticket: one seat of one booking.
    TicketId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_strings_and_json() {
        let id = EventId::new();
        assert_eq!(id.to_string().parse::<EventId>().ok(), Some(id));
        let json = serde_json::to_string(&id).expect("serialises");
        assert_eq!(json, format!("\"{id}\""));
        assert!("not-a-uuid".parse::<EventId>().is_err());
    }
}
