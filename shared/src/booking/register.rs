//! Registering a hold: the simple path books it in the request, the queued path claims it and
//! hands it to the workers. The caller (the ticketing API) has already looked for a booking an
//! earlier attempt made ([`Bookings::find_previous`]), loaded the event's rules, and checked
//! that the sale is open; it picks the path by the event's demand mode.

use super::{
    Bookings, QUEUE_GRACE, Rejection, WORK_GRACE,
    claim::{Claim, ClaimRequest, Claimed, Earlier},
    write::{self, NewBooking, WriteError},
};
use crate::{
    admission::{self, GateError},
    cache::redis,
    ids::{BookingId, EventId, HoldId, UserId},
    inventory::{HoldState, InventoryError, Spending},
    messaging::{ClassPrice, ProcessBookingCommand, Publisher},
};

/// Rounds of claim and re-check before a registration that keeps meeting changing claims
/// answers "in progress".
const CLAIM_ROUNDS: usize = 3;

/// One registration of a fan's hold.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub event: EventId,
    pub fan: UserId,
    pub hold: HoldId,
    /// A checked `Idempotency-Key`.
    pub idempotency_key: Option<&'a str>,
}

/// What the queued path needs beyond the request.
#[derive(Debug)]
pub struct QueuedRequest<'a> {
    /// The admission token's verdict ([`admission::check`]); a refused fan is still answered
    /// with a booking an earlier attempt made.
    pub admission: Result<(), GateError>,
    /// The prices quoted now: what the fan pays, whatever changes before a worker writes it.
    pub prices: Vec<ClassPrice>,
    /// Carried to the worker's logs.
    pub request_id: Option<&'a str>,
}

/// What a registration came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// Written in Postgres (the simple path, or a retry of a booking already written): 201.
    Booked(BookingId),
    /// Queued to the workers and confirmed by the broker (high-demand mode): 202.
    Queued(BookingId),
}

/// Why a registration was not taken.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error(transparent)]
    Gate(#[from] GateError),
    /// The hold is gone, or the seats were sold meanwhile: see the reason.
    #[error("{}", rejected_message(*.0))]
    Rejected(Rejection),
    #[error("no such event")]
    EventNotFound,
    #[error("this registration is still being queued; retry in a moment")]
    InProgress,
    #[error("registrations cannot be queued right now; try again shortly")]
    QueueUnavailable,
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

fn rejected_message(why: Rejection) -> &'static str {
    match why {
        Rejection::HoldExpired => "the hold has expired or is not yours",
        Rejection::SeatsAlreadySold => "some of these seats were sold meanwhile",
        Rejection::EventCancelled => "this event was cancelled",
        Rejection::Duplicate => "a booking for this hold or key exists already",
        Rejection::ProcessingFailed => "the booking could not be processed",
    }
}

/// What the claim step decided.
enum NextAction {
    /// An earlier attempt's booking: the answer.
    Replay(Registration),
    /// This registration owns the hold now.
    Proceed(Claim),
}

impl Bookings {
    /// The booking an earlier attempt of this registration made, in Postgres: by
    /// Idempotency-Key first, then by hold.
    pub async fn find_previous(
        &self,
        fan: UserId,
        hold: HoldId,
        idempotency_key: Option<&str>,
    ) -> Result<Option<BookingId>, sqlx::Error> {
        let id: Option<(BookingId,)> = sqlx::query_as(
            "SELECT id FROM bookings
             WHERE user_id = $1 AND (hold_id = $2 OR ($3::text IS NOT NULL AND idempotency_key = $3))
             ORDER BY (idempotency_key = $3) DESC NULLS LAST
             LIMIT 1",
        )
        .bind(fan)
        .bind(hold)
        .bind(idempotency_key)
        .fetch_optional(&self.db)
        .await?;
        Ok(id.map(|(id,)| id))
    }

    /// The simple path: the hold is checked (owner, life) and kept alive while booking, tickets
    /// and the outbox event are written in one transaction; then the seats are marked sold in
    /// Redis and an admission the fan still holds is spent (the gate was turned off after they
    /// were let in).
    pub async fn book_now(&self, request: Request<'_>) -> Result<Registration, RegisterError> {
        let Request {
            event,
            fan,
            hold,
            idempotency_key,
        } = request;
        let seats = match self.inventory.extend(event, hold, fan, WORK_GRACE).await? {
            HoldState::Live { seats, .. } => seats,
            // A concurrent retry of this very request may have just booked the hold (and so
            // consumed it): then its booking is the answer.
            HoldState::Expired | HoldState::NotFound => {
                return self
                    .find_previous(fan, hold, idempotency_key)
                    .await?
                    .map(Registration::Booked)
                    .ok_or(RegisterError::Rejected(Rejection::HoldExpired));
            }
        };

        let booking = BookingId::new();
        let mut tx = self.db.begin().await?;
        let new = NewBooking {
            id: booking,
            event,
            fan,
            hold,
            idempotency_key,
            seat_idx: &seats,
        };
        match write::write_booking(&mut tx, &self.ticket_keys, new).await {
            Ok(_) => tx.commit().await?,
            Err(err) => {
                drop(tx);
                return match err {
                    WriteError::SeatSold => {
                        metrics::counter!("bookings_rejected_total", "reason" => "seat_sold")
                            .increment(1);
                        Err(RegisterError::Rejected(Rejection::SeatsAlreadySold))
                    }
                    // A concurrent retry of the same request won the race: its booking.
                    WriteError::Duplicate(constraint) => self
                        .find_previous(fan, hold, idempotency_key)
                        .await?
                        .map(Registration::Booked)
                        .ok_or_else(|| {
                            anyhow::anyhow!("{constraint} tripped, yet no booking found").into()
                        }),
                    WriteError::EventNotFound => Err(RegisterError::EventNotFound),
                    WriteError::EventCancelled => {
                        Err(RegisterError::Rejected(Rejection::EventCancelled))
                    }
                    WriteError::Database(err) => Err(RegisterError::Database(err)),
                    WriteError::Internal(err) => Err(RegisterError::Internal(err)),
                };
            }
        }
        metrics::counter!("bookings_confirmed_total", "path" => "simple").increment(1);
        tokio::join!(
            self.mark_sold(booking, event, hold, fan, &seats),
            admission::spend_if_any(&self.redis, &self.keys, event, fan),
        );
        Ok(Registration::Booked(booking))
    }

