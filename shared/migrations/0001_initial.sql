-- The first complete model of the product. Postgres is the system of record: every invariant
-- that protects a sale (one ticket per seat, prices from the server, one booking per
-- idempotency key) is a constraint here, not only a check in code.

CREATE TABLE users (
    id               uuid PRIMARY KEY,
    email            text NOT NULL,
    name             text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    password_hash    text NOT NULL,
    role             text NOT NULL DEFAULT 'fan'
                     CHECK (role IN ('fan', 'organizer', 'admin')),
    organizer_status text NOT NULL DEFAULT 'none'
                     CHECK (organizer_status IN ('none', 'pending', 'approved', 'rejected')),
    banned_at        timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    -- Emails are stored lower-cased by the application; the constraint makes that the only way in.
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_email_lower CHECK (email = lower(email))
);

-- Refresh tokens rotate on every use. All tokens descended from one login share a family;
-- presenting a token that was already used revokes the whole family (it was stolen).
CREATE TABLE refresh_tokens (
    id          uuid PRIMARY KEY,
    family_id   uuid NOT NULL,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- SHA-256 of the token; the token itself is never stored.
    token_hash  bytea NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    revoked_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT refresh_tokens_hash_key UNIQUE (token_hash)
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);

CREATE TABLE organizer_applications (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    company     text NOT NULL CHECK (length(company) BETWEEN 1 AND 200),
    details     text NOT NULL DEFAULT '' CHECK (length(details) <= 5000),
    status      text NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'approved', 'rejected')),
    decided_by  uuid REFERENCES users (id),
    decided_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- At most one application waiting for a decision per user.
CREATE UNIQUE INDEX organizer_applications_one_pending
    ON organizer_applications (user_id) WHERE status = 'pending';

CREATE TABLE venues (
    id            uuid PRIMARY KEY,
    organizer_id  uuid NOT NULL REFERENCES users (id),
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    city          text NOT NULL DEFAULT '' CHECK (length(city) <= 200),
    -- {"kind": "grid", "sections": [...]} or {"kind": "svg", "svg": "...", "seats": [...]}
    layout        jsonb NOT NULL,
    capacity      integer NOT NULL CHECK (capacity > 0),
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX venues_organizer_idx ON venues (organizer_id);

CREATE TABLE events (
    id                   uuid PRIMARY KEY,
    organizer_id         uuid NOT NULL REFERENCES users (id),
    venue_id             uuid NOT NULL REFERENCES venues (id),
    title                text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description          text NOT NULL DEFAULT '' CHECK (length(description) <= 10000),
    starts_at            timestamptz NOT NULL,
    sale_opens_at        timestamptz NOT NULL,
    status               text NOT NULL DEFAULT 'scheduled'
                         CHECK (status IN ('scheduled', 'on_sale', 'sold_out', 'cancelled', 'finished')),
    capacity             integer NOT NULL CHECK (capacity > 0),
    hold_seconds         integer NOT NULL DEFAULT 600 CHECK (hold_seconds BETWEEN 30 AND 3600),
    max_seats_per_order  integer NOT NULL DEFAULT 6 CHECK (max_seats_per_order BETWEEN 1 AND 50),
    -- Demand mode: the organizer flips it live.
    high_demand          boolean NOT NULL DEFAULT false,
    admit_per_minute     integer NOT NULL DEFAULT 600 CHECK (admit_per_minute > 0),
    max_active           integer NOT NULL DEFAULT 1000 CHECK (max_active > 0),
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_sale_before_show CHECK (sale_opens_at <= starts_at)
);
CREATE INDEX events_organizer_idx ON events (organizer_id);
CREATE INDEX events_starts_at_idx ON events (starts_at);

CREATE TABLE ticket_classes (
    id           uuid PRIMARY KEY,
    event_id     uuid NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    -- Minor units of `currency`; the only source of a booking's total.
    price_minor  bigint NOT NULL CHECK (price_minor >= 0),
    currency     text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    sections     text[] NOT NULL DEFAULT '{}',
    position     integer NOT NULL,
    CONSTRAINT ticket_classes_event_name_key UNIQUE (event_id, name)
);

-- One row per seat per event, generated from the venue's layout when the event is created.
CREATE TABLE seats (
    id        uuid PRIMARY KEY,
    event_id  uuid NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    class_id  uuid NOT NULL REFERENCES ticket_classes (id) ON DELETE CASCADE,
    label     text NOT NULL,
    section   text NOT NULL,
    row_no    integer NOT NULL,
    seat_no   integer NOT NULL,
    x         real NOT NULL DEFAULT 0,
    y         real NOT NULL DEFAULT 0,
    CONSTRAINT seats_event_label_key UNIQUE (event_id, label),
    -- Lets tickets reference (event, seat) so a ticket can never name another event's seat.
    CONSTRAINT seats_event_id_key UNIQUE (event_id, id)
);
-- Best-available walks a class's seats row by row.
CREATE INDEX seats_class_order_idx ON seats (event_id, class_id, section, row_no, seat_no);

CREATE TABLE bookings (
    id               uuid PRIMARY KEY,
    event_id         uuid NOT NULL REFERENCES events (id),
    user_id          uuid NOT NULL REFERENCES users (id),
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'confirmed', 'rejected', 'cancelled')),
    reason           text,
    total_minor      bigint NOT NULL CHECK (total_minor >= 0),
    currency         text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    hold_id          uuid,
    idempotency_key  text CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    -- A retried request with the same key finds the booking it already made.
    CONSTRAINT bookings_user_idempotency_key UNIQUE (user_id, idempotency_key)
);
CREATE INDEX bookings_user_idx ON bookings (user_id, created_at DESC);
CREATE INDEX bookings_event_idx ON bookings (event_id);

CREATE TABLE tickets (
    id             uuid PRIMARY KEY,
    booking_id     uuid NOT NULL REFERENCES bookings (id),
    event_id       uuid NOT NULL,
    seat_id        uuid NOT NULL,
    class_id       uuid NOT NULL REFERENCES ticket_classes (id),
    price_minor    bigint NOT NULL CHECK (price_minor >= 0),
    -- The signed ticket code carried by the QR (an EdDSA token, verifiable offline).
    code           text NOT NULL,
    checked_in_at  timestamptz,
    checked_in_by  uuid REFERENCES users (id),
    created_at     timestamptz NOT NULL DEFAULT now(),
    -- The final word against overselling: a seat is sold at most once.
    CONSTRAINT tickets_event_seat_key UNIQUE (event_id, seat_id),
    CONSTRAINT tickets_seat_fkey FOREIGN KEY (event_id, seat_id) REFERENCES seats (event_id, id)
);
CREATE INDEX tickets_booking_idx ON tickets (booking_id);

-- Events to publish, written in the same transaction as the state they announce and relayed to
-- RabbitMQ afterwards (at least once; consumers de-duplicate).
CREATE TABLE outbox (
    id            bigserial PRIMARY KEY,
    routing_key   text NOT NULL,
    payload       jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz,
    attempts      integer NOT NULL DEFAULT 0
);
CREATE INDEX outbox_unpublished_idx ON outbox (id) WHERE published_at IS NULL;

-- Who did what: every admin action, and the organizer actions that matter.
CREATE TABLE audit_log (
    id           bigserial PRIMARY KEY,
    actor_id     uuid REFERENCES users (id),
    action       text NOT NULL,
    target_type  text NOT NULL,
    target_id    text NOT NULL,
    details      jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_created_idx ON audit_log (created_at DESC);
