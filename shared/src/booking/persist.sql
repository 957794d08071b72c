-- The registration worker's batch in one statement (`persist.rs` binds it): what becomes of
-- each command, decided in batch order, and the batch's bookings, tickets and outbox rows
-- written together. One round trip; atomic by itself (autocommit), so no BEGIN or COMMIT.
--
-- Commands, one array element each, in batch order (`ord` is the 1-based position):
--   $1 booking id, $2 event, $3 fan, $4 hold, $5 Idempotency-Key (or NULL),
--   $6 what Redis said of the hold: 'live', 'expired' (gone, or not the fan's), or 'disowned'
--      (live, but the API took the command back: its pending marker is gone).
-- The seats of live holds, one element per seat: $7 the command's ord, $8 the seat's idx,
--   $9 the ticket id and $10 its signed code (made in Rust: they need only the ticket id, the
--   event, and the event's start, see $15).
-- The quote, one element per class of a command: $11 ord, $12 class id, $13 price.
-- The events' starts the codes were signed for: $14 event, $15 starts_at.
-- Reasons ($16 hold expired, $17 event cancelled, $18 duplicate, $19 seats sold) and routing
-- keys ($20 confirmed, $21 rejected): `Rejection::code` and `messaging::routing`, bound.
--
-- Returns one row per command, in order: its verdict — 'confirmed', 'rejected' (with `reason`),
-- 'done' (the booking row exists: `existing` is its status), 'repeat' (the same booking id
-- earlier in this batch), 'disowned', 'gone' (no such event) — its event's `starts_at`, and
-- `stale`. A stale statement wrote nothing (see `stale` below) and is to be run again.
--
-- Written as today's booking-by-booking path wrote: a rejected row records the hold and key
-- only when no other booking owns either; a booking takes its seats, hold and key in batch
-- order, so a later command of the batch that wants them is rejected as the constraints would
-- reject it. Everything is read in the statement's one snapshot: a row another transaction
-- commits after it (a ticket, a booking) is not seen, and its unique violation aborts the
-- statement, which the caller runs again on a fresh snapshot.
WITH RECURSIVE
batch AS MATERIALIZED (
    SELECT c.ord::int AS ord, c.id, c.event_id, c.user_id, c.hold_id, c.idempotency_key,
           c.state,
           c.user_id::text || ' ' || c.idempotency_key AS fan_key,
           c.ord > min(c.ord) OVER (PARTITION BY c.id) AS repeated
    FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[])
         WITH ORDINALITY AS c(id, event_id, user_id, hold_id, idempotency_key, state, ord)
),
-- The lock the bookings→events foreign key takes, taken first, as the simple path takes it: a
-- cancellation or a price change (FOR UPDATE on the event) waits for this statement, or this
-- statement waits for it. In READ COMMITTED a locking read that waited returns the row as that
-- change left it, while the rest of the statement still reads its older snapshot.
locked AS MATERIALIZED (
    SELECT id, cancelled_at, starts_at, xmin::text AS version
    FROM events
    WHERE id = ANY ($2::uuid[])
    ORDER BY id
    FOR KEY SHARE
),
seen AS (
    SELECT id, xmin::text AS version FROM events WHERE id = ANY ($2::uuid[])
),
-- Stale: an event changed after this statement's snapshot (so its classes' prices may have
-- too), or starts at another time than the ticket codes were signed for. Then nothing is
-- written, and the caller runs the statement again (re-signing with the returned starts).
stale AS (
    SELECT EXISTS (
        SELECT 1
        FROM locked l
        LEFT JOIN seen s ON s.id = l.id
        LEFT JOIN UNNEST($14::uuid[], $15::timestamptz[]) AS signed(event_id, starts_at)
               ON signed.event_id = l.id
        WHERE s.version IS DISTINCT FROM l.version
           OR signed.starts_at IS DISTINCT FROM l.starts_at
    ) AS stale
),
quote AS (
    SELECT q.ord::int AS ord, q.class_id, q.price_minor
    FROM UNNEST($11::int[], $12::uuid[], $13::bigint[]) AS q(ord, class_id, price_minor)
),
-- Each wanted seat with its class, its price (quoted, else the class's now), and whether a
-- ticket has it already.
wanted AS MATERIALIZED (
    SELECT w.ord::int AS ord, w.ticket_id, w.code, s.id AS seat_id, s.idx, s.label,
           c.id AS class_id, c.name AS class_name, c.currency,
           COALESCE(q.price_minor, c.price_minor) AS price_minor,
           EXISTS (SELECT 1 FROM tickets t WHERE t.event_id = b.event_id AND t.seat_id = s.id)
               AS sold
    FROM UNNEST($7::int[], $8::int[], $9::uuid[], $10::text[]) AS w(ord, idx, ticket_id, code)
    JOIN batch b ON b.ord = w.ord
    JOIN seats s ON s.event_id = b.event_id AND s.idx = w.idx
    JOIN ticket_classes c ON c.id = s.class_id
    LEFT JOIN quote q ON q.ord = w.ord AND q.class_id = c.id
),
-- What Postgres already says of each command.
facts AS MATERIALIZED (
    SELECT b.*,
           existing.status AS existing,
           l.id IS NOT NULL AS event_exists,
           l.cancelled_at IS NOT NULL AS cancelled,
           EXISTS (SELECT 1 FROM bookings o WHERE o.hold_id = b.hold_id) AS hold_owned,
           EXISTS (SELECT 1 FROM bookings o
                   WHERE o.user_id = b.user_id AND o.idempotency_key = b.idempotency_key)
               AS key_owned,
           COALESCE(ws.seat_ids, '{}') AS seat_ids,
           COALESCE(ws.sold, false) AS sold
    FROM batch b
    LEFT JOIN bookings existing ON existing.id = b.id
    LEFT JOIN locked l ON l.id = b.event_id
    LEFT JOIN (SELECT ord, array_agg(seat_id) AS seat_ids, bool_or(sold) AS sold
               FROM wanted GROUP BY ord) ws ON ws.ord = b.ord
),
-- The commands in batch order, carrying what the bookings decided so far take: seats (by a
-- confirmed booking), holds and keys (by any booking that records them).
walk AS (
    SELECT 0 AS ord, NULL::text AS verdict, NULL::text AS reason, false AS records,
           '{}'::uuid[] AS seats, '{}'::uuid[] AS holds, '{}'::text[] AS keys
    UNION ALL
    SELECT f.ord, v.verdict,
           CASE WHEN v.verdict = 'rejected' THEN
               CASE WHEN f.state = 'expired' THEN $16
                    WHEN f.cancelled THEN $17
                    WHEN t.taken THEN $18
                    ELSE $19 END
           END,
           v.verdict IN ('confirmed', 'rejected') AND NOT t.taken,
           CASE WHEN v.verdict = 'confirmed' THEN w.seats || f.seat_ids ELSE w.seats END,
           CASE WHEN v.verdict IN ('confirmed', 'rejected') AND NOT t.taken
                THEN w.holds || f.hold_id ELSE w.holds END,
           CASE WHEN v.verdict IN ('confirmed', 'rejected') AND NOT t.taken
                     AND f.fan_key IS NOT NULL
                THEN w.keys || f.fan_key ELSE w.keys END
    FROM walk w
    JOIN facts f ON f.ord = w.ord + 1
    -- Another booking owns the hold or the key: Postgres has it, or the batch took it.
    CROSS JOIN LATERAL (
        SELECT f.hold_owned OR f.key_owned
               OR f.hold_id = ANY (w.holds)
               OR COALESCE(f.fan_key = ANY (w.keys), false) AS taken
    ) t
    CROSS JOIN LATERAL (
        SELECT CASE
            WHEN f.existing IS NOT NULL THEN 'done'
            WHEN f.repeated THEN 'repeat'
            WHEN f.state = 'disowned' THEN 'disowned'
            WHEN NOT f.event_exists THEN 'gone'
            WHEN f.state = 'expired' OR f.cancelled OR t.taken OR f.sold
                 OR f.seat_ids && w.seats THEN 'rejected'
            ELSE 'confirmed'
        END AS verdict
    ) v
),
decided AS MATERIALIZED (
    SELECT f.*, w.verdict, w.reason, w.records
    FROM facts f JOIN walk w ON w.ord = f.ord
),
priced AS (
    SELECT w.ord, sum(w.price_minor)::bigint AS total,
           (array_agg(w.currency ORDER BY w.idx))[1] AS currency,
           jsonb_agg(jsonb_build_object('ticket_id', w.ticket_id, 'seat_label', w.label,
                                        'class', w.class_name)
                     ORDER BY w.idx) AS tickets
    FROM wanted w
    JOIN decided d ON d.ord = w.ord AND d.verdict = 'confirmed'
    GROUP BY w.ord
),
written AS (
    INSERT INTO bookings (id, event_id, user_id, status, reason, total_minor, currency,
                          hold_id, idempotency_key)
    SELECT d.id, d.event_id, d.user_id,
           CASE WHEN d.verdict = 'confirmed' THEN 'confirmed' ELSE 'rejected' END,
           d.reason,
           COALESCE(p.total, 0),
           -- A confirmed booking without seats found has no currency: the NOT NULL refuses it.
           CASE WHEN d.verdict = 'confirmed' THEN p.currency
                ELSE COALESCE((SELECT c.currency FROM ticket_classes c
                               WHERE c.event_id = d.event_id ORDER BY c.position LIMIT 1),
                              'XXX')
           END,
           CASE WHEN d.records THEN d.hold_id END,
           CASE WHEN d.records THEN d.idempotency_key END
    FROM decided d
    LEFT JOIN priced p ON p.ord = d.ord
    WHERE d.verdict IN ('confirmed', 'rejected') AND NOT (SELECT stale FROM stale)
    ORDER BY d.id
    RETURNING id
),
-- In (event, seat) order, as every batch inserts them: two batches wanting the same seats wait
-- for each other in one order, never in a cycle.
ticketed AS (
    INSERT INTO tickets (id, booking_id, event_id, seat_id, class_id, price_minor, code)
    SELECT w.ticket_id, d.id, d.event_id, w.seat_id, w.class_id, w.price_minor, w.code
    FROM decided d
    JOIN wanted w ON w.ord = d.ord
    WHERE d.verdict = 'confirmed' AND NOT (SELECT stale FROM stale)
    ORDER BY d.event_id, w.seat_id
    RETURNING id
),
-- The payloads are `BookingConfirmed` and `BookingRejected` as serde writes them (a test
-- compares them).
announced AS (
    INSERT INTO outbox (routing_key, payload)
    SELECT CASE WHEN d.verdict = 'confirmed' THEN $20 ELSE $21 END,
           CASE WHEN d.verdict = 'confirmed' THEN
               jsonb_build_object(
                   'booking_id', d.id, 'event_id', d.event_id, 'user_id', d.user_id,
                   'total', jsonb_build_object('amount', p.total, 'currency', p.currency),
                   'tickets', p.tickets)
           ELSE
               jsonb_build_object(
                   'booking_id', d.id, 'event_id', d.event_id, 'user_id', d.user_id,
                   'reason', d.reason)
           END
    FROM decided d
    LEFT JOIN priced p ON p.ord = d.ord
    WHERE d.verdict IN ('confirmed', 'rejected') AND NOT (SELECT stale FROM stale)
    ORDER BY d.ord
    RETURNING id
)
SELECT d.ord, d.verdict, d.reason, d.existing, l.starts_at, (SELECT stale FROM stale) AS stale
FROM decided d
LEFT JOIN locked l ON l.id = d.event_id
ORDER BY d.ord
