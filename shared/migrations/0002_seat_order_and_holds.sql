-- Seat order for the inventory and best-available, and one booking per hold.

-- `idx`: a dense 0..capacity-1 number per event, assigned class by class in best-first order
-- (class position, then the class's section order, row, seat), so each class is a contiguous
-- range. Redis names seats by it, and the compact seat map is indexed by it.
-- `row_rank`: the 0-based rank of the seat's row within its class, best row first; seats of
-- one row share it, and adjacent seats have consecutive `seat_no`.
ALTER TABLE seats ADD COLUMN idx integer NOT NULL CHECK (idx >= 0);
ALTER TABLE seats ADD COLUMN row_rank integer NOT NULL CHECK (row_rank >= 0);
ALTER TABLE seats ADD CONSTRAINT seats_event_idx_key UNIQUE (event_id, idx);

-- A hold becomes at most one booking: a retried registration finds the booking it made, and
-- a redelivered command cannot make a second one.
CREATE UNIQUE INDEX bookings_hold_key ON bookings (hold_id) WHERE hold_id IS NOT NULL;

-- Cancelling is a state, deleting is only for events that never sold anything.
ALTER TABLE events ADD COLUMN cancelled_at timestamptz;
