-- Best-available walks a class's seats in Redis (by idx/row_rank), never in Postgres, and every
-- seat query goes by (event_id, idx) or (event_id, id), which have their own unique indexes.
-- This index only cost time: creating a 100,000-seat event maintains it 100,000 times.
DROP INDEX IF EXISTS seats_class_order_idx;
