-- The ban list's reload (`shared::bans`), every few seconds in every service instance, asks for
-- the users banned within the last token lifetime. Without an index it read every user row:
-- 48 ms a call with ~250,000 users, the largest consumer of Postgres time in a 20,000-fan sale,
-- growing with the platform rather than with its traffic. Banned users are few: a partial
-- index holds only them, and the query's `banned_at > ...` implies the index's predicate.
CREATE INDEX users_banned_at_idx ON users (banned_at) WHERE banned_at IS NOT NULL;