    /// The queued path: claim (or replay), keep the hold and spend the admission, publish,
    /// mark published — three Redis round trips. Anything that fails after the claim releases
    /// it, so that a retry can succeed at once.
    pub async fn queue(
        &self,
        publisher: &Publisher,
        request: Request<'_>,
        queued: QueuedRequest<'_>,
    ) -> Result<Registration, RegisterError> {
        let claim_request = ClaimRequest {
            event: request.event,
            fan: request.fan,
            hold: request.hold,
            idempotency_key: request.idempotency_key.map(str::to_string),
        };
        let look_only = queued.admission.is_err();
        let claim = match self.claim_or_replay(&claim_request, look_only).await? {
            Some(NextAction::Replay(registration)) => return Ok(registration),
            Some(NextAction::Proceed(claim)) => claim,
            // Nothing to replay, and the fan may not buy.
            None => {
                return Err(queued
                    .admission
                    .err()
                    .unwrap_or(GateError::NotAdmitted)
                    .into());
            }
        };
        let booking = claim.booking;
        match self.publish_claimed(publisher, &claim, queued).await {
            Ok(()) => {
                self.claims.mark_published(claim).await;
                metrics::counter!("bookings_queued_total").increment(1);
                Ok(Registration::Queued(booking))
            }
            Err(err) => {
                self.claims.release(claim).await;
                Err(err)
            }
        }
    }

    /// The idempotency decision: claim the hold (and key) for a new booking, or answer with the
    /// booking an earlier attempt made. With `look_only`, nothing is claimed (`None`: nothing
    /// earlier). Claims whose booking is neither queued nor written (Redis lost its marker, or
    /// a release failed) are stale: taken over, atomically, if nothing changed meanwhile.
    async fn claim_or_replay(
        &self,
        request: &ClaimRequest,
        look_only: bool,
    ) -> Result<Option<NextAction>, RegisterError> {
        let mut seen = Vec::new();
        for _ in 0..CLAIM_ROUNDS {
            let found = match self.claims.claim(request, look_only, &seen).await? {
                Claimed::New(claim) => return Ok(Some(NextAction::Proceed(claim))),
                Claimed::Nothing => return Ok(None),
                Claimed::Taken(found) => found,
            };
            seen.clear();
            for earlier in found {
                match earlier {
                    Some(earlier) => match self.replay(request.fan, &earlier).await? {
                        Some(registration) => return Ok(Some(NextAction::Replay(registration))),
                        None => seen.push(Some(earlier.booking)),
                    },
                    None => seen.push(None),
                }
            }
            if look_only {
                return Ok(None);
            }
        }
        Err(RegisterError::InProgress)
    }

    /// What an earlier attempt's booking answers: accepted once the broker confirmed it, "in
    /// progress" while it waits for the broker, booked once a worker wrote it; `None` when it
    /// is none of these (stale).
    async fn replay(
        &self,
        fan: UserId,
        earlier: &Earlier,
    ) -> Result<Option<Registration>, RegisterError> {
        match &earlier.marker {
            Some(marker) if marker.published => Ok(Some(Registration::Queued(earlier.booking))),
            Some(_) => Err(RegisterError::InProgress),
            None => {
                let owner: Option<(UserId,)> =
                    sqlx::query_as("SELECT user_id FROM bookings WHERE id = $1")
                        .bind(earlier.booking)
                        .fetch_optional(&self.db)
                        .await?;
                Ok(owner
                    .filter(|(owner,)| *owner == fan)
                    .map(|_| Registration::Booked(earlier.booking)))
            }
        }
    }

    /// This registration owns the hold: keep it for the worker and spend the admission that
    /// paid for it (one step), then publish the command under publisher confirms. On error,
    /// the admission is back; the caller releases the claim.
    async fn publish_claimed(
        &self,
        publisher: &Publisher,
        claim: &Claim,
        queued: QueuedRequest<'_>,
    ) -> Result<(), RegisterError> {
        let marker = claim.marker();
        let spent = match self
            .inventory
            .extend_spending(marker.event_id, marker.hold_id, marker.user_id, QUEUE_GRACE)
            .await?
        {
            Spending::Spent { admission, .. } => admission,
            Spending::HoldGone(_) => return Err(RegisterError::Rejected(Rejection::HoldExpired)),
            Spending::NotAdmitted => return Err(GateError::NotAdmitted.into()),
        };
        let command = ProcessBookingCommand {
            booking_id: claim.booking,
            event_id: marker.event_id,
            user_id: marker.user_id,
            hold_id: marker.hold_id,
            idempotency_key: claim.idempotency_key().map(str::to_string),
            requested_at: marker.created_at,
            prices: queued.prices,
        };
        if let Err(err) = publisher.publish_command(&command, queued.request_id).await {
            tracing::error!(booking.id = %claim.booking, error = format!("{err:#}"),
                "the broker did not take the booking command");
            metrics::counter!("bookings_queue_failures_total").increment(1);
            admission::restore(&self.redis, &self.keys, spent).await;
            return Err(RegisterError::QueueUnavailable);
        }
        Ok(())
    }
}
