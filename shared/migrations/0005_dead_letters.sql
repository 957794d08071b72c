-- Booking commands the registration workers gave up on, as admins see them.
--
-- RabbitMQ dead-letters a command (through `booking.dlx` to `booking.commands.dead`) when a
-- worker rejects it as unparsable, or after its delivery limit when it keeps failing. A worker
-- consumes that queue and records each message here, then acks it. Recording is idempotent on
-- redelivery: one row per booking id, or per payload for a message that names no booking (so
-- two byte-identical poison messages are one row).
--
-- A command that parses also ends its booking as `rejected` (`processing_failed`) in the same
-- transaction unless the booking exists, so the fan's 202 reaches an end state.
CREATE TABLE dead_letters (
    id              bigserial PRIMARY KEY,
    -- What makes a redelivery the same message: `booking:<id>`, or `md5:<payload's md5>`.
    dedup_key       text NOT NULL UNIQUE,
    booking_id      uuid,
    event_id        uuid,
    -- The message body as text (invalid UTF-8 replaced), at most 16 KiB.
    payload         text NOT NULL CHECK (length(payload) <= 16384),
    -- Why: the broker's first death reason (`rejected`, `delivery_limit`, ...) and, for a
    -- message that does not parse, the parse error.
    reason          text NOT NULL,
    first_death_at  timestamptz,
    death_count     integer NOT NULL DEFAULT 1 CHECK (death_count >= 1),
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    resolved_at     timestamptz,
    resolved_by     uuid REFERENCES users (id),
    note            text CHECK (length(note) <= 1000),
    CONSTRAINT dead_letters_resolved_together CHECK ((resolved_at IS NULL) = (resolved_by IS NULL))
);
CREATE INDEX dead_letters_open_idx ON dead_letters (id) WHERE resolved_at IS NULL;
CREATE INDEX dead_letters_event_idx ON dead_letters (event_id);
